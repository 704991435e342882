package buffer

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Mode selects when appended records reach the disk.
type Mode int

const (
	// WriteAhead writes and fsyncs every record before Append returns.
	WriteAhead Mode = iota
	// Outage keeps records in memory while the link is up and the disk
	// backlog is empty, and writes to disk otherwise.
	Outage
)

// String returns "write-ahead" or "outage".
func (m Mode) String() string {
	switch m {
	case WriteAhead:
		return "write-ahead"
	case Outage:
		return "outage"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

const (
	// RecordOverhead is what each record costs against MaxBytes on top of
	// its data: an 8-byte key, an 8-byte append timestamp and bbolt's
	// 16-byte leaf element header.
	RecordOverhead = 32

	// DefaultMaxBytes is the cap used when Options.MaxBytes is 0.
	DefaultMaxBytes = 512 << 20

	// DefaultMaxMemBytes is the Outage-mode memory window used when
	// Options.MaxMemBytes is 0.
	DefaultMaxMemBytes = 8 << 20

	// DefaultPeekRecords and DefaultPeekBytes bound Peek when its limits are <= 0.
	DefaultPeekRecords = 1000
	DefaultPeekBytes   = 4 << 20
)

// Options configure Open. Only Path is required.
type Options struct {
	Path string // the bbolt file; its directory must exist

	// MaxBytes caps the stored records: sum of len(data)+RecordOverhead.
	// 0 means DefaultMaxBytes.
	MaxBytes int64

	Mode Mode // WriteAhead (default) or Outage

	// MaxMemBytes bounds the Outage-mode memory queue (accounted like
	// MaxBytes); when exceeded it is written to disk. 0 means
	// DefaultMaxMemBytes. Ignored in WriteAhead mode.
	MaxMemBytes int64

	Logger *slog.Logger     // nil means slog.Default()
	Now    func() time.Time // clock for record timestamps and OldestAge; nil means time.Now
}

// Record is one stored record.
type Record struct {
	Seq  uint64
	Data []byte // a copy owned by the caller
}

// Stats is a snapshot of the buffer, maintained incrementally (cheap to call).
type Stats struct {
	Records      int           // records stored (disk and memory)
	Bytes        int64         // their accounted size, len(Data)+RecordOverhead each: what MaxBytes caps
	MemRecords   int           // of Records, those held only in memory (Outage mode): what a kill -9 would lose
	MemBytes     int64         // accounted size of MemRecords
	OldestSeq    uint64        // 0 when empty
	NewestSeq    uint64        // 0 when empty
	OldestAge    time.Duration // Now() minus the oldest record's append time; 0 when empty
	Appended     uint64        // records appended since Open, including any later dropped
	Acked        uint64        // records deleted by Ack since Open
	Dropped      uint64        // records dropped by the MaxBytes cap since Open
	DroppedBytes int64         // accounted size of Dropped
	FileBytes    int64         // size of the bbolt file
	WrittenBytes int64         // bytes committed to the file since Open (pages and meta pages): the flash wear
}

// Buffer is a durable FIFO of records. All methods are safe for concurrent use.
type Buffer struct {
	path   string
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	boltOp *bolt.Options

	// dbMu guards db, failed and closed: Peek holds it shared, the writer
	// holds it exclusively only to swap the file (compaction) and Close
	// to close it.
	dbMu   sync.RWMutex
	db     *bolt.DB
	failed error // set when the file could not be reopened after compaction
	closed bool

	reqs      chan *request // unbuffered: a send succeeds only when the writer takes it
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	// mu guards st. Only the writer goroutine changes st (under mu), so the
	// writer may read it without locking.
	mu sync.Mutex
	st state

	w writerState // owned by the writer goroutine

	written  atomic.Int64 // Stats.WrittenBytes
	maxBytes atomic.Int64 // the cap in force: Options.MaxBytes, then SetMaxBytes
}

// state is the buffer's bookkeeping. The writer works on a copy (the shadow)
// and publishes it after a successful commit.
type state struct {
	nextSeq uint64 // next sequence number to hand out
	ceiling uint64 // persisted: every sequence number handed out is <= ceiling

	dCount  int    // records on disk
	dBytes  int64  // their accounted bytes
	dFirst  uint64 // oldest seq on disk, 0 if none
	dLast   uint64 // newest seq on disk, 0 if none
	dOldest int64  // append time (unix ns) of the oldest disk record

	mem    []memRecord // Outage mode: records newer than everything on disk
	mBytes int64
	linkUp bool

	appended, acked, dropped uint64
	droppedBytes             int64
}

type memRecord struct {
	seq  uint64
	ts   int64
	data []byte
}

func accounted(n int) int64 { return int64(n) + RecordOverhead }

// Open opens or creates the buffer file, checking, repairing and compacting
// it as the package documentation describes, and starts the writer.
func Open(opts Options) (*Buffer, error) {
	if opts.Path == "" {
		return nil, fmt.Errorf("opening buffer: empty path")
	}
	if opts.MaxBytes < 0 || opts.MaxMemBytes < 0 {
		return nil, fmt.Errorf("opening buffer %q: negative size limit", opts.Path)
	}
	if opts.Mode != WriteAhead && opts.Mode != Outage {
		return nil, fmt.Errorf("opening buffer %q: unknown mode %d", opts.Path, int(opts.Mode))
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxMemBytes == 0 {
		opts.MaxMemBytes = DefaultMaxMemBytes
	}
	if opts.MaxMemBytes > opts.MaxBytes {
		opts.MaxMemBytes = opts.MaxBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &Buffer{
		path: opts.Path,
		opts: opts,
		log:  opts.Logger,
		now:  opts.Now,
		reqs: make(chan *request),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	b.maxBytes.Store(opts.MaxBytes)
	db, st, err := b.openFile()
	if err != nil {
		return nil, err
	}
	b.db = db
	b.st = st
	go b.writer()
	return b, nil
}

// Append stores records and returns the sequence numbers of the first and
// the last (consecutive). In WriteAhead mode they are committed and fsync'd
// when it returns nil. The caller may reuse the slices after it returns.
// Appending nothing returns 0, 0, nil. A record that can never fit under
// MaxBytes fails with ErrTooLarge and nothing is stored.
func (b *Buffer) Append(data ...[]byte) (first, last uint64, err error) {
	if len(data) == 0 {
		return 0, 0, nil
	}
	for i, d := range data {
		if accounted(len(d)) > b.maxBytes.Load() || len(d)+8 > bolt.MaxValueSize {
			return 0, 0, fmt.Errorf("appending record %d (%d bytes) to buffer %q: %w (max_bytes %d, %d bytes overhead per record)",
				i, len(d), b.path, ErrTooLarge, b.maxBytes.Load(), RecordOverhead)
		}
	}
	r := newRequest(opAppend)
	r.data = data
	res, err := b.do(r)
	return res.first, res.last, err
}

// Peek returns the oldest stored records with Seq > after, in order: at most
// maxRecords records and maxBytes bytes of data, but always at least one
// record if any is stored (a record larger than maxBytes comes alone).
// Limits <= 0 mean DefaultPeekRecords and DefaultPeekBytes. Peek does not
// remove anything; an empty result means no such record is stored now.
// The caller owns what it gets.
func (b *Buffer) Peek(after uint64, maxRecords int, maxBytes int) ([]Record, error) {
	return b.peek(after, maxRecords, maxBytes, nil)
}

// A Reader peeks like Buffer.Peek but reuses its memory: what its Peek
// returns is valid only until its next Peek. A consumer that is done with
// each batch before it reads the next (the uplink publishes records as it
// reads them) spares the collector a copy of every record it reads.
// A Reader is not safe for concurrent use.
type Reader struct {
	b       *Buffer
	scratch peekScratch
}

type peekScratch struct {
	recs []Record
	slab []byte
}

// maxReaderSlab bounds the data a Reader keeps between Peeks.
const maxReaderSlab = 1 << 20

// NewReader returns a Reader of b.
func (b *Buffer) NewReader() *Reader { return &Reader{b: b} }

// Peek is Buffer.Peek; the result is valid until the next call.
func (r *Reader) Peek(after uint64, maxRecords int, maxBytes int) ([]Record, error) {
	recs, err := r.b.peek(after, maxRecords, maxBytes, &r.scratch)
	if cap(r.scratch.slab) > maxReaderSlab {
		r.scratch.slab = nil
	}
	return recs, err
}

func (b *Buffer) peek(after uint64, maxRecords, maxBytes int, sc *peekScratch) ([]Record, error) {
	if maxRecords <= 0 {
		maxRecords = DefaultPeekRecords
	}
	if maxBytes <= 0 {
		maxBytes = DefaultPeekBytes
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	if b.failed != nil {
		return nil, b.failed
	}
	// Memory holds records only while the disk is empty (see state), so
	// records come from one place or the other, never both.
	if recs, ok := b.peekMem(after, maxRecords, maxBytes, sc); ok {
		return recs, nil
	}
	recs, err := b.peekDisk(after, maxRecords, maxBytes, sc)
	if err != nil || len(recs) > 0 {
		return recs, err
	}
	// The disk may have drained and memory filled since the first look.
	recs, _ = b.peekMem(after, maxRecords, maxBytes, sc)
	return recs, nil
}

// copyOut gives each record its own copy of its data, in one slab: the
// scratch's when there is one (reused), else a new one.
func copyOut(out []Record, total int, sc *peekScratch) {
	var slab []byte
	if sc != nil && cap(sc.slab) >= total {
		slab = sc.slab[:total]
	} else {
		slab = make([]byte, total)
		if sc != nil {
			sc.slab = slab
		}
	}
	for j := range out {
		n := copy(slab, out[j].Data)
		out[j].Data, slab = slab[:n:n], slab[n:]
	}
}

func (sc *peekScratch) records() []Record {
	if sc == nil {
		return nil
	}
	clear(sc.recs)
	return sc.recs[:0]
}

func (sc *peekScratch) keep(out []Record) {
	if sc != nil {
		sc.recs = out
	}
}

func (b *Buffer) peekMem(after uint64, maxRecords, maxBytes int, sc *peekScratch) ([]Record, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	mem := b.st.mem
	if len(mem) == 0 {
		return nil, false
	}
	i := sort.Search(len(mem), func(i int) bool { return mem[i].seq > after })
	out := sc.records()
	total := 0
	for ; i < len(mem) && len(out) < maxRecords; i++ {
		d := mem[i].data
		if len(out) > 0 && total+len(d) > maxBytes {
			break
		}
		total += len(d)
		out = append(out, Record{Seq: mem[i].seq, Data: d})
	}
	copyOut(out, total, sc)
	sc.keep(out)
	return out, true
}

func (b *Buffer) peekDisk(after uint64, maxRecords, maxBytes int, sc *peekScratch) ([]Record, error) {
	b.mu.Lock()
	empty := b.st.dCount == 0 || b.st.dLast <= after
	b.mu.Unlock()
	if empty {
		return nil, nil
	}
	out := sc.records()
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(recordsBucket).Cursor()
		total := 0
		var joined []byte // chunked records, assembled
		k, v := c.Seek(seqKey(after + 1))
		for k != nil && len(out) < maxRecords {
			seq := keySeq(k)
			_, size, part, ok := headInfo(v)
			if !ok || len(k) != headKey {
				return fmt.Errorf("malformed record %x (%d bytes)", k, len(v))
			}
			if len(out) > 0 && total+size > maxBytes {
				break
			}
			total += size
			if size == len(part) {
				out = append(out, Record{Seq: seq, Data: part})
				k, v = c.Next()
				continue
			}
			start := len(joined)
			var err error
			if joined, k, v, err = readRecord(c, k, v, joined); err != nil {
				return err
			}
			// joined may move as it grows: point into it once complete.
			out = append(out, Record{Seq: seq, Data: joined[start:len(joined):len(joined)]})
		}
		// Records pointing into an earlier backing array of joined keep
		// it alive; they are copied out below all the same.
		copyOut(out, total, sc) // bbolt's memory is valid only in this transaction
		return nil
	})
	sc.keep(out)
	if err != nil {
		return nil, fmt.Errorf("reading buffer %q: %w", b.path, err)
	}
	return out, nil
}

// Ack deletes every record with Seq <= upTo, in memory and on disk; call it
// only once the records are proven received. Acknowledging beyond the newest
// record empties the buffer and does not affect later sequence numbers.
// Deletions on disk are committed and fsync'd when Ack returns nil.
func (b *Buffer) Ack(upTo uint64) error {
	r := newRequest(opAck)
	r.upTo = upTo
	_, err := b.do(r)
	return err
}

// AckRange deletes the records with from <= Seq <= to, wherever they sit
// in the queue; call it only once they are proven received. Records before
// from stay. Deletions are committed and fsync'd when it returns nil.
func (b *Buffer) AckRange(from, to uint64) error {
	if from == 0 {
		return b.Ack(to)
	}
	if from > to {
		return nil
	}
	r := newRequest(opAck)
	r.from, r.upTo = from, to
	_, err := b.do(r)
	return err
}

// PutExtra stores a small value under key beside the records, durably
// (committed and fsync'd before it returns, in either Mode): what a reader
// needs to understand records, written before the records that need it. A
// nil value deletes the key. Extras survive restarts and compaction; they
// count against the file like records but are never dropped by the cap.
func (b *Buffer) PutExtra(key string, value []byte) error {
	if key == "" {
		return errors.New("buffer: empty extra key")
	}
	r := newRequest(opExtra)
	r.key = key
	r.val = value
	if value != nil && len(value) == 0 {
		r.val = []byte{}
	}
	_, err := b.do(r)
	return err
}

// DeleteExtra deletes the extra stored under key, if any.
func (b *Buffer) DeleteExtra(key string) error {
	r := newRequest(opExtra)
	r.key = key
	_, err := b.do(r)
	return err
}

// Extra returns a copy of the value stored under key, or nil if none is.
func (b *Buffer) Extra(key string) ([]byte, error) {
	var out []byte
	err := b.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(extrasBucket).Get([]byte(key)); v != nil {
			out = append([]byte{}, v...)
		}
		return nil
	})
	return out, err
}

// ExtraKeys lists the extras' keys that start with prefix, sorted.
func (b *Buffer) ExtraKeys(prefix string) ([]string, error) {
	var out []string
	err := b.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(extrasBucket).Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, _ = c.Next() {
			out = append(out, string(k))
		}
		return nil
	})
	return out, err
}

// view runs fn in a read transaction of the open file.
func (b *Buffer) view(fn func(tx *bolt.Tx) error) error {
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	if b.failed != nil {
		return b.failed
	}
	return b.db.View(fn)
}

// SetMaxBytes changes the cap (a configuration reload). A lower cap drops
// the oldest records at the next Append, counted as the cap always does.
func (b *Buffer) SetMaxBytes(n int64) {
	if n > 0 {
		b.maxBytes.Store(n)
	}
}

// SetLinkUp tells an Outage-mode buffer whether the uplink is up. Going down
// writes the in-memory records to disk in one transaction before it returns;
// coming up lets appends return to memory once the disk backlog is
// acknowledged empty. The link is assumed down at Open. In WriteAhead mode
// it does nothing.
func (b *Buffer) SetLinkUp(up bool) error {
	if b.opts.Mode != Outage {
		return nil
	}
	r := newRequest(opLink)
	r.up = up
	_, err := b.do(r)
	return err
}

// Stats returns a snapshot of the counters; it does not read the database.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	st := &b.st
	s := Stats{
		Records:      st.dCount + len(st.mem),
		Bytes:        st.dBytes + st.mBytes,
		MemRecords:   len(st.mem),
		MemBytes:     st.mBytes,
		Appended:     st.appended,
		Acked:        st.acked,
		Dropped:      st.dropped,
		DroppedBytes: st.droppedBytes,
	}
	var oldest int64
	switch {
	case st.dCount > 0:
		s.OldestSeq, oldest = st.dFirst, st.dOldest
		s.NewestSeq = st.dLast
	case len(st.mem) > 0:
		s.OldestSeq, oldest = st.mem[0].seq, st.mem[0].ts
	}
	if n := len(st.mem); n > 0 {
		s.NewestSeq = st.mem[n-1].seq
	}
	b.mu.Unlock()
	if s.Records > 0 {
		if age := b.now().Sub(time.Unix(0, oldest)); age > 0 {
			s.OldestAge = age
		}
	}
	if fi, err := os.Stat(b.path); err == nil {
		s.FileBytes = fi.Size()
	}
	s.WrittenBytes = b.written.Load()
	return s
}

// Close writes any in-memory records to disk, marks the file cleanly closed
// and closes it. Calls in progress or made later fail with ErrClosed.
// Closing twice returns nil.
func (b *Buffer) Close() error {
	first := false
	b.closeOnce.Do(func() {
		first = true
		close(b.quit)
		<-b.done
		b.dbMu.Lock()
		defer b.dbMu.Unlock()
		b.closed = true
		if b.db != nil {
			if err := b.db.Close(); err != nil && b.closeErr == nil {
				b.closeErr = fmt.Errorf("closing buffer %q: %w", b.path, err)
			}
		}
	})
	if !first {
		return nil
	}
	return b.closeErr
}
