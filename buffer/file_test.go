package buffer

import (
	"bytes"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// corrupted checks that Open moved the damaged file aside, logged it and
// opened a fresh, working buffer whose sequence numbers go above minSeq.
func corrupted(t *testing.T, f *fixture, damaged []byte, minSeq uint64, cause string) {
	t.Helper()
	b := f.open()
	errs := f.logs.find(slog.LevelError, "buffer file corrupt, moved aside; starting empty")
	if len(errs) != 1 {
		t.Fatalf("want one error log, got %v", errs)
	}
	moved := errs[0]["moved_to"].String()
	if errs[0]["path"].String() != f.path || !strings.HasPrefix(moved, f.path+".corrupt-") {
		t.Fatalf("log names %v", errs[0])
	}
	if c := errs[0]["err"].String(); !strings.Contains(c, cause) {
		t.Errorf("cause %q does not mention %q", c, cause)
	}
	got, err := os.ReadFile(moved)
	if err != nil || !bytes.Equal(got, damaged) {
		t.Fatalf("moved-aside file differs from the damaged one (err %v)", err)
	}
	if st := b.Stats(); st.Records != 0 {
		t.Fatalf("fresh buffer not empty: %+v", st)
	}
	first, _ := mustAppend(t, b, []byte("after"))
	if first <= minSeq {
		t.Fatalf("fresh buffer starts at seq %d, reusing <= %d", first, minSeq)
	}
	if recs := all(t, b, 0); len(recs) != 1 || string(recs[0].Data) != "after" {
		t.Fatalf("fresh buffer holds %v", recs)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = f.open() // and it reopens cleanly
	if recs := all(t, b, 0); len(recs) != 1 {
		t.Fatalf("after reopen: %v", recs)
	}
}

// fill writes n records of size bytes and closes (or crashes) the buffer.
func fill(t *testing.T, f *fixture, n, size int, clean bool) uint64 {
	t.Helper()
	b := f.open()
	var last uint64
	for i := 0; i < n; i += 100 {
		var batch [][]byte
		for k := i; k < min(i+100, n); k++ {
			batch = append(batch, payload(k, size))
		}
		_, last = mustAppend(t, b, batch...)
	}
	if clean {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	} else {
		crash(t, b)
	}
	return last
}

func TestCorruptRandomBytes(t *testing.T) {
	f := newFixture(t, modes[0])
	junk := make([]byte, 64<<10)
	randomBytes(junk, 1)
	if err := os.WriteFile(f.path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	corrupted(t, f, junk, 0, "invalid")
}

func TestCorruptShortFile(t *testing.T) {
	f := newFixture(t, modes[0])
	junk := []byte("definitely not bbolt")
	if err := os.WriteFile(f.path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	corrupted(t, f, junk, 0, "")
}

func TestCorruptZeroLength(t *testing.T) {
	f := newFixture(t, modes[0])
	if err := os.WriteFile(f.path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	corrupted(t, f, []byte{}, 0, "empty")
}

func TestCorruptTruncated(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(map[bool]string{true: "closed", false: "crashed"}[clean], func(t *testing.T) {
			f := newFixture(t, modes[0])
			last := fill(t, f, 3000, 1000, clean)
			data, err := os.ReadFile(f.path)
			if err != nil {
				t.Fatal(err)
			}
			data = data[:len(data)/2]
			if err := os.WriteFile(f.path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			corrupted(t, f, data, last, "truncated")
		})
	}
}

// A damaged data page is found at open after a crash: by bbolt's freelist
// rebuild, which reads every page (the freelist is not synced), or by the
// check that runs after an unclean shutdown.
func TestCorruptPageAfterCrash(t *testing.T) {
	f := newFixture(t, modes[0])
	last := fill(t, f, 2000, 1000, false)
	fh, err := os.OpenFile(f.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 16*pageSize)
	randomBytes(junk, 3)
	if _, err := fh.WriteAt(junk, 40*pageSize); err != nil {
		t.Fatal(err)
	}
	_ = fh.Close()
	damaged, _ := os.ReadFile(f.path)
	corrupted(t, f, damaged, last, "")
}

func TestCleanCloseSkipsCheck(t *testing.T) {
	f := newFixture(t, modes[0])
	fill(t, f, 100, 100, true)
	b := f.open()
	if got := f.logs.find(slog.LevelWarn, "buffer not closed cleanly, checking file"); len(got) != 0 {
		t.Fatal("checked a cleanly closed file")
	}
	crash(t, b)
	b = f.open()
	if got := f.logs.find(slog.LevelWarn, "buffer not closed cleanly, checking file"); len(got) != 1 {
		t.Fatal("did not check a file left open")
	}
	if st := b.Stats(); st.Records != 100 {
		t.Fatalf("records after crash: %+v", st)
	}
}

func TestLockedFile(t *testing.T) {
	f := newFixture(t, modes[0])
	f.open()
	start := time.Now()
	_, err := f.tryOpen()
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), f.path) {
		t.Fatalf("second Open: %v, want ErrLocked naming the file", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %s", d)
	}
	if _, err := os.Stat(f.path); err != nil {
		t.Fatalf("locked file touched: %v", err)
	}
}

func TestForeignBoltFileLeftAlone(t *testing.T) {
	f := newFixture(t, modes[0])
	db, err := bolt.Open(f.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("something-else"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	before, _ := os.ReadFile(f.path)
	if _, err := f.tryOpen(); !errors.Is(err, ErrNotBuffer) {
		t.Fatalf("Open: %v, want ErrNotBuffer", err)
	}
	if after, _ := os.ReadFile(f.path); !bytes.Equal(before, after) {
		t.Fatal("foreign file was modified")
	}
}

func TestNoDirectory(t *testing.T) {
	_, err := Open(Options{Path: filepath.Join(t.TempDir(), "missing", "b.db"), Logger: slog.New(&logCapture{})})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Open in a missing directory: %v", err)
	}
}

func TestCompactAtOpen(t *testing.T) {
	f := newFixture(t, modes[0])
	b := f.open()
	for i := 0; i < 4000; i += 200 {
		var batch [][]byte
		for k := i; k < i+200; k++ {
			batch = append(batch, payload(k, 1600))
		}
		mustAppend(t, b, batch...)
	}
	if err := b.Ack(3990); err != nil { // 10 records stay: no compaction while running
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, f.path)
	b = f.open()
	after := b.Stats().FileBytes
	if before < 6<<20 || after > before/4 {
		t.Fatalf("file %d bytes before, %d after compaction", before, after)
	}
	if len(f.logs.find(slog.LevelInfo, "buffer compacted")) != 1 {
		t.Fatal("no compaction logged")
	}
	recs := all(t, b, 0)
	if got := seqs(recs); !slices.Equal(got, span(3991, 4000)) {
		t.Fatalf("kept %v", got)
	}
	for _, r := range recs {
		if !bytes.Equal(r.Data, payload(int(r.Seq-1), 1600)) {
			t.Fatalf("record %d damaged by compaction", r.Seq)
		}
	}
	if first, _ := mustAppend(t, b, []byte("x")); first != 4001 {
		t.Fatalf("seq after compaction %d", first)
	}
	if _, err := os.Stat(f.path + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
}

func TestCompactWhenDrained(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		f := newFixture(t, m)
		b := f.open()
		if err := b.SetLinkUp(false); err != nil { // backlog goes to disk
			t.Fatal(err)
		}
		for i := 0; i < 3600; i += 200 {
			var batch [][]byte
			for k := i; k < i+200; k++ {
				batch = append(batch, payload(k, 1600))
			}
			mustAppend(t, b, batch...)
		}
		before := b.Stats().FileBytes
		if err := b.SetLinkUp(m.linkUp); err != nil {
			t.Fatal(err)
		}
		// Readers keep going while the file is swapped underneath.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := b.Peek(0, 10, 0); err != nil {
					t.Error(err)
					return
				}
				_ = b.Stats()
			}
		})
		if err := b.Ack(3600); err != nil {
			t.Fatal(err)
		}
		// Compaction runs after the Ack is answered; any call through the
		// writer (a no-op Ack) waits for it.
		if err := b.Ack(0); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		if after := b.Stats().FileBytes; before < 5<<20 || after > 1<<20 {
			t.Fatalf("file %d bytes before draining, %d after", before, after)
		}
		first, _ := mustAppend(t, b, []byte("y"))
		if recs := all(t, b, 0); len(recs) != 1 || recs[0].Seq != first || first != 3601 {
			t.Fatalf("after compaction: %v (first %d)", recs, first)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b = f.open()
		if recs := all(t, b, 0); len(recs) != 1 || string(recs[0].Data) != "y" {
			t.Fatalf("after reopen: %v", recs)
		}
	})
}

func TestStaleCompactionFileRemoved(t *testing.T) {
	f := newFixture(t, modes[0])
	if err := os.WriteFile(f.path+".compact", []byte("half a copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.open()
	if _, err := os.Stat(f.path + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("stale compaction file still there: %v", err)
	}
}

// The file stays near the cap under churn: accounted bytes are capped, the
// file adds page fragmentation and one growth step.
func TestFileSizeUnderCap(t *testing.T) {
	f := newFixture(t, modes[0])
	f.opts.MaxBytes = 8 << 20
	b := f.open()
	for i := 0; i < 15000; i += 100 { // ~24 MB through an 8 MiB cap
		var batch [][]byte
		for k := i; k < i+100; k++ {
			batch = append(batch, payload(k, 1600))
		}
		mustAppend(t, b, batch...)
	}
	st := b.Stats()
	ratio := float64(st.FileBytes) / float64(st.Bytes)
	t.Logf("cap %d, accounted %d, file %d (%.2fx accounted), dropped %d", f.opts.MaxBytes, st.Bytes, st.FileBytes, ratio, st.Dropped)
	if st.Bytes > f.opts.MaxBytes || st.FileBytes > f.opts.MaxBytes*3/2+allocSize {
		t.Fatalf("stats %+v", st)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func randomBytes(p []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	for i := range p {
		p[i] = byte(r.Uint32())
	}
}

// The freelist is never written (NoFreelistSync): bbolt rebuilds it by a
// scan at open, so a commit writes one page less, and there is no
// freelist page whose damage could make bbolt.Open panic.
func TestNoFreelistPage(t *testing.T) {
	f := newFixture(t, modes[0])
	fill(t, f, 500, 1000, true)
	db, err := bolt.Open(f.path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return err
			}
			if p.Type == "freelist" {
				t.Fatalf("page %d is a freelist page", id)
			}
		}
	})
}
