package scan

import (
	"sync"
	"sync/atomic"

	"github.com/edgeagent/edgeagent/buffer"
)

// Store is the seam between the scanners and the durable buffer: every
// event is appended to the buffer (durable on return in write-ahead mode)
// before the scanner's view changes and before anything may publish it,
// so a crash at any instant loses nothing that was read.
type Store struct {
	buf *buffer.Buffer
	// mu makes Mark atomic against stores: stores hold it shared (so the
	// buffer group-commits concurrent scans), Mark holds it alone.
	mu     sync.RWMutex
	notify chan struct{}

	failed atomic.Uint64 // samples lost because the buffer refused them
}

// NewStore returns a Store over buf.
func NewStore(buf *buffer.Buffer) *Store {
	return &Store{buf: buf, notify: make(chan struct{}, 1)}
}

// put appends one encoded event and, once the buffer has it, runs apply
// (which updates the scanner's view).
func (s *Store) put(rec []byte, samples int, apply func()) error {
	s.mu.RLock()
	_, _, err := s.buf.Append(rec)
	if err == nil {
		apply()
	}
	s.mu.RUnlock()
	if err != nil {
		s.failed.Add(uint64(max(1, samples)))
		return err
	}
	s.Signal()
	return nil
}

// Mark runs snapshot while no event is being stored and returns the seq of
// the newest stored record: what snapshot reads of the scanners' views is
// their state as of that record.
func (s *Store) Mark(snapshot func()) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if snapshot != nil {
		snapshot()
	}
	return s.buf.Stats().NewestSeq
}

// Notify delivers a value after new events were stored (coalesced).
func (s *Store) Notify() <-chan struct{} { return s.notify }

// Signal wakes whoever waits on Notify.
func (s *Store) Signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Failed is the number of samples lost because the buffer refused them.
func (s *Store) Failed() uint64 { return s.failed.Load() }
