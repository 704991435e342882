package modbus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/edgeagent/edgeagent/drivers"
)

func init() {
	drivers.Register("modbus", func(cfg drivers.Config) (drivers.Driver, error) {
		d, err := New(cfg)
		if err != nil {
			return nil, err // not d: a nil *Driver would make a non-nil Driver
		}
		return d, nil
	})
}

var (
	_ drivers.Driver = (*Driver)(nil)
	_ drivers.Writer = (*Driver)(nil)
)

// Driver polls one Modbus device. Its methods may be called from several
// goroutines; they take turns, so a Write waits for a running Read.
type Driver struct {
	id      string
	log     *slog.Logger
	set     settings
	timeout time.Duration
	tags    []drivers.Tag
	specs   []tagSpec
	reqs    []request

	mu     sync.Mutex
	client *mb.ModbusClient  // nil while not connected
	regs   []uint16          // decode buffer for one request
	strs   map[int]*strCache // by tag, string tags only
}

// request is a planned Request with each tag's offset in it.
type request struct {
	Request
	slots   []slot
	failing bool // last attempt got an exception; logs only on change
}

type slot struct {
	tag int32
	off int32 // registers or bits from Request.Start
}

// strCache keeps a string tag's last registers and value so an unchanged
// string costs no allocation.
type strCache struct {
	raw []uint16
	v   drivers.Value
}

// New builds a Driver from its configuration: it decodes, validates and
// plans the scan, and does no I/O.
func New(cfg drivers.Config) (*Driver, error) {
	if cfg.Decode == nil || cfg.Tags == nil {
		return nil, errors.New("modbus: Config.Decode and Config.Tags are required")
	}
	// Tags are checked even when the device keys are wrong, so that one
	// run reports every mistake.
	var dev device
	set, devErr := settings{lim: defaultLimits}, cfg.Decode(&dev)
	if devErr == nil {
		set, devErr = dev.validate()
	}
	tb := newTagBuilder(set.lim, cfg.Tags.Len())
	var t tag
	tagErr := cfg.Tags.Each(func(i int, decode func(any) error) error {
		t = tag{}
		if err := decode(&t); err != nil {
			return err
		}
		return tb.add(i, &t)
	})
	if err := errors.Join(devErr, tagErr); err != nil {
		return nil, err
	}
	if len(tb.tags) == 0 {
		return nil, drivers.KeyErr("tags", errors.New("no tags configured"))
	}
	tags, specs := tb.tags, tb.specs
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		id:      cfg.ID,
		log:     log,
		set:     set,
		timeout: cfg.Timeout,
		tags:    tags,
		specs:   specs,
		regs:    make([]uint16, set.lim.maxRegisters),
		strs:    map[int]*strCache{},
	}
	spans := make([]span, len(specs))
	for i, s := range specs {
		spans[i] = span{tag: i, table: s.table, start: s.addr, size: uint16(s.size())}
		if s.f.Type == drivers.String && !s.table.IsBits() {
			d.strs[i] = &strCache{raw: make([]uint16, s.f.Length)}
		}
	}
	for _, r := range plan(spans, set.lim) {
		rq := request{Request: r, slots: make([]slot, len(r.Tags))}
		for j, t := range r.Tags {
			rq.slots[j] = slot{tag: int32(t), off: int32(specs[t].addr) - int32(r.Start)}
		}
		d.reqs = append(d.reqs, rq)
	}
	return d, nil
}

// Tags returns the device's tags in configuration order; callers must not
// modify the slice (a gateway with large tag maps should not hold them
// SetLogger makes the driver log with l (the scanner's, scoped with the
// device): what the Modbus library reports at debug level.
func (d *Driver) SetLogger(l *slog.Logger) { d.log = l }

// twice).
func (d *Driver) Tags() []drivers.Tag { return d.tags }

// Plan returns the reads one scan makes, in the order it makes them.
func (d *Driver) Plan() []Request {
	out := make([]Request, len(d.reqs))
	for i, r := range d.reqs {
		out[i] = r.Request
		out[i].Tags = slices.Clone(r.Tags)
	}
	return out
}

// Connect opens the link. Any previous link is closed first. The library
// dials with its own fixed timeout (5 s, 15 s for TLS); ctx only cuts the
// wait short.
func (d *Driver) Connect(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropLocked()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("connecting %q to %s: %w", d.id, d.set.ep.url, err)
	}
	conf := &mb.ClientConfiguration{
		URL:      d.set.ep.url,
		Speed:    d.set.ep.speed,
		DataBits: d.set.ep.data,
		Parity:   d.set.ep.parity,
		StopBits: d.set.ep.stop,
		Timeout:  d.timeout,
		// The library prints to stdout unless given a logger; its
		// messages repeat the errors we return, so they go to debug.
		Logger: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	if d.set.tls != nil {
		if err := loadTLS(conf, d.set.tls); err != nil {
			return fmt.Errorf("connecting %q: %w", d.id, err)
		}
	}
	// A fresh client per connection: an Open abandoned on ctx must not
	// touch the client a later Connect uses.
	c, err := mb.NewClient(conf)
	if err != nil {
		return fmt.Errorf("connecting %q to %s: %w", d.id, d.set.ep.url, err)
	}
	_ = c.SetUnitId(d.set.unitID) // cannot fail
	done := make(chan error, 1)
	go func() { done <- c.Open() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		go func() {
			if <-done == nil {
				_ = c.Close()
			}
		}()
		return fmt.Errorf("connecting %q to %s: %w", d.id, d.set.ep.url, ctx.Err())
	}
	if err != nil {
		return &linkError{op: fmt.Sprintf("connecting %q to %s", d.id, d.set.ep.url), err: err}
	}
	d.client = c
	d.log.Debug("connected", "url", d.set.ep.url, "unit_id", d.set.unitID)
	return nil
}

func loadTLS(conf *mb.ClientConfiguration, t *tlsConfig) error {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return fmt.Errorf("loading tls.cert_file and tls.key_file: %w", err)
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return fmt.Errorf("loading tls.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("tls.ca_file %s holds no PEM certificate", t.CAFile)
	}
	conf.TLSClientCert, conf.TLSRootCAs = &cert, pool
	return nil
}

// Close closes the link. It is safe to call more than once. Modbus has
// no goodbye, so ctx is not waited on.
func (d *Driver) Close(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropLocked()
}

func (d *Driver) dropLocked() error {
	if d.client == nil {
		return nil
	}
	err := d.client.Close()
	d.client = nil
	return err
}

// Read runs the scan plan and appends one sample per tag to dst. A request
// the device answers with an exception gives its tags QualityBad and the
// scan goes on; a failed link (timeout, EOF, reset) closes the connection
// and returns an error wrapping drivers.ErrNotConnected, and dst unchanged.
// ctx is checked between requests; each request is bounded by the
// configured timeout.
func (d *Driver) Read(ctx context.Context, dst []drivers.Sample) ([]drivers.Sample, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	base := len(dst)
	if d.client == nil {
		return dst, &linkError{op: fmt.Sprintf("reading %q", d.id), err: errNeverOpened}
	}
	dst = slices.Grow(dst, len(d.tags))[:base+len(d.tags)]
	out := dst[base:]
	for i := range d.reqs {
		r := &d.reqs[i]
		if err := ctx.Err(); err != nil {
			return dst[:base], fmt.Errorf("reading %s on %q: %w", r, d.id, err)
		}
		var (
			raw  []byte
			bits []bool
			err  error
		)
		switch r.Table {
		case Holding:
			raw, err = d.client.ReadRawBytes(r.Start, 2*r.Count, mb.HOLDING_REGISTER)
		case Input:
			raw, err = d.client.ReadRawBytes(r.Start, 2*r.Count, mb.INPUT_REGISTER)
		case Coil:
			bits, err = d.client.ReadCoils(r.Start, r.Count)
		case Discrete:
			bits, err = d.client.ReadDiscreteInputs(r.Start, r.Count)
		}
		now := time.Now().UnixMilli()
		if err != nil {
			if !isException(err) {
				d.dropLocked()
				return dst[:base], &linkError{op: fmt.Sprintf("reading %s on %q", r, d.id), err: err}
			}
			if !r.failing {
				r.failing = true
				d.log.Warn("device rejected request; its tags are bad", "request", r.String(), "err", err)
			}
			for _, s := range r.slots {
				out[s.tag] = drivers.Sample{Tag: s.tag, Value: drivers.ZeroValue(d.specs[s.tag].f.Type), Time: now, Quality: drivers.QualityBad}
			}
			continue
		}
		if r.failing {
			r.failing = false
			d.log.Info("device answers request again", "request", r.String())
		}
		if r.Table.IsBits() {
			for _, s := range r.slots {
				out[s.tag] = drivers.Sample{Tag: s.tag, Value: drivers.BoolValue(bits[s.off]), Time: now}
			}
			continue
		}
		regs := d.regs[:r.Count]
		for j := range regs {
			regs[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		for _, s := range r.slots {
			out[s.tag] = drivers.Sample{Tag: s.tag, Value: d.decode(int(s.tag), regs[s.off:]), Time: now}
		}
	}
	return dst, nil
}

// decode decodes one tag; the plan guarantees regs is long enough.
func (d *Driver) decode(tag int, regs []uint16) drivers.Value {
	f := d.specs[tag].f
	if f.Type == drivers.String {
		c := d.strs[tag]
		regs = regs[:f.Length]
		if c.v.Type() == drivers.String && slices.Equal(c.raw, regs) {
			return c.v
		}
		copy(c.raw, regs)
		c.v, _ = DecodeRegisters(regs, f)
		return c.v
	}
	v, _ := DecodeRegisters(regs, f)
	return v
}

// Write writes v, which must have the tag's type, to a writable coil or
// holding-register tag: a coil with function 5, a 16-bit register with 6,
// wider values with 16, and a bool in a register by reading the register,
// changing the bit and writing it back (another writer may change the
// register in between; Modbus has no lock).
func (d *Driver) Write(ctx context.Context, tag int, v drivers.Value) error {
	if tag < 0 || tag >= len(d.tags) {
		return fmt.Errorf("writing tag %d on %q: no such tag", tag, d.id)
	}
	t, s := &d.tags[tag], &d.specs[tag]
	if !t.Writable || (s.table != Holding && s.table != Coil) {
		return fmt.Errorf("writing tag %q on %q: %w", t.Name, d.id, drivers.ErrNotWritable)
	}
	where := s.where()
	if v.Type() != s.f.Type {
		return fmt.Errorf("writing tag %q (%s) on %q: value of type %v for a %v tag", t.Name, where, d.id, v.Type(), s.f.Type)
	}
	var regs []uint16
	if s.table == Holding {
		regs = make([]uint16, s.f.Registers())
		if s.f.Type != drivers.Bool {
			if err := EncodeRegisters(regs, v, s.f); err != nil {
				return fmt.Errorf("writing tag %q (%s) on %q: %w", t.Name, where, d.id, err)
			}
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.client == nil {
		return &linkError{op: fmt.Sprintf("writing tag %q (%s) on %q", t.Name, where, d.id), err: errNeverOpened}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("writing tag %q (%s) on %q: %w", t.Name, where, d.id, err)
	}
	var err error
	switch {
	case s.table == Coil:
		err = d.client.WriteCoil(s.addr, v.Bool())
	case s.f.Type == drivers.Bool:
		var raw []byte
		if raw, err = d.client.ReadRawBytes(s.addr, 2, mb.HOLDING_REGISTER); err == nil {
			regs[0] = uint16(raw[0])<<8 | uint16(raw[1])
			_ = EncodeRegisters(regs, v, s.f) // sets one bit; cannot fail
			err = d.client.WriteRegister(s.addr, regs[0])
		}
	case len(regs) == 1:
		err = d.client.WriteRegister(s.addr, regs[0])
	default:
		err = d.client.WriteRegisters(s.addr, regs)
	}
	if err == nil {
		d.log.Debug("wrote tag", "tag", t.Name, "value", v.String())
		return nil
	}
	op := fmt.Sprintf("writing tag %q (%s) on %q", t.Name, where, d.id)
	if isException(err) {
		return fmt.Errorf("%s: device refused: %w", op, err)
	}
	d.dropLocked()
	return &linkError{op: op, err: err}
}

// where names a tag's address for messages: "holding registers 20..21".
func (s *tagSpec) where() string {
	switch n := s.size(); {
	case s.table == Coil:
		return fmt.Sprintf("coil %d", s.addr)
	case s.f.Type == drivers.Bool:
		return fmt.Sprintf("%s register %d bit %d", s.table, s.addr, s.f.Bit)
	case n == 1:
		return fmt.Sprintf("%s register %d", s.table, s.addr)
	default:
		return fmt.Sprintf("%s registers %d..%d", s.table, s.addr, int(s.addr)+n-1)
	}
}

var errNeverOpened = errors.New("connection is not open")

// linkError is a failure of the link itself. It wraps both the cause and
// drivers.ErrNotConnected, and prints as "op: cause".
type linkError struct {
	op  string
	err error
}

func (e *linkError) Error() string   { return e.op + ": " + e.err.Error() }
func (e *linkError) Unwrap() []error { return []error{drivers.ErrNotConnected, e.err} }

// isException reports whether err is the device's exception reply, as
// opposed to a failure of the link (the connection is still good).
func isException(err error) bool {
	var e mb.Error
	if errors.As(err, &e) {
		switch e {
		case mb.ErrIllegalFunction, mb.ErrIllegalDataAddress, mb.ErrIllegalDataValue,
			mb.ErrServerDeviceFailure, mb.ErrAcknowledge, mb.ErrServerDeviceBusy,
			mb.ErrMemoryParityError, mb.ErrGWPathUnavailable, mb.ErrGWTargetFailedToRespond:
			return true
		}
		return false
	}
	// The library reports codes it does not know with a plain fmt error.
	return strings.HasPrefix(err.Error(), "unknown exception code")
}
