package scan

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/edgeagent/edgeagent/agent/record"
	"github.com/edgeagent/edgeagent/buffer"
	"github.com/edgeagent/edgeagent/drivers"
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

	schemaMu sync.RWMutex
	schemas  map[uint64]*record.Schema // nil value: looked for, not found
	mine     map[uint64]bool           // registered by this process's scanners
}

// NewStore returns a Store over buf.
func NewStore(buf *buffer.Buffer) *Store {
	return &Store{buf: buf, notify: make(chan struct{}, 1), schemas: map[uint64]*record.Schema{}, mine: map[uint64]bool{}}
}

// schemaKey is the buffer extra a schema is stored under.
func schemaKey(id uint64) string { return fmt.Sprintf("schema/%016x", id) }

// lastKey is the buffer extra that holds the id of the schema a device was
// last registered with.
func lastKey(device string) string { return "last/" + device }

// Register stores a device's schema in the buffer, durably, before any
// record uses it, and returns its id. Registering the same schema again
// (a restart, an unchanged device) costs a lookup.
func (s *Store) Register(sch *record.Schema) (uint64, error) {
	enc := sch.Encode()
	id := record.SchemaID(enc)
	s.schemaMu.Lock()
	known := s.mine[id] && s.schemas[id] != nil
	// Marked before it is written, so Prune never deletes it meanwhile.
	s.mine[id] = true
	s.schemaMu.Unlock()
	if known {
		return id, s.putLast(sch.Device, id)
	}
	old, err := s.buf.Extra(schemaKey(id))
	if err == nil && string(old) != string(enc) {
		err = s.buf.PutExtra(schemaKey(id), enc)
	}
	if err == nil {
		err = s.putLast(sch.Device, id)
	}
	s.schemaMu.Lock()
	defer s.schemaMu.Unlock()
	if err != nil {
		delete(s.mine, id)
		return 0, fmt.Errorf("storing the schema of %q: %w", sch.Device, err)
	}
	// The names are the device's tags' own, and a record of the device's
	// current schema needs none: keep the device and the types, and read
	// the names back from the buffer if a record of an older
	// configuration ever needs them.
	s.schemas[id] = &record.Schema{Device: sch.Device, Types: sch.Types}
	return id, nil
}

// putLast remembers id as the device's last schema.
func (s *Store) putLast(device string, id uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	old, err := s.buf.Extra(lastKey(device))
	if err != nil || string(old) == string(b[:]) {
		return err
	}
	return s.buf.PutExtra(lastKey(device), b[:])
}

// LastSchema returns, with its names, the schema the device was last
// registered with, by this process or an earlier one; nil if none.
func (s *Store) LastSchema(device string) *record.Schema {
	b, err := s.buf.Extra(lastKey(device))
	if err != nil || len(b) != 8 {
		return nil
	}
	sch, ok := s.SchemaNames(binary.BigEndian.Uint64(b))
	if !ok || sch.Device != device || len(sch.Names) != len(sch.Types) {
		return nil
	}
	return sch
}

// Schema returns a schema by id: one registered by this process, or one a
// buffered record of an earlier configuration or process refers to.
func (s *Store) Schema(id uint64) (*record.Schema, bool) {
	s.schemaMu.RLock()
	sch, ok := s.schemas[id]
	s.schemaMu.RUnlock()
	if ok {
		return sch, sch != nil
	}
	return s.loadSchema(id)
}

// SchemaNames returns a schema with its tag names, reading them from the
// buffer when only the device and types are kept.
func (s *Store) SchemaNames(id uint64) (*record.Schema, bool) {
	sch, ok := s.Schema(id)
	if !ok || sch.Names != nil || len(sch.Types) == 0 {
		return sch, ok
	}
	return s.loadSchema(id)
}

// loadSchema reads a schema from the buffer and keeps it.
func (s *Store) loadSchema(id uint64) (*record.Schema, bool) {
	var sch *record.Schema
	b, err := s.buf.Extra(schemaKey(id))
	if err != nil {
		return nil, false // the buffer is failing; nothing is cached
	}
	if b != nil {
		if sch, err = record.DecodeSchema(b); err != nil {
			sch = nil
		}
	}
	s.schemaMu.Lock()
	s.schemas[id] = sch
	s.schemaMu.Unlock()
	return sch, sch != nil
}

// Types implements record.Schemas.
func (s *Store) Types(id uint64) ([]drivers.Type, bool) {
	sch, ok := s.Schema(id)
	if !ok {
		return nil, false
	}
	return sch.Types, true
}

// Prune deletes the stored schemas that neither a buffered record nor a
// scanner of this process can need: only when the buffer is empty, so no
// record is left that refers to them.
func (s *Store) Prune() error {
	if s.buf.Stats().Records != 0 {
		return nil
	}
	keys, err := s.buf.ExtraKeys("schema/")
	if err != nil {
		return err
	}
	// A device's last schema stays: it types the tags a driver learns
	// only from the PLC until the PLC answers.
	lasts, err := s.buf.ExtraKeys("last/")
	if err != nil {
		return err
	}
	last := map[uint64]bool{}
	for _, k := range lasts {
		if b, err := s.buf.Extra(k); err == nil && len(b) == 8 {
			last[binary.BigEndian.Uint64(b)] = true
		}
	}
	for _, k := range keys {
		id, err := strconv.ParseUint(k[len("schema/"):], 16, 64)
		s.schemaMu.RLock()
		keep := err == nil && (s.mine[id] || last[id])
		s.schemaMu.RUnlock()
		if keep {
			continue
		}
		if err := s.buf.DeleteExtra(k); err != nil {
			return err
		}
		s.schemaMu.Lock()
		delete(s.schemas, id)
		s.schemaMu.Unlock()
	}
	return nil
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
