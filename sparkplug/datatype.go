package sparkplug

import "strconv"

// DataType is a Sparkplug B datatype; the numbers are the protocol's.
type DataType uint32

// Sparkplug B datatypes (Sparkplug 3.0 ch.6 §Data Types).
const (
	TypeUnknown DataType = iota
	TypeInt8
	TypeInt16
	TypeInt32
	TypeInt64
	TypeUInt8
	TypeUInt16
	TypeUInt32
	TypeUInt64
	TypeFloat
	TypeDouble
	TypeBoolean
	TypeString
	TypeDateTime // milliseconds since the Unix epoch, UTC
	TypeText
	TypeUUID
	TypeDataSet
	TypeBytes
	TypeFile
	TypeTemplate
	TypePropertySet     // PropertyValue only
	TypePropertySetList // PropertyValue only
	TypeInt8Array       // arrays travel in bytes_value, packed little-endian
	TypeInt16Array
	TypeInt32Array
	TypeInt64Array
	TypeUInt8Array
	TypeUInt16Array
	TypeUInt32Array
	TypeUInt64Array
	TypeFloatArray
	TypeDoubleArray
	TypeBooleanArray // 4-byte little-endian count, then bits MSB first
	TypeStringArray  // NUL-terminated UTF-8 strings
	TypeDateTimeArray
)

var typeNames = [...]string{
	"Unknown", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
	"Float", "Double", "Boolean", "String", "DateTime", "Text", "UUID", "DataSet", "Bytes",
	"File", "Template", "PropertySet", "PropertySetList",
	"Int8Array", "Int16Array", "Int32Array", "Int64Array", "UInt8Array", "UInt16Array",
	"UInt32Array", "UInt64Array", "FloatArray", "DoubleArray", "BooleanArray", "StringArray",
	"DateTimeArray",
}

// String returns the spec's name of the datatype, e.g. "Int32".
func (t DataType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "DataType(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// kind is the Metric value field that carries t; KindNone for TypeUnknown,
// the property-set types and numbers outside the enum.
func (t DataType) kind() ValueKind {
	switch {
	case t >= TypeInt8 && t <= TypeInt32, t >= TypeUInt8 && t <= TypeUInt32:
		return KindInt
	case t == TypeInt64, t == TypeUInt64, t == TypeDateTime:
		return KindLong
	case t == TypeFloat:
		return KindFloat
	case t == TypeDouble:
		return KindDouble
	case t == TypeBoolean:
		return KindBoolean
	case t == TypeString, t == TypeText, t == TypeUUID:
		return KindString
	case t == TypeBytes, t == TypeFile, t >= TypeInt8Array && t <= TypeDateTimeArray:
		return KindBytes
	case t == TypeDataSet:
		return KindDataSet
	case t == TypeTemplate:
		return KindTemplate
	}
	return KindNone
}

func (t DataType) signed() bool { return t >= TypeInt8 && t <= TypeInt64 }

// ValueKind names the protobuf field of Metric.value (or PropertyValue.value)
// a decoded value arrived in.
type ValueKind uint8

// Value kinds, in field order: Metric field number = 9 + kind.
const (
	KindNone      ValueKind = iota // no value field (absent or is_null)
	KindInt                        // int_value, uint32
	KindLong                       // long_value, uint64
	KindFloat                      // float_value
	KindDouble                     // double_value
	KindBoolean                    // boolean_value
	KindString                     // string_value
	KindBytes                      // bytes_value
	KindDataSet                    // dataset_value, serialised in Metric.Bytes
	KindTemplate                   // template_value, serialised in Metric.Bytes
	KindExtension                  // extension_value, serialised in Metric.Bytes
)

var kindNames = [...]string{
	"no value", "int_value", "long_value", "float_value", "double_value", "boolean_value",
	"string_value", "bytes_value", "dataset_value", "template_value", "extension_value",
}

// String returns the protobuf field name, e.g. "int_value".
func (k ValueKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "ValueKind(" + strconv.Itoa(int(k)) + ")"
}
