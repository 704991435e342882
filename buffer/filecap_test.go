package buffer

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The file never grows past max_bytes plus a page, whatever the records'
// sizes (a few bytes to several pages), with readers holding pages and
// acks freeing them out of order, in both modes and across a reopen.
// Users size their SD card by max_bytes.
func TestFileNeverOutgrowsMaxBytes(t *testing.T) {
	for _, mode := range []Mode{WriteAhead, Outage} {
		for _, maxBytes := range []int64{1 << 20, 2<<20 + 12345} {
			t.Run(mode.String()+"/"+sizeName(maxBytes), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "buffer.db")
				open := func() *Buffer {
					b, err := Open(Options{Path: path, MaxBytes: maxBytes, Mode: mode, Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						t.Fatal(err)
					}
					return b
				}
				b := open()
				r := rand.New(rand.NewPCG(1, uint64(maxBytes)))
				check := func(when string) {
					t.Helper()
					fi, err := os.Stat(path)
					if err != nil {
						t.Fatal(err)
					}
					if fi.Size() > maxBytes+pageSize {
						t.Fatalf("%s: file %d bytes, cap %d (+ a page %d)", when, fi.Size(), maxBytes, pageSize)
					}
				}
				// A reader that keeps read transactions open, as the uplink
				// does while it publishes.
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						b.Peek(0, 64, 1<<20)
						time.Sleep(50 * time.Microsecond)
					}
				}()
				var appended int64
				for i := 0; appended < 3*maxBytes; i++ {
					var size int
					switch r.IntN(10) {
					case 0:
						size = 5000 + r.IntN(12000) // more than a page
					case 1, 2:
						size = 10 + r.IntN(100)
					default:
						size = 200 + r.IntN(3000)
					}
					recs := make([][]byte, 1+r.IntN(4))
					for k := range recs {
						recs[k] = make([]byte, size)
						appended += int64(size)
					}
					_, last, err := b.Append(recs...)
					if err != nil {
						t.Fatal(err)
					}
					if i%17 == 0 {
						b.SetLinkUp(i%34 == 0)
					}
					if i%23 == 0 {
						if st := b.Stats(); st.OldestSeq > 0 {
							b.AckRange(st.OldestSeq+1, min(st.OldestSeq+5, last)) // out of order
						}
					}
					if i%300 == 299 {
						close(stop)
						wg.Wait()
						b.Close()
						check("after close")
						b = open()
						stop = make(chan struct{})
						wg.Add(1)
						go func() {
							defer wg.Done()
							for {
								select {
								case <-stop:
									return
								default:
								}
								b.Peek(0, 64, 1<<20)
								time.Sleep(50 * time.Microsecond)
							}
						}()
					}
					check("after an append")
				}
				close(stop)
				wg.Wait()
				st := b.Stats()
				b.Close()
				check("at the end")
				if st.Dropped == 0 {
					t.Error("the cap dropped nothing")
				}
				t.Logf("appended %d MB into a cap of %d bytes: %d records kept (%d bytes), %d dropped", appended>>20, maxBytes, st.Records, st.Bytes, st.Dropped)
			})
		}
	}
}

func sizeName(n int64) string {
	if n%(1<<20) == 0 {
		return string(rune('0'+n>>20)) + "MiB"
	}
	return "odd"
}

// Records longer than an entry are stored in chunks and come back whole,
// through acks of ranges, a crash and the check that follows it.
func TestChunkedRecords(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		f := newFixture(t, m)
		b := f.open()
		sizes := []int{0, 1, chunkData - 1, chunkData, chunkData + 1, 2 * chunkData, 2*chunkData + 7, 10000, 100000, 3}
		want := map[uint64][]byte{}
		for i, n := range sizes {
			d := make([]byte, n)
			for k := range d {
				d[k] = byte(i*31 + k)
			}
			first, _ := mustAppend(t, b, d)
			want[first] = d
		}
		check := func(when string) {
			t.Helper()
			got := all(t, b, 0)
			if len(got) != len(want) {
				t.Fatalf("%s: %d records, want %d", when, len(got), len(want))
			}
			for _, r := range got {
				if !bytes.Equal(r.Data, want[r.Seq]) {
					t.Fatalf("%s: record %d differs (%d bytes, want %d)", when, r.Seq, len(r.Data), len(want[r.Seq]))
				}
			}
		}
		check("as stored")
		if err := b.AckRange(6, 8); err != nil { // chunked ones in the middle
			t.Fatal(err)
		}
		delete(want, 6)
		delete(want, 7)
		delete(want, 8)
		check("after a range ack")
		b.SetLinkUp(false) // records held in memory (outage mode, link up) are on disk now
		crash(t, b)
		b = f.open()
		check("after a crash")
		if err := b.Ack(9); err != nil {
			t.Fatal(err)
		}
		for s := range want {
			if s <= 9 {
				delete(want, s)
			}
		}
		check("after an ack from the front")
		b.Close()
	})
}
