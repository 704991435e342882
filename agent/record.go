package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/edgeagent/edgeagent/drivers"
)

// Records are what the store-and-forward buffer holds: one per device scan
// (data) or device state change (online with a full snapshot, offline).
// They name devices and tags by name, not index, so a record written before
// a configuration change is still understood after it, and samples of tags
// that no longer exist can be counted and dropped.
//
// Layout (little-endian varints):
//
//	version(1) kind(1) uvarint(len) device-id  varint(time ms)  uvarint(n)
//	n × { uvarint(len) name  uvarint(index)  type(1) quality(1)  varint(ts - time)  value }
//
// index is the tag's position when the record was written: a hint that
// spares the replay a map lookup per sample while the configuration is
// unchanged (the name decides).
//
// value: bool and unsigned as uvarint, signed and datetime as zigzag varint,
// float32 as 4 bytes, float64 as 8 bytes, string as uvarint(len) bytes.

const recordVersion = 2

type recordKind byte

const (
	recData    recordKind = 1
	recOnline  recordKind = 2
	recOffline recordKind = 3
)

func (k recordKind) String() string {
	switch k {
	case recData:
		return "data"
	case recOnline:
		return "online"
	case recOffline:
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

// appendRecord encodes a batch of points of the device (tags names them).
func appendRecord(dst []byte, kind recordKind, device string, tags []drivers.Tag, at int64, pts []Point) []byte {
	dst = appendRecordHeader(dst, kind, device, at, len(pts))
	for i := range pts {
		dst = appendRecordPoint(dst, tags[pts[i].Tag].Name, at, &pts[i])
	}
	return dst
}

// appendRecordHeader starts a record of n points; n appendRecordPoint
// calls must follow.
func appendRecordHeader(dst []byte, kind recordKind, device string, at int64, n int) []byte {
	dst = append(dst, recordVersion, byte(kind))
	dst = binary.AppendUvarint(dst, uint64(len(device)))
	dst = append(dst, device...)
	dst = binary.AppendVarint(dst, at)
	return binary.AppendUvarint(dst, uint64(n))
}

func appendRecordPoint(dst []byte, name string, at int64, p *Point) []byte {
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

// record is a decoded record. Names alias the input bytes; decoding into
// a reused record does not allocate except for string values.
type record struct {
	kind   recordKind
	device []byte
	time   int64
	points []recPoint
}

type recPoint struct {
	name    []byte
	hint    uint64 // the tag's index when written
	value   drivers.Value
	time    int64
	quality drivers.Quality
}

var errShortRecord = errors.New("record is truncated")

// decodeRecord parses b into r, reusing r's storage.
func decodeRecord(b []byte, r *record) error {
	d := decoder{b: b}
	if v := d.byte(); v != recordVersion {
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("record version %d is not %d", v, recordVersion)
	}
	r.kind = recordKind(d.byte())
	if r.kind < recData || r.kind > recOffline {
		return fmt.Errorf("unknown record kind %d", byte(r.kind))
	}
	r.device = d.bytes()
	r.time = d.varint()
	n := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if n > uint64(len(b)) { // every point takes at least one byte
		return fmt.Errorf("record claims %d points in %d bytes", n, len(b))
	}
	r.points = r.points[:0]
	for i := uint64(0); i < n; i++ {
		var p recPoint
		p.name = d.bytes()
		p.hint = d.uvarint()
		t := drivers.Type(d.byte())
		p.quality = drivers.Quality(d.byte())
		p.time = r.time + d.varint()
		switch {
		case t == drivers.Bool:
			p.value = drivers.BoolValue(d.uvarint() != 0)
		case t.IsUnsigned():
			p.value = drivers.UintValue(t, d.uvarint())
		case t.IsSigned():
			p.value = drivers.IntValue(t, d.varint())
		case t == drivers.DateTime:
			p.value = drivers.TimeValueMs(d.varint())
		case t == drivers.Float32:
			p.value = drivers.FloatValue(t, float64(math.Float32frombits(d.u32())))
		case t == drivers.Float64:
			p.value = drivers.FloatValue(t, math.Float64frombits(d.u64()))
		case t == drivers.String:
			p.value = drivers.StringValue(string(d.bytes()))
		default:
			return fmt.Errorf("point %d: unknown value type %d", i, byte(t))
		}
		if d.err != nil {
			return fmt.Errorf("point %d: %w", i, d.err)
		}
		r.points = append(r.points, p)
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
		d.err = errShortRecord
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
