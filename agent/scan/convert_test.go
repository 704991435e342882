package scan

import (
	"testing"

	"github.com/edgeagent/edgeagent/drivers"
)

func tagOf(scale, offset *float64, typ drivers.Type) drivers.Tag {
	var b drivers.TagBuilder
	return b.Tag(&drivers.TagConfig{Scale: scale, Offset: offset, Type: typ})
}

func TestScale(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		scale, offset *float64
		raw, want     float64
	}{
		{f(0.1), nil, 454, 45.4},
		{f(0.01), nil, 5798, 57.98},
		{f(0.1), f(-40), 650, 25},
		{f(2.5), nil, 4, 10},
		{f(-0.5), nil, 4, -2},
		{nil, f(1), 1, 2},
	} {
		tag := tagOf(c.scale, c.offset, drivers.Int16)
		if got := scale(&tag, c.raw); got != c.want {
			t.Errorf("scale(%v) = %v, want %v", c.raw, got, c.want)
		}
	}
}

func TestToRaw(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	scaled := tagOf(f(0.1), f(-40), drivers.Int16)
	if v, err := ToRaw(&scaled, drivers.FloatValue(drivers.Float64, 25)); err != nil || v.Type() != drivers.Int16 || v.Int() != 650 {
		t.Errorf("ToRaw(25) = %v (%v), %v; want int16 650", v, v.Type(), err)
	}
	if _, err := ToRaw(&scaled, drivers.FloatValue(drivers.Float64, 1e6)); err == nil {
		t.Error("out of range accepted")
	}
	plain := tagOf(nil, nil, drivers.Uint16)
	if v, err := ToRaw(&plain, drivers.IntValue(drivers.Int64, 7)); err != nil || v.Type() != drivers.Uint16 || v.Uint() != 7 {
		t.Errorf("ToRaw(7) = %v, %v", v, err)
	}
	if _, err := ToRaw(&plain, drivers.StringValue("x")); err == nil {
		t.Error("a string accepted for a number")
	}
	zero := tagOf(f(0), nil, drivers.Int16)
	if _, err := ToRaw(&zero, drivers.FloatValue(drivers.Float64, 1)); err == nil {
		t.Error("a write through a zero scale accepted")
	}
}
