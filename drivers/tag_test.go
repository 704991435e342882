package drivers

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unsafe"
)

func fp(f float64) *float64 { return &f }

// min and max go on writable numeric tags only, and min <= max; each
// mistake names its key.
func TestCheckLimits(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  TagConfig
		key  string // "" for valid
		err  string
	}{
		{"none", TagConfig{Type: String}, "", ""},
		{"both", TagConfig{Type: Int16, Writable: true, Min: fp(-5), Max: fp(100)}, "", ""},
		{"min alone", TagConfig{Type: Float32, Writable: true, Min: fp(0)}, "", ""},
		{"max alone", TagConfig{Type: Uint16, Writable: true, Max: fp(1500)}, "", ""},
		{"equal", TagConfig{Type: Int32, Writable: true, Min: fp(7), Max: fp(7)}, "", ""},
		{"type learned", TagConfig{Writable: true, Max: fp(10)}, "", ""},
		{"not writable", TagConfig{Type: Int16, Min: fp(0), Max: fp(10)}, "min", "is only for writable tags"},
		{"max not writable", TagConfig{Type: Int16, Max: fp(10)}, "max", "is only for writable tags"},
		{"bool", TagConfig{Type: Bool, Writable: true, Max: fp(1)}, "max", "applies to numbers, not bool"},
		{"string", TagConfig{Type: String, Writable: true, Min: fp(0)}, "min", "applies to numbers, not string"},
		{"reversed", TagConfig{Type: Float64, Writable: true, Min: fp(120), Max: fp(100)}, "min", "120 is above max 100"},
		{"nan", TagConfig{Type: Float64, Writable: true, Max: fp(math.NaN())}, "max", "is not a number"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.CheckLimits()
			if c.key == "" {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Key != c.key || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want %s: …%s…", err, c.key, c.err)
			}
		})
	}
}

// A tag keeps its limits behind the shared meta, and stays 32 bytes.
func TestTagLimits(t *testing.T) {
	var b TagBuilder
	a := b.Tag(&TagConfig{Name: "a", Type: Int16, Writable: true, Min: fp(-5), Max: fp(100)})
	c := b.Tag(&TagConfig{Name: "c", Type: Int16, Writable: true, Min: fp(-5), Max: fp(100)})
	if lo, ok := a.Min(); !ok || lo != -5 {
		t.Errorf("min = %v, %v", lo, ok)
	}
	if hi, ok := a.Max(); !ok || hi != 100 {
		t.Errorf("max = %v, %v", hi, ok)
	}
	if a.meta != c.meta {
		t.Error("tags with the same limits do not share them")
	}
	only := b.Tag(&TagConfig{Name: "o", Type: Int16, Writable: true, Max: fp(0)})
	if _, ok := only.Min(); ok {
		t.Error("a tag without min has one")
	}
	if hi, ok := only.Max(); !ok || hi != 0 {
		t.Errorf("max = %v, %v; want 0", hi, ok)
	}
	plain := b.Tag(&TagConfig{Name: "p", Type: Int16})
	if _, ok := plain.Max(); ok || plain.meta != nil {
		t.Error("a tag without limits has some")
	}
	if n := unsafe.Sizeof(plain); n != 32 && unsafe.Sizeof(uintptr(0)) == 8 {
		t.Errorf("Tag is %d bytes, want 32", n)
	}
}
