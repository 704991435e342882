package scan

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/agent/health"
	"github.com/edgeagent/edgeagent/agent/record"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/internal/backoff"
)

// Scanner runs one device. One goroutine (Run) owns the driver, so drivers
// need not be safe for concurrent use (a push driver's Subscribe runs on a
// goroutine of its own).
type Scanner struct {
	id      string
	poll    time.Duration
	timeout time.Duration
	drv     drivers.Driver
	byName  []int32 // tag indexes sorted by name (names never change)
	log     *slog.Logger
	store   *Store
	mon     *health.Monitor
	now     func() time.Time

	// lay is the device's current layout, for other goroutines; Run
	// replaces it (never changes it) after a Connect that taught the
	// driver other types.
	lay atomic.Pointer[Layout]

	writes  chan writeReq
	retired atomic.Bool

	// Owned by Run: the current layout's parts.
	tags     []drivers.Tag
	types    []drivers.Type // published type per tag: Float64 when scaled
	schema   uint64         // id of the schema the records refer to (0: not registered yet)
	heart    *health.Heart
	enc      record.Encoder
	recBuf   []byte           // the record being stored; the buffer copies it
	samples  []drivers.Sample // the last full read
	changed  []int32          // tags whose sample differs from cur
	pushed   []record.Point   // changes of one pushed batch
	late     []record.Point   // its samples older than the stored value
	inBatch  []int32          // per tag: 1 + its latest point in pushed, 0 if none (zero between batches)
	overruns int
	badType  bool // a pushed sample had the wrong type (logged once)

	writesFailed atomic.Uint64

	// cur is the value last stored per tag: what report by exception
	// compares with and what births carry. Only Run writes it (under mu,
	// once the buffer took the record), so Run reads it without the lock;
	// the view reads it under mu. A scan whose record the buffer refused
	// leaves cur alone, and the next scan reports those changes again.
	mu     sync.Mutex
	cur    []record.Point
	online bool
}

// Layout is what a device's records and births are made of at one time:
// its tags, the type each is published as, and the id of the schema that
// records them. Tag names and their order never change for a scanner;
// types may, when a driver learns them from the PLC (an OPC UA node whose
// type the configuration left out, and which a server restart changed).
// A Layout is never modified.
type Layout struct {
	Tags   []drivers.Tag
	Types  []drivers.Type
	Schema uint64 // 0 while a type is unknown: nothing is stored with it
}

type writeReq struct {
	ctx   context.Context // of the MQTT session the command came on
	tag   int
	value drivers.Value // engineering units, typed as the tag's published type
	topic string        // the command's, for the audit line
}

// writeQueue bounds the writes waiting for one device.
const writeQueue = 64

// New prepares a scanner for a configured device. It does no I/O.
func New(dev config.Device, store *Store, mon *health.Monitor, log *slog.Logger) *Scanner {
	s := &Scanner{
		id: dev.ID, poll: dev.Poll, timeout: dev.Timeout, drv: dev.Instance,
		log: log.With("device", dev.ID, "driver", dev.Driver), store: store, mon: mon, now: time.Now,
		writes: make(chan writeReq, writeQueue),
	}
	if l, ok := dev.Instance.(drivers.Logging); ok {
		l.SetLogger(s.log)
	}
	tags := dev.Instance.Tags()
	s.byName = make([]int32, len(tags))
	for i := range tags {
		s.byName[i] = int32(i)
	}
	slices.SortFunc(s.byName, func(a, b int32) int { return strings.Compare(tags[a].Name, tags[b].Name) })
	s.setLayout(&Layout{Tags: tags, Types: s.seedTypes(tags)})
	s.samples = make([]drivers.Sample, 0, len(tags))
	s.changed = make([]int32, 0, len(tags))
	s.cur = make([]record.Point, len(tags))
	return s
}

// seedTypes returns the published type of every tag. A tag whose type the
// driver learns only from the PLC takes the type it had when the device
// was last registered, so history stored before a restart replays, with
// its births, before the PLC answers again.
func (s *Scanner) seedTypes(tags []drivers.Tag) []drivers.Type {
	types := make([]drivers.Type, len(tags))
	var last *record.Schema
	looked := false
	for i := range tags {
		types[i] = EngType(&tags[i])
		if types[i] != drivers.TypeInvalid {
			continue
		}
		if !looked {
			last, looked = s.store.LastSchema(s.id), true
		}
		if last != nil && i < len(last.Names) && last.Names[i] == tags[i].Name {
			types[i] = last.Types[i]
		}
	}
	return types
}

// setLayout makes l the current layout, in Run's fields and for readers.
func (s *Scanner) setLayout(l *Layout) {
	s.tags, s.types, s.schema = l.Tags, l.Types, l.Schema
	s.lay.Store(l)
}

// Layout is the device's current layout.
func (s *Scanner) Layout() *Layout { return s.lay.Load() }

// Schema is the current layout's schema id and published types.
func (s *Scanner) Schema() (uint64, []drivers.Type) {
	l := s.lay.Load()
	return l.Schema, l.Types
}

// ID is the device id.
func (s *Scanner) ID() string { return s.id }

// Tags are the device's tags in configuration order; do not modify them.
// Their names and order never change; their Type may (see Layout).
func (s *Scanner) Tags() []drivers.Tag { return s.lay.Load().Tags }

// TagIndex finds a tag by name.
func (s *Scanner) TagIndex(name []byte) (int, bool) {
	tags := s.Tags()
	k := sort.Search(len(s.byName), func(k int) bool { return tags[s.byName[k]].Name >= string(name) })
	if k < len(s.byName) && tags[s.byName[k]].Name == string(name) {
		return int(s.byName[k]), true
	}
	return 0, false
}

// TagIndexHint finds a stored sample's tag: the index it was written with
// if that tag still has its name, else by name.
func (s *Scanner) TagIndexHint(name []byte, hint uint64) (int, bool) {
	if tags := s.Tags(); hint < uint64(len(tags)) && tags[hint].Name == string(name) {
		return int(hint), true
	}
	return s.TagIndex(name)
}

// Snapshot copies the value last stored per tag into dst; ok is false while
// the device is offline.
func (s *Scanner) Snapshot(dst []record.Point) (pts []record.Point, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(dst[:0], s.cur...), s.online
}

// Online reports whether the PLC answers.
func (s *Scanner) Online() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.online
}

// WritesFailed counts writes the PLC did not accept.
func (s *Scanner) WritesFailed() uint64 { return s.writesFailed.Load() }

// Write queues a write of v, in engineering units, to the scanner,
// without blocking. It refuses at once a tag that is not writable and a
// value that does not fit the tag (type, the tag's min and max, the raw
// type's range): such a write never reaches the PLC. ctx is the session
// the command arrived on: once it has ended the write is dropped instead
// of applied. topic is the command's, for the audit line.
func (s *Scanner) Write(ctx context.Context, tag int, v drivers.Value, topic string) error {
	tags := s.Tags()
	if tag < 0 || tag >= len(tags) {
		return fmt.Errorf("no tag %d", tag)
	}
	t := &tags[tag]
	if _, ok := s.drv.(drivers.Writer); !ok || !t.Writable {
		return drivers.ErrNotWritable
	}
	if _, err := ToRaw(t, v); err != nil {
		return err
	}
	if !s.Online() {
		return ErrOffline
	}
	select {
	case s.writes <- writeReq{ctx: ctx, tag: tag, value: v, topic: topic}:
		return nil
	default:
		return ErrWriteQueueFull
	}
}

// Retire marks the scanner as leaving the configuration: when it stops it
// stores an Offline event, so the host gets a DDEATH.
func (s *Scanner) Retire() { s.retired.Store(true) }

// Run connects, reads and stores events until ctx ends, reconnecting with
// backoff. It returns nil when ctx ends.
func (s *Scanner) Run(ctx context.Context) error {
	s.heart = s.mon.Add("scanner " + s.id)
	defer s.mon.Remove(s.heart)
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	for ctx.Err() == nil {
		err := s.session(ctx, &bo)
		if ctx.Err() != nil {
			break
		}
		wait := bo.Next()
		s.log.Warn("plc unreachable", "err", err, "retry_in", wait.Round(time.Millisecond))
		s.idle(ctx, wait)
	}
	if s.retired.Load() && s.Online() {
		if err := s.storeEvent(record.Offline, s.now().UnixMilli(), nil); err != nil {
			s.log.Error("storing offline event failed", "err", err)
		}
	}
	s.refuseWrites(errors.New("the device was removed or reconfigured"))
	return nil
}

// relayout follows the driver's tags after a Connect: a layout with the
// types the driver now reports, registered in the buffer before anything
// is stored with it. Types that changed make a new schema, and so new
// births (the uplink re-births a device whose Online record has a schema
// other than its birth's).
func (s *Scanner) relayout() error {
	tags := s.drv.Tags()
	if len(tags) != len(s.tags) {
		return fmt.Errorf("the driver reports %d tags, the configuration has %d", len(tags), len(s.tags))
	}
	types, retyped, raw := s.types, false, false
	for i := range tags {
		t := EngType(&tags[i])
		if t == drivers.TypeInvalid {
			return fmt.Errorf("tag %q: the driver did not learn its type; give it a type:", tags[i].Name)
		}
		raw = raw || tags[i].Type != s.tags[i].Type
		if t != types[i] {
			if !retyped {
				types = slices.Clone(s.types)
			}
			types[i], retyped = t, true
		}
	}
	switch {
	case s.schema != 0 && !retyped && !raw:
		return nil
	case s.schema != 0 && !retyped:
		// A scaled tag's raw type changed: what writes convert to, not
		// what is published.
		s.setLayout(&Layout{Tags: tags, Types: types, Schema: s.schema})
		return nil
	}
	sch := &record.Schema{Device: s.id, Names: make([]string, len(tags)), Types: types}
	for i := range tags {
		sch.Names[i] = tags[i].Name
	}
	id, err := s.store.Register(sch)
	if err != nil {
		return fmt.Errorf("storing the device's schema in the buffer: %w", err)
	}
	if s.schema != 0 && id != s.schema {
		s.log.Warn("tag types changed on the PLC; the device is re-born with them", "schema", fmt.Sprintf("%016x", id))
	}
	s.setLayout(&Layout{Tags: tags, Types: types, Schema: id})
	return nil
}

// idle waits out a backoff, beating and refusing writes meanwhile.
func (s *Scanner) idle(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(health.BeatEvery)
	defer tick.Stop()
	for {
		s.heart.Beat()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case w := <-s.writes:
			s.refuse(w, ErrOffline)
		case <-tick.C:
		}
	}
}

func (s *Scanner) refuseWrites(why error) {
	for {
		select {
		case w := <-s.writes:
			s.refuse(w, why)
		default:
			return
		}
	}
}

func (s *Scanner) refuse(w writeReq, why error) {
	s.writesFailed.Add(1)
	s.log.Warn("write refused", "topic", w.topic, "tag", s.tags[w.tag].Name, "value", w.value.String(), "err", why)
}

// session connects, stores the Online event, reads until an error, and
// stores the Offline event.
func (s *Scanner) session(ctx context.Context, bo *backoff.Backoff) error {
	defer s.closeDriver()
	s.heart.Busy(s.timeout)
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	err := s.drv.Connect(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	if err := s.relayout(); err != nil {
		return err
	}
	if err := s.read(ctx); err != nil {
		return err
	}
	if err := s.storeEvent(record.Online, s.now().UnixMilli(), nil); err != nil {
		return fmt.Errorf("storing online event: %w", err)
	}
	s.log.Info("plc online", "tags", len(s.tags))
	bo.Reset()
	if sub, ok := s.drv.(drivers.Subscriber); ok {
		err = s.push(ctx, sub)
	} else {
		err = s.pollLoop(ctx)
	}
	if ctx.Err() != nil {
		// Stopping is not a device failure: the NDEATH covers it (a
		// retired scanner stores its Offline in Run).
		return nil
	}
	if perr := s.storeEvent(record.Offline, s.now().UnixMilli(), nil); perr != nil {
		s.log.Error("storing offline event failed", "err", perr)
	}
	s.refuseWrites(ErrOffline)
	return err
}

func (s *Scanner) closeDriver() {
	s.heart.Busy(s.timeout)
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.drv.Close(ctx); err != nil {
		s.log.Debug("closing driver", "err", err)
	}
}

func (s *Scanner) pollLoop(ctx context.Context) error {
	// Scans start on multiples of the poll interval, so devices with the
	// same interval scan together and the buffer commits their records in
	// one transaction: fewer fsyncs and less flash wear.
	next := s.now().Truncate(s.poll).Add(s.poll)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	tick := time.NewTicker(health.BeatEvery)
	defer tick.Stop()
	for {
		s.heart.Beat()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case w := <-s.writes:
			if s.writeBurst(ctx, w) {
				// Read back now, off the schedule (which keeps its
				// alignment): the host sees what the PLC holds after the
				// write at once, not a poll later.
				if err := s.scan(ctx); err != nil {
					return err
				}
			}
			continue
		case <-tick.C:
			continue
		case <-timer.C:
		}
		if err := s.scan(ctx); err != nil {
			return err
		}
		next = next.Add(s.poll)
		if now := s.now(); !next.After(now) {
			// Overran: skip to the next boundary instead of piling up.
			missed := now.Sub(next)/s.poll + 1
			next = next.Add(missed * s.poll)
			s.overruns++
			s.log.Warn("scan overran its poll interval, skipping ticks", "skipped", int(missed), "poll", s.poll, "overruns", s.overruns)
		}
		timer.Reset(time.Until(next))
	}
}

// scan reads every tag once and stores what changed.
func (s *Scanner) scan(ctx context.Context) error {
	if err := s.read(ctx); err != nil {
		return err
	}
	s.changed = s.changed[:0]
	for i := range s.samples {
		p := s.point(i)
		if s.differs(&s.cur[i], &p) {
			s.changed = append(s.changed, int32(i))
		}
	}
	if len(s.changed) == 0 {
		return nil
	}
	if err := s.storeEvent(record.Data, s.now().UnixMilli(), s.changed); err != nil {
		s.log.Error("storing scan failed; samples dropped", "err", err, "samples", len(s.changed))
	}
	return nil
}

func (s *Scanner) read(ctx context.Context) error {
	bound := s.timeout * time.Duration(max(1, len(s.tags)/100+1))
	s.heart.Busy(bound)
	rctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var err error
	s.samples, err = s.drv.Read(rctx, s.samples[:0])
	if err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	if len(s.samples) != len(s.tags) {
		return fmt.Errorf("driver returned %d samples for %d tags", len(s.samples), len(s.tags))
	}
	return nil
}

// push stores the changes a Subscriber delivers until the subscription
// ends.
func (s *Scanner) push(ctx context.Context, sub drivers.Subscriber) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []drivers.Sample, 16)
	done := make(chan error, 1)
	go func() { done <- sub.Subscribe(sctx, batches) }()
	tick := time.NewTicker(health.BeatEvery)
	defer tick.Stop()
	rc, _ := sub.(drivers.Recycler)
	for {
		s.heart.Beat()
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return ctx.Err()
		case err := <-done:
			for len(batches) > 0 {
				s.pushedBatch(<-batches)
			}
			if err == nil {
				err = errors.New("the subscription ended")
			}
			return fmt.Errorf("subscription: %w", err)
		case b := <-batches:
			s.pushedBatch(b)
			if rc != nil {
				rc.Recycle(b) // pushedBatch keeps nothing of it
			}
		case w := <-s.writes:
			s.write(ctx, w)
		case <-tick.C:
		}
	}
}

// pushedBatch stores the samples of one pushed batch that differ from what
// was stored before them. A sample older than the value already stored
// for its tag (a change the PLC held while the link was down and
// delivers after the reconnect, read later than the birth's value) is
// stored as history: published as such, never as the tag's current value.
// Only samples the driver marks Late are judged by time: a PLC whose clock
// steps back must not turn its live values into history.
func (s *Scanner) pushedBatch(batch []drivers.Sample) {
	s.pushed, s.late = s.pushed[:0], s.late[:0]
	if len(s.inBatch) != len(s.tags) {
		// A slice indexed by tag rather than a map: a batch of 10,000
		// changes costs 10,000 map writes and lookups otherwise.
		s.inBatch = make([]int32, len(s.tags))
	}
	for k := range batch {
		smp := &batch[k]
		i := smp.Tag
		if i < 0 || int(i) >= len(s.tags) {
			continue
		}
		if smp.Quality != drivers.QualityBad && smp.Value.Type() != s.tags[i].Type {
			// Never publish a value as another type: the driver re-births
			// the device when a node's type really changed.
			if !s.badType {
				s.badType = true
				s.log.Warn("pushed value has the wrong type; dropped", "tag", s.tags[i].Name, "type", smp.Value.Type(), "want", s.tags[i].Type)
			}
			continue
		}
		p := s.pointOf(smp)
		prev := &s.cur[i]
		if at := s.inBatch[i]; at > 0 {
			prev = &s.pushed[at-1]
		}
		if smp.Late && p.Time < prev.Time {
			s.late = append(s.late, p)
			continue
		}
		if !s.differs(prev, &p) {
			continue
		}
		s.pushed = append(s.pushed, p)
		s.inBatch[i] = int32(len(s.pushed))
	}
	for k := range s.pushed {
		s.inBatch[s.pushed[k].Tag] = 0
	}
	now := s.now().UnixMilli()
	if len(s.late) > 0 {
		slices.SortStableFunc(s.late, func(a, b record.Point) int { return cmp.Compare(a.Time, b.Time) })
		if err := s.storePoints(record.History, now, s.late); err != nil {
			s.log.Error("storing late changes failed; samples dropped", "err", err, "samples", len(s.late))
		}
	}
	if len(s.pushed) == 0 {
		return
	}
	if err := s.storePoints(record.Data, now, s.pushed); err != nil {
		s.log.Error("storing pushed changes failed; samples dropped", "err", err, "samples", len(s.pushed))
	}
}

// point converts sample i of the last read to engineering units.
func (s *Scanner) point(i int) record.Point { return s.pointOf(&s.samples[i]) }

func (s *Scanner) pointOf(smp *drivers.Sample) record.Point {
	p := record.Point{Tag: smp.Tag, Value: smp.Value, Time: smp.Time, Quality: smp.Quality}
	if t := &s.tags[smp.Tag]; t.Scaled() {
		p.Value = drivers.FloatValue(drivers.Float64, scale(t, smp.Value.Float()))
	}
	return p
}

// differs reports whether p must be published against old, the value
// before it.
func (s *Scanner) differs(old, p *record.Point) bool {
	if old.Quality != p.Quality {
		return true
	}
	if old.Value.Equal(p.Value) {
		return false
	}
	if db := s.tags[p.Tag].Deadband(); db > 0 && s.types[p.Tag].IsNumeric() && old.Value.Type() == p.Value.Type() {
		return math.Abs(p.Value.Float()-old.Value.Float()) >= db
	}
	return true
}

// storeEvent stores an event of the last read: every tag for Online
// (tags is nil), the listed tags for Data, none for Offline. Once the
// buffer has it, the view changes to match.
func (s *Scanner) storeEvent(kind record.Kind, at int64, tags []int32) error {
	n := len(tags)
	if kind == record.Online {
		n = len(s.tags)
	} else if kind == record.Offline {
		n = 0
	}
	rec := s.enc.Begin(s.recBuf[:0], kind, s.schema, s.types, at, n)
	switch kind {
	case record.Online:
		for i := range s.tags {
			p := s.point(i)
			rec = s.enc.Add(rec, &p)
		}
	case record.Data:
		for _, i := range tags {
			p := s.point(int(i))
			rec = s.enc.Add(rec, &p)
		}
	}
	s.recBuf = rec
	return s.store.put(rec, n, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch kind {
		case record.Online:
			s.online = true
			for i := range s.cur {
				s.cur[i] = s.point(i)
			}
		case record.Offline:
			s.online = false
		case record.Data:
			for _, i := range tags {
				s.cur[i] = s.point(int(i))
			}
		}
	})
}

// storePoints stores a Data or History event of pushed points, oldest
// first. History leaves the current values alone.
func (s *Scanner) storePoints(kind record.Kind, at int64, pts []record.Point) error {
	rec := s.enc.Begin(s.recBuf[:0], kind, s.schema, s.types, at, len(pts))
	for k := range pts {
		rec = s.enc.Add(rec, &pts[k])
	}
	s.recBuf = rec
	return s.store.put(rec, len(pts), func() {
		if kind == record.History {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for k := range pts {
			s.cur[pts[k].Tag] = pts[k]
		}
	})
}

// writeBurst applies w and the writes queued behind it, and reports
// whether the PLC accepted any: a burst of writes is read back once.
func (s *Scanner) writeBurst(ctx context.Context, w writeReq) bool {
	ok := s.write(ctx, w)
	// Run is the only receiver: the writes counted are there.
	for n := len(s.writes); n > 0; n-- {
		ok = s.write(ctx, <-s.writes) || ok
	}
	return ok
}

// write applies one queued write and reports whether the PLC accepted it.
// An accepted write leaves one audit line at Info: the command's topic,
// the tag, its value as last stored (old) and the value written (new),
// both in engineering units. A failed one leaves an Error line and counts
// in WritesFailed.
func (s *Scanner) write(ctx context.Context, w writeReq) bool {
	t := &s.tags[w.tag]
	if w.ctx.Err() != nil {
		s.log.Warn("write dropped: the broker session it came on has ended", "topic", w.topic, "tag", t.Name, "value", w.value.String())
		return false
	}
	wr, ok := s.drv.(drivers.Writer)
	if !ok || !t.Writable {
		s.refuse(w, drivers.ErrNotWritable)
		return false
	}
	raw, err := ToRaw(t, w.value)
	if err != nil {
		s.refuse(w, err)
		return false
	}
	s.heart.Busy(s.timeout)
	wctx, cancel := context.WithTimeout(ctx, s.timeout)
	err = wr.Write(wctx, w.tag, raw)
	cancel()
	if err != nil {
		s.writesFailed.Add(1)
		s.log.Error("write failed", "topic", w.topic, "tag", t.Name, "value", w.value.String(), "err", err)
		return false
	}
	if t.Scaled() && !t.Type.IsFloat() {
		// Rounded to a whole raw value: log what the PLC holds, and what
		// was asked if that differs.
		if got := scale(t, raw.Float()); got != w.value.Float() {
			s.log.Info("write applied", "topic", w.topic, "tag", t.Name, "old", s.stored(w.tag),
				"new", drivers.FloatValue(drivers.Float64, got).String(), "requested", w.value.String())
			return true
		}
	}
	s.log.Info("write applied", "topic", w.topic, "tag", t.Name, "old", s.stored(w.tag), "new", w.value.String())
	return true
}

// stored is a tag's value as last stored, for the audit line: "unknown"
// while the PLC has not given a good one.
func (s *Scanner) stored(tag int) string {
	p := &s.cur[tag]
	if p.Quality == drivers.QualityBad || p.Value.Type() == drivers.TypeInvalid {
		return "unknown"
	}
	return p.Value.String()
}
