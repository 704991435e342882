package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"

	"go.yaml.in/yaml/v4"

	"github.com/edgeagent/edgeagent/drivers"
)

// Tag lists are most of a large configuration: 100,000 tags are a 6-10 MB
// file, and a YAML node tree of it takes 30 times that. They are decoded
// in batches instead, each batch parsed on its own and dropped once its
// tags are decoded, so a load holds the file's bytes, a tree of
// everything but the tag lists, and one batch.
//
// The batches are cut along lines: a block sequence under a `tags:` key
// (the key alone on its line) is a run of items, each starting at a line
// with "-" at the items' indentation; every other line of the run is more
// indented, blank, or a comment. The file is parsed once with those runs
// blanked out (a skeleton: same lines and columns, the tag lists empty),
// and each batch of items is parsed from its own lines, with its line
// numbers shifted back to the file's. Nothing is guessed: if the skeleton
// does not hold an empty `tags:` exactly where a run was cut, or a batch
// does not parse into exactly its items (an alias to an anchor outside
// it, a quoted scalar running over lines less indented than its item), the
// file is decoded from its whole tree instead, which is always right and
// only costs memory.

// batchItems is how many tags are parsed at once (tests lower it).
var batchItems = 512

// streaming turns batch decoding on (tests compare both ways).
var streaming = true

// errUnstreamable makes the loader decode a file from its whole tree.
var errUnstreamable = errors.New("the tag list cannot be decoded in batches")

// run is one tag list found by the line scan.
type run struct {
	keyLine int     // 1-based line of the `tags:` key
	items   []int32 // byte offset of each item's first line
	lines   []int32 // 1-based line of each item
	end     int     // byte offset just past the run
}

// scanRuns finds the block sequences under `tags:` keys. ok is false when
// the file has something the line scan does not handle (a tab used for
// indentation, a document marker): it is then decoded whole.
func scanRuns(data []byte) (runs []*run, ok bool) {
	var cur *run
	keyIndent, itemIndent := 0, -1
	off, line := 0, 0
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		off = 3
	}
	closeRun := func(at int) {
		if cur != nil && len(cur.items) > 0 {
			cur.end = at
			runs = append(runs, cur)
		}
		cur = nil
	}
	for off < len(data) {
		line++
		nl := bytes.IndexByte(data[off:], '\n')
		end := len(data)
		if nl >= 0 {
			end = off + nl + 1
		}
		text := bytes.TrimRight(data[off:end], "\r\n")
		indent := 0
		for indent < len(text) && text[indent] == ' ' {
			indent++
		}
		rest := text[indent:]
		switch {
		case len(rest) > 0 && rest[0] == '\t':
			return nil, false
		case bytes.HasPrefix(text, []byte("---")) || bytes.HasPrefix(text, []byte("...")):
			return nil, false
		}
		blank := len(rest) == 0 || rest[0] == '#'
		if cur != nil && !blank {
			dash := rest[0] == '-' && (len(rest) == 1 || rest[1] == ' ')
			switch {
			case itemIndent < 0 && dash && indent >= keyIndent:
				itemIndent = indent
				cur.items = append(cur.items, int32(off))
				cur.lines = append(cur.lines, int32(line))
			case itemIndent < 0:
				cur = nil // not a block sequence: decoded from the tree
			case indent == itemIndent && dash:
				cur.items = append(cur.items, int32(off))
				cur.lines = append(cur.lines, int32(line))
			case indent > itemIndent:
			case indent < keyIndent || (indent == keyIndent && !dash):
				closeRun(off)
			default:
				// Less indented than the items but not out of the key's
				// value: the line scan cannot tell what YAML makes of it.
				return nil, false
			}
		}
		if cur == nil && !blank {
			if col, ok := tagsKey(text); ok {
				cur, keyIndent, itemIndent = &run{keyLine: line}, col, -1
			}
		}
		off = end
	}
	closeRun(len(data))
	return runs, true
}

// tagsKey reports whether a line is a `tags:` key with nothing after it
// but a comment (also as the first key of a list item, "- tags:"), and the
// key's column (0-based).
func tagsKey(text []byte) (int, bool) {
	i := 0
	for i < len(text) && text[i] == ' ' {
		i++
	}
	if i+1 < len(text) && text[i] == '-' && text[i+1] == ' ' {
		i += 2
		for i < len(text) && text[i] == ' ' {
			i++
		}
	}
	col := i
	if !bytes.HasPrefix(text[i:], []byte("tags")) {
		return 0, false
	}
	i += 4
	for i < len(text) && text[i] == ' ' {
		i++
	}
	if i >= len(text) || text[i] != ':' {
		return 0, false
	}
	i++
	for i < len(text) && text[i] == ' ' {
		i++
	}
	if i < len(text) && text[i] != '#' {
		return 0, false
	}
	return col, true
}

// skeleton returns data with the runs' lines emptied (their newlines
// kept): every other line at its number and columns, every run an empty
// value. It takes the size of the rest of the file, not of the tags.
func skeleton(data []byte, runs []*run) []byte {
	n := len(data)
	for _, r := range runs {
		n -= r.end - int(r.items[0]) - len(r.items)
	}
	out := make([]byte, 0, max(n, 0))
	prev := 0
	for _, r := range runs {
		out = append(out, data[prev:r.items[0]]...)
		for _, c := range data[r.items[0]:r.end] {
			if c == '\n' {
				out = append(out, '\n')
			}
		}
		prev = r.end
	}
	return append(out, data[prev:]...)
}

// streamed is a file whose tag lists are decoded in batches.
type streamed struct {
	data   []byte
	byLine map[int]*run // by the line of their `tags:` key
}

// parseStreamed parses a file's skeleton. It returns nil when the file is
// to be decoded whole (no tag list found, or the scan cannot be trusted).
func parseStreamed(data []byte) (*streamed, *yaml.Node) {
	runs, ok := scanRuns(data)
	if !ok || len(runs) == 0 {
		return nil, nil
	}
	var doc yaml.Node
	if err := yaml.Load(skeleton(data, runs), &doc); err != nil {
		return nil, nil
	}
	s := &streamed{data: data, byLine: make(map[int]*run, len(runs))}
	for _, r := range runs {
		s.byLine[r.keyLine] = r
	}
	return s, resolve(&doc)
}

// runAt returns the run whose `tags:` key is the key node k, if its value
// in the skeleton is empty, as a run's must be.
func (s *streamed) runAt(k, v *yaml.Node) *run {
	if s == nil || k == nil {
		return nil
	}
	r := s.byLine[k.Line]
	if r == nil || !isNull(resolve(v)) {
		return nil
	}
	return r
}

// runTags walks a run in batches.
type runTags struct {
	d    *decoder // of the file
	key  string   // key path of the list
	data []byte
	r    *run
	sum  [32]byte // digest of the tags, set by Each
}

func (t *runTags) Len() int { return len(t.r.items) }

func (t *runTags) Each(fn func(i int, decode func(v any) error) error) error {
	w := newTagWalk(t.d, t.key)
	n := len(t.r.items)
	for a := 0; a < n; a += batchItems {
		b := min(a+batchItems, n)
		end := t.r.end
		if b < n {
			end = int(t.r.items[b])
		}
		var doc yaml.Node
		if err := yaml.Load(t.data[t.r.items[a]:end], &doc); err != nil {
			return fmt.Errorf("%w: %v", errUnstreamable, err)
		}
		seq := resolve(&doc)
		if seq == nil || seq.Kind != yaml.SequenceNode || len(seq.Content) != b-a {
			return errUnstreamable
		}
		d := *t.d
		d.lineOff = int(t.r.lines[a]) - 1
		for k, item := range seq.Content {
			w.item(&d, a+k, item, fn)
		}
	}
	t.sum = w.finish()
	return w.result()
}

// tagWalk is what walking a tag list does for each tag, however the list
// is parsed: decode, report, digest.
type tagWalk struct {
	d      *decoder
	key    string
	h      hash.Hash
	n      int
	before int
	failed bool
}

func newTagWalk(d *decoder, key string) *tagWalk {
	return &tagWalk{d: d, key: key, h: sha256.New(), before: len(*d.errs)}
}

// item hands one tag to fn, placing the errors it returns.
func (w *tagWalk) item(d *decoder, i int, item *yaml.Node, fn func(i int, decode func(v any) error) error) {
	item = resolve(item)
	hashNode(w.h, item, 0)
	w.n++
	key := fmt.Sprintf("%s[%d]", w.key, i)
	if n := resolve(lookup(item, "name")); n != nil && n.Kind == yaml.ScalarNode && n.Value != "" {
		key += fmt.Sprintf(" %q", n.Value)
	}
	decode := func(v any) error {
		n := len(*d.errs)
		if d.decode(key, item, v) {
			return nil
		}
		return &recorded{(*d.errs)[n:]}
	}
	err := fn(i, decode)
	if err == nil {
		return
	}
	w.failed = true
	for _, e := range flatten(err) {
		if isRecorded(e) {
			continue
		}
		var ke *drivers.KeyError
		if errors.As(e, &ke) {
			at := lookup(item, firstKey(ke.Key))
			if at == nil {
				at = item
			}
			d.errAt(at, join(key, ke.Key), "%v", ke.Err)
			continue
		}
		d.errAt(item, key, "%v", e)
	}
}

// finish returns the digest of the tags walked: the same for a list
// however it was parsed.
func (w *tagWalk) finish() [32]byte {
	writeInt(w.h, int64(w.n))
	var out [32]byte
	w.h.Sum(out[:0])
	return out
}

func (w *tagWalk) result() error {
	if w.failed {
		return &recorded{(*w.d.errs)[w.before:]}
	}
	return nil
}
