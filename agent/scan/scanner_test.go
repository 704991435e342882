package scan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/agent/health"
	"github.com/edgeagent/edgeagent/agent/record"
	"github.com/edgeagent/edgeagent/buffer"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/drivertest"
)

// rig is one scanner over an in-memory PLC, storing into a real buffer.
type rig struct {
	t     *testing.T
	plc   *drivertest.PLC
	buf   *buffer.Buffer
	store *Store
	s     *Scanner
	stop  func()
	read  uint64   // records consumed by next
	logs  *logSink // the scanner's log, text format
}

func newRig(t *testing.T, push bool, tags string) *rig {
	t.Helper()
	return newRigPoll(t, push, "20ms", tags)
}

// newRigPoll is newRig with a poll interval.
func newRigPoll(t *testing.T, push bool, poll, tags string) *rig {
	t.Helper()
	name := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	plc := drivertest.NewPLC(name)
	t.Cleanup(plc.Close)
	src := fmt.Sprintf(`node: {group_id: g, edge_node_id: e}
mqtt: {servers: [tcp://127.0.0.1:1]}
devices:
  - {id: dev, driver: memory, plc: %q, push: %v, poll: %s, timeout: 200ms, tags: [%s]}
`, name, push, poll, tags)
	cfg, err := config.LoadBytes("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	buf, err := buffer.Open(buffer.Options{Path: filepath.Join(t.TempDir(), "buffer.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	r := &rig{t: t, plc: plc, buf: buf, store: NewStore(buf), logs: &logSink{}}
	r.s = New(cfg.Devices[0], r.store, health.NewMonitor(), slog.New(slog.NewTextHandler(r.logs, nil)))
	return r
}

// logSink keeps log lines for tests to look for.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// find returns the lines that contain every one of subs.
func (l *logSink) find(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, line := range l.lines {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

func (r *rig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.s.Run(ctx); close(done) }()
	r.stop = func() { cancel(); <-done }
	r.t.Cleanup(r.stop)
}

// next waits for the next stored record.
func (r *rig) next() record.Record {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs, err := r.buf.Peek(r.read, 1, 1<<20)
		if err != nil {
			r.t.Fatal(err)
		}
		if len(recs) == 1 {
			r.read = recs[0].Seq
			var rec record.Record
			if err := record.Decode(recs[0].Data, &rec, r.store); err != nil {
				r.t.Fatal(err)
			}
			return rec
		}
		if time.Now().After(deadline) {
			r.t.Fatal("no record within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// none checks that no record is stored for a while.
func (r *rig) none(d time.Duration) {
	r.t.Helper()
	time.Sleep(d)
	if recs, _ := r.buf.Peek(r.read, 1, 1<<20); len(recs) > 0 {
		var rec record.Record
		record.Decode(recs[0].Data, &rec, r.store)
		r.t.Fatalf("unexpected record %+v", rec)
	}
}

// samples indexes a record's samples by tag name.
func (r *rig) samples(rec record.Record) map[string]record.Sample {
	m := map[string]record.Sample{}
	for _, s := range rec.Samples {
		m[r.name(s)] = s
	}
	return m
}

// name is a sample's tag name, through the record's schema.
func (r *rig) name(s record.Sample) string {
	sch, ok := r.store.SchemaNames(r.s.Layout().Schema)
	if !ok {
		r.t.Fatal("no schema")
	}
	return sch.Names[s.Index]
}

// A push driver's changes are stored as they arrive, with the PLC's source
// timestamps and quality, by exception with the deadband, scaled; the
// first read after connecting is the Online snapshot.
func TestPushPath(t *testing.T) {
	r := newRig(t, true, `{name: speed, type: int32, deadband: 5}, {name: temp, type: int16, scale: 0.1}, {name: state, type: string}`)
	src := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	r.plc.Set("speed", drivers.IntValue(drivers.Int32, 100), src)
	r.start()
	on := r.next()
	if on.Kind != record.Online || len(on.Samples) != 3 {
		t.Fatalf("first record %+v, want an online snapshot of 3 tags", on)
	}
	if s := r.samples(on)["speed"]; s.Value.Int() != 100 || s.Time != src.UnixMilli() {
		t.Errorf("snapshot speed = %v at %d, want 100 at %d", s.Value, s.Time, src.UnixMilli())
	}
	waitFor(t, r.s.Online)
	// Changes made before the subscription exists are not pushed.
	waitFor(t, func() bool { return r.plc.Subscribers() > 0 })

	t1 := src.Add(time.Second)
	r.plc.Set("speed", drivers.IntValue(drivers.Int32, 103), t1) // inside the deadband
	r.plc.Set("temp", drivers.IntValue(drivers.Int16, 215), t1)
	rec := r.next()
	if rec.Kind != record.Data || len(rec.Samples) != 1 {
		t.Fatalf("record %+v, want temp alone (speed moved less than its deadband)", rec)
	}
	if s := rec.Samples[0]; r.name(s) != "temp" || s.Value.Type() != drivers.Float64 || s.Value.Float() != 21.5 || s.Time != t1.UnixMilli() {
		t.Errorf("temp = %s %v (%v) at %d, want 21.5 (float64) at %d", r.name(s), s.Value, s.Value.Type(), s.Time, t1.UnixMilli())
	}
	t2 := t1.Add(time.Second)
	r.plc.Set("speed", drivers.IntValue(drivers.Int32, 106), t2) // 6 from 100: out of the deadband
	if s := r.next().Samples[0]; r.name(s) != "speed" || s.Value.Int() != 106 || s.Time != t2.UnixMilli() {
		t.Errorf("speed = %s %v at %d", r.name(s), s.Value, s.Time)
	}
	r.plc.SetQuality("state", drivers.StringValue(""), t2, drivers.QualityBad)
	if s := r.next().Samples[0]; r.name(s) != "state" || s.Quality != drivers.QualityBad {
		t.Errorf("bad quality sample = %+v", s)
	}
	// A value of the wrong type is never stored as the tag's.
	r.plc.Set("state", drivers.IntValue(drivers.Int32, 7), t2)
	r.none(100 * time.Millisecond)
	r.plc.Set("state", drivers.StringValue("running"), t2)
	if s := r.next().Samples[0]; s.Value.Str() != "running" {
		t.Errorf("state = %v", s.Value)
	}

	// The link dies: Offline; it returns: a new Online snapshot.
	r.plc.SetDown(true)
	if rec := r.next(); rec.Kind != record.Offline {
		t.Fatalf("record %+v, want offline", rec)
	}
	r.plc.SetDown(false)
	if rec := r.next(); rec.Kind != record.Online || r.samples(rec)["state"].Value.Str() != "running" {
		t.Fatalf("record %+v, want online with the last values", rec)
	}
	if n := r.plc.Connects(); n != 2 {
		t.Errorf("%d connects, want 2", n)
	}
}

// Polled, every change between two scans is one record.
func TestPollPath(t *testing.T) {
	r := newRig(t, false, `{name: a, type: uint16}, {name: b, type: bool}`)
	r.start()
	if on := r.next(); on.Kind != record.Online {
		t.Fatalf("first record %+v", on)
	}
	r.plc.Set("a", drivers.UintValue(drivers.Uint16, 7), time.Now())
	r.plc.Set("b", drivers.BoolValue(true), time.Now())
	got := map[string]drivers.Value{}
	for len(got) < 2 {
		for _, s := range r.next().Samples {
			got[r.name(s)] = s.Value
		}
	}
	if got["a"].Uint() != 7 || !got["b"].Bool() {
		t.Errorf("got %v", got)
	}
	r.none(100 * time.Millisecond)
}

// Writes reach the PLC in the order they were queued, refused at once when
// they cannot be applied.
func TestWrites(t *testing.T) {
	r := newRig(t, true, `{name: sp, type: int32, writable: true}, {name: ro, type: int32}, {name: scaled, type: int16, scale: 0.1, writable: true}`)
	ctx := context.Background()
	if err := r.s.Write(ctx, 0, drivers.IntValue(drivers.Int64, 1), "spBv1.0/plant/DCMD/edge1/plc1"); !errors.Is(err, ErrOffline) {
		t.Errorf("write while offline: %v, want ErrOffline", err)
	}
	r.start()
	r.next()
	waitFor(t, r.s.Online)
	for i := range 50 {
		if err := r.s.Write(ctx, 0, drivers.IntValue(drivers.Int64, int64(i)), "spBv1.0/plant/DCMD/edge1/plc1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.s.Write(ctx, 1, drivers.IntValue(drivers.Int64, 1), "spBv1.0/plant/DCMD/edge1/plc1"); !errors.Is(err, drivers.ErrNotWritable) {
		t.Errorf("write to a read-only tag: %v", err)
	}
	if err := r.s.Write(ctx, 2, drivers.FloatValue(drivers.Float64, 1e9), "spBv1.0/plant/DCMD/edge1/plc1"); err == nil {
		t.Error("write out of range accepted")
	}
	if err := r.s.Write(ctx, 2, drivers.FloatValue(drivers.Float64, 21.5), "spBv1.0/plant/DCMD/edge1/plc1"); err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := r.s.Write(gone, 0, drivers.IntValue(drivers.Int64, 999), "spBv1.0/plant/DCMD/edge1/plc1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(r.plc.Writes()) >= 51 })
	time.Sleep(50 * time.Millisecond)
	ws := r.plc.Writes()
	if len(ws) != 51 {
		t.Fatalf("%d writes, want 51 (the one from an ended session dropped)", len(ws))
	}
	for i, w := range ws[:50] {
		if w.Tag != "sp" || w.Value.Int() != int64(i) {
			t.Fatalf("write %d = %s %v, want sp %d", i, w.Tag, w.Value, i)
		}
	}
	if w := ws[50]; w.Tag != "scaled" || w.Value.Type() != drivers.Int16 || w.Value.Int() != 215 {
		t.Errorf("scaled write = %s %v (%v), want raw int16 215", w.Tag, w.Value, w.Value.Type())
	}
}

// A scanner retired by a reload stores Offline as it stops; one stopped
// with the agent does not (the NDEATH covers it).
func TestRetire(t *testing.T) {
	r := newRig(t, false, `{name: a, type: uint16}`)
	r.start()
	r.next()
	waitFor(t, r.s.Online)
	r.stop()
	r.none(50 * time.Millisecond)

	r2 := newRig(t, false, `{name: a, type: uint16}`)
	r2.start()
	r2.next()
	waitFor(t, r2.s.Online)
	r2.s.Retire()
	r2.stop()
	if rec := r2.next(); rec.Kind != record.Offline {
		t.Fatalf("record %+v, want offline", rec)
	}
}

// A driver call that hangs past every timeout stops the scanner's heart.
func TestHungDriverStallsTheHeart(t *testing.T) {
	r := newRig(t, false, `{name: a, type: uint16}`)
	mon := r.s.mon
	r.start()
	r.next()
	waitFor(t, r.s.Online)
	if st := mon.Stalled(300 * time.Millisecond); len(st) != 0 {
		t.Fatalf("stalled while healthy: %v", st)
	}
	r.plc.SetHang(true)
	waitFor(t, func() bool { return len(mon.Stalled(300*time.Millisecond)) == 1 })
	if st := mon.Stalled(300 * time.Millisecond); st[0] != "scanner dev" {
		t.Errorf("stalled = %v", st)
	}
	r.plc.SetHang(false) // the hung goroutine stays blocked; the test ends
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A late sample (held by the PLC while the link was down) older than the
// stored value becomes history and leaves the current value alone; a late
// sample newer than it, or an older one not marked late (a PLC clock that
// stepped back), is a change.
func TestLateSamples(t *testing.T) {
	r := newRig(t, true, `{name: level, type: int32}`)
	now := time.Now().Truncate(time.Millisecond)
	r.plc.Set("level", drivers.IntValue(drivers.Int32, 50), now)
	r.start()
	if on := r.next(); on.Kind != record.Online {
		t.Fatalf("first record %+v", on)
	}
	waitFor(t, func() bool { return r.plc.Subscribers() > 0 })
	r.plc.Deliver("level", drivers.IntValue(drivers.Int32, 40), now.Add(-10*time.Second))
	rec := r.next()
	if rec.Kind != record.History || len(rec.Samples) != 1 || rec.Samples[0].Value.Int() != 40 || rec.Samples[0].Time != now.Add(-10*time.Second).UnixMilli() {
		t.Fatalf("record %+v, want history of 40 ten seconds ago", rec)
	}
	if pts, _ := r.s.Snapshot(nil); pts[0].Value.Int() != 50 {
		t.Errorf("current value %v after history, want 50", pts[0].Value)
	}
	r.plc.Deliver("level", drivers.IntValue(drivers.Int32, 55), now.Add(time.Second))
	if rec := r.next(); rec.Kind != record.Data || rec.Samples[0].Value.Int() != 55 {
		t.Fatalf("record %+v, want data 55", rec)
	}
	r.plc.Set("level", drivers.IntValue(drivers.Int32, 60), now.Add(-time.Hour))
	if rec := r.next(); rec.Kind != record.Data || rec.Samples[0].Value.Int() != 60 {
		t.Fatalf("record %+v, want data 60 (not late: the clock stepped back)", rec)
	}
}

// A pushed batch may hold a tag more than once: each sample is judged
// against the one before it in the batch, and the next batch against what
// was stored.
func TestPushedBatchRepeats(t *testing.T) {
	r := newRig(t, true, `{name: a, type: int32}, {name: b, type: int32, deadband: 5}`)
	if err := r.s.relayout(); err != nil {
		t.Fatal(err)
	}
	a, b := int32(0), int32(1)
	smp := func(tag int32, v int64, at int64) drivers.Sample {
		return drivers.Sample{Tag: tag, Value: drivers.IntValue(drivers.Int32, v), Time: at, Quality: drivers.QualityGood}
	}
	type want struct {
		name string
		v    int64
		at   int64
	}
	check := func(rec record.Record, ws ...want) {
		t.Helper()
		if rec.Kind != record.Data || len(rec.Samples) != len(ws) {
			t.Fatalf("record %+v, want data of %d samples", rec, len(ws))
		}
		for k, w := range ws {
			if s := rec.Samples[k]; r.name(s) != w.name || s.Value.Int() != w.v || s.Time != w.at {
				t.Errorf("sample %d = %s %v at %d, want %s %d at %d", k, r.name(s), s.Value, s.Time, w.name, w.v, w.at)
			}
		}
	}
	r.s.pushedBatch([]drivers.Sample{smp(a, 1, 1), smp(b, 3, 1), smp(a, 1, 2), smp(a, 2, 3), smp(b, 10, 3), smp(b, 12, 4)})
	check(r.next(), want{"a", 1, 1}, want{"b", 3, 1}, want{"a", 2, 3}, want{"b", 10, 3})
	r.s.pushedBatch([]drivers.Sample{smp(a, 2, 5), smp(b, 14, 5), smp(a, 3, 6), smp(b, 15, 6)})
	check(r.next(), want{"a", 3, 6}, want{"b", 15, 6})
}

// A write outside a tag's min or max (engineering units) is refused at
// once and never reaches the PLC; the limits themselves may be written.
func TestWriteLimits(t *testing.T) {
	r := newRig(t, true, `{name: sp, type: int32, writable: true, min: 0, max: 100}, {name: temp, type: int16, scale: 0.1, writable: true, min: -10, max: 85.5}, {name: free, type: float32, writable: true}`)
	r.start()
	r.next()
	waitFor(t, r.s.Online)
	ctx := context.Background()
	const topic = "spBv1.0/plant/DCMD/edge1/dev"
	for _, c := range []struct {
		tag int
		v   drivers.Value
		err string
	}{
		{0, drivers.IntValue(drivers.Int64, 120), "value 120 is above the tag's max 100"},
		{0, drivers.IntValue(drivers.Int64, -1), "value -1 is below the tag's min 0"},
		{1, drivers.FloatValue(drivers.Float64, 85.6), "value 85.6 is above the tag's max 85.5"},
		{1, drivers.FloatValue(drivers.Float64, -10.01), "value -10.01 is below the tag's min -10"},
		{1, drivers.FloatValue(drivers.Float64, math.NaN()), "value NaN is outside the tag's limits"},
		{0, drivers.BoolValue(true), "want a number"},
	} {
		err := r.s.Write(ctx, c.tag, c.v, topic)
		if err == nil || err.Error() != c.err && !strings.Contains(err.Error(), c.err) {
			t.Errorf("write %v to %s: %v, want %q", c.v, r.s.Tags()[c.tag].Name, err, c.err)
		}
		if c.v.Type().IsNumeric() && !errors.Is(err, ErrOutsideLimits) {
			t.Errorf("write %v: %v is not ErrOutsideLimits", c.v, err)
		}
	}
	for _, w := range []struct {
		tag int
		v   drivers.Value
	}{
		{0, drivers.IntValue(drivers.Int64, 100)},
		{0, drivers.IntValue(drivers.Int64, 0)},
		{1, drivers.FloatValue(drivers.Float64, 85.5)},
		{2, drivers.FloatValue(drivers.Float64, 1e30)},
	} {
		if err := r.s.Write(ctx, w.tag, w.v, topic); err != nil {
			t.Fatalf("write %v to %s: %v", w.v, r.s.Tags()[w.tag].Name, err)
		}
	}
	waitFor(t, func() bool { return len(r.plc.Writes()) >= 4 })
	time.Sleep(50 * time.Millisecond)
	ws := r.plc.Writes()
	if len(ws) != 4 || ws[0].Value.Int() != 100 || ws[1].Value.Int() != 0 || ws[2].Value.Int() != 855 {
		t.Errorf("the PLC got %+v, want sp 100, sp 0, temp 855 (raw), free 1e30 only", ws)
	}
	if n := r.s.WritesFailed(); n != 0 {
		t.Errorf("%d writes failed; refusals at once are the uplink's to count", n)
	}
}

// After a write the scanner reads the device back at once, off its poll
// schedule, so the new value is stored (and published) without waiting a
// poll; the schedule keeps its alignment. Each write leaves one audit line.
func TestWriteReadBack(t *testing.T) {
	const poll = time.Second
	r := newRigPoll(t, false, "1s", `{name: sp, type: int32, writable: true}, {name: temp, type: int16, scale: 0.1, writable: true}, {name: other, type: int32}`)
	r.plc.Set("sp", drivers.IntValue(drivers.Int32, 5), time.Now())
	r.start()
	if on := r.next(); on.Kind != record.Online {
		t.Fatalf("first record %+v", on)
	}
	waitFor(t, r.s.Online)
	// Mid-interval: 400 ms after a poll boundary.
	now := time.Now()
	time.Sleep(now.Truncate(poll).Add(poll + 400*time.Millisecond).Sub(now))
	const topic = "spBv1.0/plant/DCMD/edge1/dev"
	sent := time.Now()
	if err := r.s.Write(context.Background(), 0, drivers.IntValue(drivers.Int64, 42), topic); err != nil {
		t.Fatal(err)
	}
	rec := r.next()
	got := time.Now()
	if rec.Kind != record.Data || len(rec.Samples) != 1 || r.name(rec.Samples[0]) != "sp" || rec.Samples[0].Value.Int() != 42 {
		t.Fatalf("record %+v, want sp = 42", rec)
	}
	if next := sent.Truncate(poll).Add(poll); !got.Before(next) {
		t.Errorf("the written value was stored at %v, after the next poll at %v", got.Format(time.StampMilli), next.Format(time.StampMilli))
	}
	if lines := r.logs.find(`msg="write applied"`, "topic="+topic, "tag=sp", "old=5", "new=42"); len(lines) != 1 {
		t.Errorf("audit lines %q, want one; log:\n%s", lines, strings.Join(r.logs.find(""), "\n"))
	}

	// The poll schedule is where it was: the next change is read on a
	// boundary, not a poll after the read-back.
	r.plc.Set("other", drivers.IntValue(drivers.Int32, 7), time.Now())
	rec = r.next()
	if rec.Kind != record.Data || r.name(rec.Samples[0]) != "other" {
		t.Fatalf("record %+v, want other = 7", rec)
	}
	if off := time.Duration(rec.Time%poll.Milliseconds()) * time.Millisecond; off > 200*time.Millisecond {
		t.Errorf("the poll after a read-back scanned %v after a boundary; the schedule lost its alignment", off)
	}

	// A scaled tag logs what the PLC holds after rounding, and what was asked.
	if err := r.s.Write(context.Background(), 1, drivers.FloatValue(drivers.Float64, 21.53), topic); err != nil {
		t.Fatal(err)
	}
	if rec := r.next(); r.name(rec.Samples[0]) != "temp" || rec.Samples[0].Value.Float() != 21.5 {
		t.Fatalf("record %+v, want temp = 21.5", rec)
	}
	if lines := r.logs.find(`msg="write applied"`, "tag=temp", "old=0", "new=21.5", "requested=21.53"); len(lines) != 1 {
		t.Errorf("audit lines %q, want one", lines)
	}
}

// A failed write is logged with the tag, the value and the reason, and
// counted; nothing is read back for it.
func TestWriteFailed(t *testing.T) {
	r := newRigPoll(t, false, "1h", `{name: sp, type: int32, writable: true}`)
	r.start()
	r.next()
	waitFor(t, r.s.Online)
	// The link drops; with a poll an hour away, only the write sees it.
	r.plc.SetDown(true)
	if err := r.s.Write(context.Background(), 0, drivers.IntValue(drivers.Int64, 3), "spBv1.0/plant/DCMD/edge1/dev"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return r.s.WritesFailed() == 1 })
	if lines := r.logs.find("level=ERROR", `msg="write failed"`, "device=dev", "tag=sp", "value=3", "link down"); len(lines) != 1 {
		t.Errorf("error lines %q, want one", lines)
	}
	r.none(100 * time.Millisecond)
}

// A burst of queued writes is applied in order, all before the one
// read-back.
func TestWriteBurst(t *testing.T) {
	r := newRig(t, false, `{name: sp, type: int32, writable: true}`)
	ctx := context.Background()
	r.s.heart = r.s.mon.Add("burst")
	if err := r.s.drv.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		r.s.writes <- writeReq{ctx: ctx, tag: 0, value: drivers.IntValue(drivers.Int32, int64(i+1)), topic: "t"}
	}
	if !r.s.writeBurst(ctx, <-r.s.writes) {
		t.Fatal("no write applied")
	}
	if len(r.s.writes) != 0 {
		t.Errorf("%d writes left queued", len(r.s.writes))
	}
	if ws := r.plc.Writes(); len(ws) != 5 || ws[4].Value.Int() != 5 {
		t.Errorf("the PLC got %+v", ws)
	}
}
