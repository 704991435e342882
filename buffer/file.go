package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// File layout (format 1):
//
//	bucket "records": key = seq (8 bytes, big-endian), value = append time
//	                  (unix ns, 8 bytes, big-endian) followed by the data
//	bucket "meta":    "format"  = 1
//	                  "ceiling" = every seq ever handed out is <= this
//	                  "count", "bytes" = records on disk and their accounted bytes,
//	                              written in the same transaction as the records
//	                  "clean"   = 1 after Close, 0 while open
var (
	recordsBucket = []byte("records")
	metaBucket    = []byte("meta")
	extrasBucket  = []byte("extras") // PutExtra's values; absent in files of releases before it
	keyFormat     = []byte("format")
	keyCeiling    = []byte("ceiling")
	keyCount      = []byte("count")
	keyBytes      = []byte("bytes")
	keyClean      = []byte("clean")
)

const (
	// formatVersion 2 stores records longer than chunkData in several
	// entries (entries.go); files of version 1 read the same and become
	// version 2 when opened.
	formatVersion = 2

	// lockTimeout bounds the wait for bbolt's file lock.
	lockTimeout = time.Second

	// Files are compacted only above this size.
	compactMinFileBytes = 4 << 20
	// bbolt.Compact commits every this many bytes, bounding its memory.
	compactTxMaxSize = 16 << 20

	// pageSize is pinned so that file size and fill behave the same on
	// kernels with 16 or 64 KiB pages (e.g. Raspberry Pi 5).
	pageSize = 4096
	// allocSize is bbolt's file growth step (its default, 16 MiB, is a lot
	// next to a small cap).
	allocSize = 4 << 20
)

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	putSeq(k, seq)
	return k
}

func putSeq(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }

func keySeq(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

func valueTime(v []byte) int64 {
	if len(v) < 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v) &^ chunkFlag)
}

func getU64(b *bolt.Bucket, k []byte) (uint64, bool) {
	v := b.Get(k)
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

// corruptError marks a file that cannot be used as a buffer: it is moved
// aside and replaced by a fresh one.
type corruptError struct{ cause error }

func (e *corruptError) Error() string { return e.cause.Error() }
func (e *corruptError) Unwrap() error { return e.cause }

func corruptf(format string, args ...any) error {
	return &corruptError{fmt.Errorf(format, args...)}
}

func boltOptions(readOnly bool) *bolt.Options {
	return &bolt.Options{
		Timeout:      lockTimeout,
		ReadOnly:     readOnly,
		FreelistType: bolt.FreelistMapType,
		// The freelist is rebuilt by a scan at open instead of being
		// written on every commit: one page less per fsync.
		NoFreelistSync: true,
		PageSize:       pageSize,
	}
}

// fileInfo is what tryOpen learned about the file.
type fileInfo struct {
	fresh   bool // no buckets yet
	checked bool // the full check ran
	size    int64
}

// openFile opens the buffer file: checks it when it was not closed cleanly,
// moves it aside if it is corrupt, compacts it if mostly empty, and marks it
// open (not clean) before anything is appended.
func (b *Buffer) openFile() (*bolt.DB, state, error) {
	start := time.Now()
	path := b.path
	if err := os.Remove(path + ".compact"); err == nil {
		b.log.Warn("buffer removed unfinished compaction file", "path", path+".compact")
	}
	var floor uint64 // after a corruption: seqs of the fresh file start above it
	var db *bolt.DB
	var st state
	var info fileInfo
	for attempt := 0; ; attempt++ {
		var err error
		db, st, info, err = b.tryOpen()
		var ce *corruptError
		if errors.As(err, &ce) && attempt == 0 {
			moved, mErr := moveAside(path)
			if mErr != nil {
				return nil, state{}, fmt.Errorf("moving corrupt buffer %q aside (%v): %w", path, ce.cause, mErr)
			}
			floor = salvageCeiling(moved)
			from := "old file"
			if floor == 0 {
				// Nothing readable: the wall clock in microseconds stays
				// above any count of records this gateway could have made.
				floor, from = uint64(time.Now().UnixMicro()), "clock"
			}
			b.log.Error("buffer file corrupt, moved aside; starting empty",
				"path", path, "moved_to", moved, "err", ce.cause, "next_seq", floor+1, "next_seq_from", from)
			continue
		}
		if err != nil {
			if ce != nil {
				err = fmt.Errorf("opening buffer %q: fresh file unusable: %w", path, err)
			}
			return nil, state{}, err
		}
		break
	}

	// One growth step of slack keeps a just-compacted file from qualifying again.
	if !info.fresh && info.size > compactMinFileBytes && info.size > 2*st.dBytes+allocSize {
		var err error
		if db, err = b.compact(db, info.size); db == nil {
			return nil, state{}, fmt.Errorf("opening buffer %q after compaction: %w", path, err)
		}
	}

	st.ceiling = max(st.ceiling, floor, st.dLast)
	st.nextSeq = st.ceiling + 1
	err := db.Update(func(tx *bolt.Tx) error {
		if info.fresh {
			if _, err := tx.CreateBucket(recordsBucket); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(metaBucket); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucketIfNotExists(extrasBucket); err != nil {
			return err
		}
		return writeMeta(tx, &st, false)
	})
	if err != nil {
		_ = db.Close()
		return nil, state{}, fmt.Errorf("opening buffer %q: marking it open: %w", path, err)
	}
	fileBytes := info.size
	if fi, err := os.Stat(path); err == nil {
		fileBytes = fi.Size()
	}
	b.log.Info("buffer opened", "path", path, "mode", b.opts.Mode.String(), "records", st.dCount, "bytes", st.dBytes,
		"next_seq", st.nextSeq, "file_bytes", fileBytes, "checked", info.checked, "took", time.Since(start))
	return db, st, nil
}

// tryOpen opens path and reads its state, running the full check when the
// file was not closed cleanly. Problems with the file's content come back as
// *corruptError; the db is closed on any error.
func (b *Buffer) tryOpen() (db *bolt.DB, st state, info fileInfo, err error) {
	path := b.path
	fi, err := os.Stat(path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return nil, st, info, fmt.Errorf("opening buffer %q: not a regular file", path)
	case err == nil && fi.Size() == 0:
		return nil, st, info, corruptf("file is empty (0 bytes)")
	case err == nil:
		info.size = fi.Size()
	case !errors.Is(err, fs.ErrNotExist):
		return nil, st, info, fmt.Errorf("opening buffer %q: %w", path, err)
	}
	if info.size > 0 {
		if err := checkMeta(path, info.size); err != nil {
			return nil, st, info, err
		}
		// A read-write open rebuilds the freelist (NoFreelistSync) by
		// walking every page, and bbolt panics on a damaged page in a
		// goroutine of its own, out of any recover's reach: walk the file
		// read-only first, where verify turns damage into an error.
		if err := precheck(path); err != nil {
			return nil, st, info, err
		}
	}
	if db, err = openBolt(path, boltOptions(false)); err != nil {
		return nil, st, info, err
	}
	defer func() {
		if err != nil {
			closeQuietly(db)
			db = nil
		}
	}()
	clean, consistent, err := inspect(db, &st, &info)
	if err != nil || info.fresh || (clean && consistent) {
		return db, st, info, err
	}
	b.log.Warn("buffer not closed cleanly, checking file", "path", path, "file_bytes", info.size)
	start := time.Now()
	count, bytes, err := verify(db)
	if err != nil {
		return db, st, info, err
	}
	info.checked = true
	b.log.Info("buffer file checked", "path", path, "records", count, "took", time.Since(start))
	if count != st.dCount || bytes != st.dBytes {
		b.log.Warn("buffer counters repaired", "path", path, "records", count, "bytes", bytes,
			"stored_records", st.dCount, "stored_bytes", st.dBytes)
		st.dCount, st.dBytes = count, bytes
	}
	return db, st, info, nil
}

// openBolt opens a bbolt file, turning bbolt's panics and page faults on a
// damaged file into a *corruptError and a lock timeout into ErrLocked.
// precheck runs inspect and, if the file holds records, verify on a
// read-only open, which loads no freelist. Its cost is one read of the
// backlog at start; an empty queue costs almost nothing.
func precheck(path string) error {
	ro, err := openBolt(path, boltOptions(true))
	if err != nil {
		return err
	}
	defer closeQuietly(ro)
	var st state
	var info fileInfo
	if _, _, err := inspect(ro, &st, &info); err != nil || info.fresh || st.dCount == 0 {
		return err
	}
	_, _, err = verify(ro)
	return err
}

func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	var f *os.File
	oo := *o
	oo.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		ff, err := os.OpenFile(name, flag, perm)
		f = ff
		return ff, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			// The mapping bbolt made leaks, and with it the file's lock
			// (a mapping holds the open file); the file is moved aside
			// and never opened for writing again.
			if f != nil {
				_ = f.Close()
			}
			db, err = nil, corruptf("bbolt failed reading the file: %v", r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &oo)
	switch {
	case err == nil:
		db.AllocSize = allocSize
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("opening buffer %q: %w (gave up after %s)", path, ErrLocked, lockTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), strings.Contains(err.Error(), "file size too small"):
		return nil, &corruptError{err}
	}
	return nil, fmt.Errorf("opening buffer %q: %w", path, err)
}

func closeQuietly(db *bolt.DB) {
	defer func() { _ = recover() }()
	_ = db.Close()
}

// inspect reads the layout and the state (cheap: meta bucket, first and last
// record). consistent is false when the stored counters cannot be right.
func inspect(db *bolt.DB, st *state, info *fileInfo) (clean, consistent bool, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corruptf("reading the file faulted: %v", r)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		if info.size > 0 && tx.Size() > info.size {
			return corruptf("file truncated: %d bytes, its pages need %d", info.size, tx.Size())
		}
		meta, recs := tx.Bucket(metaBucket), tx.Bucket(recordsBucket)
		if meta == nil && recs == nil {
			other := false
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { other = true; return nil })
			if other {
				return fmt.Errorf("opening buffer %q: %w (it has other buckets)", db.Path(), ErrNotBuffer)
			}
			info.fresh = true
			return nil
		}
		if meta == nil {
			return fmt.Errorf("opening buffer %q: %w (no meta bucket)", db.Path(), ErrNotBuffer)
		}
		format, ok := getU64(meta, keyFormat)
		if !ok {
			return fmt.Errorf("opening buffer %q: %w (no format version)", db.Path(), ErrNotBuffer)
		}
		if format != formatVersion && format != 1 {
			return fmt.Errorf("opening buffer %q: %w (format %d, this build reads %d)", db.Path(), ErrNotBuffer, format, formatVersion)
		}
		if recs == nil {
			return corruptf("records bucket missing")
		}
		c := meta.Get(keyClean)
		clean = len(c) == 1 && c[0] == 1
		var s state
		s, consistent = readState(tx)
		*st = s
		return nil
	})
	return clean, consistent, err
}

// readState reads the persisted bookkeeping and the disk queue's ends.
func readState(tx *bolt.Tx) (st state, consistent bool) {
	meta, recs := tx.Bucket(metaBucket), tx.Bucket(recordsBucket)
	if meta == nil || recs == nil {
		return st, true
	}
	var ok1, ok2 bool
	var count, bytes uint64
	st.ceiling, _ = getU64(meta, keyCeiling)
	count, ok1 = getU64(meta, keyCount)
	bytes, ok2 = getU64(meta, keyBytes)
	st.dCount, st.dBytes = int(count), int64(bytes)
	c := recs.Cursor()
	k, v := c.First()
	if k == nil {
		consistent = st.dCount == 0 && st.dBytes == 0
		st.dCount, st.dBytes = 0, 0
		return st, consistent
	}
	if len(k) != headKey {
		return st, false
	}
	st.dFirst, st.dOldest = keySeq(k), valueTime(v)
	if k, _ = c.Last(); len(k) >= headKey {
		st.dLast = keySeq(k)
	}
	consistent = ok1 && ok2 && st.dCount > 0 && st.dLast >= st.dFirst &&
		uint64(st.dCount) <= st.dLast-st.dFirst+1 && st.dBytes >= int64(st.dCount)*RecordOverhead
	return st, consistent
}

// writeMeta stores the bookkeeping of st in tx.
func writeMeta(tx *bolt.Tx, st *state, clean bool) error {
	m := tx.Bucket(metaBucket)
	var buf [8 * 4]byte
	putSeq(buf[0:], formatVersion)
	putSeq(buf[8:], st.ceiling)
	putSeq(buf[16:], uint64(st.dCount))
	putSeq(buf[24:], uint64(st.dBytes))
	flag := []byte{0}
	if clean {
		flag[0] = 1
	}
	for _, kv := range [...]struct{ k, v []byte }{
		{keyFormat, buf[0:8]}, {keyCeiling, buf[8:16]}, {keyCount, buf[16:24]}, {keyBytes, buf[24:32]}, {keyClean, flag},
	} {
		if err := m.Put(kv.k, kv.v); err != nil {
			return fmt.Errorf("writing %s: %w", kv.k, err)
		}
	}
	return nil
}

// verify reads every record and runs bbolt's consistency check. It reads
// the whole file: O(file size). Our own walk runs first, in this goroutine
// with page faults turned into panics, so that Tx.Check (which runs in a
// goroutine of its own, where a fault would kill the process) only touches
// pages already proven readable.
func verify(db *bolt.DB) (count int, bytes int64, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corruptf("reading the file faulted: %v", r)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		var sink byte
		_ = tx.Bucket(metaBucket).ForEach(func(k, v []byte) error {
			if len(v) > 0 {
				sink ^= v[0] ^ v[len(v)-1]
			}
			return nil
		})
		c := tx.Bucket(recordsBucket).Cursor()
		var prev uint64
		var size, got, chunk int // of the record being walked
		for k, v := c.First(); k != nil; k, v = c.Next() {
			switch {
			case v == nil:
				return corruptf("unexpected bucket %x among records", k)
			case len(k) == chunkKey:
				chunk++
				if count == 0 || keySeq(k) != prev || got >= size || int(binary.BigEndian.Uint16(k[8:])) != chunk {
					return corruptf("record chunk %x out of place", k)
				}
				got += len(v)
				if len(v) > 0 {
					sink ^= v[0] ^ v[len(v)-1]
				}
				continue
			case len(k) != headKey:
				return corruptf("record key %x is neither 8 nor 10 bytes", k)
			case count > 0 && got != size:
				return corruptf("record %d holds %d bytes, its head says %d", prev, got, size)
			case count > 0 && keySeq(k) <= prev:
				return corruptf("record keys out of order: %d after %d", keySeq(k), prev)
			}
			_, sz, part, ok := headInfo(v)
			if !ok {
				return corruptf("record %d is %d bytes, shorter than its header", keySeq(k), len(v))
			}
			sink ^= v[0] ^ v[len(v)-1] // fault in the value's first and last page
			prev, size, got, chunk = keySeq(k), sz, len(part), 0
			count++
			bytes += accounted(sz)
		}
		if count > 0 && got != size {
			return corruptf("record %d holds %d bytes, its head says %d", prev, got, size)
		}
		runtime.KeepAlive(sink)
		var errs []error
		for e := range tx.Check() {
			if len(errs) < 5 {
				errs = append(errs, e)
			}
		}
		if len(errs) > 0 {
			return &corruptError{fmt.Errorf("bbolt consistency check: %w", errors.Join(errs...))}
		}
		return nil
	})
	return count, bytes, err
}

// checkMeta reads bbolt's two meta pages the way bbolt picks one (valid
// checksum, highest transaction id) and rejects a file too short for the
// pages the meta claims, before bbolt maps it: bbolt would fault or panic
// reading its freelist beyond the end, and a mapping cannot be released
// after a panic. A file without a valid meta page is left to bbolt.Open,
// which reports it. (bbolt files are native-endian; every gateway target,
// amd64, arm64, arm and 386, is little-endian.)
func checkMeta(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening buffer %q: %w", path, err)
	}
	defer f.Close()
	type meta struct{ pageSize, root, freelist, pgid, txid uint64 }
	read := func(off int64) (meta, bool) {
		var buf [16 + 64]byte // page header, then the meta
		if _, err := f.ReadAt(buf[:], off); err != nil {
			return meta{}, false
		}
		m := buf[16:]
		le := binary.LittleEndian
		h := fnv.New64a()
		h.Write(m[:56])
		if le.Uint32(m[0:]) != 0xED0CDAED || le.Uint32(m[4:]) != 2 || le.Uint64(m[56:]) != h.Sum64() {
			return meta{}, false
		}
		return meta{uint64(le.Uint32(m[8:])), le.Uint64(m[16:]), le.Uint64(m[32:]), le.Uint64(m[40:]), le.Uint64(m[48:])}, true
	}
	m0, ok0 := read(0)
	var m1 meta
	var ok1 bool
	if ok0 {
		m1, ok1 = read(int64(m0.pageSize))
	} else {
		for ps := int64(1024); ps <= 16<<20 && !ok1 && ps < size; ps *= 2 {
			m1, ok1 = read(ps)
		}
	}
	m := m0
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case !ok0:
		return nil
	}
	const noFreelist = ^uint64(0)
	switch {
	case m.pageSize < 1024 || m.pgid < 2:
		return corruptf("meta page claims page size %d, %d pages", m.pageSize, m.pgid)
	case m.pgid > uint64(size)/m.pageSize:
		return corruptf("file truncated: %d bytes, its pages need %d", size, m.pgid*m.pageSize)
	case m.root >= m.pgid || (m.freelist != noFreelist && m.freelist >= m.pgid):
		return corruptf("meta page points beyond the file: root %d, freelist %d, pages %d", m.root, m.freelist, m.pgid)
	}
	return nil
}

// moveAside renames a corrupt file to <path>.corrupt-<UTC time>.
func moveAside(path string) (string, error) {
	base := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
	dst := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, dst); err != nil {
		return "", err
	}
	return dst, syncDir(filepath.Dir(path))
}

// salvageCeiling reads the highest sequence number a moved-aside file may
// have handed out; 0 if it cannot tell.
func salvageCeiling(path string) (ceiling uint64) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == 0 {
		return 0
	}
	o := boltOptions(true)
	o.Timeout = 100 * time.Millisecond // a failed open may have left it locked
	db, err := openBolt(path, o)
	if err != nil {
		return 0
	}
	defer closeQuietly(db)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			ceiling = 0
		}
	}()
	_ = db.View(func(tx *bolt.Tx) error {
		if tx.Size() > fi.Size() {
			return nil // truncated: pages may lie beyond the end
		}
		if m := tx.Bucket(metaBucket); m != nil {
			ceiling, _ = getU64(m, keyCeiling)
		}
		if r := tx.Bucket(recordsBucket); r != nil {
			if k, _ := r.Cursor().Last(); len(k) >= headKey {
				ceiling = max(ceiling, keySeq(k))
			}
		}
		return nil
	})
	return ceiling
}

// compact copies src into <path>.compact and renames it over the file. It
// returns the db to use from then on: the new one; src with an error if it
// failed before the rename; nil with an error if the renamed file would not
// open (the caller cannot go on).
func (b *Buffer) compact(src *bolt.DB, before int64) (*bolt.DB, error) {
	start := time.Now()
	path := src.Path()
	tmp := path + ".compact"
	fail := func(err error) (*bolt.DB, error) {
		_ = os.Remove(tmp)
		err = fmt.Errorf("compacting buffer %q into %q: %w", path, tmp, err)
		b.log.Warn("buffer compaction failed", "path", path, "err", err)
		return src, err
	}
	_ = os.Remove(tmp)
	o := boltOptions(false)
	o.NoSync = true // one Sync at the end instead of one per commit
	dst, err := bolt.Open(tmp, 0o600, o)
	if err != nil {
		return fail(err)
	}
	dst.AllocSize = allocSize
	if err := bolt.Compact(dst, src, compactTxMaxSize); err != nil {
		_ = dst.Close()
		return fail(err)
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		return fail(err)
	}
	if err := dst.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		b.log.Warn("buffer directory sync failed", "path", path, "err", err)
	}
	_ = src.Close()
	db, err := openBolt(path, boltOptions(false))
	if err != nil {
		return nil, err
	}
	var after int64
	if fi, err := os.Stat(path); err == nil {
		after = fi.Size()
	}
	b.log.Info("buffer compacted", "path", path, "before_bytes", before, "after_bytes", after, "took", time.Since(start))
	return db, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
