// Package drivertest is an in-memory PLC and the driver that reads it, for
// tests of everything above the drivers: it proves the scanner's push path
// (the real push driver is OPC UA) and lets tests make a driver misbehave
// in ways no real simulator can be told to (a call that hangs past every
// timeout).
//
// Importing the package registers the driver "memory". A device names the
// PLC it reads, which the test made with NewPLC:
//
//	devices:
//	  - id: press
//	    driver: memory
//	    plc: press-sim      # NewPLC("press-sim")
//	    push: true          # deliver changes (drivers.Subscriber); false: polled
//	    tags:
//	      - {name: speed, type: int32, writable: true}
//
// A tag's value is what the test Set, with the source timestamp it gave;
// tags never set read as their type's zero. A tag without `type:` learns
// its type at every Connect from the value the PLC holds (as an OPC UA
// tag learns its node's DataType); Connect fails if the PLC holds none.
package drivertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeagent/edgeagent/drivers"
)

func init() {
	drivers.Register("memory", func(cfg drivers.Config) (drivers.Driver, error) {
		d, err := newDriver(cfg)
		if err != nil {
			return nil, err
		}
		if d.push {
			return &pusher{d}, nil
		}
		return d, nil
	})
}

var (
	plcsMu sync.Mutex
	plcs   = map[string]*PLC{}
)

// PLC is a simulated PLC: named tag values, a link that can go down, and a
// knob that makes calls hang.
type PLC struct {
	name string

	mu     sync.Mutex
	values map[string]drivers.Sample
	down   bool
	subs   map[*subscription]struct{}
	writes []Write

	hang     chan struct{} // non-nil while calls hang; closed to release them
	connects atomic.Int64
}

// Write is one write the PLC received.
type Write struct {
	Tag   string
	Value drivers.Value
}

type subscription struct {
	d    *Driver
	ch   chan drivers.Sample
	dead chan struct{}
	once sync.Once
}

// NewPLC makes a PLC devices can name; it is forgotten at Close.
func NewPLC(name string) *PLC {
	p := &PLC{name: name, values: map[string]drivers.Sample{}, subs: map[*subscription]struct{}{}}
	plcsMu.Lock()
	plcs[name] = p
	plcsMu.Unlock()
	return p
}

// Close forgets the PLC: drivers that name it cannot connect any more.
func (p *PLC) Close() {
	plcsMu.Lock()
	if plcs[p.name] == p {
		delete(plcs, p.name)
	}
	plcsMu.Unlock()
	p.SetDown(true)
}

// Set gives a tag a value read at t (Good quality), pushing it to
// subscribed drivers.
func (p *PLC) Set(tag string, v drivers.Value, t time.Time) {
	p.SetQuality(tag, v, t, drivers.QualityGood)
}

// SetQuality is Set with a quality.
func (p *PLC) SetQuality(tag string, v drivers.Value, t time.Time, q drivers.Quality) {
	p.mu.Lock()
	s := drivers.Sample{Value: v, Time: t.UnixMilli(), Quality: q}
	p.values[tag] = s
	subs := make([]*subscription, 0, len(p.subs))
	for sub := range p.subs {
		subs = append(subs, sub)
	}
	p.mu.Unlock()
	for _, sub := range subs {
		sub.deliver(tag, s)
	}
}

// Deliver pushes a sample the PLC held while the link was down (marked
// Late, as an OPC UA server's queued changes are after a reconnect)
// without making it the tag's current value.
func (p *PLC) Deliver(tag string, v drivers.Value, t time.Time) {
	p.mu.Lock()
	subs := make([]*subscription, 0, len(p.subs))
	for sub := range p.subs {
		subs = append(subs, sub)
	}
	p.mu.Unlock()
	for _, sub := range subs {
		sub.deliver(tag, drivers.Sample{Value: v, Time: t.UnixMilli(), Late: true})
	}
}

// Get returns a tag's value.
func (p *PLC) Get(tag string) drivers.Value {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.values[tag].Value
}

// SetDown cuts (true) or restores the link: while down, Connect fails
// and connected drivers fail their next call, subscriptions at once.
func (p *PLC) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	var subs []*subscription
	if down {
		for sub := range p.subs {
			subs = append(subs, sub)
		}
		clear(p.subs)
	}
	p.mu.Unlock()
	for _, sub := range subs {
		sub.kill()
	}
}

// SetHang(true) makes every call of a connected driver (Read, Write)
// block, ignoring its context, until SetHang(false): a driver bug that
// only the watchdog catches.
func (p *PLC) SetHang(h bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case h && p.hang == nil:
		p.hang = make(chan struct{})
	case !h && p.hang != nil:
		close(p.hang)
		p.hang = nil
	}
}

// Subscribers counts the subscriptions Deliver and Set push to.
func (p *PLC) Subscribers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.subs)
}

// Connects counts successful connects.
func (p *PLC) Connects() int64 { return p.connects.Load() }

// Writes lists the writes received, oldest first.
func (p *PLC) Writes() []Write {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Write(nil), p.writes...)
}

func (sub *subscription) deliver(tag string, s drivers.Sample) {
	i, ok := sub.d.index[tag]
	if !ok {
		return
	}
	s.Tag = int32(i)
	select {
	case sub.ch <- s:
	case <-sub.dead:
	}
}

func (sub *subscription) kill() { sub.once.Do(func() { close(sub.dead) }) }

// Driver reads a PLC by polling.
type Driver struct {
	id      string
	plc     string
	push    bool
	tags    []drivers.Tag // replaced, never changed, when Connect learns types
	learned []bool        // the tag's type comes from the PLC
	index   map[string]int

	mu   sync.Mutex
	conn *PLC
}

// pusher is a Driver that also pushes.
type pusher struct{ *Driver }

var (
	_ drivers.Writer     = (*Driver)(nil)
	_ drivers.Subscriber = (*pusher)(nil)
)

type device struct {
	PLC  string `yaml:"plc"`
	Push bool   `yaml:"push"`
}

type tag struct {
	drivers.TagConfig `yaml:",inline"`
}

func newDriver(cfg drivers.Config) (*Driver, error) {
	var dev device
	devErr := cfg.Decode(&dev)
	if devErr == nil && dev.PLC == "" {
		devErr = drivers.KeyErr("plc", errors.New("is required (the name given to drivertest.NewPLC)"))
	}
	d := &Driver{id: cfg.ID, plc: dev.PLC, push: dev.Push, index: map[string]int{}}
	var tb drivers.TagBuilder
	var t tag
	tagErr := cfg.Tags.Each(func(i int, decode func(any) error) error {
		t = tag{}
		if err := decode(&t); err != nil {
			return err
		}
		if err := drivers.CheckName(t.Name); err != nil {
			return drivers.KeyErr("name", err)
		}
		if _, dup := d.index[t.Name]; dup {
			return drivers.KeyErr("name", fmt.Errorf("%q is given twice", t.Name))
		}
		if err := t.CheckLimits(); err != nil {
			return err
		}
		d.index[t.Name] = len(d.tags)
		d.tags = append(d.tags, tb.Tag(&t.TagConfig))
		d.learned = append(d.learned, t.Type == drivers.TypeInvalid)
		return nil
	})
	if err := errors.Join(devErr, tagErr); err != nil {
		return nil, err
	}
	return d, nil
}

// Tags returns the tags, with the types the last Connect learned.
func (d *Driver) Tags() []drivers.Tag { return d.tags }

// Connect finds the PLC; it fails while the PLC is down or unknown.
func (d *Driver) Connect(ctx context.Context) error {
	plcsMu.Lock()
	p := plcs[d.plc]
	plcsMu.Unlock()
	if p == nil {
		return fmt.Errorf("connecting %q to PLC %q: no such PLC: %w", d.id, d.plc, drivers.ErrNotConnected)
	}
	p.mu.Lock()
	down := p.down
	tags := d.tags
	for i, learn := range d.learned {
		if !learn {
			continue
		}
		s, ok := p.values[tags[i].Name]
		if !ok {
			p.mu.Unlock()
			return fmt.Errorf("connecting %q: tag %q: the PLC holds no value to learn its type from", d.id, tags[i].Name)
		}
		if t := s.Value.Type(); t != tags[i].Type {
			if &tags[0] == &d.tags[0] {
				tags = slices.Clone(d.tags)
			}
			tags[i].Type = t
		}
	}
	p.mu.Unlock()
	if down {
		return fmt.Errorf("connecting %q to PLC %q: link down: %w", d.id, d.plc, drivers.ErrNotConnected)
	}
	d.tags = tags
	d.mu.Lock()
	d.conn = p
	d.mu.Unlock()
	p.connects.Add(1)
	return nil
}

func (d *Driver) plcUp() (*PLC, error) {
	d.mu.Lock()
	p := d.conn
	d.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("%q: %w", d.id, drivers.ErrNotConnected)
	}
	p.mu.Lock()
	hang := p.hang
	p.mu.Unlock()
	if hang != nil {
		<-hang // a driver bug: blocks whatever ctx says
	}
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		return nil, fmt.Errorf("%q: link down: %w", d.id, drivers.ErrNotConnected)
	}
	return p, nil
}

// Read reads every tag.
func (d *Driver) Read(ctx context.Context, dst []drivers.Sample) ([]drivers.Sample, error) {
	p, err := d.plcUp()
	if err != nil {
		return dst, err
	}
	now := time.Now().UnixMilli()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, t := range d.tags {
		s, ok := p.values[t.Name]
		if !ok {
			s = drivers.Sample{Value: drivers.ZeroValue(t.Type), Time: now}
		}
		s.Tag = int32(i)
		dst = append(dst, s)
	}
	return dst, nil
}

// Write sets a tag on the PLC (read at the time of the write).
func (d *Driver) Write(ctx context.Context, tag int, v drivers.Value) error {
	p, err := d.plcUp()
	if err != nil {
		return err
	}
	name := d.tags[tag].Name
	p.mu.Lock()
	p.writes = append(p.writes, Write{Tag: name, Value: v})
	p.mu.Unlock()
	p.Set(name, v, time.Now())
	return nil
}

// Close drops the link.
func (d *Driver) Close(context.Context) error {
	d.mu.Lock()
	d.conn = nil
	d.mu.Unlock()
	return nil
}

// Subscribe pushes every Set, one sample per batch, until ctx ends or the
// PLC goes down.
func (d *pusher) Subscribe(ctx context.Context, out chan<- []drivers.Sample) error {
	p, err := d.plcUp()
	if err != nil {
		return err
	}
	// Buffered: a Write delivers its value to the subscription before it
	// returns, and the scanner that called Write reads batches only after;
	// unbuffered, a burst of writes would wait on itself.
	sub := &subscription{d: d.Driver, ch: make(chan drivers.Sample, 1024), dead: make(chan struct{})}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		return fmt.Errorf("%q: link down: %w", d.id, drivers.ErrNotConnected)
	}
	p.subs[sub] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.subs, sub)
		p.mu.Unlock()
		sub.kill()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.dead:
			return fmt.Errorf("%q: subscription lost: %w", d.id, drivers.ErrNotConnected)
		case s := <-sub.ch:
			select {
			case out <- []drivers.Sample{s}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}
