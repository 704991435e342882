package drivers

import (
	"math"
	"strings"
	"testing"
	"unsafe"
)

func TestValueEqual(t *testing.T) {
	a := StringValue("pump " + strings.Repeat("a", 3))
	b := StringValue(strings.Clone("pump aaa")) // same text, other memory
	for _, c := range []struct {
		x, y Value
		want bool
	}{
		{a, b, true},
		{a, StringValue("pump aab"), false},
		{a, StringValue("pump aa"), false},
		{StringValue(""), StringValue(""), true},
		{StringValue(""), Value{}, false},
		{StringValue(""), ZeroValue(String), true},
		{IntValue(Int16, 3), IntValue(Int16, 3), true},
		{IntValue(Int16, 3), IntValue(Int32, 3), false},
		{UintValue(Uint16, 8), StringValue("12345678"[:8]), false},
		{FloatValue(Float64, 1.5), FloatValue(Float64, 1.5), true},
		{BoolValue(true), BoolValue(false), false},
	} {
		if got := c.x.Equal(c.y); got != c.want {
			t.Errorf("%v.Equal(%v) = %v, want %v", c.x, c.y, got, c.want)
		}
		if got := c.y.Equal(c.x); got != c.want {
			t.Errorf("%v.Equal(%v) = %v, want %v", c.y, c.x, got, c.want)
		}
	}
	if s := a.Str(); s != "pump aaa" {
		t.Errorf("Str() = %q", s)
	}
	if s := IntValue(Int16, 5).Str(); s != "" {
		t.Errorf("Str() of an int = %q, want empty", s)
	}
	if !StringValue("true").Bool() || StringValue("yes").Bool() {
		t.Error("Bool() of a string")
	}
}

// The agent holds a sample per tag; these sizes are its memory budget.
func TestSizes(t *testing.T) {
	if n := unsafe.Sizeof(Value{}); n > 16 {
		t.Errorf("Value is %d bytes, want at most 16", n)
	}
	if n := unsafe.Sizeof(Sample{}); n > 32 {
		t.Errorf("Sample is %d bytes, want at most 32", n)
	}
}

// Every type survives the compact representation, and values of
// different types never compare equal.
func TestValueTypes(t *testing.T) {
	vals := []Value{
		{}, BoolValue(false), BoolValue(true), IntValue(Int8, -1), IntValue(Int64, math.MinInt64), UintValue(Uint64, math.MaxUint64),
		UintValue(Uint16, 0), FloatValue(Float32, 0.5), FloatValue(Float64, math.Inf(1)), StringValue(""), StringValue("x"),
		StringValue(strings.Repeat("long ", 1000)), TimeValueMs(-5), ZeroValue(String), ZeroValue(Int32), ZeroValue(TypeInvalid),
	}
	want := []Type{TypeInvalid, Bool, Bool, Int8, Int64, Uint64, Uint16, Float32, Float64, String, String, String, DateTime, String, Int32, TypeInvalid}
	for i, v := range vals {
		if v.Type() != want[i] {
			t.Errorf("value %d (%v) has type %v, want %v", i, v, v.Type(), want[i])
		}
	}
	if StringValue("").Str() != "" || StringValue("abc").Str() != "abc" || len(StringValue(strings.Repeat("long ", 1000)).Str()) != 5000 {
		t.Error("strings do not come back")
	}
	if IntValue(Int16, 0).Equal(UintValue(Uint16, 0)) || StringValue("").Equal(Value{}) || BoolValue(false).Equal(ZeroValue(Int8)) {
		t.Error("values of different types compare equal")
	}
	if IntValue(Int64, math.MinInt64).Int() != math.MinInt64 || UintValue(Uint64, math.MaxUint64).Uint() != math.MaxUint64 {
		t.Error("64-bit extremes do not come back")
	}
}

// Tags are held per tag for the life of the process: keep them small, and
// their rarely set keys shared.
func TestTagBuilder(t *testing.T) {
	if n := unsafe.Sizeof(Tag{}); n > 32 {
		t.Errorf("Tag is %d bytes, want at most 32", n)
	}
	var b TagBuilder
	s := 0.1
	a := b.Tag(&TagConfig{Name: "a", Unit: "bar", Scale: &s, Type: Int16})
	c := b.Tag(&TagConfig{Name: "c", Unit: "bar", Scale: &s, Type: Int16})
	d := b.Tag(&TagConfig{Name: "d", Type: Uint16})
	if a.meta != c.meta || a.Unit() != "bar" || !a.Scaled() {
		t.Errorf("tags with the same unit and scale do not share them: %+v %+v", a, c)
	}
	if sc, ok := a.Scale(); !ok || sc != 0.1 {
		t.Errorf("scale = %v, %v", sc, ok)
	}
	if _, ok := a.Offset(); ok {
		t.Error("offset set")
	}
	if d.meta != nil || d.Scaled() || d.Unit() != "" || d.Description() != "" {
		t.Errorf("plain tag = %+v", d)
	}
}

// Arrays keep the Sparkplug encoding: packed little-endian, bools as a
// count and bits most significant first, strings NUL-terminated.
func TestArrays(t *testing.T) {
	bools := make([]Value, 12)
	for i, b := range []bool{false, false, true, true, false, true, false, false, true, true, false, true} {
		bools[i] = BoolValue(b)
	}
	for _, c := range []struct {
		elem  Type
		elems []Value
		data  []byte
		text  string
	}{
		{Bool, bools, []byte{12, 0, 0, 0, 0x34, 0xD0}, "[false false true true false true false false true true false true]"},
		{Int8, []Value{IntValue(Int8, -1), IntValue(Int8, 5)}, []byte{0xff, 5}, "[-1 5]"},
		{Int16, []Value{IntValue(Int16, -2)}, []byte{0xfe, 0xff}, "[-2]"},
		{Uint32, []Value{UintValue(Uint32, 0x01020304)}, []byte{4, 3, 2, 1}, "[16909060]"},
		{Int64, []Value{IntValue(Int64, math.MinInt64)}, []byte{0, 0, 0, 0, 0, 0, 0, 0x80}, "[-9223372036854775808]"},
		{Float32, []Value{FloatValue(Float32, 1.5)}, []byte{0, 0, 0xc0, 0x3f}, "[1.5]"},
		{Float64, []Value{FloatValue(Float64, -2)}, []byte{0, 0, 0, 0, 0, 0, 0, 0xc0}, "[-2]"},
		{String, []Value{StringValue("ab"), StringValue("")}, []byte{'a', 'b', 0, 0}, `["ab" ""]`},
		{DateTime, []Value{TimeValueMs(1)}, []byte{1, 0, 0, 0, 0, 0, 0, 0}, "[1970-01-01T00:00:00.001Z]"},
		{Uint16, nil, nil, "[]"},
	} {
		v, err := Array(c.elem, c.elems)
		if err != nil {
			t.Fatalf("%s: %v", c.elem, err)
		}
		if v.Type() != ArrayOf(c.elem) || !v.Type().IsArray() || v.Type().Elem() != c.elem {
			t.Errorf("%s: type %s", c.elem, v.Type())
		}
		if string(v.Data()) != string(c.data) {
			t.Errorf("%s: packed % x, want % x", c.elem, v.Data(), c.data)
		}
		if v.Len() != len(c.elems) {
			t.Errorf("%s: Len %d, want %d", c.elem, v.Len(), len(c.elems))
		}
		for i, e := range c.elems {
			if got := v.Index(i); !got.Equal(e) {
				t.Errorf("%s: element %d = %v, want %v", c.elem, i, got, e)
			}
		}
		if v.String() != c.text {
			t.Errorf("%s: String %s, want %s", c.elem, v.String(), c.text)
		}
		again, err := PackedArray(v.Type(), append([]byte(nil), c.data...))
		if err != nil || !again.Equal(v) {
			t.Errorf("%s: PackedArray = %v, %v", c.elem, again, err)
		}
		if name := v.Type().String(); name != c.elem.String()+"_array" {
			t.Errorf("%s: name %q", c.elem, name)
		} else if pt, err := ParseType(name); err != nil || pt != v.Type() {
			t.Errorf("ParseType(%q) = %v, %v", name, pt, err)
		}
	}
	if _, err := PackedArray(ArrayOf(Int32), []byte{1, 2, 3}); err == nil {
		t.Error("3 bytes taken as int32 elements")
	}
	if _, err := PackedArray(ArrayOf(Bool), []byte{9, 0, 0, 0, 0}); err == nil {
		t.Error("9 bools in 1 byte of bits taken")
	}
	if _, err := PackedArray(ArrayOf(String), []byte{'a'}); err == nil {
		t.Error("an unterminated string taken")
	}
	if _, err := Array(String, []Value{StringValue("a\x00b")}); err == nil {
		t.Error("a NUL inside a string element taken")
	}
	for _, bad := range []string{"bytes_array", "int16_array_array", "array_int16", "int16[]"} {
		if _, err := ParseType(bad); err == nil {
			t.Errorf("ParseType(%q) took it", bad)
		}
	}
	b := BytesValue([]byte{1, 2})
	if b.Type() != Bytes || b.String() != "0x0102" || !b.Equal(BytesValue([]byte{1, 2})) || b.Equal(StringValue("\x01\x02")) {
		t.Errorf("bytes value %v", b)
	}
	if StringValue("").Equal(UintValue(Uint64, uint64(String)<<56)) {
		t.Error("an empty string equals a number")
	}
}
