package drivers

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Array values keep their elements in Sparkplug B's encoding of arrays
// (the bytes_value of an Int8Array … DateTimeArray metric): numbers and
// datetimes packed little-endian at their width (float32 as IEEE 754
// single), bools as a 4-byte little-endian count followed by the bits,
// most significant first, and strings NUL-terminated.

// elemWidth is the packed width of a fixed-size element type.
func elemWidth(t Type) int {
	switch t {
	case Int8, Uint8:
		return 1
	case Int16, Uint16:
		return 2
	case Int32, Uint32, Float32:
		return 4
	case Int64, Uint64, Float64, DateTime:
		return 8
	}
	return 0
}

// Array packs elems, each converted to elem as its Float, Int or Uint
// would give, into an array value. A string element holding a NUL byte
// cannot be packed.
func Array(elem Type, elems []Value) (Value, error) {
	t := ArrayOf(elem)
	if t == TypeInvalid {
		return Value{}, fmt.Errorf("no arrays of %s", elem)
	}
	var b []byte
	switch elem {
	case Bool:
		b = make([]byte, 4, 4+(len(elems)+7)/8)
		binary.LittleEndian.PutUint32(b, uint32(len(elems)))
		var cur byte
		for i, e := range elems {
			if e.Bool() {
				cur |= 0x80 >> (i % 8)
			}
			if i%8 == 7 {
				b, cur = append(b, cur), 0
			}
		}
		if len(elems)%8 != 0 {
			b = append(b, cur)
		}
	case String:
		for _, e := range elems {
			s := e.Str()
			if e.Type() != String {
				s = e.String()
			}
			if bytes.IndexByte([]byte(s), 0) >= 0 {
				return Value{}, errors.New("a string element holds a NUL character, which a Sparkplug string array cannot carry")
			}
			b = append(append(b, s...), 0)
		}
	default:
		w := elemWidth(elem)
		b = make([]byte, 0, w*len(elems))
		for _, e := range elems {
			var u uint64
			switch {
			case elem == Float32:
				u = uint64(math.Float32bits(float32(e.Float())))
			case elem == Float64:
				u = math.Float64bits(e.Float())
			case elem.IsSigned() || elem == DateTime:
				u = uint64(e.Int())
			default:
				u = e.Uint()
			}
			b = binary.LittleEndian.AppendUint64(b, u)[:len(b)+w]
		}
	}
	return dataValue(t, b), nil
}

// arrayLen checks the encoding of an array of type t and counts its
// elements.
func arrayLen(t Type, b []byte) (int, error) {
	switch e := t.Elem(); e {
	case Bool:
		if len(b) < 4 {
			return 0, errors.New("a bool array shorter than its 4-byte count")
		}
		n := int(binary.LittleEndian.Uint32(b))
		if (n+7)/8 != len(b)-4 {
			return 0, fmt.Errorf("a bool array of %d elements in %d bytes of bits", n, len(b)-4)
		}
		return n, nil
	case String:
		if len(b) > 0 && b[len(b)-1] != 0 {
			return 0, errors.New("a string array whose last string is not NUL-terminated")
		}
		return bytes.Count(b, []byte{0}), nil
	default:
		w := elemWidth(e)
		if len(b)%w != 0 {
			return 0, fmt.Errorf("%d bytes are not whole elements of %d bytes", len(b), w)
		}
		return len(b) / w, nil
	}
}

// Len is the number of elements of an array value (0 for other types).
func (v Value) Len() int {
	t := v.Type()
	if !t.IsArray() {
		return 0
	}
	n, _ := arrayLen(t, v.Data())
	return n
}

// Index returns element i of an array value.
func (v Value) Index(i int) Value {
	t := v.Type()
	b := v.Data()
	switch e := t.Elem(); e {
	case Bool:
		return BoolValue(b[4+i/8]&(0x80>>(i%8)) != 0)
	case String:
		for k := 0; ; k++ {
			end := bytes.IndexByte(b, 0)
			if k == i {
				return StringValue(string(b[:end]))
			}
			b = b[end+1:]
		}
	default:
		w := elemWidth(e)
		var u uint64
		switch w {
		case 1:
			u = uint64(b[i])
		case 2:
			u = uint64(binary.LittleEndian.Uint16(b[2*i:]))
		case 4:
			u = uint64(binary.LittleEndian.Uint32(b[4*i:]))
		default:
			u = binary.LittleEndian.Uint64(b[8*i:])
		}
		switch {
		case e == Float32:
			return FloatValue(Float32, float64(math.Float32frombits(uint32(u))))
		case e == Float64:
			return FloatValue(Float64, math.Float64frombits(u))
		case e.IsSigned():
			shift := 64 - 8*w
			return IntValue(e, int64(u<<shift)>>shift)
		case e == DateTime:
			return TimeValueMs(int64(u))
		}
		return UintValue(e, u)
	}
}
