package drivers

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Type is the type of a tag's value.
type Type uint8

// Value types. The zero Type is invalid so a missing `type:` is caught.
const (
	TypeInvalid Type = iota
	Bool
	Int8
	Int16
	Int32
	Int64
	Uint8
	Uint16
	Uint32
	Uint64
	Float32
	Float64
	String
	DateTime // milliseconds since the Unix epoch, UTC
	Bytes    // an opaque byte string (OPC UA ByteString)
)

// arrayBit marks an array type: ArrayOf(Int16) is an array of int16.
// Arrays of every scalar type but Bytes exist, as in Sparkplug.
const arrayBit Type = 32

// arraySuffix ends an array type's name.
const arraySuffix = "_array"

// ArrayOf returns the type of an array of elem (Bool..DateTime);
// TypeInvalid for any other elem.
func ArrayOf(elem Type) Type {
	if elem < Bool || elem > DateTime {
		return TypeInvalid
	}
	return elem | arrayBit
}

// IsArray reports whether t is an array type.
func (t Type) IsArray() bool { return t&arrayBit != 0 && t.Elem() >= Bool && t.Elem() <= DateTime }

// Elem is the element type of an array type, or t itself.
func (t Type) Elem() Type { return t &^ arrayBit }

// Valid reports whether t is a type values can have.
func (t Type) Valid() bool { return (t >= Bool && t <= Bytes) || t.IsArray() }

var typeNames = [...]string{
	TypeInvalid: "invalid", Bool: "bool", Int8: "int8", Int16: "int16", Int32: "int32", Int64: "int64",
	Uint8: "uint8", Uint16: "uint16", Uint32: "uint32", Uint64: "uint64",
	Float32: "float32", Float64: "float64", String: "string", DateTime: "datetime", Bytes: "bytes",
}

// String is the name configuration spells the type with: "int16",
// "float64_array" for an array (no brackets: YAML flow mappings, as tag
// maps are often written, would take them for a list).
func (t Type) String() string {
	if t.IsArray() {
		return typeNames[t.Elem()] + arraySuffix
	}
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType parses a type name as written in configuration.
func ParseType(s string) (Type, error) {
	elem, array := strings.CutSuffix(s, arraySuffix)
	for i, n := range typeNames {
		if i == 0 || n != elem {
			continue
		}
		if !array {
			return Type(i), nil
		}
		if t := ArrayOf(Type(i)); t != TypeInvalid {
			return t, nil
		}
	}
	return TypeInvalid, fmt.Errorf("unknown type %q (want one of bool, int8..int64, uint8..uint64, float32, float64, string, datetime, bytes, or an array of one but bytes, e.g. float32_array)", s)
}

// UnmarshalText lets configuration spell types by name.
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// MarshalText writes the type's name.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// IsNumeric reports whether values of t are numbers (deadband applies).
func (t Type) IsNumeric() bool { return t >= Int8 && t <= Float64 }

// IsSigned reports whether t is a signed integer type.
func (t Type) IsSigned() bool { return t >= Int8 && t <= Int64 }

// IsUnsigned reports whether t is an unsigned integer type.
func (t Type) IsUnsigned() bool { return t >= Uint8 && t <= Uint64 }

// IsFloat reports whether t is float32 or float64.
func (t Type) IsFloat() bool { return t == Float32 || t == Float64 }

// Value is one typed value, held without boxing so scans don't allocate,
// in 16 bytes: the agent holds several per tag (the last read, the last
// stored, the last published), and with 100,000 tags every byte counts.
//
// bits holds integers as 64-bit two's complement, floats as float64 bits,
// bools as 0/1, datetimes as Unix milliseconds; p then points at the
// type's mark in a static array, which is how the type is kept. A string,
// a byte string or an array is its data in p and its length in the low 56
// bits of bits, its type in the top 8. An array's data is its Sparkplug
// encoding (elements packed little-endian; bools as a count and bits;
// strings NUL-terminated), so it is stored, compared and published as the
// bytes it is. Values never modify their data: a Value made from a slice
// shares it, and the slice must not change afterwards. The zero Value (p
// nil) is TypeInvalid.
type Value struct {
	bits uint64
	p    unsafe.Pointer
}

// typeMarks are what a scalar Value's p points at: the type is the offset.
var typeMarks [32]byte

// emptyData is the data of an empty string (p must not be nil).
var emptyData byte

const (
	lenBits = 56
	lenMask = 1<<lenBits - 1
)

func scalar(t Type, bits uint64) Value {
	return Value{bits: bits, p: unsafe.Pointer(&typeMarks[t])}
}

// BoolValue returns a Bool value.
func BoolValue(b bool) Value {
	if b {
		return scalar(Bool, 1)
	}
	return scalar(Bool, 0)
}

// IntValue returns a signed integer value of type t (Int8..Int64).
func IntValue(t Type, v int64) Value { return scalar(t, uint64(v)) }

// UintValue returns an unsigned integer value of type t (Uint8..Uint64).
func UintValue(t Type, v uint64) Value { return scalar(t, v) }

// FloatValue returns a float value of type t (Float32 or Float64).
func FloatValue(t Type, v float64) Value { return scalar(t, math.Float64bits(v)) }

// StringValue returns a String value.
func StringValue(s string) Value {
	p := unsafe.Pointer(unsafe.StringData(s))
	if len(s) == 0 {
		p = unsafe.Pointer(&emptyData)
	}
	return Value{bits: uint64(len(s)) | uint64(String)<<lenBits, p: p}
}

// BytesValue returns a Bytes value sharing b.
func BytesValue(b []byte) Value { return dataValue(Bytes, b) }

// PackedArray returns an array value of type t (an array type) from its
// Sparkplug encoding, sharing data. It checks the encoding.
func PackedArray(t Type, data []byte) (Value, error) {
	if !t.IsArray() {
		return Value{}, fmt.Errorf("%s is not an array type", t)
	}
	if _, err := arrayLen(t, data); err != nil {
		return Value{}, err
	}
	return dataValue(t, data), nil
}

func dataValue(t Type, b []byte) Value {
	p := unsafe.Pointer(unsafe.SliceData(b))
	if len(b) == 0 {
		p = unsafe.Pointer(&emptyData)
	}
	return Value{bits: uint64(len(b)) | uint64(t)<<lenBits, p: p}
}

// TimeValue returns a DateTime value with millisecond resolution.
func TimeValue(t time.Time) Value { return scalar(DateTime, uint64(t.UnixMilli())) }

// ZeroValue returns the zero of type t: false, 0 or "".
func ZeroValue(t Type) Value {
	switch {
	case t == TypeInvalid:
		return Value{}
	case t == String:
		return StringValue("")
	case t == Bytes:
		return BytesValue(nil)
	case t.IsArray():
		if t.Elem() == Bool {
			return dataValue(t, make([]byte, 4)) // a count of 0
		}
		return dataValue(t, nil)
	}
	return scalar(t, 0)
}

// TimeValueMs returns a DateTime value from Unix milliseconds.
func TimeValueMs(ms int64) Value { return scalar(DateTime, uint64(ms)) }

// Type returns the value's type; TypeInvalid for the zero Value.
func (v Value) Type() Type {
	if v.p == nil {
		return TypeInvalid
	}
	if off := uintptr(v.p) - uintptr(unsafe.Pointer(&typeMarks)); off < uintptr(len(typeMarks)) {
		return Type(off)
	}
	return Type(v.bits >> lenBits)
}

// Bool returns the value as a bool (non-zero numbers are true).
func (v Value) Bool() bool {
	switch t := v.Type(); {
	case t == String:
		return v.Str() == "true"
	case t.IsFloat():
		return v.Float() != 0
	}
	return v.bits != 0
}

// Int returns the value as int64 (floats truncated; 0 for a string).
func (v Value) Int() int64 {
	switch t := v.Type(); {
	case t.IsFloat():
		return int64(math.Float64frombits(v.bits))
	case t == String:
		return 0
	}
	return int64(v.bits)
}

// Uint returns the value as uint64 (floats truncated; 0 for a string).
func (v Value) Uint() uint64 {
	switch t := v.Type(); {
	case t.IsFloat():
		return uint64(math.Float64frombits(v.bits))
	case t == String:
		return 0
	}
	return v.bits
}

// Float returns the value as float64.
func (v Value) Float() float64 {
	switch t := v.Type(); {
	case t.IsFloat():
		return math.Float64frombits(v.bits)
	case t.IsSigned() || t == DateTime:
		return float64(int64(v.bits))
	case t == String:
		return 0
	default:
		return float64(v.bits)
	}
}

// Str returns the String value (empty for other types).
func (v Value) Str() string {
	if v.Type() != String {
		return ""
	}
	return unsafe.String((*byte)(v.p), int(v.bits&lenMask))
}

// Data returns the bytes of a String, Bytes or array value (an array's
// Sparkplug encoding); nil for other types. The caller must not modify
// them.
func (v Value) Data() []byte {
	if !v.hasData() {
		return nil
	}
	return unsafe.Slice((*byte)(v.p), int(v.bits&lenMask))
}

// hasData reports whether the value keeps its content behind p.
func (v Value) hasData() bool {
	t := v.Type()
	return t == String || t == Bytes || t.IsArray()
}

// Time returns a DateTime value as time.Time in UTC.
func (v Value) Time() time.Time { return time.UnixMilli(int64(v.bits)).UTC() }

// Equal reports whether two values have the same type and content.
func (v Value) Equal(o Value) bool {
	if v.hasData() {
		return v.bits == o.bits && o.hasData() && string(v.Data()) == string(o.Data())
	}
	return v.Type() == o.Type() && v.bits == o.bits
}

// String formats the value for logs and the watch command.
func (v Value) String() string {
	switch t := v.Type(); {
	case t == Bool:
		return strconv.FormatBool(v.bits != 0)
	case t.IsSigned():
		return strconv.FormatInt(int64(v.bits), 10)
	case t.IsUnsigned():
		return strconv.FormatUint(v.bits, 10)
	case t.IsFloat():
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case t == String:
		return strconv.Quote(v.Str())
	case t == DateTime:
		return v.Time().Format(time.RFC3339Nano)
	case t == Bytes:
		return "0x" + hex.EncodeToString(v.Data())
	case t.IsArray():
		var sb strings.Builder
		sb.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(v.Index(i).String())
		}
		sb.WriteByte(']')
		return sb.String()
	}
	return "<invalid>"
}

// Quality is the OPC-style quality of a sample.
type Quality uint8

// Qualities; the zero value is good.
const (
	QualityGood Quality = iota
	QualityBad
	QualityStale
)

func (q Quality) String() string {
	switch q {
	case QualityGood:
		return "good"
	case QualityBad:
		return "bad"
	case QualityStale:
		return "stale"
	}
	return "quality(" + strconv.Itoa(int(q)) + ")"
}

// Sample is one tag read from a PLC. The agent holds one per tag, so it
// is kept small: 32 bytes.
type Sample struct {
	// Value is the decoded raw value (before scaling), typed as the tag's Type.
	Value Value
	// Time is the acquisition time in Unix milliseconds (Sparkplug's
	// resolution): the PLC's source timestamp where the protocol has one,
	// else when the reply arrived.
	Time int64
	// Tag indexes Driver.Tags().
	Tag int32
	// Quality is QualityGood unless the PLC rejected this tag's request.
	Quality Quality
	// Late marks a sample the PLC held while the link was down and
	// delivered after the reconnect (an OPC UA server's queued or
	// republished changes). One older than the value already stored for
	// its tag (which the reconnect read) is stored as history, never as
	// the tag's current value.
	Late bool
}
