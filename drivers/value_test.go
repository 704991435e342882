package drivers

import (
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
	if n := unsafe.Sizeof(Value{}); n > 24 {
		t.Errorf("Value is %d bytes, want at most 24", n)
	}
	if n := unsafe.Sizeof(Sample{}); n > 40 {
		t.Errorf("Sample is %d bytes, want at most 40", n)
	}
}
