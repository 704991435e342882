package opcua

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/edgeagent/edgeagent/drivers"
)

// wire is how a node's value travels: its builtin type and whether it is
// a one-dimensional array. Values are converted from it to the tag's type
// and, for writes, back.
type wire struct {
	builtin ua.TypeID // 0: not known (the node could not be read)
	array   bool
}

// Builtin DataType ids (namespace 0) that are abstract or special.
const (
	dtStructure   = 22
	dtDataValue   = 23
	dtBaseData    = 24
	dtDiagnostic  = 25
	dtNumber      = 26
	dtInteger     = 27
	dtUInteger    = 28
	dtEnumeration = 29
)

// knownSubtypes are namespace-0 DataTypes derived from a builtin type
// that servers use often, so the common cases need no browse of the type
// hierarchy.
var knownSubtypes = map[uint32]uint32{
	288: 7,             // IntegerId: UInt32
	289: 7,             // Counter: UInt32
	290: 11,            // Duration: Double
	291: 12,            // NumericRange: String
	292: 12,            // Time: String
	293: 13,            // Date: DateTime
	294: 13,            // UtcTime: DateTime
	295: 12,            // LocaleId: String
	311: 15,            // ApplicationInstanceCertificate: ByteString
	852: dtEnumeration, // ServerState
}

// errFromValue means a DataType says too little (BaseDataType, Number, an
// array of any rank): the type is taken from the value.
var errFromValue = errors.New("the type comes from the value")

// typeOfBuiltin maps a builtin type (1..25, or Enumeration) to the type
// its values are published as.
func typeOfBuiltin(b uint32) (drivers.Type, error) {
	switch b {
	case 1:
		return drivers.Bool, nil
	case 2:
		return drivers.Int8, nil
	case 3:
		return drivers.Uint8, nil
	case 4:
		return drivers.Int16, nil
	case 5:
		return drivers.Uint16, nil
	case 6, dtEnumeration:
		return drivers.Int32, nil
	case 7, 19: // UInt32, StatusCode
		return drivers.Uint32, nil
	case 8:
		return drivers.Int64, nil
	case 9:
		return drivers.Uint64, nil
	case 10:
		return drivers.Float32, nil
	case 11:
		return drivers.Float64, nil
	case 12, 14, 16, 17, 18, 20, 21: // String, Guid, XmlElement, NodeId, ExpandedNodeId, QualifiedName, LocalizedText
		return drivers.String, nil
	case 13:
		return drivers.DateTime, nil
	case 15:
		return drivers.Bytes, nil
	case dtBaseData, dtNumber, dtInteger, dtUInteger:
		return drivers.TypeInvalid, errFromValue
	case dtStructure, 0:
		return drivers.TypeInvalid, errors.New("is a structure (an ExtensionObject), which edgeagent does not publish; read its fields, each a variable, instead")
	case dtDataValue:
		return drivers.TypeInvalid, errors.New("is a DataValue, which edgeagent does not publish")
	case dtDiagnostic:
		return drivers.TypeInvalid, errors.New("is a DiagnosticInfo, which edgeagent does not publish")
	}
	return drivers.TypeInvalid, fmt.Errorf("is builtin type %d, which edgeagent does not know", b)
}

// wireOfBuiltin is the variant type values of builtin DataType b travel
// as (an enumeration as Int32).
func wireOfBuiltin(b uint32) ua.TypeID {
	if b == dtEnumeration {
		return ua.TypeIDInt32
	}
	return ua.TypeID(b)
}

// typeOfVariant is the type a value that arrived as v is published as.
func typeOfVariant(v *ua.Variant) (drivers.Type, wire, error) {
	if v == nil || v.Value() == nil {
		return drivers.TypeInvalid, wire{}, errors.New("has no value to take its type from")
	}
	w := wire{builtin: v.Type(), array: v.Has(ua.VariantArrayValues)}
	if len(v.ArrayDimensions()) > 1 {
		return drivers.TypeInvalid, w, fmt.Errorf("holds a %d-dimensional array; edgeagent publishes one-dimensional ones", len(v.ArrayDimensions()))
	}
	t, err := typeOfBuiltin(uint32(v.Type()))
	if err != nil {
		return t, w, err
	}
	if w.array {
		at := drivers.ArrayOf(t)
		if at == drivers.TypeInvalid {
			return at, w, fmt.Errorf("holds an array of %s, which Sparkplug has no type for", t)
		}
		t = at
	}
	return t, w, nil
}

// quality maps an OPC UA status to a sample's quality by its severity.
// Uncertain values (the last usable value, a sensor out of calibration)
// are kept but published as stale, Sparkplug's 500: never as good, and
// not dropped as bad would be.
func quality(s ua.StatusCode) drivers.Quality {
	switch uint32(s) >> 30 {
	case 0:
		return drivers.QualityGood
	case 1:
		return drivers.QualityStale
	}
	return drivers.QualityBad
}

// sampleTime is a value's acquisition time: the source timestamp, else the
// server's, else now.
func sampleTime(dv *ua.DataValue, now int64) int64 {
	switch {
	case dv.Has(ua.DataValueSourceTimestamp) && !dv.SourceTimestamp.IsZero():
		return dv.SourceTimestamp.UnixMilli()
	case dv.Has(ua.DataValueServerTimestamp) && !dv.ServerTimestamp.IsZero():
		return dv.ServerTimestamp.UnixMilli()
	}
	return now
}

// errTypeChanged means a value arrived as another builtin type than the
// node had at connect: the node changed, and the device must learn it
// again (a reconnect) rather than publish it as something else.
var errTypeChanged = errors.New("the node's value changed its type")

// toValue converts a value that arrived as v to type t.
func toValue(v *ua.Variant, t drivers.Type) (drivers.Value, error) {
	if v == nil || v.Value() == nil {
		return drivers.Value{}, errors.New("no value")
	}
	if t.IsArray() {
		rv := reflect.ValueOf(v.Value())
		if rv.Kind() != reflect.Slice || v.Type() == ua.TypeIDByteString && !v.Has(ua.VariantArrayValues) {
			return drivers.Value{}, fmt.Errorf("%w: a scalar where an array was", errTypeChanged)
		}
		elems := make([]drivers.Value, rv.Len())
		for i := range elems {
			e, err := scalarValue(rv.Index(i).Interface(), t.Elem())
			if err != nil {
				return drivers.Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			elems[i] = e
		}
		return drivers.Array(t.Elem(), elems)
	}
	if v.Has(ua.VariantArrayValues) {
		return drivers.Value{}, fmt.Errorf("%w: an array where a scalar was", errTypeChanged)
	}
	return scalarValue(v.Value(), t)
}

// scalarValue converts one value as gopcua decodes it to type t. Numbers
// convert between numeric types when they fit (a tag may be configured as
// another width than its node); anything else must match.
func scalarValue(x any, t drivers.Type) (drivers.Value, error) {
	switch x := x.(type) {
	case bool:
		if t == drivers.Bool {
			return drivers.BoolValue(x), nil
		}
		if t.IsNumeric() {
			n := int64(0)
			if x {
				n = 1
			}
			return fitInt(t, n)
		}
	case int8:
		return fitInt(t, int64(x))
	case int16:
		return fitInt(t, int64(x))
	case int32:
		return fitInt(t, int64(x))
	case int64:
		return fitInt(t, x)
	case uint8:
		return fitUint(t, uint64(x))
	case uint16:
		return fitUint(t, uint64(x))
	case uint32:
		return fitUint(t, uint64(x))
	case uint64:
		return fitUint(t, x)
	case ua.StatusCode:
		return fitUint(t, uint64(x))
	case float32:
		return fitFloat(t, float64(x))
	case float64:
		return fitFloat(t, x)
	case string:
		if t == drivers.String {
			return drivers.StringValue(x), nil
		}
	case ua.XMLElement:
		if t == drivers.String {
			return drivers.StringValue(string(x)), nil
		}
	case *ua.LocalizedText:
		if t == drivers.String && x != nil {
			return drivers.StringValue(x.Text), nil
		}
	case *ua.QualifiedName:
		if t == drivers.String && x != nil {
			if x.NamespaceIndex == 0 {
				return drivers.StringValue(x.Name), nil
			}
			return drivers.StringValue(strconv.Itoa(int(x.NamespaceIndex)) + ":" + x.Name), nil
		}
	case *ua.GUID:
		if t == drivers.String && x != nil {
			return drivers.StringValue(x.String()), nil
		}
	case *ua.NodeID:
		if t == drivers.String && x != nil {
			return drivers.StringValue(x.String()), nil
		}
	case *ua.ExpandedNodeID:
		if t == drivers.String && x != nil {
			return drivers.StringValue(x.String()), nil
		}
	case time.Time:
		if t == drivers.DateTime {
			return drivers.TimeValue(x), nil
		}
	case []byte:
		if t == drivers.Bytes {
			return drivers.BytesValue(x), nil
		}
	case *ua.ExtensionObject:
		return drivers.Value{}, fmt.Errorf("%w: a structure arrived", errTypeChanged)
	}
	return drivers.Value{}, fmt.Errorf("%w: %T is not %s", errTypeChanged, x, t)
}

func fitInt(t drivers.Type, n int64) (drivers.Value, error) {
	switch {
	case t.IsSigned():
		lo, hi := intRange(t)
		if n < lo || n > hi {
			return drivers.Value{}, fmt.Errorf("%d is out of range for %s", n, t)
		}
		return drivers.IntValue(t, n), nil
	case t.IsUnsigned():
		if n < 0 {
			return drivers.Value{}, fmt.Errorf("%d is out of range for %s", n, t)
		}
		return fitUint(t, uint64(n))
	case t.IsFloat():
		return drivers.FloatValue(t, float64(n)), nil
	case t == drivers.Bool:
		return drivers.BoolValue(n != 0), nil
	}
	return drivers.Value{}, fmt.Errorf("%w: a number is not %s", errTypeChanged, t)
}

func fitUint(t drivers.Type, n uint64) (drivers.Value, error) {
	switch {
	case t.IsUnsigned():
		if n > uintMax(t) {
			return drivers.Value{}, fmt.Errorf("%d is out of range for %s", n, t)
		}
		return drivers.UintValue(t, n), nil
	case t.IsSigned():
		if n > math.MaxInt64 {
			return drivers.Value{}, fmt.Errorf("%d is out of range for %s", n, t)
		}
		return fitInt(t, int64(n))
	case t.IsFloat():
		return drivers.FloatValue(t, float64(n)), nil
	case t == drivers.Bool:
		return drivers.BoolValue(n != 0), nil
	}
	return drivers.Value{}, fmt.Errorf("%w: a number is not %s", errTypeChanged, t)
}

func fitFloat(t drivers.Type, f float64) (drivers.Value, error) {
	switch {
	case t.IsFloat():
		return drivers.FloatValue(t, f), nil
	case t.IsSigned() || t.IsUnsigned():
		if f != math.Trunc(f) || math.IsNaN(f) {
			return drivers.Value{}, fmt.Errorf("%v is not a whole number for %s", f, t)
		}
		if t.IsSigned() {
			if f < math.MinInt64 || f >= math.MaxInt64 {
				return drivers.Value{}, fmt.Errorf("%v is out of range for %s", f, t)
			}
			return fitInt(t, int64(f))
		}
		if f < 0 || f >= math.MaxUint64 {
			return drivers.Value{}, fmt.Errorf("%v is out of range for %s", f, t)
		}
		return fitUint(t, uint64(f))
	case t == drivers.Bool:
		return drivers.BoolValue(f != 0), nil
	}
	return drivers.Value{}, fmt.Errorf("%w: a number is not %s", errTypeChanged, t)
}

func intRange(t drivers.Type) (int64, int64) {
	switch t {
	case drivers.Int8:
		return math.MinInt8, math.MaxInt8
	case drivers.Int16:
		return math.MinInt16, math.MaxInt16
	case drivers.Int32:
		return math.MinInt32, math.MaxInt32
	}
	return math.MinInt64, math.MaxInt64
}

func uintMax(t drivers.Type) uint64 {
	switch t {
	case drivers.Uint8:
		return math.MaxUint8
	case drivers.Uint16:
		return math.MaxUint16
	case drivers.Uint32:
		return math.MaxUint32
	}
	return math.MaxUint64
}

// toVariant converts a value to write into what the node holds: its
// builtin type, as an array if it is one.
func toVariant(v drivers.Value, w wire) (*ua.Variant, error) {
	if w.builtin == 0 {
		return nil, errors.New("the node's type is not known (it could not be read at connect)")
	}
	if w.array {
		if !v.Type().IsArray() {
			return nil, fmt.Errorf("the node holds an array; %s is not one", v.Type())
		}
		et, ok := goType(w.builtin)
		if !ok {
			return nil, fmt.Errorf("cannot write arrays of builtin type %d", w.builtin)
		}
		s := reflect.MakeSlice(reflect.SliceOf(et), v.Len(), v.Len())
		for i := range v.Len() {
			x, err := wireScalar(v.Index(i), w.builtin)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			s.Index(i).Set(reflect.ValueOf(x))
		}
		return ua.NewVariant(s.Interface())
	}
	x, err := wireScalar(v, w.builtin)
	if err != nil {
		return nil, err
	}
	return ua.NewVariant(x)
}

// goType is the Go type gopcua encodes builtin type b from.
func goType(b ua.TypeID) (reflect.Type, bool) {
	t, ok := goTypes[b]
	return t, ok
}

var goTypes = map[ua.TypeID]reflect.Type{
	ua.TypeIDBoolean: reflect.TypeFor[bool](), ua.TypeIDSByte: reflect.TypeFor[int8](), ua.TypeIDByte: reflect.TypeFor[uint8](),
	ua.TypeIDInt16: reflect.TypeFor[int16](), ua.TypeIDUint16: reflect.TypeFor[uint16](),
	ua.TypeIDInt32: reflect.TypeFor[int32](), ua.TypeIDUint32: reflect.TypeFor[uint32](),
	ua.TypeIDInt64: reflect.TypeFor[int64](), ua.TypeIDUint64: reflect.TypeFor[uint64](),
	ua.TypeIDFloat: reflect.TypeFor[float32](), ua.TypeIDDouble: reflect.TypeFor[float64](),
	ua.TypeIDString: reflect.TypeFor[string](), ua.TypeIDDateTime: reflect.TypeFor[time.Time](),
	ua.TypeIDLocalizedText: reflect.TypeFor[*ua.LocalizedText](), ua.TypeIDByteString: reflect.TypeFor[[]byte](),
}

// wireScalar converts one value to the Go value gopcua encodes as builtin
// type b, checking the range.
func wireScalar(v drivers.Value, b ua.TypeID) (any, error) {
	vt := v.Type()
	num := vt.IsNumeric() || vt == drivers.Bool
	asInt := func(lo, hi int64) (int64, error) {
		if !num {
			return 0, fmt.Errorf("want a number, got %s", vt)
		}
		var n int64
		switch {
		case vt.IsFloat():
			f := v.Float()
			if f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
				return 0, fmt.Errorf("%v does not fit", f)
			}
			n = int64(f)
		case vt.IsUnsigned():
			if v.Uint() > uint64(hi) {
				return 0, fmt.Errorf("%d does not fit", v.Uint())
			}
			n = int64(v.Uint())
		default:
			n = v.Int()
		}
		if n < lo || n > hi {
			return 0, fmt.Errorf("%d does not fit", n)
		}
		return n, nil
	}
	asUint := func(hi uint64) (uint64, error) {
		if !num {
			return 0, fmt.Errorf("want a number, got %s", vt)
		}
		switch {
		case vt.IsFloat():
			f := v.Float()
			if f != math.Trunc(f) || f < 0 || f > float64(hi) {
				return 0, fmt.Errorf("%v does not fit", f)
			}
			return uint64(f), nil
		case vt.IsSigned() && v.Int() < 0:
			return 0, fmt.Errorf("%d does not fit", v.Int())
		case v.Uint() > hi:
			return 0, fmt.Errorf("%d does not fit", v.Uint())
		}
		return v.Uint(), nil
	}
	var x any
	var err error
	switch b {
	case ua.TypeIDBoolean:
		if vt != drivers.Bool {
			return nil, fmt.Errorf("want a boolean, got %s", vt)
		}
		x = v.Bool()
	case ua.TypeIDSByte:
		var n int64
		n, err = asInt(math.MinInt8, math.MaxInt8)
		x = int8(n)
	case ua.TypeIDInt16:
		var n int64
		n, err = asInt(math.MinInt16, math.MaxInt16)
		x = int16(n)
	case ua.TypeIDInt32:
		var n int64
		n, err = asInt(math.MinInt32, math.MaxInt32)
		x = int32(n)
	case ua.TypeIDInt64:
		x, err = asInt(math.MinInt64, math.MaxInt64)
	case ua.TypeIDByte:
		var n uint64
		n, err = asUint(math.MaxUint8)
		x = uint8(n)
	case ua.TypeIDUint16:
		var n uint64
		n, err = asUint(math.MaxUint16)
		x = uint16(n)
	case ua.TypeIDUint32:
		var n uint64
		n, err = asUint(math.MaxUint32)
		x = uint32(n)
	case ua.TypeIDUint64:
		x, err = asUint(math.MaxUint64)
	case ua.TypeIDFloat:
		if !num {
			return nil, fmt.Errorf("want a number, got %s", vt)
		}
		x = float32(v.Float())
	case ua.TypeIDDouble:
		if !num {
			return nil, fmt.Errorf("want a number, got %s", vt)
		}
		x = v.Float()
	case ua.TypeIDString:
		if vt != drivers.String {
			return nil, fmt.Errorf("want a string, got %s", vt)
		}
		x = v.Str()
	case ua.TypeIDLocalizedText:
		if vt != drivers.String {
			return nil, fmt.Errorf("want a string, got %s", vt)
		}
		x = &ua.LocalizedText{EncodingMask: ua.LocalizedTextText, Text: v.Str()}
	case ua.TypeIDDateTime:
		if vt != drivers.DateTime {
			return nil, fmt.Errorf("want a datetime, got %s", vt)
		}
		x = v.Time()
	case ua.TypeIDByteString:
		if vt != drivers.Bytes {
			return nil, fmt.Errorf("want bytes, got %s", vt)
		}
		x = append([]byte(nil), v.Data()...)
	default:
		return nil, fmt.Errorf("writing builtin type %d is not supported", b)
	}
	return x, err
}
