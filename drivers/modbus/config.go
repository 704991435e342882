package modbus

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	mb "github.com/simonvetter/modbus"

	"github.com/edgeagent/edgeagent/drivers"
)

// Protocol limits per request (Modbus Application Protocol v1.1b3, 6.1-6.4).
const (
	maxReadRegisters  = 125
	maxReadBits       = 2000
	maxWriteRegisters = 123
)

// device is the driver-specific part of a device's configuration.
// Optional numbers are pointers so an explicit 0 is told from a missing key.
type device struct {
	URL          string     `yaml:"url"`
	UnitID       *int       `yaml:"unit_id"`
	MaxGap       *int       `yaml:"max_gap"`
	MaxRegisters *int       `yaml:"max_registers"`
	MaxBits      *int       `yaml:"max_bits"`
	TLS          *tlsConfig `yaml:"tls"`
}

// tlsConfig holds the client certificate and the CA that tcp+tls needs
// (Modbus/TCP Security mandates mutual TLS). Files are read at Connect.
type tlsConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
}

// tag is one configured tag: the common keys plus Modbus addressing.
type tag struct {
	drivers.TagConfig `yaml:",inline"`
	Table             string `yaml:"table"`
	Address           *int   `yaml:"address"`
	ByteOrder         string `yaml:"byte_order"`
	Length            int    `yaml:"length"`
	Bit               *int   `yaml:"bit"`
}

// tagSpec is a validated tag, ready for planning and decoding.
type tagSpec struct {
	table Table
	addr  uint16
	f     Format
}

// size is the registers or bits the tag occupies.
func (s *tagSpec) size() int {
	if s.table.IsBits() {
		return 1
	}
	return s.f.Registers()
}

// endpoint is a validated url, split the way the library wants it.
type endpoint struct {
	scheme string
	url    string // scheme://host:port or rtu://device, without query
	speed  uint
	data   uint
	parity uint
	stop   uint
}

// defaultLimits are the limits of a device that sets none.
var defaultLimits = limits{maxRegisters: maxReadRegisters, maxBits: maxReadBits}

// settings is a validated device.
type settings struct {
	ep     endpoint
	unitID uint8
	lim    limits
	tls    *tlsConfig
}

func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// validate checks the device keys, reporting every mistake (joined).
func (d *device) validate() (settings, error) {
	var s settings
	var errs []error
	bad := func(key string, err error) { errs = append(errs, drivers.KeyErr(key, err)) }
	if d.URL == "" {
		bad("url", errors.New("is required (e.g. tcp://10.0.0.5:502)"))
	} else if ep, err := parseURL(d.URL); err != nil {
		bad("url", err)
	} else {
		s.ep = ep
	}
	unit := intOr(d.UnitID, 1)
	switch {
	case unit < 0 || unit > 255:
		bad("unit_id", fmt.Errorf("%d is not in 0..255", unit))
	case unit == 0 && strings.HasPrefix(s.ep.scheme, "rtu"):
		// 0 is the serial broadcast address: no device ever answers it.
		bad("unit_id", errors.New("0 is the broadcast address on serial lines; use 1..255"))
	}
	s.unitID = uint8(unit)
	s.lim = limits{
		maxGap:       intOr(d.MaxGap, 0),
		maxRegisters: intOr(d.MaxRegisters, maxReadRegisters),
		maxBits:      intOr(d.MaxBits, maxReadBits),
	}
	if s.lim.maxGap < 0 {
		bad("max_gap", fmt.Errorf("%d is negative", s.lim.maxGap))
	}
	if s.lim.maxRegisters < 1 || s.lim.maxRegisters > maxReadRegisters {
		bad("max_registers", fmt.Errorf("%d is not in 1..%d", s.lim.maxRegisters, maxReadRegisters))
		s.lim.maxRegisters = maxReadRegisters
	}
	if s.lim.maxBits < 1 || s.lim.maxBits > maxReadBits {
		bad("max_bits", fmt.Errorf("%d is not in 1..%d", s.lim.maxBits, maxReadBits))
	}
	switch {
	case s.ep.scheme == "":
	case s.ep.scheme == "tcp+tls" && (d.TLS == nil || d.TLS.CertFile == "" || d.TLS.KeyFile == "" || d.TLS.CAFile == ""):
		bad("tls", errors.New("cert_file, key_file and ca_file are required for tcp+tls (Modbus security is mutual TLS)"))
	case s.ep.scheme != "tcp+tls" && d.TLS != nil:
		bad("tls", fmt.Errorf("is only for tcp+tls urls, not %s", s.ep.scheme))
	}
	s.tls = d.TLS
	return s, errors.Join(errs...)
}

var schemes = "tcp, tcp+tls, udp, rtu, rtuovertcp, rtuoverudp"

// parseURL validates a client url. Serial settings ride in the query:
// rtu:///dev/ttyUSB0?baud=19200&parity=E&data_bits=8&stop_bits=1.
func parseURL(raw string) (endpoint, error) {
	var ep endpoint
	u, err := url.Parse(raw)
	if err != nil {
		return ep, fmt.Errorf("%q: %v", raw, err)
	}
	ep.scheme = u.Scheme
	bad := func(format string, a ...any) (endpoint, error) {
		return ep, fmt.Errorf("%q: %s", raw, fmt.Sprintf(format, a...))
	}
	if u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return bad("want scheme://host:port or rtu:///dev/device")
	}
	switch u.Scheme {
	case "tcp", "udp", "tcp+tls", "rtuovertcp", "rtuoverudp":
		if u.Path != "" && u.Path != "/" {
			return bad("unexpected path %q", u.Path)
		}
		host, port, err := net.SplitHostPort(u.Host)
		switch {
		case err != nil && u.Scheme == "tcp+tls" && u.Port() == "":
			host, port = u.Hostname(), "802" // IANA port for Modbus/TCP Security
		case err != nil && (u.Scheme == "tcp" || u.Scheme == "udp") && u.Port() == "":
			host, port = u.Hostname(), "502"
		case err != nil:
			return bad("%v", err)
		}
		if host == "" {
			return bad("host is missing")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("port %q is not in 1..65535", port)
		}
		ep.url = u.Scheme + "://" + net.JoinHostPort(host, port)
	case "rtu":
		dev := u.Host + u.Path // rtu:///dev/ttyUSB0 or rtu://COM3
		if dev == "" || dev == "/" {
			return bad("serial device is missing (e.g. rtu:///dev/ttyUSB0)")
		}
		ep.url = "rtu://" + dev
	case "":
		return bad("scheme is missing (one of %s)", schemes)
	default:
		return bad("scheme %q is not one of %s", u.Scheme, schemes)
	}
	q := u.Query()
	for k, vs := range q {
		v := vs[len(vs)-1]
		serial := u.Scheme == "rtu"
		switch {
		case k == "baud" && strings.HasPrefix(u.Scheme, "rtu"):
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return bad("baud %q is not a positive number", v)
			}
			ep.speed = uint(n)
		case k == "parity" && serial:
			switch strings.ToUpper(v) {
			case "N", "NONE":
				ep.parity = mb.PARITY_NONE
			case "E", "EVEN":
				ep.parity = mb.PARITY_EVEN
			case "O", "ODD":
				ep.parity = mb.PARITY_ODD
			default:
				return bad("parity %q is not one of N, E, O", v)
			}
		case k == "data_bits" && serial:
			n, err := strconv.Atoi(v)
			if err != nil || n < 5 || n > 8 {
				return bad("data_bits %q is not in 5..8", v)
			}
			ep.data = uint(n)
		case k == "stop_bits" && serial:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 2 {
				return bad("stop_bits %q is not 1 or 2", v)
			}
			ep.stop = uint(n)
		case serial:
			return bad("unknown setting %q (want baud, parity, data_bits, stop_bits)", k)
		case strings.HasPrefix(u.Scheme, "rtu"):
			return bad("unknown setting %q (want baud)", k)
		default:
			return bad("unexpected query %q", u.RawQuery)
		}
	}
	return ep, nil
}

// supported lists the types Modbus tags may have, for messages.
const supported = "bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string"

func supportedType(t drivers.Type) bool {
	switch t {
	case drivers.Bool, drivers.Int16, drivers.Uint16, drivers.Int32, drivers.Uint32,
		drivers.Int64, drivers.Uint64, drivers.Float32, drivers.Float64, drivers.String:
		return true
	}
	return false
}

// tagBuilder validates tags one at a time as the configuration walks
// them, keeping only what a scan needs.
type tagBuilder struct {
	lim   limits
	tags  []drivers.Tag
	specs []tagSpec
	seen  map[string]int
	tb    drivers.TagBuilder
}

func newTagBuilder(lim limits, n int) *tagBuilder {
	n = max(n, 0)
	return &tagBuilder{lim: lim, tags: make([]drivers.Tag, 0, n), specs: make([]tagSpec, 0, n), seen: make(map[string]int, n)}
}

// add validates one decoded tag; a bad tag is reported and left out.
func (b *tagBuilder) add(i int, t *tag) error {
	if err := drivers.CheckName(t.Name); err != nil {
		return drivers.KeyErr("name", err)
	}
	if j, dup := b.seen[t.Name]; dup {
		return drivers.KeyErr("name", fmt.Errorf("%q is also the name of tags[%d]", t.Name, j))
	}
	b.seen[t.Name] = i
	spec, err := t.spec(b.lim)
	if err != nil {
		return err
	}
	b.tags = append(b.tags, b.tb.Tag(&t.TagConfig))
	b.specs = append(b.specs, spec)
	return nil
}

func (t *tag) spec(lim limits) (tagSpec, error) {
	var s tagSpec
	typ := t.Type
	switch {
	case typ == drivers.TypeInvalid:
		return s, drivers.KeyErr("type", fmt.Errorf("is required (one of %s)", supported))
	case !supportedType(typ):
		return s, drivers.KeyErr("type", fmt.Errorf("%v is not supported by modbus (want one of %s)", typ, supported))
	}
	if t.Table == "" {
		return s, drivers.KeyErr("table", errors.New("is required (one of holding, input, coil, discrete)"))
	}
	table, err := ParseTable(t.Table)
	if err != nil {
		return s, drivers.KeyErr("table", err)
	}
	s.table = table
	if t.Address == nil {
		return s, drivers.KeyErr("address", errors.New("is required (0-based protocol address, 0..65535)"))
	}
	if a := *t.Address; a < 0 || a > 65535 {
		return s, drivers.KeyErr("address", fmt.Errorf("%d is not in 0..65535", a))
	}
	s.addr = uint16(*t.Address)
	if table.IsBits() && typ != drivers.Bool {
		return s, drivers.KeyErr("type", fmt.Errorf("%v is not possible in table %s: coils and discrete inputs are bools", typ, table))
	}
	if t.Writable && (table == Input || table == Discrete) {
		return s, drivers.KeyErr("writable", fmt.Errorf("is not possible for table %s (read-only)", table))
	}
	if err := t.CheckLimits(); err != nil {
		return s, err
	}
	s.f.Type = typ
	if t.ByteOrder != "" {
		if s.f.Order, err = ParseByteOrder(t.ByteOrder); err != nil {
			return s, drivers.KeyErr("byte_order", err)
		}
	}
	if t.Bit != nil {
		switch {
		case typ != drivers.Bool || table.IsBits():
			return s, drivers.KeyErr("bit", errors.New("is only for bool tags in holding or input registers"))
		case *t.Bit < 0 || *t.Bit > 15:
			return s, drivers.KeyErr("bit", fmt.Errorf("%d is not in 0..15", *t.Bit))
		}
		s.f.Bit = uint8(*t.Bit)
	}
	switch {
	case typ == drivers.String && t.Length == 0:
		return s, drivers.KeyErr("length", errors.New("(in registers, 2 characters each) is required for type string"))
	case typ != drivers.String && t.Length != 0:
		return s, drivers.KeyErr("length", errors.New("is only for type string"))
	case t.Length < 0 || t.Length > lim.maxRegisters:
		return s, drivers.KeyErr("length", fmt.Errorf("%d is not in 1..%d (max_registers)", t.Length, lim.maxRegisters))
	case t.Writable && t.Length > maxWriteRegisters:
		return s, drivers.KeyErr("length", fmt.Errorf("%d of a writable string exceeds %d, the most one write carries", t.Length, maxWriteRegisters))
	}
	s.f.Length = uint16(t.Length)
	if n := s.size(); !table.IsBits() && n > lim.maxRegisters {
		return s, drivers.KeyErr("type", fmt.Errorf("%v needs %d registers, more than max_registers %d", typ, n, lim.maxRegisters))
	}
	if last := int(s.addr) + s.size() - 1; last > 65535 {
		return s, drivers.KeyErr("address", fmt.Errorf("%d with %d registers runs past 65535", s.addr, s.size()))
	}
	return s, nil
}
