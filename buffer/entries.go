package buffer

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// How a record sits in the records bucket. A record of at most chunkData
// bytes is one entry: key seq (8 bytes, big-endian), value the append
// time (8 bytes, Unix ns) and the data. A longer one is a head entry,
// whose time has chunkFlag set and is followed by the total length (4
// bytes) and the first chunkData bytes, then chunk entries keyed seq and
// a 2-byte index from 1, each holding the next chunkData bytes.
//
// chunkData keeps any two entries within one page: bbolt puts at least two
// entries in a page, and an entry that does not fit would make it
// allocate a run of contiguous pages, which free pages scattered by
// deletes may not offer; the file would then grow past max_bytes. With
// entries this small every allocation is one page, any free page serves,
// and the bound holds. (Files of the first format have single entries
// only; they read the same.)
const (
	chunkData = 2000
	chunkFlag = uint64(1) << 63
	headKey   = 8
	chunkKey  = 10
)

// entryCount is how many entries a record of n bytes takes.
func entryCount(n int) int { return max(1, (n+chunkData-1)/chunkData) }

// putRecord stores one record.
func putRecord(g *group, seq uint64, ts int64, data []byte) error {
	if len(data) <= chunkData {
		buf := g.alloc(headKey + 8 + len(data))
		putSeq(buf[:8], seq)
		putSeq(buf[8:16], uint64(ts))
		copy(buf[16:], data)
		return g.bkt.Put(buf[:8:8], buf[8:])
	}
	first := data[:chunkData]
	buf := g.alloc(headKey + 12 + len(first))
	putSeq(buf[:8], seq)
	putSeq(buf[8:16], uint64(ts)|chunkFlag)
	binary.BigEndian.PutUint32(buf[16:20], uint32(len(data)))
	copy(buf[20:], first)
	if err := g.bkt.Put(buf[:8:8], buf[8:]); err != nil {
		return err
	}
	for i, off := 1, chunkData; off < len(data); i, off = i+1, off+chunkData {
		part := data[off:min(off+chunkData, len(data))]
		buf := g.alloc(chunkKey + len(part))
		putSeq(buf[:8], seq)
		binary.BigEndian.PutUint16(buf[8:10], uint16(i))
		copy(buf[10:], part)
		if err := g.bkt.Put(buf[:10:10], buf[10:]); err != nil {
			return err
		}
	}
	return nil
}

// headInfo reads a head entry's value: append time, total data length,
// and the data it holds itself. ok is false for a malformed value.
func headInfo(v []byte) (ts int64, size int, part []byte, ok bool) {
	if len(v) < 8 {
		return 0, 0, nil, false
	}
	t := binary.BigEndian.Uint64(v)
	if t&chunkFlag == 0 {
		return int64(t), len(v) - 8, v[8:], true
	}
	if len(v) < 12 {
		return 0, 0, nil, false
	}
	size = int(binary.BigEndian.Uint32(v[8:12]))
	part = v[12:]
	if size <= len(part) {
		return 0, 0, nil, false
	}
	return int64(t &^ chunkFlag), size, part, true
}

// afterKey is the smallest key greater than k: a record's first chunk
// after its head, its next chunk after a chunk (the next record's head
// follows when there is none).
func afterKey(dst *[chunkKey]byte, k []byte) []byte {
	copy(dst[:8], k[:8])
	if len(k) == headKey {
		binary.BigEndian.PutUint16(dst[8:], 1)
	} else {
		binary.BigEndian.PutUint16(dst[8:], binary.BigEndian.Uint16(k[8:10])+1)
	}
	return dst[:]
}

// readRecord reads the record whose head is at the cursor (k, v) and
// appends its data to dst, returning dst and the cursor after it.
func readRecord(c *bolt.Cursor, k, v []byte, dst []byte) ([]byte, []byte, []byte, error) {
	seq := keySeq(k)
	_, size, part, ok := headInfo(v)
	if !ok || len(k) != headKey {
		return dst, nil, nil, fmt.Errorf("malformed record %x (%d bytes)", k, len(v))
	}
	dst = append(dst, part...)
	got := len(part)
	k, v = c.Next()
	for got < size {
		if len(k) != chunkKey || keySeq(k) != seq {
			return dst, nil, nil, fmt.Errorf("record %d lacks chunks: %d of %d bytes", seq, got, size)
		}
		dst = append(dst, v...)
		got += len(v)
		k, v = c.Next()
	}
	if got != size {
		return dst, nil, nil, fmt.Errorf("record %d holds %d bytes, its head says %d", seq, got, size)
	}
	return dst, k, v, nil
}
