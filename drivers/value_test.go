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
