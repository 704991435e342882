package modbus

import (
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edgeagent/edgeagent/drivers"
)

var orders = []ByteOrder{ABCD, BADC, CDAB, DCBA}

// TestRegisters covers every type in every byte order, both ways. The
// registers are written as on the wire: 0x1122 is byte 0x11 then 0x22.
func TestRegisters(t *testing.T) {
	type regs = []uint16
	f32 := math.Float32bits(-123.456) // 0xC2F6E979
	f64 := math.Float64bits(1e300)    // 0x7E37E43C8800759C
	cases := []struct {
		typ    drivers.Type
		v      drivers.Value
		length uint16
		bit    uint8
		by     [4]regs // ABCD, BADC, CDAB, DCBA
	}{
		{typ: drivers.Int16, v: drivers.IntValue(drivers.Int16, -2),
			by: [4]regs{{0xFFFE}, {0xFEFF}, {0xFFFE}, {0xFEFF}}},
		{typ: drivers.Int16, v: drivers.IntValue(drivers.Int16, 0x1122),
			by: [4]regs{{0x1122}, {0x2211}, {0x1122}, {0x2211}}},
		{typ: drivers.Uint16, v: drivers.UintValue(drivers.Uint16, 0xABCD),
			by: [4]regs{{0xABCD}, {0xCDAB}, {0xABCD}, {0xCDAB}}},
		{typ: drivers.Int32, v: drivers.IntValue(drivers.Int32, 0x11223344),
			by: [4]regs{{0x1122, 0x3344}, {0x2211, 0x4433}, {0x3344, 0x1122}, {0x4433, 0x2211}}},
		{typ: drivers.Int32, v: drivers.IntValue(drivers.Int32, -2),
			by: [4]regs{{0xFFFF, 0xFFFE}, {0xFFFF, 0xFEFF}, {0xFFFE, 0xFFFF}, {0xFEFF, 0xFFFF}}},
		{typ: drivers.Uint32, v: drivers.UintValue(drivers.Uint32, 0xA1B2C3D4),
			by: [4]regs{{0xA1B2, 0xC3D4}, {0xB2A1, 0xD4C3}, {0xC3D4, 0xA1B2}, {0xD4C3, 0xB2A1}}},
		{typ: drivers.Float32, v: drivers.FloatValue(drivers.Float32, float64(float32(-123.456))),
			by: [4]regs{
				{uint16(f32 >> 16), uint16(f32)},
				{0xF6C2, 0x79E9},
				{uint16(f32), uint16(f32 >> 16)},
				{0x79E9, 0xF6C2},
			}},
		{typ: drivers.Float32, v: drivers.FloatValue(drivers.Float32, 1.5), // 0x3FC00000
			by: [4]regs{{0x3FC0, 0}, {0xC03F, 0}, {0, 0x3FC0}, {0, 0xC03F}}},
		{typ: drivers.Int64, v: drivers.IntValue(drivers.Int64, 0x1122334455667788),
			by: [4]regs{
				{0x1122, 0x3344, 0x5566, 0x7788},
				{0x2211, 0x4433, 0x6655, 0x8877},
				{0x7788, 0x5566, 0x3344, 0x1122},
				{0x8877, 0x6655, 0x4433, 0x2211},
			}},
		{typ: drivers.Int64, v: drivers.IntValue(drivers.Int64, math.MinInt64),
			by: [4]regs{{0x8000, 0, 0, 0}, {0x0080, 0, 0, 0}, {0, 0, 0, 0x8000}, {0, 0, 0, 0x0080}}},
		{typ: drivers.Uint64, v: drivers.UintValue(drivers.Uint64, 0xF1E2D3C4B5A69788),
			by: [4]regs{
				{0xF1E2, 0xD3C4, 0xB5A6, 0x9788},
				{0xE2F1, 0xC4D3, 0xA6B5, 0x8897},
				{0x9788, 0xB5A6, 0xD3C4, 0xF1E2},
				{0x8897, 0xA6B5, 0xC4D3, 0xE2F1},
			}},
		{typ: drivers.Float64, v: drivers.FloatValue(drivers.Float64, 1e300),
			by: [4]regs{
				{uint16(f64 >> 48), uint16(f64 >> 32), uint16(f64 >> 16), uint16(f64)},
				{0x377E, 0x3CE4, 0x0088, 0x9C75},
				{uint16(f64), uint16(f64 >> 16), uint16(f64 >> 32), uint16(f64 >> 48)},
				{0x9C75, 0x0088, 0x3CE4, 0x377E},
			}},
		{typ: drivers.Float64, v: drivers.FloatValue(drivers.Float64, math.Inf(-1)), // 0xFFF0000000000000
			by: [4]regs{{0xFFF0, 0, 0, 0}, {0xF0FF, 0, 0, 0}, {0, 0, 0, 0xFFF0}, {0, 0, 0, 0xF0FF}}},
		// Strings: byte swap applies, word order does not.
		{typ: drivers.String, length: 3, v: drivers.StringValue("ABC"),
			by: [4]regs{{0x4142, 0x4300, 0}, {0x4241, 0x0043, 0}, {0x4142, 0x4300, 0}, {0x4241, 0x0043, 0}}},
		{typ: drivers.String, length: 2, v: drivers.StringValue("WXYZ"),
			by: [4]regs{{0x5758, 0x595A}, {0x5857, 0x5A59}, {0x5758, 0x595A}, {0x5857, 0x5A59}}},
		{typ: drivers.String, length: 2, v: drivers.StringValue(""),
			by: [4]regs{{0, 0}, {0, 0}, {0, 0}, {0, 0}}},
		{typ: drivers.String, length: 1, v: drivers.StringValue("°C"), // ISO 8859-1 0xB0
			by: [4]regs{{0xB043}, {0x43B0}, {0xB043}, {0x43B0}}},
		// A bit in a register: byte order never applies.
		{typ: drivers.Bool, bit: 0, v: drivers.BoolValue(true),
			by: [4]regs{{0x0001}, {0x0001}, {0x0001}, {0x0001}}},
		{typ: drivers.Bool, bit: 15, v: drivers.BoolValue(true),
			by: [4]regs{{0x8000}, {0x8000}, {0x8000}, {0x8000}}},
		{typ: drivers.Bool, bit: 9, v: drivers.BoolValue(false),
			by: [4]regs{{0}, {0}, {0}, {0}}},
	}
	for _, c := range cases {
		for i, o := range orders {
			f := Format{Type: c.typ, Order: o, Length: c.length, Bit: c.bit}
			name := c.typ.String() + "/" + o.String() + "/" + c.v.String()
			got, err := DecodeRegisters(c.by[i], f)
			if err != nil || !got.Equal(c.v) {
				t.Errorf("%s: decode %04X = %v (%v), want %v", name, c.by[i], got, err, c.v)
			}
			enc := make([]uint16, len(c.by[i]))
			if err := EncodeRegisters(enc, c.v, f); err != nil || !slices.Equal(enc, c.by[i]) {
				t.Errorf("%s: encode = %04X (%v), want %04X", name, enc, err, c.by[i])
			}
		}
	}
}

func TestDecodeExtra(t *testing.T) {
	// extra registers are ignored
	v, err := DecodeRegisters([]uint16{0x0001, 0xFFFF}, Format{Type: drivers.Int16})
	if err != nil || v.Int() != 1 {
		t.Errorf("got %v, %v", v, err)
	}
	// a string ends at its first NUL even when bytes follow
	v, _ = DecodeRegisters([]uint16{0x4100, 0x4243}, Format{Type: drivers.String, Length: 2})
	if v.Str() != "A" {
		t.Errorf("string = %q", v.Str())
	}
	// a bit reads from the register's other bits untouched
	v, _ = DecodeRegisters([]uint16{0xFFF7}, Format{Type: drivers.Bool, Bit: 3})
	if v.Bool() {
		t.Errorf("bit 3 of FFF7 is set")
	}
	// bool encoding is read-modify-write
	regs := []uint16{0xF0F0}
	if err := EncodeRegisters(regs, drivers.BoolValue(true), Format{Type: drivers.Bool, Bit: 0}); err != nil || regs[0] != 0xF0F1 {
		t.Errorf("set bit 0 of F0F0 = %04X, %v", regs[0], err)
	}
	if err := EncodeRegisters(regs, drivers.BoolValue(false), Format{Type: drivers.Bool, Bit: 15}); err != nil || regs[0] != 0x70F1 {
		t.Errorf("clear bit 15 = %04X, %v", regs[0], err)
	}
}

func TestEncodingErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		regs int
		v    drivers.Value
		f    Format
		err  string
	}{
		{"short", 1, drivers.FloatValue(drivers.Float32, 1), Format{Type: drivers.Float32}, "too few registers"},
		{"type mismatch", 2, drivers.IntValue(drivers.Int32, 1), Format{Type: drivers.Float32}, "value of type int32 for a float32"},
		{"int16 overflow", 1, drivers.IntValue(drivers.Int16, 40000), Format{Type: drivers.Int16}, "overflows int16"},
		{"uint16 overflow", 1, drivers.UintValue(drivers.Uint16, 70000), Format{Type: drivers.Uint16}, "overflows uint16"},
		{"int32 overflow", 2, drivers.IntValue(drivers.Int32, 1<<40), Format{Type: drivers.Int32}, "overflows int32"},
		{"uint32 overflow", 2, drivers.UintValue(drivers.Uint32, 1<<40), Format{Type: drivers.Uint32}, "overflows uint32"},
		{"string long", 1, drivers.StringValue("abc"), Format{Type: drivers.String, Length: 1}, "does not fit 1 registers"},
		{"string charset", 2, drivers.StringValue("€"), Format{Type: drivers.String, Length: 2}, "not in ISO 8859-1"},
		{"string length 0", 2, drivers.StringValue(""), Format{Type: drivers.String}, "string length is 0"},
		{"bit", 1, drivers.BoolValue(true), Format{Type: drivers.Bool, Bit: 16}, "bit 16 is not in 0..15"},
		{"type", 1, drivers.IntValue(drivers.Int8, 1), Format{Type: drivers.Int8}, "int8 is not held in Modbus registers"},
	} {
		err := EncodeRegisters(make([]uint16, c.regs), c.v, c.f)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: encode error = %v, want %q", c.name, err, c.err)
		}
		if c.name == "type mismatch" || strings.Contains(c.name, "overflow") || c.name == "string long" || c.name == "string charset" {
			continue // encode-only errors
		}
		if _, err := DecodeRegisters(make([]uint16, c.regs), c.f); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: decode error = %v, want %q", c.name, err, c.err)
		}
	}
}

func TestParseByteOrder(t *testing.T) {
	for _, o := range orders {
		if got, err := ParseByteOrder(strings.ToLower(o.String())); err != nil || got != o {
			t.Errorf("ParseByteOrder(%q) = %v, %v", o, got, err)
		}
	}
	if _, err := ParseByteOrder("ABDC"); err == nil {
		t.Error("ABDC accepted")
	}
}

var fuzzTypes = []drivers.Type{drivers.Bool, drivers.Int16, drivers.Uint16, drivers.Int32, drivers.Uint32,
	drivers.Int64, drivers.Uint64, drivers.Float32, drivers.Float64, drivers.String, drivers.Int8, drivers.TypeInvalid}

// FuzzDecodeRegisters feeds arbitrary registers to every format: decoding
// must not panic, must give the format's type (strings valid UTF-8), and
// encoding the result must give the registers back.
func FuzzDecodeRegisters(f *testing.F) {
	f.Add([]byte{0x3F, 0xC0, 0, 0}, uint8(7), uint8(0), uint8(0), uint8(0))
	f.Add([]byte{0x41, 0x42, 0x43, 0x00, 0xB0, 0x20}, uint8(9), uint8(1), uint8(0), uint8(3))
	f.Add([]byte{0x7F, 0xF0, 0, 0, 0, 0, 0, 1}, uint8(8), uint8(3), uint8(0), uint8(0))
	f.Add([]byte{0x80, 0x01}, uint8(0), uint8(2), uint8(15), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, typ, order, bit, length uint8) {
		regs := make([]uint16, len(data)/2)
		for i := range regs {
			regs[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
		}
		fm := Format{Type: fuzzTypes[int(typ)%len(fuzzTypes)], Order: ByteOrder(order % 4), Bit: bit % 17, Length: uint16(length)}
		v, err := DecodeRegisters(regs, fm)
		if err != nil {
			return
		}
		if v.Type() != fm.Type {
			t.Fatalf("decoded %v as %v", fm.Type, v.Type())
		}
		n := fm.Registers()
		want := slices.Clone(regs[:n])
		got := slices.Clone(regs[:n]) // bools keep the other bits
		switch {
		case fm.Type == drivers.String:
			if !utf8.ValidString(v.Str()) {
				t.Fatalf("invalid UTF-8 %q", v.Str())
			}
			// Bytes after the first NUL are lost; the text must survive.
			clear(got)
			if err := EncodeRegisters(got, v, fm); err != nil {
				t.Fatalf("encode %q: %v", v.Str(), err)
			}
			if back, _ := DecodeRegisters(got, fm); !back.Equal(v) {
				t.Fatalf("string %q came back as %q", v.Str(), back.Str())
			}
			return
		case fm.Type.IsFloat() && math.IsNaN(v.Float()):
			return // float32 NaN payloads need not survive float64
		}
		clear(got[:n*boolToInt(fm.Type != drivers.Bool)])
		if err := EncodeRegisters(got, v, fm); err != nil {
			t.Fatalf("encode %v: %v", v, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%+v: %04X decoded to %v encodes to %04X", fm, want, v, got)
		}
	})
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
