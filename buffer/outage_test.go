package buffer

import (
	"slices"
	"testing"
)

var outageLinkUp = modes[1]

func TestOutageSpillOnLinkDown(t *testing.T) {
	f := newFixture(t, outageLinkUp)
	b := f.open()
	for i := 1; i <= 10; i++ {
		mustAppend(t, b, payload(i, 200))
	}
	if st := b.Stats(); st.MemRecords != 10 {
		t.Fatalf("before link down: %+v", st)
	}
	if err := b.SetLinkUp(false); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.MemRecords != 0 || st.Records != 10 {
		t.Fatalf("after link down: %+v", st)
	}
	mustAppend(t, b, payload(11, 200)) // straight to disk now
	if st := b.Stats(); st.MemRecords != 0 || st.Records != 11 {
		t.Fatalf("append with link down: %+v", st)
	}
	crash(t, b) // kill -9: the spilled records survive

	b = f.open()
	recs := all(t, b, 0)
	if got := seqs(recs); !slices.Equal(got, span(1, 11)) {
		t.Fatalf("after crash: %v", got)
	}
}

// The documented trade: kill -9 in Outage mode loses the memory window, but
// never reuses its sequence numbers.
func TestOutageCrashLosesMemoryWindow(t *testing.T) {
	f := newFixture(t, outageLinkUp)
	b := f.open()
	_, last := mustAppend(t, b, payload(1, 10), payload(2, 10), payload(3, 10))
	crash(t, b)
	b = f.open()
	if st := b.Stats(); st.Records != 0 {
		t.Fatalf("memory records survived a crash?! %+v", st)
	}
	if first, _ := mustAppend(t, b, payload(4, 10)); first <= last {
		t.Fatalf("seq %d reused after crash (last handed out %d)", first, last)
	}
}

func TestOutageCloseKeepsMemory(t *testing.T) {
	f := newFixture(t, outageLinkUp)
	b := f.open()
	mustAppend(t, b, payload(1, 10), payload(2, 10))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = f.open()
	if got := seqs(all(t, b, 0)); !slices.Equal(got, span(1, 2)) {
		t.Fatalf("after clean close: %v", got)
	}
	if first, _ := mustAppend(t, b, payload(3, 10)); first != 3 {
		t.Fatalf("after clean close the next seq is %d, want 3", first)
	}
}

func TestOutageMemoryFullSpills(t *testing.T) {
	f := newFixture(t, outageLinkUp)
	f.opts.MaxMemBytes = 10 * accounted(100)
	b := f.open()
	for i := 1; i <= 10; i++ {
		mustAppend(t, b, payload(i, 100))
	}
	if st := b.Stats(); st.MemRecords != 10 {
		t.Fatalf("%+v", st)
	}
	mustAppend(t, b, payload(11, 100)) // over the window: everything goes to disk
	if st := b.Stats(); st.MemRecords != 0 || st.Records != 11 {
		t.Fatalf("after overflow: %+v", st)
	}
	mustAppend(t, b, payload(12, 100)) // disk backlog exists: stays on disk
	if st := b.Stats(); st.MemRecords != 0 {
		t.Fatalf("%+v", st)
	}
	if err := b.Ack(12); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, payload(13, 100)) // backlog acked empty: memory again
	if st := b.Stats(); st.MemRecords != 1 || st.Records != 1 {
		t.Fatalf("after drain: %+v", st)
	}
	if got := seqs(all(t, b, 0)); !slices.Equal(got, []uint64{13}) {
		t.Fatalf("%v", got)
	}
}

func TestOutageBackToMemoryAfterDrain(t *testing.T) {
	f := newFixture(t, outageLinkUp)
	b := f.open()
	if err := b.SetLinkUp(false); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, payload(1, 10), payload(2, 10), payload(3, 10))
	if err := b.SetLinkUp(true); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, payload(4, 10)) // behind a disk backlog: disk
	if st := b.Stats(); st.MemRecords != 0 || st.Records != 4 {
		t.Fatalf("%+v", st)
	}
	// Peek across the backlog, ack part of it: still disk.
	recs, err := b.Peek(0, 2, 0)
	if err != nil || !slices.Equal(seqs(recs), []uint64{1, 2}) {
		t.Fatalf("%v %v", seqs(recs), err)
	}
	if err := b.Ack(2); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, payload(5, 10))
	if st := b.Stats(); st.MemRecords != 0 {
		t.Fatalf("%+v", st)
	}
	if err := b.Ack(5); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, payload(6, 10), payload(7, 10))
	if st := b.Stats(); st.MemRecords != 2 || st.OldestSeq != 6 || st.NewestSeq != 7 {
		t.Fatalf("%+v", st)
	}
	// Peek/Ack in memory, then a link drop mid-way: order is kept.
	if recs, _ := b.Peek(5, 1, 0); !slices.Equal(seqs(recs), []uint64{6}) {
		t.Fatalf("%v", seqs(recs))
	}
	if err := b.Ack(6); err != nil {
		t.Fatal(err)
	}
	if err := b.SetLinkUp(false); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, payload(8, 10))
	if got := seqs(all(t, b, 0)); !slices.Equal(got, []uint64{7, 8}) {
		t.Fatalf("%v", got)
	}
	if got := seqs(all(t, b, 7)); !slices.Equal(got, []uint64{8}) {
		t.Fatalf("%v", got)
	}
}

func TestWriteAheadIgnoresLink(t *testing.T) {
	b := newFixture(t, modes[0]).open()
	if err := b.SetLinkUp(true); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, b, payload(1, 10))
	if st := b.Stats(); st.MemRecords != 0 || st.Records != 1 {
		t.Fatalf("%+v", st)
	}
}
