package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The suite below runs against every mode (see modes).

func TestAppendPeekAckOrder(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		b := newFixture(t, m).open()
		for i := 1; i <= 10; i++ {
			if first, last := mustAppend(t, b, payload(i, 100)); first != uint64(i) || last != uint64(i) {
				t.Fatalf("append %d: got seqs %d..%d", i, first, last)
			}
		}
		var batch [][]byte
		for i := 11; i <= 15; i++ {
			batch = append(batch, payload(i, 100))
		}
		if first, last := mustAppend(t, b, batch...); first != 11 || last != 15 {
			t.Fatalf("batch append: got %d..%d, want 11..15", first, last)
		}

		recs := all(t, b, 0)
		if got := seqs(recs); !slices.Equal(got, span(1, 15)) {
			t.Fatalf("seqs = %v", got)
		}
		for _, r := range recs {
			if !bytes.Equal(r.Data, payload(int(r.Seq), 100)) {
				t.Fatalf("record %d: data %q", r.Seq, r.Data)
			}
		}

		// Bounds: count, bytes, and at least one record even if too big.
		for _, tc := range []struct {
			after              uint64
			maxRecords, maxB   int
			wantFirst, wantLen int
		}{
			{0, 4, 0, 1, 4},
			{3, 4, 0, 4, 4},
			{0, 100, 250, 1, 2},
			{0, 100, 1, 1, 1},
			{14, 100, 0, 15, 1},
			{15, 100, 0, 0, 0},
			{math.MaxUint64, 100, 0, 0, 0},
		} {
			got, err := b.Peek(tc.after, tc.maxRecords, tc.maxB)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.wantLen || (tc.wantLen > 0 && got[0].Seq != uint64(tc.wantFirst)) {
				t.Errorf("Peek(%d, %d, %d) = %v, want %d records from %d", tc.after, tc.maxRecords, tc.maxB, seqs(got), tc.wantLen, tc.wantFirst)
			}
		}

		// The caller owns the data it gets.
		got, _ := b.Peek(0, 1, 0)
		got[0].Data[0] = 'X'
		if again, _ := b.Peek(0, 1, 0); again[0].Data[0] == 'X' {
			t.Fatal("Peek returned data shared with the buffer")
		}

		if err := b.Ack(5); err != nil {
			t.Fatal(err)
		}
		if got := seqs(all(t, b, 0)); !slices.Equal(got, span(6, 15)) {
			t.Fatalf("after Ack(5): %v", got)
		}
		if err := b.Ack(3); err != nil { // already gone: no-op
			t.Fatal(err)
		}
		st := b.Stats()
		if st.Records != 10 || st.Acked != 5 || st.Appended != 15 || st.OldestSeq != 6 || st.NewestSeq != 15 ||
			st.Bytes != 10*accounted(100) {
			t.Fatalf("stats after ack: %+v", st)
		}
	})
}

// A Reader returns what Peek returns, and reuses its memory from one Peek
// to the next instead of allocating it again.
func TestReader(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		b := newFixture(t, m).open()
		for i := 1; i <= 40; i++ {
			mustAppend(t, b, payload(i, 50+i))
		}
		r := b.NewReader()
		var prev []Record
		for after := uint64(0); after < 40; after += 7 {
			want, err := b.Peek(after, 8, 1000)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Peek(after, 8, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(got), seqs(want)) {
				t.Fatalf("Reader.Peek(%d) = %v, Peek = %v", after, seqs(got), seqs(want))
			}
			for i := range got {
				if !bytes.Equal(got[i].Data, want[i].Data) {
					t.Fatalf("record %d: Reader has %q, Peek %q", got[i].Seq, got[i].Data, want[i].Data)
				}
			}
			if prev != nil && &got[0] != &prev[0] {
				t.Error("Reader allocated a new record slice")
			}
			prev = got
		}
		peek := testing.AllocsPerRun(20, func() {
			if _, err := b.Peek(0, 8, 1000); err != nil {
				t.Fatal(err)
			}
		})
		reader := testing.AllocsPerRun(20, func() {
			if _, err := r.Peek(0, 8, 1000); err != nil {
				t.Fatal(err)
			}
		})
		// Peek allocates the records and their data besides bbolt's read
		// transaction; a warm Reader only the transaction.
		if reader > peek-2 {
			t.Errorf("Reader.Peek allocates %.0f times per call, Peek %.0f: want 2 fewer", reader, peek)
		}
		if got, _ := r.Peek(40, 8, 1000); len(got) != 0 {
			t.Fatalf("Peek past the newest: %v", seqs(got))
		}
	})
}

func TestSeqMonotonicAcrossReopen(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		f := newFixture(t, m)
		b := f.open()
		mustAppend(t, b, payload(1, 10), payload(2, 10), payload(3, 10))
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}

		b = f.open()
		if first, _ := mustAppend(t, b, payload(4, 10)); first != 4 {
			t.Fatalf("after reopen: first seq %d, want 4", first)
		}
		if err := b.Ack(4); err != nil { // empty the queue: the high-water mark must survive
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}

		b = f.open()
		if st := b.Stats(); st.Records != 0 {
			t.Fatalf("records after ack-all and reopen: %+v", st)
		}
		if first, _ := mustAppend(t, b, payload(5, 10)); first != 5 {
			t.Fatalf("after emptying and reopen: first seq %d, want 5", first)
		}

		// A crash: sequence numbers still never go back.
		_, last := mustAppend(t, b, payload(6, 10))
		crash(t, b)
		b = f.open()
		if first, _ := mustAppend(t, b, payload(7, 10)); first <= last {
			t.Fatalf("after crash: seq %d reuses <= %d", first, last)
		}
	})
}

func TestCapDropsOldest(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		f := newFixture(t, m)
		f.opts.MaxBytes = 10 * accounted(100)
		b := f.open()
		for i := 1; i <= 15; i++ {
			mustAppend(t, b, payload(i, 100))
		}
		st := b.Stats()
		if st.Records != 10 || st.Dropped != 5 || st.DroppedBytes != 5*accounted(100) || st.Bytes > f.opts.MaxBytes || st.OldestSeq != 6 {
			t.Fatalf("stats: %+v", st)
		}
		if got := seqs(all(t, b, 0)); !slices.Equal(got, span(6, 15)) {
			t.Fatalf("kept %v, want 6..15", got)
		}

		// One append bigger than the whole cap keeps only its newest records,
		// and still succeeds.
		var batch [][]byte
		for i := 16; i <= 35; i++ {
			batch = append(batch, payload(i, 100))
		}
		if first, last := mustAppend(t, b, batch...); first != 16 || last != 35 {
			t.Fatalf("big append: %d..%d", first, last)
		}
		if got := seqs(all(t, b, 0)); !slices.Equal(got, span(26, 35)) {
			t.Fatalf("kept %v, want 26..35", got)
		}
		if st := b.Stats(); st.Dropped != 25 || st.Records != 10 {
			t.Fatalf("stats: %+v", st)
		}

		// The first drop is logged at once; later ones are rate-limited and
		// summed up at Close.
		warns := f.logs.find(slog.LevelWarn, "buffer full, dropped oldest records")
		if len(warns) != 1 || warns[0]["dropped"].Uint64() != 1 {
			t.Fatalf("drop warnings before close: %v", warns)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		warns = f.logs.find(slog.LevelWarn, "buffer full, dropped oldest records")
		if len(warns) != 2 || warns[1]["dropped"].Uint64() != 24 || warns[1]["dropped_total"].Uint64() != 25 {
			t.Fatalf("drop warnings after close: %v", warns)
		}

		// The cap holds across reopen.
		b = f.open()
		mustAppend(t, b, payload(36, 100))
		if st := b.Stats(); st.Records != 10 || st.OldestSeq != 27 || st.Dropped != 1 {
			t.Fatalf("after reopen: %+v", st)
		}
	})
}

func TestOversizeRecord(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		f := newFixture(t, m)
		f.opts.MaxBytes = 1000
		b := f.open()
		_, _, err := b.Append(payload(1, 10), payload(2, 1000-RecordOverhead+1))
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
		if st := b.Stats(); st.Records != 0 || st.Appended != 0 {
			t.Fatalf("something was stored: %+v", st)
		}
		if first, _ := mustAppend(t, b, payload(3, 1000-RecordOverhead)); first != 1 {
			t.Fatalf("first seq after rejection = %d", first)
		}
		if first, last, err := b.Append(); first != 0 || last != 0 || err != nil {
			t.Fatalf("empty Append = %d, %d, %v", first, last, err)
		}
	})
}

func TestConcurrentAppenders(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		b := newFixture(t, m).open()
		const appenders, perAppender = 10, 200
		type span struct{ first, last uint64 }
		spans := make([][]span, appenders)
		var wg sync.WaitGroup
		for g := range appenders {
			wg.Go(func() {
				for i := range perAppender {
					n := 1 + i%3
					var data [][]byte
					for k := range n {
						data = append(data, fmt.Appendf(nil, "%d/%d/%d", g, i, k))
					}
					first, last, err := b.Append(data...)
					if err != nil {
						t.Error(err)
						return
					}
					if last-first+1 != uint64(n) {
						t.Errorf("appender %d: %d records got %d..%d", g, n, first, last)
					}
					spans[g] = append(spans[g], span{first, last})
				}
			})
		}
		// Acks race with the appenders, as the uplink does.
		stop := make(chan struct{})
		acked := make(chan uint64)
		go func() {
			var upTo uint64
			defer func() { acked <- upTo }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				recs, err := b.Peek(upTo, 50, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if len(recs) > 0 {
					upTo = recs[len(recs)/2].Seq
					if err := b.Ack(upTo); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
		wg.Wait()
		close(stop)
		ackedUpTo := <-acked

		recs := all(t, b, 0)
		bySeq := map[uint64][]byte{}
		for i, r := range recs {
			if i > 0 && r.Seq != recs[i-1].Seq+1 {
				t.Fatalf("gap or disorder at %d: %d after %d", i, r.Seq, recs[i-1].Seq)
			}
			bySeq[r.Seq] = r.Data
		}
		total := 0
		for g := range appenders {
			var prev uint64
			for i, s := range spans[g] {
				if s.first <= prev {
					t.Fatalf("appender %d: append %d got seq %d after %d", g, i, s.first, prev)
				}
				prev = s.last
				for k, q := 0, s.first; q <= s.last; k, q = k+1, q+1 {
					total++
					if q <= ackedUpTo {
						continue
					}
					if want := fmt.Sprintf("%d/%d/%d", g, i, k); string(bySeq[q]) != want {
						t.Fatalf("seq %d = %q, want %q", q, bySeq[q], want)
					}
				}
			}
		}
		st := b.Stats()
		if st.Appended != uint64(total) || st.Acked+uint64(st.Records) != uint64(total) || st.Dropped != 0 {
			t.Fatalf("stats %+v, total %d", st, total)
		}
	})
}

func TestAckBeyondNewest(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		b := newFixture(t, m).open()
		mustAppend(t, b, payload(1, 10), payload(2, 10))
		if err := b.Ack(1_000_000); err != nil {
			t.Fatal(err)
		}
		st := b.Stats()
		if st.Records != 0 || st.Bytes != 0 || st.OldestSeq != 0 || st.NewestSeq != 0 || st.OldestAge != 0 || st.Acked != 2 {
			t.Fatalf("stats: %+v", st)
		}
		if first, _ := mustAppend(t, b, payload(3, 10)); first != 3 {
			t.Fatalf("next seq %d, want 3", first)
		}
		if got := seqs(all(t, b, 0)); !slices.Equal(got, []uint64{3}) {
			t.Fatalf("stored %v", got)
		}
		if err := b.Ack(math.MaxUint64); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCloseReopen(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		f := newFixture(t, m)
		b := f.open()
		for i := 1; i <= 50; i++ {
			mustAppend(t, b, payload(i, 300))
		}
		if err := b.Ack(20); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, _, err := b.Append([]byte("x")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close: %v", err)
		}
		if _, err := b.Peek(0, 1, 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Peek after Close: %v", err)
		}
		if err := b.Ack(1); !errors.Is(err, ErrClosed) {
			t.Fatalf("Ack after Close: %v", err)
		}
		if err := b.SetLinkUp(true); m.mode == Outage && !errors.Is(err, ErrClosed) {
			t.Fatalf("SetLinkUp after Close: %v", err)
		}

		b = f.open()
		recs := all(t, b, 0)
		if got := seqs(recs); !slices.Equal(got, span(21, 50)) {
			t.Fatalf("after reopen: %v", got)
		}
		for _, r := range recs {
			if !bytes.Equal(r.Data, payload(int(r.Seq), 300)) {
				t.Fatalf("record %d corrupted", r.Seq)
			}
		}
		if st := b.Stats(); st.Records != 30 || st.Bytes != 30*accounted(300) || st.Appended != 0 {
			t.Fatalf("stats after reopen: %+v", st)
		}
		if got := f.logs.find(slog.LevelWarn, "buffer not closed cleanly, checking file"); len(got) != 0 {
			t.Fatal("a clean close was not recognised")
		}
	})
}

func TestStats(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		f := newFixture(t, m)
		clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
		f.opts.Now = clock.Now
		b := f.open()
		if st := b.Stats(); st.Records != 0 || st.FileBytes == 0 {
			t.Fatalf("empty: %+v", st)
		}
		mustAppend(t, b, payload(1, 50))
		clock.Add(5 * time.Second)
		mustAppend(t, b, payload(2, 70))
		clock.Add(2 * time.Second)
		st := b.Stats()
		if st.Records != 2 || st.Bytes != accounted(50)+accounted(70) || st.OldestAge != 7*time.Second ||
			st.OldestSeq != 1 || st.NewestSeq != 2 || st.Appended != 2 {
			t.Fatalf("stats: %+v", st)
		}
		wantMem := 0
		if m.linkUp {
			wantMem = 2
		}
		if st.MemRecords != wantMem {
			t.Fatalf("MemRecords = %d, want %d", st.MemRecords, wantMem)
		}
		if err := b.Ack(1); err != nil {
			t.Fatal(err)
		}
		if st := b.Stats(); st.OldestAge != 2*time.Second || st.Records != 1 || st.Acked != 1 {
			t.Fatalf("after ack: %+v", st)
		}
		// Ages survive a reopen: the append time is stored with the record.
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Minute)
		b = f.open()
		if st := b.Stats(); st.OldestAge != time.Minute+2*time.Second {
			t.Fatalf("after reopen: %+v", st)
		}
	})
}

// A failed commit fails the calls in its group, leaves the state as it was,
// and burns the sequence numbers it had handed out.
func TestFailedCommit(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		f := newFixture(t, m)
		b := f.open()
		mustAppend(t, b, payload(1, 10), payload(2, 10))
		before := b.Stats()
		injected := errors.New("injected: no space left on device")

		if m.linkUp {
			// Memory appends need no transaction; the spill does.
			b.w.failCommit = injected
			if err := b.SetLinkUp(false); !errors.Is(err, injected) || !strings.Contains(err.Error(), f.path) {
				t.Fatalf("SetLinkUp(false) = %v", err)
			}
			if st := b.Stats(); st.MemRecords != 2 || st.Records != 2 {
				t.Fatalf("after failed spill: %+v", st)
			}
			if err := b.SetLinkUp(false); err != nil {
				t.Fatal(err)
			}
			before = b.Stats()
		}

		b.w.failCommit = injected
		if _, _, err := b.Append(payload(3, 10)); !errors.Is(err, injected) {
			t.Fatalf("Append = %v, want the injected error", err)
		}
		if st := b.Stats(); st.Records != before.Records || st.Bytes != before.Bytes || st.NewestSeq != before.NewestSeq {
			t.Fatalf("state changed by a failed commit: %+v, was %+v", st, before)
		}
		first, _ := mustAppend(t, b, payload(4, 10))
		if first != 4 {
			t.Fatalf("after a failed commit: seq %d, want 4 (3 burned)", first)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b = f.open()
		if got := seqs(all(t, b, 0)); !slices.Equal(got, []uint64{1, 2, 4}) {
			t.Fatalf("after reopen: %v", got)
		}
	})
}

// An Ack larger than one transaction's deletion budget is finished in
// further transactions before it returns.
func TestLargeAckChunked(t *testing.T) {
	f := newFixture(t, modes[0])
	b := f.open()
	const n = maxDeletesPerTx + 3000
	for i := 0; i < n; i += 1000 {
		var batch [][]byte
		for k := i; k < min(i+1000, n); k++ {
			batch = append(batch, payload(k, 8))
		}
		mustAppend(t, b, batch...)
	}
	commits := b.w.commits
	if err := b.Ack(n - 1); err != nil {
		t.Fatal(err)
	}
	if got := b.w.commits - commits; got != 2 {
		t.Errorf("Ack of %d records took %d transactions, want 2", n-1, got)
	}
	if st := b.Stats(); st.Records != 1 || st.OldestSeq != n || st.Acked != n-1 {
		t.Fatalf("after Ack: %+v", st)
	}
}

// Deletes that empty many B+tree leaves in one transaction (records of
// 2 KB, one or two per 4 KiB page) delete exactly what was asked, the
// front and a range in the middle, and keep the rest across a reopen.
func TestDeleteAcrossManyLeaves(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		f := newFixture(t, m)
		b := f.open()
		const n = 3000
		for i := 1; i <= n; i += 100 {
			var batch [][]byte
			for k := i; k < i+100; k++ {
				batch = append(batch, payload(k, 2000))
			}
			mustAppend(t, b, batch...)
		}
		if err := b.AckRange(1001, 2500); err != nil {
			t.Fatal(err)
		}
		if err := b.Ack(500); err != nil {
			t.Fatal(err)
		}
		want := append(span(501, 1000), span(2501, n)...)
		check := func(when string) {
			t.Helper()
			if got := seqs(all(t, b, 0)); !slices.Equal(got, want) {
				t.Fatalf("%s: %d records %v..., want %d", when, len(got), got[:min(len(got), 5)], len(want))
			}
			if s := b.Stats(); s.Records != len(want) || s.OldestSeq != 501 || s.NewestSeq != n || s.Bytes != int64(len(want))*accounted(len(payload(1, 2000))) {
				t.Fatalf("%s: stats %+v", when, s)
			}
		}
		check("after the deletes")
		b.Close()
		b = f.open()
		check("after reopen")
	})
}

// AckRange deletes proven records in the middle of the queue (live data
// proven while older history is still being replayed) and keeps the rest,
// in order, across a reopen.
func TestAckRange(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		f := newFixture(t, m)
		b := f.open()
		for i := 1; i <= 20; i++ {
			mustAppend(t, b, payload(i, 50))
		}
		if err := b.AckRange(11, 15); err != nil {
			t.Fatal(err)
		}
		want := append(span(1, 10), span(16, 20)...)
		if got := seqs(all(t, b, 0)); !slices.Equal(got, want) {
			t.Fatalf("after AckRange(11,15): %v, want %v", got, want)
		}
		if s := b.Stats(); s.Records != 15 || s.OldestSeq != 1 || s.NewestSeq != 20 || s.Bytes != 15*accounted(len(payload(1, 50))) {
			t.Fatalf("stats after AckRange(11,15): %+v", s)
		}
		// The tail, then the front through the range API.
		if err := b.AckRange(18, 100); err != nil {
			t.Fatal(err)
		}
		if s := b.Stats(); s.NewestSeq != 17 || s.Records != 12 {
			t.Fatalf("stats after deleting the tail: %+v", s)
		}
		if err := b.AckRange(1, 3); err != nil {
			t.Fatal(err)
		}
		if err := b.AckRange(9, 8); err != nil { // empty range: no-op
			t.Fatal(err)
		}
		want = append(span(4, 10), span(16, 17)...)
		if got := seqs(all(t, b, 0)); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if first, _ := mustAppend(t, b, payload(21, 50)); first != 21 {
			t.Fatalf("next seq %d, want 21", first)
		}
		b.Close()
		b = f.open()
		want = append(want, 21)
		got := seqs(all(t, b, 0))
		if !slices.Equal(got, want) {
			t.Fatalf("after reopen %v, want %v", got, want)
		}
	})
}

// Extras are durable, survive a reopen and compaction, and are listed by
// prefix; a file without the extras bucket (older releases) gets one.
func TestExtras(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	b, err := Open(Options{Path: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"schema/1": "a", "schema/2": "bb", "other": "c"} {
		if err := b.PutExtra(k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.PutExtra("schema/2", []byte("b2")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Append([]byte("record")); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteExtra("other"); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b, err = Open(Options{Path: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	keys, err := b.ExtraKeys("schema/")
	if err != nil || len(keys) != 2 || keys[0] != "schema/1" || keys[1] != "schema/2" {
		t.Fatalf("keys = %v, %v", keys, err)
	}
	if v, _ := b.Extra("schema/2"); string(v) != "b2" {
		t.Errorf("schema/2 = %q", v)
	}
	if v, _ := b.Extra("other"); v != nil {
		t.Errorf("deleted extra = %q", v)
	}
	if err := b.PutExtra("", []byte("x")); err == nil {
		t.Error("empty key accepted")
	}
}
