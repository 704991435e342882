package agent

import (
	"sync"
	"sync/atomic"

	"github.com/edgeagent/edgeagent/buffer"
)

// store is the sink between the device scanners and the uplink: every
// device event is appended to the buffer (durable on return in
// write-ahead mode) before the uplink may publish it, so a crash at any
// instant loses nothing that was read.
type store struct {
	buf *buffer.Buffer
	// mu makes mark atomic against puts: puts hold it shared (so the
	// buffer can group-commit concurrent scans), mark holds it alone.
	mu     sync.RWMutex
	notify chan struct{}

	failed atomic.Uint64 // events lost because the buffer refused them
}

func newStore(buf *buffer.Buffer) *store {
	return &store{buf: buf, notify: make(chan struct{}, 1)}
}

func (s *store) put(d *device, kind recordKind, at int64, tags []int32) error {
	// Append copies the record, so each device reuses one buffer.
	rec := d.appendRecord(d.recBuf[:0], kind, at, tags)
	d.recBuf = rec
	s.mu.RLock()
	_, _, err := s.buf.Append(rec)
	if err == nil {
		d.apply(kind, tags)
	}
	s.mu.RUnlock()
	if err != nil {
		s.failed.Add(uint64(max(1, d.eventSamples(kind, tags))))
		return err
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// mark returns the newest stored record's seq together with every
// device's state as of that record: the births of a new session carry
// exactly what the host would know after receiving records up to it.
func (s *store) mark(devs []*device, snaps [][]Point, online []bool) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.buf.Stats().NewestSeq
	for i, d := range devs {
		snaps[i], online[i] = d.snapshot(snaps[i])
	}
	return w
}
