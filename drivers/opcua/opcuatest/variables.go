package opcuatest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// nsIndex is the simulator namespace's index: gopcua's server puts the OPC
// UA namespace at 0 and we add the server's own at 1 before ours.
const nsIndex = 2

// The folders under Objects that hold the variables.
const (
	folderTypes = "Types"
	folderPress = "Press"
	folderLoad  = "Load"
)

// folder describes one of the objects that organize the variables.
type folder struct {
	name    string
	typeDef uint32 // FolderType or BaseObjectType
	ref     uint32 // the reference to its variables: Organizes or HasComponent
}

// folders lists the folders in browse order.
func folders() []folder {
	return []folder{
		{folderTypes, id.FolderType, id.Organizes},
		{folderPress, id.BaseObjectType, id.HasComponent},
		{folderLoad, id.FolderType, id.Organizes},
	}
}

// isFolder reports whether name is one of the folders.
func isFolder(name string) bool {
	return name == folderTypes || name == folderPress || name == folderLoad
}

// variable is one variable node and its current value.
type variable struct {
	name     string
	folder   string
	dataType uint32    // the DataType attribute, in namespace 0; 0 means typeID's builtin type
	typeID   ua.TypeID // the value's builtin type; TypeIDVariant takes any scalar
	array    bool      // ValueRank 1 instead of scalar
	writable bool      // clients may write the value

	value  any // in the form ua.Variant holds (pointers for structured builtins)
	status ua.StatusCode
	stamp  time.Time // the source timestamp: the last change of value or status
}

// dataTypeID is the variable's DataType attribute.
func (v *variable) dataTypeID() *ua.NodeID {
	switch {
	case v.dataType != 0:
		return ua.NewNumericNodeID(0, v.dataType)
	case v.typeID == ua.TypeIDVariant:
		return ua.NewNumericNodeID(0, id.BaseDataType)
	}
	// Builtin type ids are their DataType node ids (Part 6, 5.1.2).
	return ua.NewNumericNodeID(0, uint32(v.typeID))
}

// typeName names the variable's type for error messages.
func (v *variable) typeName() string {
	s := v.typeID.String()
	if v.typeID == ua.TypeIDVariant {
		s = "BaseDataType"
	}
	if v.array {
		s += "[]"
	}
	return s
}

// accepts reports whether a value of builtin type t fits the variable.
func (v *variable) accepts(t ua.TypeID, array bool) bool {
	if v.typeID == ua.TypeIDVariant {
		return !array
	}
	return t == v.typeID && array == v.array
}

// accessLevel is the variable's AccessLevel and UserAccessLevel.
func (v *variable) accessLevel() byte {
	if v.writable {
		return byte(ua.AccessLevelTypeCurrentRead | ua.AccessLevelTypeCurrentWrite)
	}
	return byte(ua.AccessLevelTypeCurrentRead)
}

// dataValue is the variable's Value attribute: a Bad status carries no
// value (Part 4, 7.7.1).
func (v *variable) dataValue(now time.Time) *ua.DataValue {
	dv := &ua.DataValue{
		EncodingMask:    ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
		SourceTimestamp: v.stamp,
		ServerTimestamp: now,
	}
	if v.status != ua.StatusOK {
		dv.EncodingMask |= ua.DataValueStatusCode
		dv.Status = v.status
	}
	if v.status&0xC0000000 != 0x80000000 {
		dv.EncodingMask |= ua.DataValueValue
		dv.Value = ua.MustVariant(v.value)
	}
	return dv
}

// initVariables creates the fixed variables at their initial values.
func (s *Server) initVariables() {
	s.vars = map[string]*variable{}
	s.children = map[string][]string{}
	now := time.Now()
	add := func(folder, name string, t ua.TypeID, value any) *variable {
		v := &variable{name: name, folder: folder, typeID: t, stamp: now}
		var err error
		if v.value, _, v.array, err = toVariant(value); err != nil {
			panic(err) // the table below is wrong
		}
		s.addLocked(v)
		return v
	}
	add(folderTypes, "Bool", ua.TypeIDBoolean, true)
	add(folderTypes, "SByte", ua.TypeIDSByte, int8(-8))
	add(folderTypes, "Byte", ua.TypeIDByte, uint8(200))
	add(folderTypes, "Int16", ua.TypeIDInt16, int16(-1600))
	add(folderTypes, "UInt16", ua.TypeIDUint16, uint16(16000))
	add(folderTypes, "Int32", ua.TypeIDInt32, int32(-320000))
	add(folderTypes, "UInt32", ua.TypeIDUint32, uint32(3200000))
	add(folderTypes, "Int64", ua.TypeIDInt64, int64(-64000000000))
	add(folderTypes, "UInt64", ua.TypeIDUint64, uint64(18000000000000000000))
	add(folderTypes, "Float", ua.TypeIDFloat, float32(3.25))
	add(folderTypes, "Double", ua.TypeIDDouble, 2.718281828459045)
	add(folderTypes, "String", ua.TypeIDString, "hello, press 1")
	add(folderTypes, "DateTime", ua.TypeIDDateTime, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	add(folderTypes, "ByteString", ua.TypeIDByteString, []byte{0xde, 0xad, 0xbe, 0xef})
	add(folderTypes, "LocalizedText", ua.TypeIDLocalizedText, ua.LocalizedText{Locale: "en", Text: "Press 1"})
	add(folderTypes, "QualifiedName", ua.TypeIDQualifiedName, ua.QualifiedName{NamespaceIndex: nsIndex, Name: "Quality"})
	add(folderTypes, "Guid", ua.TypeIDGUID, ua.NewGUID("72962B91-FA75-4AE6-8D28-B404DC7DAF63"))
	add(folderTypes, "NodeId", ua.TypeIDNodeID, ua.NewNumericNodeID(0, id.Server))
	add(folderTypes, "Int32Array", ua.TypeIDInt32, []int32{1, -2, 3})
	add(folderTypes, "DoubleArray", ua.TypeIDDouble, []float64{0.5, 1.5, -2.5})
	add(folderTypes, "BooleanArray", ua.TypeIDBoolean, []bool{true, false, true})
	add(folderTypes, "StringArray", ua.TypeIDString, []string{"a", "b", "c"})
	add(folderTypes, "Enum", ua.TypeIDInt32, int32(ua.ServerStateRunning)).dataType = id.ServerState
	add(folderTypes, "Base", ua.TypeIDVariant, 1.5)
	add(folderTypes, "Struct", ua.TypeIDExtensionObject, ua.NewExtensionObject(&ua.Range{Low: 0, High: 100})).dataType = id.Range
	add(folderPress, "Counter", ua.TypeIDUint32, uint32(0))
	add(folderPress, "Sine", ua.TypeIDDouble, 0.0)
	add(folderPress, "Toggle", ua.TypeIDBoolean, false)
	add(folderPress, "Setpoint", ua.TypeIDInt32, int32(0)).writable = true
	add(folderPress, "SetpointDouble", ua.TypeIDDouble, 0.0).writable = true
}

// addLocked adds a variable to the address space; s.mu must be held (or
// the server not yet running).
func (s *Server) addLocked(v *variable) {
	s.vars[v.name] = v
	s.children[v.folder] = append(s.children[v.folder], v.name)
}

// toVariant converts a value of a type Set takes into the form ua.Variant
// holds, copied so the caller may reuse its own, and reports its builtin
// type and whether it is an array.
func toVariant(v any) (val any, t ua.TypeID, array bool, err error) {
	switch x := v.(type) {
	case bool:
		return x, ua.TypeIDBoolean, false, nil
	case int8:
		return x, ua.TypeIDSByte, false, nil
	case uint8:
		return x, ua.TypeIDByte, false, nil
	case int16:
		return x, ua.TypeIDInt16, false, nil
	case uint16:
		return x, ua.TypeIDUint16, false, nil
	case int32:
		return x, ua.TypeIDInt32, false, nil
	case uint32:
		return x, ua.TypeIDUint32, false, nil
	case int64:
		return x, ua.TypeIDInt64, false, nil
	case uint64:
		return x, ua.TypeIDUint64, false, nil
	case float32:
		return x, ua.TypeIDFloat, false, nil
	case float64:
		return x, ua.TypeIDDouble, false, nil
	case string:
		return x, ua.TypeIDString, false, nil
	case time.Time:
		return x, ua.TypeIDDateTime, false, nil
	case []byte:
		return bytes.Clone(x), ua.TypeIDByteString, false, nil
	case ua.LocalizedText:
		x.UpdateMask()
		return &x, ua.TypeIDLocalizedText, false, nil
	case *ua.LocalizedText:
		if x != nil {
			return toVariant(*x)
		}
	case ua.QualifiedName:
		return &x, ua.TypeIDQualifiedName, false, nil
	case *ua.QualifiedName:
		if x != nil {
			return toVariant(*x)
		}
	case ua.GUID:
		x.Data4 = bytes.Clone(x.Data4)
		return &x, ua.TypeIDGUID, false, nil
	case *ua.GUID:
		if x != nil {
			return toVariant(*x)
		}
	case *ua.NodeID:
		if x != nil {
			c := *x
			return &c, ua.TypeIDNodeID, false, nil
		}
	case *ua.ExtensionObject:
		if x != nil {
			c := *x
			return &c, ua.TypeIDExtensionObject, false, nil
		}
	case []int32:
		return slices.Clone(x), ua.TypeIDInt32, true, nil
	case []float64:
		return slices.Clone(x), ua.TypeIDDouble, true, nil
	case []bool:
		return slices.Clone(x), ua.TypeIDBoolean, true, nil
	case []string:
		return slices.Clone(x), ua.TypeIDString, true, nil
	default:
		return nil, 0, false, fmt.Errorf("unsupported value type %T", v)
	}
	return nil, 0, false, errors.New("nil value")
}

// fromVariant converts a stored value back into the type Set takes,
// copied so the caller cannot change the stored one.
func fromVariant(v any) any {
	switch x := v.(type) {
	case []byte:
		return bytes.Clone(x)
	case *ua.LocalizedText:
		return *x
	case *ua.QualifiedName:
		return *x
	case *ua.GUID:
		c := *x
		c.Data4 = bytes.Clone(x.Data4)
		return c
	case *ua.NodeID:
		c := *x
		return &c
	case *ua.ExtensionObject:
		c := *x
		return &c
	case []int32:
		return slices.Clone(x)
	case []float64:
		return slices.Clone(x)
	case []bool:
		return slices.Clone(x)
	case []string:
		return slices.Clone(x)
	}
	return v
}
