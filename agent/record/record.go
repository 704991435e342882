package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/edgeagent/edgeagent/drivers"
)

// Version is the format version written.
const Version = 2

// Kind is what a record reports.
type Kind byte

// Record kinds.
const (
	Data    Kind = 1
	Online  Kind = 2
	Offline Kind = 3
)

func (k Kind) String() string {
	switch k {
	case Data:
		return "data"
	case Online:
		return "online"
	case Offline:
		return "offline"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Point is one tag value in engineering units, as it goes to the broker.
type Point struct {
	Value   drivers.Value
	Time    int64 // acquisition time, Unix ms
	Tag     int32 // index into the device's tags
	Quality drivers.Quality
}

// Append encodes a record of a device's points (tags names them).
func Append(dst []byte, kind Kind, device string, tags []drivers.Tag, at int64, pts []Point) []byte {
	dst = AppendHeader(dst, kind, device, at, len(pts))
	for i := range pts {
		dst = AppendPoint(dst, tags[pts[i].Tag].Name, at, &pts[i])
	}
	return dst
}

// AppendHeader starts a record of n points; n AppendPoint calls must
// follow.
func AppendHeader(dst []byte, kind Kind, device string, at int64, n int) []byte {
	dst = append(dst, Version, byte(kind))
	dst = binary.AppendUvarint(dst, uint64(len(device)))
	dst = append(dst, device...)
	dst = binary.AppendVarint(dst, at)
	return binary.AppendUvarint(dst, uint64(n))
}

// AppendPoint adds one point of tag name to a record started at time at.
func AppendPoint(dst []byte, name string, at int64, p *Point) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	dst = binary.AppendUvarint(dst, uint64(p.Tag))
	dst = append(dst, byte(p.Value.Type()), byte(p.Quality))
	dst = binary.AppendVarint(dst, p.Time-at)
	return appendValue(dst, p.Value)
}

func appendValue(dst []byte, v drivers.Value) []byte {
	switch t := v.Type(); {
	case t == drivers.Bool || t.IsUnsigned():
		return binary.AppendUvarint(dst, v.Uint())
	case t.IsSigned() || t == drivers.DateTime:
		return binary.AppendVarint(dst, v.Int())
	case t == drivers.Float32:
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(v.Float())))
	case t == drivers.Float64:
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Float()))
	case t == drivers.String:
		dst = binary.AppendUvarint(dst, uint64(len(v.Str())))
		return append(dst, v.Str()...)
	}
	return dst
}

// Record is a decoded record. Names alias the input bytes; decoding into
// a reused Record does not allocate except for string values.
type Record struct {
	Kind    Kind
	Device  []byte
	Time    int64
	Samples []Sample
}

// Sample is one decoded point.
type Sample struct {
	Name    []byte
	Hint    uint64 // the tag's index when written
	Value   drivers.Value
	Time    int64
	Quality drivers.Quality
}

// ErrTruncated is returned for a record that ends early.
var ErrTruncated = errors.New("record is truncated")

// Decode parses b into r, reusing r's storage.
func Decode(b []byte, r *Record) error {
	d := decoder{b: b}
	if v := d.byte(); v != Version {
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("record version %d is not %d", v, Version)
	}
	r.Kind = Kind(d.byte())
	if r.Kind < Data || r.Kind > Offline {
		return fmt.Errorf("unknown record kind %d", byte(r.Kind))
	}
	r.Device = d.bytes()
	r.Time = d.varint()
	n := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if n > uint64(len(b)) { // every point takes at least one byte
		return fmt.Errorf("record claims %d points in %d bytes", n, len(b))
	}
	r.Samples = r.Samples[:0]
	for i := uint64(0); i < n; i++ {
		var p Sample
		p.Name = d.bytes()
		p.Hint = d.uvarint()
		t := drivers.Type(d.byte())
		p.Quality = drivers.Quality(d.byte())
		p.Time = r.Time + d.varint()
		switch {
		case t == drivers.Bool:
			p.Value = drivers.BoolValue(d.uvarint() != 0)
		case t.IsUnsigned():
			p.Value = drivers.UintValue(t, d.uvarint())
		case t.IsSigned():
			p.Value = drivers.IntValue(t, d.varint())
		case t == drivers.DateTime:
			p.Value = drivers.TimeValueMs(d.varint())
		case t == drivers.Float32:
			p.Value = drivers.FloatValue(t, float64(math.Float32frombits(d.u32())))
		case t == drivers.Float64:
			p.Value = drivers.FloatValue(t, math.Float64frombits(d.u64()))
		case t == drivers.String:
			p.Value = drivers.StringValue(string(d.bytes()))
		default:
			return fmt.Errorf("point %d: unknown value type %d", i, byte(t))
		}
		if d.err != nil {
			return fmt.Errorf("point %d: %w", i, d.err)
		}
		r.Samples = append(r.Samples, p)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d trailing bytes after %d points", len(d.b), n)
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = ErrTruncated
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u32() uint32 {
	if len(d.b) < 4 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}
