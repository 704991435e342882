package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/edgeagent/edgeagent/drivers"
)

// Versions: Version is written, version 2 is still read.
const (
	Version   = 3
	versionV2 = 2
)

// Kind is what a record reports.
type Kind byte

// Record kinds. History (version 3 only) holds samples the PLC delivered
// late, older than the values already stored for their tags (an OPC UA
// server's queued changes, after a reconnect): they are published as
// history and never become a tag's current value.
const (
	Data    Kind = 1
	Online  Kind = 2
	Offline Kind = 3
	History Kind = 4
)

func (k Kind) String() string {
	switch k {
	case Data:
		return "data"
	case Online:
		return "online"
	case Offline:
		return "offline"
	case History:
		return "history"
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

// AppendV2 encodes a record in version 2, as the release before version
// 3 wrote them (tags names the points). Only tests and fixtures write it.
func AppendV2(dst []byte, kind Kind, device string, tags []drivers.Tag, at int64, pts []Point) []byte {
	dst = appendHeaderV2(dst, kind, device, at, len(pts))
	for i := range pts {
		dst = appendPointV2(dst, tags[pts[i].Tag].Name, at, &pts[i])
	}
	return dst
}

func appendHeaderV2(dst []byte, kind Kind, device string, at int64, n int) []byte {
	dst = append(dst, versionV2, byte(kind))
	dst = binary.AppendUvarint(dst, uint64(len(device)))
	dst = append(dst, device...)
	dst = binary.AppendVarint(dst, at)
	return binary.AppendUvarint(dst, uint64(n))
}

func appendPointV2(dst []byte, name string, at int64, p *Point) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	dst = binary.AppendUvarint(dst, uint64(p.Tag))
	dst = append(dst, byte(p.Value.Type()), byte(p.Quality))
	dst = binary.AppendVarint(dst, p.Time-at)
	return appendValueV2(dst, p.Value)
}

func appendValueV2(dst []byte, v drivers.Value) []byte {
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

// Record is a decoded record. Names and the device alias the input
// bytes; decoding into a reused Record does not allocate except for
// string values.
type Record struct {
	Version int
	Kind    Kind
	Device  []byte // version 2: the device id
	Schema  uint64 // version 3: the schema id
	Time    int64
	Samples []Sample
}

// Sample is one decoded point.
type Sample struct {
	Name    []byte // version 2: the tag's name
	Index   int32  // version 3: the tag's position in the schema; version 2: its index when written (a hint)
	Value   drivers.Value
	Time    int64
	Quality drivers.Quality
}

// Schemas finds the types of a schema's tags, for decoding version 3.
type Schemas interface {
	Types(id uint64) ([]drivers.Type, bool)
}

var (
	// ErrTruncated is returned for a record that ends early.
	ErrTruncated = errors.New("record is truncated")
	// ErrUnknownSchema is returned for a version 3 record whose schema
	// cannot be found.
	ErrUnknownSchema = errors.New("record's schema is unknown")
)

// Decode parses b into r, reusing r's storage. schemas is needed for
// version 3 records.
func Decode(b []byte, r *Record, schemas Schemas) error {
	if len(b) == 0 {
		return ErrTruncated
	}
	switch b[0] {
	case Version:
		return decodeV3(b, r, schemas)
	case versionV2:
		return decodeV2(b, r)
	}
	return fmt.Errorf("record version %d is not one this build reads (%d, %d)", b[0], versionV2, Version)
}

func decodeV2(b []byte, r *Record) error {
	d := decoder{b: b[1:]}
	r.Version, r.Schema = versionV2, 0
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
		p.Index = int32(min(d.uvarint(), 1<<31-1))
		t := drivers.Type(d.byte())
		p.Quality = drivers.Quality(d.byte())
		p.Time = r.Time + d.varint()
		var ok bool
		if p.Value, ok = d.value(t); !ok {
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

// value reads a value of type t as version 2 encodes it.
func (d *decoder) value(t drivers.Type) (drivers.Value, bool) {
	switch {
	case t == drivers.Bool:
		return drivers.BoolValue(d.uvarint() != 0), true
	case t.IsUnsigned():
		return drivers.UintValue(t, d.uvarint()), true
	case t.IsSigned():
		return drivers.IntValue(t, d.varint()), true
	case t == drivers.DateTime:
		return drivers.TimeValueMs(d.varint()), true
	case t == drivers.Float32:
		return drivers.FloatValue(t, float64(math.Float32frombits(d.u32()))), true
	case t == drivers.Float64:
		return drivers.FloatValue(t, math.Float64frombits(d.u64())), true
	case t == drivers.String:
		return drivers.StringValue(string(d.bytes())), true
	}
	return drivers.Value{}, false
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
