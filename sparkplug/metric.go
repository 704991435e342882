package sparkplug

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Well-known metric names.
const (
	MetricBdSeq   = "bdSeq"                // Int64, in the NDEATH and every NBIRTH; never aliased
	MetricRebirth = "Node Control/Rebirth" // Boolean, false in the NBIRTH; never aliased
)

// Quality property: key PropertyQuality, value one of these. It is needed
// only when the quality is not good.
const (
	PropertyQuality = "Quality"
	QualityGood     = 192
	QualityBad      = 0
	QualityStale    = 500
)

// Property is one entry of a metric's PropertySet. Only scalar types are
// supported (no nested property sets).
type Property struct {
	Key   string
	Type  DataType
	Int   uint64  // integer types as 64-bit two's complement, DateTime ms
	Float float64 // Float and Double
	Bool  bool    // Boolean
	Str   string  // String, Text, UUID
	Null  bool
}

// QualityProperty returns the Quality property as the spec defines it: Int32
// in int_value. (The TCK expects Int64 in long_value; Decode accepts both.)
func QualityProperty(q int) Property {
	return Property{Key: PropertyQuality, Type: TypeInt32, Int: uint64(int64(q))}
}

// Metric is one Sparkplug metric. Which value field is meaningful depends on
// Type; see the package documentation for the wire mapping.
type Metric struct {
	Name     string
	Alias    uint64
	HasAlias bool
	// Timestamp is the acquisition time in UTC ms; written when non-zero.
	Timestamp uint64
	// Type is always set by encoders' callers; it goes on the wire in births,
	// commands and template members only. Decode leaves it TypeUnknown when
	// the payload had no datatype (DATA, usually commands); see Resolve.
	Type                        DataType
	Historical, Transient, Null bool

	Int   uint64  // Int8..Int64, UInt8..UInt64 as 64-bit two's complement; Boolean 0/1; DateTime ms
	Float float64 // Float and Double
	Str   string  // String, Text, UUID
	Bytes []byte  // Bytes, File, arrays; serialised DataSet / Template messages

	Properties []Property

	// Kind is set by Decode: the field the value arrived in. Encoders use it
	// only for TypeUnknown metrics, so undecoded values survive re-encoding.
	Kind ValueKind
}

// BdSeqMetric returns the bdSeq metric for an NBIRTH (the NDEATH writes its
// own, see AppendNodeDeath).
func BdSeqMetric(bdSeq uint64, ts uint64) Metric {
	return Metric{Name: MetricBdSeq, Timestamp: ts, Type: TypeInt64, Int: bdSeq}
}

// Resolve sets the metric's Type to t, typically the type its BIRTH declared,
// and normalises the value Decode stored raw: an Int8/16/32 from int_value is
// sign-extended to 64 bits, a Float from double_value rounded to float32. It
// fails with ErrTypeMismatch, leaving m unchanged, if the value's field cannot
// carry t, the value is out of t's range, or there is no value and m is not
// Null. Resolving an already resolved metric again with the same type is a
// no-op.
func (m *Metric) Resolve(t DataType) error {
	if t.kind() == KindNone {
		return fmt.Errorf("%w: %s is not a metric datatype", ErrTypeMismatch, t)
	}
	if m.Null {
		m.Type = t
		return nil
	}
	i, f, err := fit(t, m.Kind, m.Int, m.Float)
	if err != nil {
		return err
	}
	m.Type, m.Int, m.Float = t, i, f
	return nil
}

// fit checks that a value that arrived in field k can be of datatype t and
// returns the integer and float normalised for t.
func fit(t DataType, k ValueKind, i uint64, f float64) (uint64, float64, error) {
	want := t.kind()
	switch {
	case k == KindNone:
		return 0, 0, fmt.Errorf("%w: %s has no value and is not null", ErrTypeMismatch, t)
	case want == KindInt || want == KindLong:
		raw, ok := i, false
		switch k {
		case KindInt:
			i, ok = fromIntValue(t, uint32(i))
		case KindLong:
			ok = longFits(t, i)
		default:
			return 0, 0, fmt.Errorf("%w: %s in %s", ErrTypeMismatch, t, k)
		}
		if !ok {
			return 0, 0, fmt.Errorf("%w: %s cannot hold %s %d", ErrTypeMismatch, t, k, raw)
		}
	case t == TypeFloat && (k == KindFloat || k == KindDouble):
		f = float64(float32(f))
	case t == TypeDouble && (k == KindFloat || k == KindDouble):
	case k != want:
		return 0, 0, fmt.Errorf("%w: %s in %s", ErrTypeMismatch, t, k)
	}
	return i, f, nil
}

// fromIntValue widens an int_value to 64 bits for integer type t. Int8 and
// Int16 are accepted sign-extended (the spec) or zero-extended (some
// encoders); only the low 32 bits of r ever carry information.
func fromIntValue(t DataType, r uint32) (uint64, bool) {
	switch t {
	case TypeInt8:
		return uint64(int64(int8(r))), r <= math.MaxUint8 || r >= 0xFFFFFF80
	case TypeInt16:
		return uint64(int64(int16(r))), r <= math.MaxUint16 || r >= 0xFFFF8000
	case TypeInt32, TypeInt64:
		return uint64(int64(int32(r))), true
	case TypeUInt8:
		return uint64(r), r <= math.MaxUint8
	case TypeUInt16:
		return uint64(r), r <= math.MaxUint16
	}
	return uint64(r), true // UInt32, UInt64, DateTime
}

// longFits reports whether a long_value is in the range of integer type t.
func longFits(t DataType, v uint64) bool {
	s := int64(v)
	switch t {
	case TypeInt8:
		return s >= math.MinInt8 && s <= math.MaxInt8
	case TypeInt16:
		return s >= math.MinInt16 && s <= math.MaxInt16
	case TypeInt32:
		return s >= math.MinInt32 && s <= math.MaxInt32
	case TypeUInt8:
		return v <= math.MaxUint8
	case TypeUInt16:
		return v <= math.MaxUint16
	case TypeUInt32:
		return v <= math.MaxUint32
	}
	return true // Int64, UInt64, DateTime
}

// ValueString formats the value for logs and tools: "null", "true", "-5",
// "3.25", a quoted string, RFC 3339 with milliseconds for DateTime, 0x-prefixed
// hex for the other bytes-carried types. A template prints on one line as
// its template_ref ("definition" for a definition), its parameters in
// parentheses if it has any, and its members in braces, each formatted by
// ValueString: `Press(line="A"){speed=1.5, count=12, motor=Motor{rpm=1500}}`;
// templates nested more than 32 deep print as {…}, template bytes that do
// not decode as hex. A TypeUnknown metric is
// formatted by its Kind; with no value at all the result is "".
func (m *Metric) ValueString() string {
	if m.Null {
		return "null"
	}
	k := m.Type.kind()
	switch {
	case m.Type == TypeDateTime:
		return time.UnixMilli(int64(m.Int)).UTC().Format("2006-01-02T15:04:05.000Z07:00")
	case m.Type.signed():
		return strconv.FormatInt(int64(m.Int), 10)
	case m.Type == TypeUnknown:
		k = m.Kind
	}
	switch k {
	case KindInt, KindLong:
		return strconv.FormatUint(m.Int, 10)
	case KindFloat:
		return strconv.FormatFloat(m.Float, 'g', -1, 32)
	case KindDouble:
		return strconv.FormatFloat(m.Float, 'g', -1, 64)
	case KindBoolean:
		return strconv.FormatBool(m.Int != 0)
	case KindString:
		return strconv.Quote(m.Str)
	case KindTemplate:
		return templateString(m.Bytes, 0)
	case KindNone:
		return ""
	}
	return "0x" + hex.EncodeToString(m.Bytes)
}
