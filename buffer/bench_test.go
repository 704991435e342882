package buffer

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// A realistic record: one device scan of 100 samples, about 1.6 KB encoded.
const (
	benchRecordBytes = 1600
	samplesPerRecord = 100
)

func benchRecords(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = payload(i, benchRecordBytes)
	}
	return out
}

func benchOpen(b *testing.B, o Options) *Buffer {
	b.Helper()
	o.Path = filepath.Join(b.TempDir(), "buffer.db")
	o.Logger = slog.New(slog.DiscardHandler)
	buf, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	return buf
}

func reportRate(b *testing.B, records int, elapsed time.Duration) {
	rps := float64(records) / elapsed.Seconds()
	b.ReportMetric(rps, "records/s")
	b.ReportMetric(rps*samplesPerRecord, "samples/s")
}

// BenchmarkAppend measures durable appends of 1.6 KB records, one record per
// Append call, from 1 and 10 concurrent appenders (one per PLC scan loop).
// The outage-linkup case appends to memory while a drainer acks, the
// steady state of Outage mode with the link up.
func BenchmarkAppend(b *testing.B) {
	for _, tc := range []struct {
		name      string
		mode      Mode
		appenders int
	}{
		{"writeahead/appenders=1", WriteAhead, 1},
		{"writeahead/appenders=10", WriteAhead, 10},
		{"outage-linkup/appenders=10", Outage, 10},
	} {
		b.Run(tc.name, func(b *testing.B) {
			buf := benchOpen(b, Options{Mode: tc.mode})
			defer buf.Close()
			stopDrain := func() {}
			if tc.mode == Outage {
				if err := buf.SetLinkUp(true); err != nil {
					b.Fatal(err)
				}
				stopDrain = drainInBackground(b, buf)
			}
			recs := benchRecords(64)
			b.SetBytes(benchRecordBytes)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for a := range tc.appenders {
				n := b.N / tc.appenders
				if a < b.N%tc.appenders {
					n++
				}
				wg.Go(func() {
					for i := range n {
						if _, _, err := buf.Append(recs[(a+i)%len(recs)]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			stopDrain()
			reportRate(b, b.N, elapsed)
			if err := buf.Close(); err != nil {
				b.Fatal(err)
			}
			if c := buf.w.commits; c > 0 && tc.mode == WriteAhead {
				b.ReportMetric(float64(b.N)/float64(c), "records/commit")
			}
		})
	}
}

func drainInBackground(b *testing.B, buf *Buffer) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var after uint64
		for {
			select {
			case <-done:
				return
			default:
			}
			recs, err := buf.Peek(after, 500, 1<<20)
			if err != nil {
				b.Error(err)
				return
			}
			if len(recs) == 0 {
				time.Sleep(100 * time.Microsecond)
				continue
			}
			after = recs[len(recs)-1].Seq
			if err := buf.Ack(after); err != nil {
				b.Error(err)
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// BenchmarkDrain measures replay: Peek a batch of 500, Ack it, repeat. The
// backlog (up to 50,000 records, 80 MB, on disk) is refilled outside the
// timer whenever it runs out.
func BenchmarkDrain(b *testing.B) {
	buf := benchOpen(b, Options{})
	defer buf.Close()
	recs := benchRecords(500)
	refill := func(n int) {
		b.StopTimer()
		for i := 0; i < n; i += len(recs) {
			if _, _, err := buf.Append(recs[:min(len(recs), n-i)]...); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.SetBytes(benchRecordBytes)
	b.ReportAllocs()
	b.ResetTimer()
	var after uint64
	got := 0
	for got < b.N {
		batch, err := buf.Peek(after, min(500, b.N-got), 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		if len(batch) == 0 {
			refill(min(50_000, b.N-got))
			continue
		}
		after = batch[len(batch)-1].Seq
		got += len(batch)
		if err := buf.Ack(after); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "records/s")
}

// backlogHeap fills a backlog of one million samples (10,000 records of
// 1.6 KB, 16 MB) and drains it in batches, returning the live heap before,
// after filling, and the most seen while draining.
func backlogHeap(tb testing.TB, path string) (before, filled, draining uint64) {
	buf, err := Open(Options{Path: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	defer buf.Close()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	recs := benchRecords(100)
	before = heap()
	for i := 0; i < 1_000_000/samplesPerRecord; i += len(recs) {
		if _, _, err := buf.Append(recs...); err != nil {
			tb.Fatal(err)
		}
	}
	filled = heap()
	var after uint64
	for n := 0; ; n++ {
		batch, err := buf.Peek(after, 500, 1<<20)
		if err != nil {
			tb.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		if n%4 == 0 {
			draining = max(draining, heap())
		}
		after = batch[len(batch)-1].Seq
		if err := buf.Ack(after); err != nil {
			tb.Fatal(err)
		}
	}
	return before, filled, draining
}

// TestBacklogMemoryFlat: a 16 MB backlog must not show up on the heap.
func TestBacklogMemoryFlat(t *testing.T) {
	before, filled, draining := backlogHeap(t, filepath.Join(t.TempDir(), "buffer.db"))
	t.Logf("heap in use: %.1f MiB before, %.1f MiB with 1M samples (16 MB) stored, %.1f MiB at most while draining",
		mib(before), mib(filled), mib(draining))
	const slack = 6 << 20
	if filled > before+slack || draining > before+slack {
		t.Fatalf("heap grew with the backlog: %d -> %d / %d bytes", before, filled, draining)
	}
}

func BenchmarkBacklogHeap(b *testing.B) {
	var before, filled, draining uint64
	for i := 0; b.Loop(); i++ {
		before, filled, draining = backlogHeap(b, filepath.Join(b.TempDir(), fmt.Sprintf("buffer-%d.db", i)))
	}
	b.ReportMetric(mib(before), "heap-MiB-before")
	b.ReportMetric(mib(filled), "heap-MiB-1M-samples")
	b.ReportMetric(mib(draining), "heap-MiB-draining")
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
