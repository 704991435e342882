package drivers

import (
	"fmt"
	"math"
	"strconv"
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
)

var typeNames = [...]string{
	TypeInvalid: "invalid", Bool: "bool", Int8: "int8", Int16: "int16", Int32: "int32", Int64: "int64",
	Uint8: "uint8", Uint16: "uint16", Uint32: "uint32", Uint64: "uint64",
	Float32: "float32", Float64: "float64", String: "string", DateTime: "datetime",
}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType parses a type name as written in configuration.
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if i != 0 && n == s {
			return Type(i), nil
		}
	}
	return TypeInvalid, fmt.Errorf("unknown type %q (want one of bool, int8..int64, uint8..uint64, float32, float64, string, datetime)", s)
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
// type's mark in a static array, which is how the type is kept. A string
// is its data in p and its length in the low 56 bits of bits, its type in
// the top 8. The zero Value (p nil) is TypeInvalid.
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

// TimeValue returns a DateTime value with millisecond resolution.
func TimeValue(t time.Time) Value { return scalar(DateTime, uint64(t.UnixMilli())) }

// ZeroValue returns the zero of type t: false, 0 or "".
func ZeroValue(t Type) Value {
	switch {
	case t == TypeInvalid:
		return Value{}
	case t == String:
		return StringValue("")
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

// Time returns a DateTime value as time.Time in UTC.
func (v Value) Time() time.Time { return time.UnixMilli(int64(v.bits)).UTC() }

// Equal reports whether two values have the same type and content.
func (v Value) Equal(o Value) bool {
	t := v.Type()
	if t == String {
		return o.Type() == String && v.Str() == o.Str()
	}
	return t == o.Type() && v.bits == o.bits
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
}
