package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/internal/backoff"
)

// device runs one PLC: connect with backoff, poll, scale, report by
// exception, and apply writes. One goroutine (run) owns the driver, so
// drivers need not be safe for concurrent use.
type device struct {
	idx    int
	cfg    DeviceConfig
	drv    drivers.Driver
	tags   []drivers.Tag
	types  []drivers.Type // engineering type per tag: Float64 when scaled
	byName []int32        // tag indexes sorted by name
	log    *slog.Logger
	out    sink
	now    func() time.Time

	writes chan writeReq

	// Scan state, owned by run.
	recBuf   []byte // the record being stored; the buffer copies it
	samples  []drivers.Sample
	changed  []int32 // tags whose sample differs from cur
	overruns int

	// cur is the value last stored per tag: what report by exception
	// compares with and what births carry. Only run writes it (under mu,
	// once the buffer took the record), so run reads it without the lock;
	// the uplink reads it under mu. A scan whose record the buffer refused
	// leaves cur alone, and the next scan reports those changes again.
	mu     sync.Mutex
	cur    []Point
	online bool
}

// sink receives every device event in order. It is the seam where the
// durable buffer sits: put returns once the event is stored as the
// buffer mode promises. The event carries the current samples of the
// listed tags: every tag for recOnline (tags is nil), none for recOffline.
// On success the sink calls d.apply in the same order.
type sink interface {
	put(d *device, kind recordKind, at int64, tags []int32) error
}

type writeReq struct {
	tag   int
	value drivers.Value // engineering units, typed as types[tag]
}

var errWriteQueueFull = errors.New("write queue full")

func newDevice(idx int, cfg DeviceConfig, log *slog.Logger, out sink) (*device, error) {
	f, err := drivers.Lookup(cfg.Driver)
	if err != nil {
		return nil, err
	}
	log = log.With("device", cfg.ID, "driver", cfg.Driver)
	dc := cfg.DriverConfig()
	dc.Logger = log
	drv, err := f(dc)
	if err != nil {
		return nil, fmt.Errorf("device %q: %w", cfg.ID, err)
	}
	// The driver holds what it decoded: drop the YAML syntax trees.
	cfg.decode, cfg.decodeTags = nil, nil
	d := &device{idx: idx, cfg: cfg, drv: drv, log: log, out: out, now: time.Now,
		writes: make(chan writeReq, 16)}
	d.setTags(drv.Tags())
	return d, nil
}

// setTags sizes the per-tag state. Per tag the device holds one sample,
// one stored point and a few bytes of index: with 10,000 tags this state
// is most of the agent's heap.
func (d *device) setTags(tags []drivers.Tag) {
	d.tags = tags
	d.types = make([]drivers.Type, len(tags))
	d.byName = make([]int32, len(tags))
	for i := range tags {
		d.types[i] = engType(&tags[i])
		d.byName[i] = int32(i)
	}
	slices.SortFunc(d.byName, func(a, b int32) int { return strings.Compare(tags[a].Name, tags[b].Name) })
	d.samples = make([]drivers.Sample, 0, len(tags))
	d.changed = make([]int32, 0, len(tags))
	d.cur = make([]Point, len(tags))
}

// tagByName finds a tag by its name.
func (d *device) tagByName(name []byte) (int, bool) {
	k := sort.Search(len(d.byName), func(k int) bool { return d.tags[d.byName[k]].Name >= string(name) })
	if k < len(d.byName) && d.tags[d.byName[k]].Name == string(name) {
		return int(d.byName[k]), true
	}
	return 0, false
}

// engType is the type a tag is published as: scaled tags become Float64.
func engType(t *drivers.Tag) drivers.Type {
	if t.Scaled() {
		return drivers.Float64
	}
	return t.Type
}

// snapshot copies the current values for a birth; ok is false while the
// device is offline.
func (d *device) snapshot(dst []Point) ([]Point, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append(dst[:0], d.cur...), d.online
}

// tagIndex finds a stored point's tag: the index it was written with if
// that tag still has its name, else by name; ok is false for a tag that
// no longer exists.
func (d *device) tagIndex(p *recPoint) (int, bool) {
	if p.hint < uint64(len(d.tags)) && d.tags[p.hint].Name == string(p.name) {
		return int(p.hint), true
	}
	return d.tagByName(p.name)
}

// isOnline reports whether the device is online, without copying.
func (d *device) isOnline() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.online
}

// eventSamples is the number of samples an event as put describes it
// carries.
func (d *device) eventSamples(kind recordKind, tags []int32) int {
	if kind == recOnline {
		return len(d.tags)
	}
	return len(tags)
}

// appendRecord encodes an event of this device as put describes it.
func (d *device) appendRecord(dst []byte, kind recordKind, at int64, tags []int32) []byte {
	dst = appendRecordHeader(dst, kind, d.cfg.ID, at, d.eventSamples(kind, tags))
	if kind == recOnline {
		for i := range d.tags {
			p := d.point(i)
			dst = appendRecordPoint(dst, d.tags[i].Name, at, &p)
		}
		return dst
	}
	for _, i := range tags {
		p := d.point(int(i))
		dst = appendRecordPoint(dst, d.tags[i].Name, at, &p)
	}
	return dst
}

// apply records a stored event in cur; the sink calls it once the event
// is stored, so births and stored events agree.
func (d *device) apply(kind recordKind, tags []int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch kind {
	case recOnline:
		d.online = true
		for i := range d.cur {
			d.cur[i] = d.point(i)
		}
	case recOffline:
		d.online = false
	case recData:
		for _, i := range tags {
			d.cur[i] = d.point(int(i))
		}
	}
}

// run polls until ctx ends.
func (d *device) run(ctx context.Context) error {
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	for ctx.Err() == nil {
		err := d.session(ctx, &bo)
		if ctx.Err() != nil {
			break
		}
		wait := bo.Next()
		d.log.Warn("plc unreachable", "err", err, "retry_in", wait.Round(time.Millisecond))
		backoff.Sleep(ctx, wait)
	}
	d.drv.Close()
	return nil
}

// session connects, reports the device online, polls until an error, and
// reports it offline again.
func (d *device) session(ctx context.Context, bo *backoff.Backoff) error {
	defer d.drv.Close()
	cctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	err := d.drv.Connect(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	if err := d.read(ctx); err != nil {
		return err
	}
	if err := d.out.put(d, recOnline, d.now().UnixMilli(), nil); err != nil {
		return fmt.Errorf("storing online event: %w", err)
	}
	d.log.Info("plc online", "tags", len(d.tags))
	bo.Reset()
	err = d.poll(ctx)
	if ctx.Err() != nil {
		// Stopping is not a device failure: the NDEATH covers it.
		return nil
	}
	if perr := d.out.put(d, recOffline, d.now().UnixMilli(), nil); perr != nil {
		d.log.Error("storing offline event failed", "err", perr)
	}
	return err
}

func (d *device) poll(ctx context.Context) error {
	// Scans start on multiples of the poll interval, so devices with the
	// same interval scan together and the buffer commits their records in
	// one transaction: fewer fsyncs and less flash wear.
	next := d.now().Truncate(d.cfg.Poll).Add(d.cfg.Poll)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case w := <-d.writes:
			d.write(ctx, w)
			continue
		case <-timer.C:
		}
		if err := d.scan(ctx); err != nil {
			return err
		}
		next = next.Add(d.cfg.Poll)
		if now := d.now(); !next.After(now) {
			// Overran: skip to the next boundary instead of piling up.
			missed := now.Sub(next)/d.cfg.Poll + 1
			next = next.Add(missed * d.cfg.Poll)
			d.overruns++
			d.log.Warn("scan overran its poll interval, skipping ticks", "skipped", int(missed), "poll", d.cfg.Poll, "overruns", d.overruns)
		}
		timer.Reset(time.Until(next))
	}
}

// scan reads every tag once and stores what changed.
func (d *device) scan(ctx context.Context) error {
	if err := d.read(ctx); err != nil {
		return err
	}
	d.changed = d.changed[:0]
	for i := range d.samples {
		p := d.point(i)
		if d.differs(i, &p) {
			d.changed = append(d.changed, int32(i))
		}
	}
	if len(d.changed) == 0 {
		return nil
	}
	if err := d.out.put(d, recData, d.now().UnixMilli(), d.changed); err != nil {
		d.log.Error("storing scan failed; samples dropped", "err", err, "samples", len(d.changed))
	}
	return nil
}

func (d *device) read(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout*time.Duration(max(1, len(d.tags)/100+1)))
	defer cancel()
	var err error
	d.samples, err = d.drv.Read(rctx, d.samples[:0])
	if err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	if len(d.samples) != len(d.tags) {
		return fmt.Errorf("driver returned %d samples for %d tags", len(d.samples), len(d.tags))
	}
	return nil
}

// point converts sample i to engineering units.
func (d *device) point(i int) Point {
	s := &d.samples[i]
	p := Point{Tag: int32(i), Value: s.Value, Time: s.Time, Quality: s.Quality}
	if t := &d.tags[i]; t.Scaled() {
		p.Value = drivers.FloatValue(drivers.Float64, scale(t, s.Value.Float()))
	}
	return p
}

// scale applies scale and offset. A scale like 0.1 or 0.01 divides by its
// exact inverse instead, so 454 × 0.1 gives 45.4, not 45.400000000000006.
func scale(t *drivers.Tag, v float64) float64 {
	if t.Scale != nil {
		s := *t.Scale
		if inv := math.Round(1 / s); s != 0 && math.Abs(s) < 1 && inv != 0 && 1/inv == s {
			v /= inv
		} else {
			v *= s
		}
	}
	if t.Offset != nil {
		v += *t.Offset
	}
	return v
}

// differs reports whether p must be published against the last stored
// value.
func (d *device) differs(i int, p *Point) bool {
	old := &d.cur[i]
	if old.Quality != p.Quality {
		return true
	}
	if old.Value.Equal(p.Value) {
		return false
	}
	if db := d.tags[i].Deadband; db > 0 && d.types[i].IsNumeric() {
		return math.Abs(p.Value.Float()-old.Value.Float()) >= db
	}
	return true
}

// queueWrite hands a write to the scan goroutine without blocking the
// uplink.
func (d *device) queueWrite(tag int, v drivers.Value) error {
	select {
	case d.writes <- writeReq{tag: tag, value: v}:
		return nil
	default:
		return errWriteQueueFull
	}
}

func (d *device) write(ctx context.Context, w writeReq) {
	t := &d.tags[w.tag]
	wr, ok := d.drv.(drivers.Writer)
	if !ok || !t.Writable {
		d.log.Warn("write refused: tag is not writable", "tag", t.Name)
		return
	}
	raw, err := toRaw(t, w.value)
	if err != nil {
		d.log.Warn("write refused", "tag", t.Name, "value", w.value, "err", err)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	if err := wr.Write(wctx, w.tag, raw); err != nil {
		d.log.Error("write failed", "tag", t.Name, "value", raw, "err", err)
		return
	}
	d.log.Info("wrote tag", "tag", t.Name, "value", raw)
}

// toRaw converts an engineering value back to the tag's raw type,
// undoing scale and offset and checking the range.
func toRaw(t *drivers.Tag, v drivers.Value) (drivers.Value, error) {
	if !t.Scaled() && v.Type() == t.Type {
		return v, nil
	}
	switch {
	case t.Type == drivers.Bool:
		if v.Type() != drivers.Bool {
			return drivers.Value{}, fmt.Errorf("want a boolean, got %s", v.Type())
		}
		return v, nil
	case t.Type == drivers.String:
		if v.Type() != drivers.String {
			return drivers.Value{}, fmt.Errorf("want a string, got %s", v.Type())
		}
		return v, nil
	case !v.Type().IsNumeric():
		return drivers.Value{}, fmt.Errorf("want a number, got %s", v.Type())
	}
	f := v.Float()
	if t.Offset != nil {
		f -= *t.Offset
	}
	if t.Scale != nil {
		if *t.Scale == 0 {
			return drivers.Value{}, errors.New("scale is 0")
		}
		f /= *t.Scale
	}
	if t.Type.IsFloat() {
		return drivers.FloatValue(t.Type, f), nil
	}
	f = math.Round(f)
	lo, hi := intRange(t.Type)
	if math.IsNaN(f) || f < lo || f > hi {
		return drivers.Value{}, fmt.Errorf("%v is out of range for %s", v, t.Type)
	}
	if t.Type.IsSigned() {
		return drivers.IntValue(t.Type, int64(f)), nil
	}
	return drivers.UintValue(t.Type, uint64(f)), nil
}

func intRange(t drivers.Type) (float64, float64) {
	switch t {
	case drivers.Int8:
		return math.MinInt8, math.MaxInt8
	case drivers.Int16:
		return math.MinInt16, math.MaxInt16
	case drivers.Int32:
		return math.MinInt32, math.MaxInt32
	case drivers.Int64:
		return math.MinInt64, math.MaxInt64
	case drivers.Uint8:
		return 0, math.MaxUint8
	case drivers.Uint16:
		return 0, math.MaxUint16
	case drivers.Uint32:
		return 0, math.MaxUint32
	case drivers.Uint64:
		return 0, math.MaxUint64
	}
	return 0, 0
}
