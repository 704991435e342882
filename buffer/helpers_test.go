package buffer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// logCapture is a slog.Handler that keeps records for assertions.
type logCapture struct {
	mu    sync.Mutex
	recs  []slog.Record
	attrs []slog.Attr
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	return &logCapture{attrs: append(slices.Clone(h.attrs), as...)}
}
func (h *logCapture) WithGroup(string) slog.Handler { return h }
func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// find returns the attributes of the records with msg at level.
func (h *logCapture) find(level slog.Level, msg string) []map[string]slog.Value {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]slog.Value
	for _, r := range h.recs {
		if r.Level != level || r.Message != msg {
			continue
		}
		m := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
		out = append(out, m)
	}
	return out
}

// mode is one configuration the common suite runs against.
type mode struct {
	name   string
	mode   Mode
	linkUp bool // Outage only: report the link up after every Open
}

var modes = []mode{
	{"writeahead", WriteAhead, false},
	{"outage-linkup", Outage, true},
	{"outage-linkdown", Outage, false},
}

func forEachMode(t *testing.T, f func(t *testing.T, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

// fixture opens buffers on one path in a temp dir.
type fixture struct {
	t    *testing.T
	m    mode
	path string
	opts Options
	logs *logCapture
}

func newFixture(t *testing.T, m mode) *fixture {
	t.Helper()
	logs := &logCapture{}
	return &fixture{
		t:    t,
		m:    m,
		path: filepath.Join(t.TempDir(), "buffer.db"),
		logs: logs,
		opts: Options{Mode: m.mode, Logger: slog.New(logs)},
	}
}

func (f *fixture) open() *Buffer {
	f.t.Helper()
	b, err := f.tryOpen()
	if err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	return b
}

func (f *fixture) tryOpen() (*Buffer, error) {
	o := f.opts
	o.Path = f.path
	b, err := Open(o)
	if err != nil {
		return nil, err
	}
	f.t.Cleanup(func() { _ = b.Close() })
	if f.m.linkUp {
		if err := b.SetLinkUp(true); err != nil {
			f.t.Fatalf("SetLinkUp: %v", err)
		}
	}
	return b, nil
}

// crash stops b the way kill -9 would: no memory spill, no clean flag.
// It must be called while no other call on b is in progress.
func crash(t *testing.T, b *Buffer) {
	t.Helper()
	b.dbMu.Lock()
	b.failed = errors.New("simulated crash")
	b.dbMu.Unlock()
	_ = b.Close()
}

func payload(i, size int) []byte {
	p := fmt.Appendf(nil, "rec-%d|", i)
	for len(p) < size {
		p = append(p, byte('a'+i%26))
	}
	return p[:max(size, len(p))]
}

func mustAppend(t *testing.T, b *Buffer, data ...[]byte) (uint64, uint64) {
	t.Helper()
	first, last, err := b.Append(data...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return first, last
}

// all reads every stored record with Seq > after, in bounded batches.
func all(t *testing.T, b *Buffer, after uint64) []Record {
	t.Helper()
	var out []Record
	for {
		recs, err := b.Peek(after, 257, 64<<10)
		if err != nil {
			t.Fatalf("Peek: %v", err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			if r.Seq <= after {
				t.Fatalf("Peek(%d) returned seq %d", after, r.Seq)
			}
			after = r.Seq
		}
		out = append(out, recs...)
	}
}

func seqs(recs []Record) []uint64 {
	s := make([]uint64, len(recs))
	for i, r := range recs {
		s[i] = r.Seq
	}
	return s
}

func span(first, last uint64) []uint64 {
	var s []uint64
	for q := first; q <= last; q++ {
		s = append(s, q)
	}
	return s
}

// fakeClock is an injectable Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
