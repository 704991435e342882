package buffer

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

const (
	// A group (one transaction, one fsync) takes waiting requests until it
	// holds this many records or bytes.
	maxGroupRecords = 4096
	maxGroupBytes   = 4 << 20

	// An Ack deletes at most this many records per transaction, so that a
	// large Ack neither holds much memory nor stalls appends for long.
	maxDeletesPerTx = 16384

	// Outage mode reserves sequence numbers in blocks, so memory appends
	// need no transaction yet never reuse a number after a crash.
	seqReserveBlock = 1 << 20

	dropLogInterval   = 10 * time.Second
	runtimeCompactGap = time.Minute
)

type opKind uint8

const (
	opAppend opKind = iota
	opAck
	opLink
	opExtra
)

type request struct {
	kind opKind
	data [][]byte // opAppend
	upTo uint64   // opAck
	from uint64   // opAck: 0 deletes from the front, else the range from..upTo
	up   bool     // opLink
	key  string   // opExtra
	val  []byte   // opExtra: nil deletes

	// filled by the writer
	first, last uint64
	partial     bool // an Ack not finished in this transaction
	done        chan result
}

type result struct {
	first, last uint64
	err         error
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan result, 1)} }}

func newRequest(k opKind) *request {
	r := requestPool.Get().(*request)
	r.kind = k
	r.from = 0
	return r
}

// do hands r to the writer and waits for its result.
func (b *Buffer) do(r *request) (result, error) {
	select {
	case b.reqs <- r:
	case <-b.quit:
		r.data = nil
		requestPool.Put(r)
		return result{}, ErrClosed
	}
	res := <-r.done
	*r = request{done: r.done}
	requestPool.Put(r)
	return res, res.err
}

// writerState belongs to the writer goroutine.
type writerState struct {
	group       []*request
	dropTimer   *time.Timer
	lastDropLog time.Time
	pendDrop    uint64
	pendDropB   int64
	lastCompact time.Time
	commits     uint64 // transactions committed by handle (benchmarks report records per commit)
	lastAlloc   int64  // bbolt's cumulative dirty-page bytes at the last commit
	failCommit  error  // tests only: the next transaction of handle fails with this
	slab        []byte // space for the keys and values a transaction puts
}

// maxSlab bounds the slab kept between transactions; a bigger one (a
// spill of the memory window) is left to the collector.
const maxSlab = 1 << 20

// countWritten adds the last commit's writes to Stats.WrittenBytes: the
// dirty pages bbolt allocated for it plus the meta page every commit
// writes. (The kernel's own accounting can be far higher on filesystems
// that book whole blocks per fdatasync.)
func (b *Buffer) countWritten() {
	st := b.db.Stats()
	alloc := st.TxStats.GetPageAlloc()
	if alloc < b.w.lastAlloc { // a new file after compaction
		b.w.lastAlloc = 0
	}
	b.written.Add(alloc - b.w.lastAlloc + pageSize)
	b.w.lastAlloc = alloc
}

// errNeedTx stops a memory-only attempt: the group must run in a transaction.
var errNeedTx = errors.New("needs a transaction")

// group is the scratch context of one transaction attempt.
type group struct {
	tx      *bolt.Tx
	bkt     *bolt.Bucket
	ts      int64 // append time for this group's records
	budget  int   // deletions left for Acks in this transaction
	dropped uint64
	dropB   int64
	slab    *[]byte
}

// alloc returns n bytes for a key or value of this transaction. bbolt
// holds them until the commit and not after, so the writer reuses one
// slab across transactions instead of allocating per record. A full slab
// is replaced, not grown: what this transaction already put stays where
// it is.
func (g *group) alloc(n int) []byte {
	s := *g.slab
	if cap(s)-len(s) < n {
		s = make([]byte, 0, max(2*cap(s), n, 64<<10))
	}
	b := s[len(s) : len(s)+n : len(s)+n]
	*g.slab = s[:len(s)+n]
	return b
}

func (b *Buffer) writer() {
	defer close(b.done)
	w := &b.w
	w.dropTimer = time.NewTimer(time.Hour)
	w.dropTimer.Stop()
	for {
		select {
		case r := <-b.reqs:
			b.handle(b.collect(r))
		case <-w.dropTimer.C:
			b.logDrops(true)
		case <-b.quit:
			b.closeErr = b.finish()
			return
		}
	}
}

// collect gathers the requests already waiting behind first, up to the group
// limits. The channel is unbuffered, so these are callers blocked in send
// while the previous group was committing: that is the group commit.
func (b *Buffer) collect(first *request) []*request {
	g := append(b.w.group[:0], first)
	recs, bytes := first.size()
	for recs < maxGroupRecords && bytes < maxGroupBytes {
		select {
		case r := <-b.reqs:
			g = append(g, r)
			n, s := r.size()
			recs += n
			bytes += s
		default:
			b.w.group = g
			return g
		}
	}
	b.w.group = g
	return g
}

func (r *request) size() (int, int) {
	if r.kind != opAppend {
		return 1, 0
	}
	n := 0
	for _, d := range r.data {
		n += len(d)
	}
	return len(r.data), n
}

// handle runs one group: in memory only if it can (Outage mode), otherwise
// in one bbolt transaction; then it answers the callers. Acks too large for
// one transaction continue in further transactions before being answered.
func (b *Buffer) handle(reqs []*request) {
	if b.failed != nil {
		for _, r := range reqs {
			r.done <- result{err: b.failed}
		}
		clear(reqs)
		return
	}
	var dropped uint64
	var dropB int64
	pending := reqs
	for len(pending) > 0 {
		sh := b.st // the shadow; b.st stays intact if this fails
		var g *group
		err := errNeedTx
		if b.opts.Mode == Outage {
			g = b.newGroup(nil)
			err = b.run(g, &sh, pending)
		}
		if errors.Is(err, errNeedTx) {
			// Bound the file: free pages for this transaction first, and
			// let bbolt grow the file by no more than it must.
			n, nb := b.makeRoom(pending)
			dropped += n
			dropB += nb
			b.db.AllocSize = b.growStep(pending)
			sh = b.st
			err = b.db.Update(func(tx *bolt.Tx) error {
				g = b.newGroup(tx)
				return b.run(g, &sh, pending)
			})
			if err == nil {
				b.w.commits++
				b.countWritten()
			}
		}
		if err != nil {
			err = fmt.Errorf("committing to buffer %q: %w", b.path, err)
			b.log.Error("buffer write failed", "path", b.path, "err", err)
			b.reload(sh.nextSeq)
			for _, r := range pending {
				r.done <- result{err: err}
			}
			break
		}
		b.publish(sh)
		dropped += g.dropped
		dropB += g.dropB
		next := pending[:0]
		for _, r := range pending {
			if r.partial {
				next = append(next, r)
				continue
			}
			r.done <- result{first: r.first, last: r.last}
		}
		pending = next
	}
	clear(reqs)
	if dropped > 0 {
		b.w.pendDrop += dropped
		b.w.pendDropB += dropB
		b.logDrops(false)
	}
	b.maybeCompact()
}

func (b *Buffer) newGroup(tx *bolt.Tx) *group {
	if cap(b.w.slab) > maxSlab {
		b.w.slab = nil
	}
	b.w.slab = b.w.slab[:0]
	g := &group{tx: tx, ts: b.now().UnixNano(), budget: maxDeletesPerTx, slab: &b.w.slab}
	if tx != nil {
		g.bkt = tx.Bucket(recordsBucket)
		g.bkt.FillPercent = 1.0 // keys only grow: fill pages completely
	}
	return g
}

// publish makes the shadow the visible state.
func (b *Buffer) publish(sh state) {
	b.mu.Lock()
	old := b.st.mem
	b.st = sh
	// Release the data of memory records that left the queue: the shadow
	// may still share old's backing array.
	k := len(old)
	if len(sh.mem) > 0 {
		k = sort.Search(len(old), func(i int) bool { return old[i].seq >= sh.mem[0].seq })
	}
	clear(old[:k])
	b.mu.Unlock()
}

// reload rereads the disk bookkeeping after a failed commit: bbolt may or
// may not have made it durable (an fsync error after the write). Sequence
// numbers handed out in the failed attempt stay burned.
func (b *Buffer) reload(burned uint64) {
	sh := b.st
	err := b.db.View(func(tx *bolt.Tx) error {
		d, _ := readState(tx)
		sh.ceiling, sh.dCount, sh.dBytes, sh.dFirst, sh.dLast, sh.dOldest = d.ceiling, d.dCount, d.dBytes, d.dFirst, d.dLast, d.dOldest
		return nil
	})
	if err != nil {
		b.log.Error("buffer state reload failed", "path", b.path, "err", err)
		return
	}
	sh.nextSeq = max(sh.nextSeq, burned, sh.dLast+1)
	// A spill that did land: those records are on disk now.
	for len(sh.mem) > 0 && sh.dCount > 0 && sh.mem[0].seq <= sh.dLast {
		sh.mBytes -= accounted(len(sh.mem[0].data))
		sh.mem = sh.mem[1:]
	}
	b.publish(sh)
}

// run applies the requests to the shadow st, and to the file when g.tx is
// set. Without a transaction it returns errNeedTx as soon as disk work is due.
func (b *Buffer) run(g *group, st *state, reqs []*request) error {
	for _, r := range reqs {
		r.partial = false
		var err error
		switch r.kind {
		case opAppend:
			err = b.runAppend(g, st, r)
		case opAck:
			err = b.runAck(g, st, r)
		case opLink:
			st.linkUp = r.up
			if !r.up && len(st.mem) > 0 {
				err = b.spill(g, st, "link down")
			}
		case opExtra:
			if g.tx == nil {
				return errNeedTx
			}
			x := g.tx.Bucket(extrasBucket)
			if r.val == nil {
				err = x.Delete([]byte(r.key))
			} else {
				err = x.Put([]byte(r.key), r.val)
			}
		}
		if err != nil {
			return err
		}
	}
	if g.tx == nil {
		return nil
	}
	if err := b.w.failCommit; err != nil {
		b.w.failCommit = nil
		return err
	}
	return writeMeta(g.tx, st, false)
}

func (b *Buffer) runAck(g *group, st *state, r *request) error {
	if r.from > 0 && (r.from > st.dFirst || len(st.mem) > 0 && r.from > st.mem[0].seq) {
		return b.runAckRange(g, st, r)
	}
	if n := sort.Search(len(st.mem), func(i int) bool { return st.mem[i].seq > r.upTo }); n > 0 {
		for _, m := range st.mem[:n] {
			st.mBytes -= accounted(len(m.data))
		}
		st.mem = st.mem[n:]
		st.acked += uint64(n)
	}
	if st.dCount == 0 || st.dFirst > r.upTo {
		return nil
	}
	if g.tx == nil {
		return errNeedTx
	}
	n, _, err := deleteFront(g, st, r.upTo, 0, g.budget)
	g.budget -= n
	st.acked += uint64(n)
	if err == nil && st.dCount > 0 && st.dFirst <= r.upTo {
		r.partial = true
	}
	return err
}

// runAckRange deletes the records from r.from to r.upTo that are not at the
// front: the uplink proves live records while older history is still
// being replayed. It deletes as deleteFront does (see there).
func (b *Buffer) runAckRange(g *group, st *state, r *request) error {
	lo := sort.Search(len(st.mem), func(i int) bool { return st.mem[i].seq >= r.from })
	hi := sort.Search(len(st.mem), func(i int) bool { return st.mem[i].seq > r.upTo })
	if hi > lo {
		for _, m := range st.mem[lo:hi] {
			st.mBytes -= accounted(len(m.data))
		}
		// A new array: the published state still shares the old one.
		st.mem = append(st.mem[:lo:lo], st.mem[hi:]...)
		st.acked += uint64(hi - lo)
	}
	if st.dCount == 0 || r.upTo < st.dFirst || r.from > st.dLast {
		return nil
	}
	if g.tx == nil {
		return errNeedTx
	}
	c := g.bkt.Cursor()
	from := seqKey(r.from)
	n := 0
	var freed int64
	var next [chunkKey]byte
	for k, v := c.Seek(from); k != nil && keySeq(k) <= r.upTo; k, v = c.Seek(afterKey(&next, k)) {
		seq := keySeq(k)
		if len(k) == headKey {
			if n >= g.budget {
				break
			}
			_, size, _, _ := headInfo(v)
			n++
			freed += accounted(size)
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("deleting record %d: %w", seq, err)
		}
	}
	g.budget -= n
	st.acked += uint64(n)
	st.dCount -= n
	st.dBytes -= freed
	if k, _ := c.Seek(from); k != nil && keySeq(k) <= r.upTo {
		r.partial = true
	}
	first, v := c.First()
	last, _ := c.Last()
	if first == nil || len(last) < 8 || st.dCount <= 0 {
		st.dCount, st.dBytes, st.dFirst, st.dLast, st.dOldest = 0, 0, 0, 0, 0
		return nil
	}
	st.dFirst, st.dLast, st.dOldest = keySeq(first), keySeq(last), valueTime(v)
	return nil
}

func (b *Buffer) runAppend(g *group, st *state, r *request) error {
	n := len(r.data)
	r.first = st.nextSeq
	r.last = st.nextSeq + uint64(n) - 1
	st.nextSeq += uint64(n)
	st.appended += uint64(n)

	var incoming int64
	for _, d := range r.data {
		incoming += accounted(len(d))
	}
	// The cap: drop the oldest records, which may include the oldest of
	// this very append when the cap is tiny.
	skip := 0
	var dropped uint64
	var dropB int64
	if over := st.dBytes + st.mBytes + incoming - b.maxBytes.Load(); over > 0 {
		for over > 0 && len(st.mem) > 0 {
			sz := accounted(len(st.mem[0].data))
			st.mem = st.mem[1:]
			st.mBytes -= sz
			over -= sz
			dropped++
			dropB += sz
		}
		if over > 0 && st.dCount > 0 {
			if g.tx == nil {
				return errNeedTx
			}
			n, sz, err := deleteFront(g, st, 0, over, -1)
			if err != nil {
				return err
			}
			over -= sz
			dropped += uint64(n)
			dropB += sz
		}
		for over > 0 && skip < n {
			sz := accounted(len(r.data[skip]))
			over -= sz
			incoming -= sz
			skip++
			dropped++
			dropB += sz
		}
		st.dropped += dropped
		st.droppedBytes += dropB
		g.dropped += dropped
		g.dropB += dropB
	}

	toMem := b.opts.Mode == Outage && st.linkUp && st.dCount == 0
	if toMem && st.mBytes+incoming > min(b.opts.MaxMemBytes, b.maxBytes.Load()) {
		toMem = false // window full: spill it below, then write to disk
	}
	if toMem {
		if r.last > st.ceiling {
			if g.tx == nil {
				return errNeedTx
			}
			st.ceiling = r.last + seqReserveBlock
		}
		for i := skip; i < n; i++ {
			d := make([]byte, len(r.data[i]))
			copy(d, r.data[i])
			st.mem = append(st.mem, memRecord{seq: r.first + uint64(i), ts: g.ts, data: d})
			st.mBytes += accounted(len(d))
		}
		return nil
	}
	if g.tx == nil {
		return errNeedTx
	}
	if len(st.mem) > 0 {
		if err := b.spill(g, st, "memory full"); err != nil {
			return err
		}
	}
	for i := skip; i < n; i++ {
		if err := put(g, st, r.first+uint64(i), g.ts, r.data[i]); err != nil {
			return err
		}
	}
	st.ceiling = max(st.ceiling, r.last)
	return nil
}

// The file bound. bbolt reuses freed pages before it extends the file, and
// extends it by AllocSize beyond what it needs, so the file stays within
// max_bytes (plus a page) if, before every transaction that writes
// records, enough pages are free for them or the file can still grow by
// as many: else the oldest records are dropped first, in a transaction of
// their own, since pages freed in a transaction are reused only by later
// ones.

// txOverheadPages is what a transaction rewrites besides the records' new
// leaves: the last leaf and the path to it, the meta bucket, the extras,
// the root, and a split or two.
const txOverheadPages = 10

// minBoundPages is the smallest cap the file bound applies to: an empty
// bbolt file takes a few pages, so tiny caps (tests) bound the records'
// bytes only. The configuration's minimum, 1 MiB, is far above it.
const minBoundPages = 64

// maxPages is the number of pages the file may hold.
func (b *Buffer) maxPages() int64 {
	n := b.maxBytes.Load()/pageSize - 1
	if n < minBoundPages {
		return 1 << 40
	}
	return n
}

// pagesNeeded estimates the pages a transaction running reqs allocates,
// counting a spill of the memory window too, and the accounted bytes of
// the records it adds. Records are stored in entries of at most chunkData
// bytes, two of which always share a page, so a page of records holds
// about pageSize bytes of them, and every allocation is a single page.
func (b *Buffer) pagesNeeded(reqs []*request) (pages, accountedBytes int64) {
	var bytes, rewrites int64
	add := func(size int) {
		bytes += int64(size) + int64(entryCount(size))*(RecordOverhead+2)
	}
	for _, r := range reqs {
		switch r.kind {
		case opAppend:
			for _, d := range r.data {
				add(len(d))
				accountedBytes += accounted(len(d))
			}
		case opExtra:
			add(len(r.key) + len(r.val))
		case opAck:
			// Deleting a range rewrites the leaves at its two ends and
			// the branches above them.
			rewrites += ackRewritePages
		}
	}
	for _, m := range b.st.mem {
		add(len(m.data))
	}
	if bytes == 0 {
		return 0, 0
	}
	per := int64(pageSize - 16)
	return (bytes+per-1)/per + txOverheadPages + rewrites, accountedBytes
}

// maxPendingWaits bounds how many times (a millisecond each) makeRoom
// waits for a reader to release freed pages before it drops records.
// When the records themselves fit max_bytes and only pages a reader holds
// keep the file from taking the next transaction, dropping would lose
// records for nothing (the newest, unpublished ones once history is
// gone), so it waits longer: a read is short, but under load (the uplink
// copying a batch of 4 KB records) it can take tens of milliseconds.
const (
	maxPendingWaits     = 3
	maxPendingWaitsFits = 100
)

// ackRewritePages is what deleting one range of records rewrites: a leaf
// at each end and a path of branches above each.
const ackRewritePages = 8

// reservePages is kept free (or growable) beyond any transaction's need:
// dropping the oldest records rewrites the leaves and branches next to
// them.
const reservePages = txOverheadPages

// pageState returns the file's high-water mark in pages and the pages
// free for the next transaction. Opening a write transaction releases the
// pages earlier ones freed that no reader holds any more; rolling it back
// (a user rollback costs nothing) leaves them free and counted.
func (b *Buffer) pageState() (hw, free int64) {
	tx, err := b.db.Begin(true)
	if err != nil {
		return 0, 0
	}
	hw = tx.Size() / pageSize
	_ = tx.Rollback()
	return hw, int64(b.db.Stats().FreePageN)
}

// makeRoom drops the oldest disk records until the next transaction fits
// in the file's bound, and returns how many it dropped.
func (b *Buffer) makeRoom(reqs []*request) (dropped uint64, droppedBytes int64) {
	need, incoming := b.pagesNeeded(reqs)
	if need == 0 {
		return 0, 0
	}
	need += reservePages
	waited := 0
	for range 200 {
		hw, free := b.pageState()
		over := hw + max(0, need-free) - b.maxPages()
		// The accounted cap too, so the transaction itself does not drop
		// records (pages it frees are not reused before it ends).
		overBytes := b.st.dBytes + b.st.mBytes + incoming - b.maxBytes.Load()
		if over <= 0 && overBytes <= 0 {
			return dropped, droppedBytes
		}
		limit := maxPendingWaits
		if overBytes <= 0 {
			limit = maxPendingWaitsFits
		}
		if st := b.db.Stats(); st.PendingPageN > 0 && st.OpenTxN > 0 && waited < limit {
			// Freed pages a reader still holds: they are free as soon
			// as it ends (reads are short). A reader that keeps one open
			// does not keep the bound from holding: then older records
			// go.
			waited++
			time.Sleep(time.Millisecond)
			continue
		}
		if b.st.dCount == 0 {
			// Nothing left to drop: the records themselves are within
			// the accounted cap.
			return dropped, droppedBytes
		}
		sh := b.st
		var n int
		var freed int64
		err := b.db.Update(func(tx *bolt.Tx) error {
			g := b.newGroup(tx)
			var err error
			n, freed, err = deleteFront(g, &sh, 0, max(over+4, 0)*(pageSize-16)+max(overBytes, 0), -1)
			if err != nil {
				return err
			}
			return writeMeta(tx, &sh, false)
		})
		if err != nil {
			b.log.Error("buffer: dropping the oldest records to keep the file within max_bytes failed", "path", b.path, "err", err)
			return dropped, droppedBytes
		}
		b.w.commits++
		b.countWritten()
		sh.dropped += uint64(n)
		sh.droppedBytes += freed
		b.publish(sh)
		dropped += uint64(n)
		droppedBytes += freed
	}
	return dropped, droppedBytes
}

// growStep is how far bbolt may extend the file past what a transaction
// needs: a page when the file is within a MiB of its bound (what the
// transaction really allocates may exceed the estimate), up to a quarter
// of the distance left, at most allocSize, while it is far from it (fewer
// truncate and fsync calls).
func (b *Buffer) growStep(reqs []*request) int {
	hw, free := b.pageState()
	need, _ := b.pagesNeeded(reqs)
	room := b.maxPages() - hw - max(0, need+reservePages-free)
	if room < (1<<20)/pageSize {
		return pageSize
	}
	return int(min(room/4*pageSize, allocSize))
}

// spill writes every in-memory record to disk in g's transaction.
func (b *Buffer) spill(g *group, st *state, reason string) error {
	if g.tx == nil {
		return errNeedTx
	}
	for _, m := range st.mem {
		if err := put(g, st, m.seq, m.ts, m.data); err != nil {
			return err
		}
	}
	b.log.Debug("buffer memory spilled to disk", "path", b.path, "records", len(st.mem), "bytes", st.mBytes, "reason", reason)
	st.mem = nil
	st.mBytes = 0
	return nil
}

func put(g *group, st *state, seq uint64, ts int64, data []byte) error {
	if err := putRecord(g, seq, ts, data); err != nil {
		return fmt.Errorf("storing record %d: %w", seq, err)
	}
	if st.dCount == 0 {
		st.dFirst, st.dOldest = seq, ts
	}
	st.dLast = seq
	st.dCount++
	st.dBytes += accounted(len(data))
	return nil
}

// deleteFront deletes disk records from the oldest while their seq <= upTo
// or fewer than need bytes were freed, at most limit records (limit < 0: no
// limit). It returns the records deleted and their accounted bytes.
//
// After Cursor.Delete, Next would skip an element, and First (or a Seek of
// the deleted key) walks every leaf this transaction has emptied, which
// makes deleting n records cost O(n²). Seeking just past the deleted key
// lands at once.
func deleteFront(g *group, st *state, upTo uint64, need int64, limit int) (int, int64, error) {
	c := g.bkt.Cursor()
	n := 0
	var freed int64
	var next [chunkKey]byte
	k, v := c.First()
	for ; k != nil; k, v = c.Seek(afterKey(&next, k)) {
		seq := keySeq(k)
		if len(k) == headKey {
			if n == limit || (seq > upTo && freed >= need) {
				break
			}
			_, size, _, _ := headInfo(v)
			n++
			freed += accounted(size)
		}
		if err := c.Delete(); err != nil {
			return n, freed, fmt.Errorf("deleting record %d: %w", seq, err)
		}
	}
	st.dCount -= n
	st.dBytes -= freed
	if k == nil || st.dCount <= 0 {
		st.dCount, st.dBytes, st.dFirst, st.dLast, st.dOldest = 0, 0, 0, 0, 0
	} else {
		st.dFirst = keySeq(k)
		st.dOldest = valueTime(v)
	}
	return n, freed, nil
}

// logDrops logs the drops accumulated since the last warning, at most once
// per dropLogInterval; flush logs whatever is pending.
func (b *Buffer) logDrops(flush bool) {
	w := &b.w
	if w.pendDrop == 0 {
		return
	}
	wait := dropLogInterval - time.Since(w.lastDropLog)
	if !flush && wait > 0 {
		w.dropTimer.Reset(wait)
		return
	}
	b.mu.Lock()
	total, totalB := b.st.dropped, b.st.droppedBytes
	b.mu.Unlock()
	b.log.Warn("buffer full, dropped oldest records",
		"path", b.path, "dropped", w.pendDrop, "dropped_bytes", w.pendDropB,
		"dropped_total", total, "dropped_bytes_total", totalB, "max_bytes", b.maxBytes.Load())
	w.pendDrop, w.pendDropB = 0, 0
	w.lastDropLog = time.Now()
}

// maybeCompact rewrites the file when the queue has drained empty and the
// file is large: cheap then (nothing to copy), and it keeps bbolt's freelist,
// which every commit rewrites, from staying large after a big backlog.
func (b *Buffer) maybeCompact() {
	if b.st.dCount != 0 || time.Since(b.w.lastCompact) < runtimeCompactGap {
		return
	}
	fi, err := os.Stat(b.path)
	if err != nil || fi.Size() <= compactMinFileBytes {
		return
	}
	b.w.lastCompact = time.Now()
	b.dbMu.Lock()
	defer b.dbMu.Unlock()
	db, err := b.compact(b.db, fi.Size())
	if db == nil {
		b.failed = fmt.Errorf("buffer %q unusable after compaction: %w", b.path, err)
		b.log.Error("buffer reopen after compaction failed", "path", b.path, "err", err)
	}
	b.db = db
}

// finish runs when Close is called: it writes the memory queue to disk,
// lowers the reserved ceiling to what was handed out and marks the file
// cleanly closed, all in one transaction.
func (b *Buffer) finish() error {
	b.logDrops(true)
	if b.failed != nil {
		return b.failed
	}
	sh := b.st
	err := b.db.Update(func(tx *bolt.Tx) error {
		g := b.newGroup(tx)
		if len(sh.mem) > 0 {
			if err := b.spill(g, &sh, "close"); err != nil {
				return err
			}
		}
		sh.ceiling = max(sh.nextSeq-1, sh.dLast)
		return writeMeta(tx, &sh, true)
	})
	if err != nil {
		b.log.Error("buffer close failed", "path", b.path, "err", err, "lost_memory_records", len(sh.mem))
		return fmt.Errorf("closing buffer %q: %w", b.path, err)
	}
	b.publish(sh)
	return nil
}
