package config

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"
)

// fingerprint digests a device's configuration: the keys the agent owns,
// the driver's keys and the tags. Reload keeps a device running only when
// its fingerprint is unchanged.
func fingerprint(dev *Device, rest *yaml.Node, tags [32]byte) [32]byte {
	h := sha256.New()
	writeStr(h, dev.ID)
	writeStr(h, dev.Driver)
	writeInt(h, int64(dev.Poll))
	writeInt(h, int64(dev.Timeout))
	hashNode(h, rest, 0)
	h.Write(tags[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// hashNode feeds what a node means into h: kinds, resolved tags and
// values, mappings in key order, aliases followed; not comments, styles or
// positions.
func hashNode(h hash.Hash, n *yaml.Node, depth int) {
	n = resolve(n)
	if n == nil || depth > 100 {
		h.Write([]byte{0})
		return
	}
	h.Write([]byte{byte(n.Kind)})
	switch n.Kind {
	case yaml.ScalarNode:
		writeStr(h, n.ShortTag())
		writeStr(h, n.Value)
	case yaml.SequenceNode:
		writeInt(h, int64(len(n.Content)))
		for _, c := range n.Content {
			hashNode(h, c, depth+1)
		}
	case yaml.MappingNode:
		idx := make([]int, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			idx = append(idx, i)
		}
		slices.SortFunc(idx, func(a, b int) int { return strings.Compare(n.Content[a].Value, n.Content[b].Value) })
		writeInt(h, int64(len(idx)))
		for _, i := range idx {
			hashNode(h, n.Content[i], depth+1)
			hashNode(h, n.Content[i+1], depth+1)
		}
	}
}

func writeStr(h hash.Hash, s string) {
	writeInt(h, int64(len(s)))
	h.Write([]byte(s))
}

func writeInt(h hash.Hash, v int64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(v))
	h.Write(b[:])
}
