package scan

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/edgeagent/edgeagent/drivers"
)

// EngType is the type a tag is published as: scaled tags become Float64.
func EngType(t *drivers.Tag) drivers.Type {
	if t.Scaled() {
		return drivers.Float64
	}
	return t.Type
}

// scale applies scale and offset. A scale like 0.1 or 0.01 divides by its
// exact inverse instead, so 454 × 0.1 gives 45.4, not 45.400000000000006.
func scale(t *drivers.Tag, v float64) float64 {
	if s, ok := t.Scale(); ok {
		if inv := math.Round(1 / s); s != 0 && math.Abs(s) < 1 && inv != 0 && 1/inv == s {
			v /= inv
		} else {
			v *= s
		}
	}
	if o, ok := t.Offset(); ok {
		v += o
	}
	return v
}

// ToRaw converts an engineering value back to the tag's raw type, undoing
// scale and offset and checking the tag's limits (min, max) and the raw
// type's range. It is what a write sends.
func ToRaw(t *drivers.Tag, v drivers.Value) (drivers.Value, error) {
	if err := checkLimits(t, v); err != nil {
		return drivers.Value{}, err
	}
	if !t.Scaled() && v.Type() == t.Type {
		return v, nil
	}
	switch {
	case t.Type == drivers.Bool:
		if v.Type() != drivers.Bool {
			return drivers.Value{}, fmt.Errorf("want a boolean, got %s", v.Type())
		}
		return v, nil
	case t.Type == drivers.String, t.Type == drivers.Bytes, t.Type.IsArray():
		// Never converted: a host writes these as the birth declared them.
		return drivers.Value{}, fmt.Errorf("want %s, got %s", t.Type, v.Type())
	case !v.Type().IsNumeric():
		return drivers.Value{}, fmt.Errorf("want a number, got %s", v.Type())
	}
	f := v.Float()
	if o, ok := t.Offset(); ok {
		f -= o
	}
	if s, ok := t.Scale(); ok {
		if s == 0 {
			return drivers.Value{}, errors.New("scale is 0")
		}
		f /= s
	}
	if t.Type.IsFloat() {
		return drivers.FloatValue(t.Type, f), nil
	}
	f = math.Round(f)
	lo, hi := intRange(t.Type)
	if math.IsNaN(f) || f < lo || f > hi {
		return drivers.Value{}, fmt.Errorf("%v is out of range for %s", v, t.Type)
	}
	if t.Type.IsSigned() {
		return drivers.IntValue(t.Type, int64(f)), nil
	}
	return drivers.UintValue(t.Type, uint64(f)), nil
}

// checkLimits refuses a value below the tag's min or above its max, both
// in engineering units; with either set, the value must be a number.
func checkLimits(t *drivers.Tag, v drivers.Value) error {
	lo, hasLo := t.Min()
	hi, hasHi := t.Max()
	if !hasLo && !hasHi {
		return nil
	}
	if !v.Type().IsNumeric() {
		return fmt.Errorf("want a number (the tag has limits), got %s", v.Type())
	}
	switch f := v.Float(); {
	case math.IsNaN(f):
		return &LimitError{Value: v}
	case hasLo && f < lo:
		return &LimitError{Value: v, Limit: lo}
	case hasHi && f > hi:
		return &LimitError{Value: v, Limit: hi, Above: true}
	}
	return nil
}

// LimitError refuses a write outside a tag's min or max. It wraps
// ErrOutsideLimits.
type LimitError struct {
	Value drivers.Value // as written, in engineering units
	Limit float64       // the min or max it crossed
	Above bool          // true: above max; false: below min (or NaN)
}

func (e *LimitError) Error() string {
	f := e.Value.Float()
	switch {
	case math.IsNaN(f):
		return "value NaN is outside the tag's limits"
	case e.Above:
		return fmt.Sprintf("value %s is above the tag's max %s", e.Value, strconv.FormatFloat(e.Limit, 'g', -1, 64))
	}
	return fmt.Sprintf("value %s is below the tag's min %s", e.Value, strconv.FormatFloat(e.Limit, 'g', -1, 64))
}

func (e *LimitError) Unwrap() error { return ErrOutsideLimits }

func intRange(t drivers.Type) (float64, float64) {
	switch t {
	case drivers.Int8:
		return math.MinInt8, math.MaxInt8
	case drivers.Int16:
		return math.MinInt16, math.MaxInt16
	case drivers.Int32:
		return math.MinInt32, math.MaxInt32
	case drivers.Int64:
		return math.MinInt64, math.MaxInt64
	case drivers.Uint8:
		return 0, math.MaxUint8
	case drivers.Uint16:
		return 0, math.MaxUint16
	case drivers.Uint32:
		return 0, math.MaxUint32
	case drivers.Uint64:
		return 0, math.MaxUint64
	}
	return 0, 0
}
