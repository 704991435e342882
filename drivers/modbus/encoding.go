package modbus

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"unicode/utf8"

	"github.com/edgeagent/edgeagent/drivers"
)

// ByteOrder is how a multi-register value is laid out, named by where the
// bytes A (most significant) to D of a 32-bit value sit on the wire.
// 64-bit values extend the pattern: ABCD is ABCDEFGH, BADC is BADCFEHG,
// CDAB is GHEFCDAB and DCBA is HGFEDCBA. For 16-bit values only the byte
// swap counts (CDAB reads like ABCD, DCBA like BADC); for strings likewise.
type ByteOrder uint8

// Byte orders. ABCD, the Modbus default, is the zero value.
const (
	ABCD ByteOrder = iota // big-endian: high word first, high byte first
	BADC                  // high word first, bytes swapped within each word
	CDAB                  // low word first, high byte first ("word swap")
	DCBA                  // little-endian: low word first, low byte first
)

var byteOrderNames = [...]string{ABCD: "ABCD", BADC: "BADC", CDAB: "CDAB", DCBA: "DCBA"}

func (o ByteOrder) String() string {
	if int(o) < len(byteOrderNames) {
		return byteOrderNames[o]
	}
	return fmt.Sprintf("ByteOrder(%d)", o)
}

// ParseByteOrder parses ABCD, BADC, CDAB or DCBA (case-insensitive).
func ParseByteOrder(s string) (ByteOrder, error) {
	for i, n := range byteOrderNames {
		if strings.EqualFold(s, n) {
			return ByteOrder(i), nil
		}
	}
	return ABCD, fmt.Errorf("%q is not one of ABCD, BADC, CDAB, DCBA", s)
}

func (o ByteOrder) swapBytes() bool { return o == BADC || o == DCBA }
func (o ByteOrder) swapWords() bool { return o == CDAB || o == DCBA }

// Format says how one value sits in 16-bit registers.
type Format struct {
	Type  drivers.Type
	Order ByteOrder
	// Bit selects one bit of a register for a Bool, 0 being the least
	// significant bit of the register as sent on the wire (byte order does
	// not apply).
	Bit uint8
	// Length is the size of a String in registers (two bytes each).
	Length uint16
}

// Registers is the number of registers the value occupies; 0 for a type
// Modbus registers cannot hold.
func (f Format) Registers() int {
	switch f.Type {
	case drivers.Bool, drivers.Int16, drivers.Uint16:
		return 1
	case drivers.Int32, drivers.Uint32, drivers.Float32:
		return 2
	case drivers.Int64, drivers.Uint64, drivers.Float64:
		return 4
	case drivers.String:
		return int(f.Length)
	}
	return 0
}

var errShort = errors.New("too few registers")

func (f Format) check(n int) error {
	want := f.Registers()
	switch {
	case want == 0 && f.Type == drivers.String:
		return errors.New("string length is 0")
	case want == 0:
		return fmt.Errorf("type %v is not held in Modbus registers", f.Type)
	case f.Type == drivers.Bool && f.Bit > 15:
		return fmt.Errorf("bit %d is not in 0..15", f.Bit)
	case n < want:
		return fmt.Errorf("%w: %v needs %d, have %d", errShort, f.Type, want, n)
	}
	return nil
}

// DecodeRegisters decodes a value laid out as f from the first
// f.Registers() of regs (register values as sent on the wire, i.e.
// big-endian). Strings are read as ISO 8859-1 (ASCII being a subset, so the
// result is always valid UTF-8) and end at the first NUL.
func DecodeRegisters(regs []uint16, f Format) (drivers.Value, error) {
	if err := f.check(len(regs)); err != nil {
		return drivers.Value{}, err
	}
	switch f.Type {
	case drivers.Bool:
		return drivers.BoolValue(regs[0]>>f.Bit&1 == 1), nil
	case drivers.String:
		return drivers.StringValue(decodeString(regs[:f.Length], f.Order)), nil
	}
	u := combine(regs[:f.Registers()], f.Order)
	switch f.Type {
	case drivers.Int16:
		return drivers.IntValue(f.Type, int64(int16(u))), nil
	case drivers.Uint16, drivers.Uint32, drivers.Uint64:
		return drivers.UintValue(f.Type, u), nil
	case drivers.Int32:
		return drivers.IntValue(f.Type, int64(int32(u))), nil
	case drivers.Int64:
		return drivers.IntValue(f.Type, int64(u)), nil
	case drivers.Float32:
		return drivers.FloatValue(f.Type, float64(math.Float32frombits(uint32(u)))), nil
	default: // Float64; check rejected everything else
		return drivers.FloatValue(f.Type, math.Float64frombits(u)), nil
	}
}

// EncodeRegisters writes v laid out as f into the first f.Registers() of
// regs. v must have type f.Type. A Bool only sets or clears its bit, leaving
// the rest of regs[0] as it was (read-modify-write). A String must fit in
// Length registers and hold only ISO 8859-1 characters; it is padded with NULs.
func EncodeRegisters(regs []uint16, v drivers.Value, f Format) error {
	if err := f.check(len(regs)); err != nil {
		return err
	}
	if v.Type() != f.Type {
		return fmt.Errorf("value of type %v for a %v", v.Type(), f.Type)
	}
	var u uint64
	switch f.Type {
	case drivers.Bool:
		if v.Bool() {
			regs[0] |= 1 << f.Bit
		} else {
			regs[0] &^= 1 << f.Bit
		}
		return nil
	case drivers.String:
		return encodeString(regs[:f.Length], v.Str(), f.Order)
	case drivers.Int16:
		if i := v.Int(); i != int64(int16(i)) {
			return fmt.Errorf("%d overflows int16", i)
		}
		u = uint64(uint16(v.Int()))
	case drivers.Uint16:
		if v.Uint() > math.MaxUint16 {
			return fmt.Errorf("%d overflows uint16", v.Uint())
		}
		u = v.Uint()
	case drivers.Int32:
		if i := v.Int(); i != int64(int32(i)) {
			return fmt.Errorf("%d overflows int32", i)
		}
		u = uint64(uint32(v.Int()))
	case drivers.Uint32:
		if v.Uint() > math.MaxUint32 {
			return fmt.Errorf("%d overflows uint32", v.Uint())
		}
		u = v.Uint()
	case drivers.Int64, drivers.Uint64:
		u = v.Uint()
	case drivers.Float32:
		u = uint64(math.Float32bits(float32(v.Float())))
	case drivers.Float64:
		u = math.Float64bits(v.Float())
	}
	split(regs[:f.Registers()], u, f.Order)
	return nil
}

// combine assembles registers into an integer, most significant word first.
func combine(regs []uint16, o ByteOrder) uint64 {
	var u uint64
	n := len(regs)
	for i := range n {
		w := regs[i]
		if o.swapWords() {
			w = regs[n-1-i]
		}
		if o.swapBytes() {
			w = bits.ReverseBytes16(w)
		}
		u = u<<16 | uint64(w)
	}
	return u
}

// split is the inverse of combine.
func split(regs []uint16, u uint64, o ByteOrder) {
	n := len(regs)
	for i := n - 1; i >= 0; i-- {
		w := uint16(u)
		u >>= 16
		if o.swapBytes() {
			w = bits.ReverseBytes16(w)
		}
		if o.swapWords() {
			regs[n-1-i] = w
		} else {
			regs[i] = w
		}
	}
}

func decodeString(regs []uint16, o ByteOrder) string {
	var stack [2 * 125]byte // a whole read request, so the usual case stays off the heap
	b := stack[:0]
	for _, w := range regs {
		if o.swapBytes() {
			w = bits.ReverseBytes16(w)
		}
		b = append(b, byte(w>>8), byte(w))
	}
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	ascii := true
	for _, c := range b {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return string(b)
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c) // ISO 8859-1 maps byte n to code point n
	}
	return string(r)
}

func encodeString(regs []uint16, s string, o ByteOrder) error {
	if utf8.RuneCountInString(s) > 2*len(regs) {
		return fmt.Errorf("string of %d characters does not fit %d registers", utf8.RuneCountInString(s), len(regs))
	}
	b := make([]byte, 2*len(regs))
	i := 0
	for _, r := range s {
		if r > 0xFF {
			return fmt.Errorf("character %q is not in ISO 8859-1", r)
		}
		b[i] = byte(r)
		i++
	}
	for j := range regs {
		w := uint16(b[2*j])<<8 | uint16(b[2*j+1])
		if o.swapBytes() {
			w = bits.ReverseBytes16(w)
		}
		regs[j] = w
	}
	return nil
}
