package opcuatest

import (
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
)

// ValueRank values (Part 3, 5.6.2).
const (
	valueRankScalar       = -1
	valueRankOneDimension = 1
)

// namespace serves the Server's variables to one run of gopcua's server.
// gopcua's own NodeNameSpace swaps a node's value function on every write
// without a lock, so concurrent Set calls would race; this one reads and
// writes the Server's table under its mutex and checks writes for access
// and type.
type namespace struct {
	s       *Server
	id      uint16
	folders map[string]*server.Node // what gopcua's Objects folder browse looks up
}

var _ server.NameSpace = (*namespace)(nil)

func newNamespace(s *Server) *namespace {
	ns := &namespace{s: s, folders: map[string]*server.Node{}}
	for _, f := range folders() {
		ns.folders[f.name] = server.NewNode(
			ua.NewStringNodeID(nsIndex, f.name),
			server.Attributes{
				ua.AttributeIDNodeClass:   server.DataValueFromValue(uint32(ua.NodeClassObject)),
				ua.AttributeIDBrowseName:  server.DataValueFromValue(&ua.QualifiedName{NamespaceIndex: nsIndex, Name: f.name}),
				ua.AttributeIDDisplayName: server.DataValueFromValue(ua.NewLocalizedText(f.name)),
				// gopcua's Browse reports a target's DataType as its type definition.
				ua.AttributeIDDataType: server.DataValueFromValue(ua.NewNumericExpandedNodeID(0, f.typeDef)),
			},
			nil, nil)
	}
	return ns
}

func (ns *namespace) Name() string          { return namespaceURI }
func (ns *namespace) ID() uint16            { return ns.id }
func (ns *namespace) SetID(id uint16)       { ns.id = id }
func (ns *namespace) Objects() *server.Node { return nil } // unused by gopcua for namespaces > 0
func (ns *namespace) Root() *server.Node    { return nil } // unused by gopcua for namespaces > 0

// AddNode ignores n: the address space is the Server's table.
func (ns *namespace) AddNode(n *server.Node) *server.Node { return n }

// Node returns the folders, which gopcua looks up when it browses the
// Objects folder that references them; variables need no server.Node.
func (ns *namespace) Node(nid *ua.NodeID) *server.Node {
	name, ok := localName(nid)
	if !ok {
		return nil
	}
	return ns.folders[name]
}

// localName is the name in a node id of the simulator's namespace.
func localName(nid *ua.NodeID) (string, bool) {
	if nid == nil || nid.Namespace() != nsIndex || nid.Type() != ua.NodeIDTypeString {
		return "", false
	}
	return nid.StringID(), true
}

func badValue(code ua.StatusCode) *ua.DataValue {
	return &ua.DataValue{
		EncodingMask:    ua.DataValueStatusCode | ua.DataValueServerTimestamp,
		Status:          code,
		ServerTimestamp: time.Now(),
	}
}

func goodValue(v any) *ua.DataValue {
	return &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(v)}
}

// Attribute reads one attribute of a folder or variable.
func (ns *namespace) Attribute(nid *ua.NodeID, attr ua.AttributeID) *ua.DataValue {
	name, ok := localName(nid)
	if !ok {
		return badValue(ua.StatusBadNodeIDUnknown)
	}
	switch attr {
	case ua.AttributeIDNodeID:
		return goodValue(ua.NewStringNodeID(nsIndex, name))
	case ua.AttributeIDBrowseName:
		if ns.folders[name] != nil || ns.exists(name) {
			return goodValue(&ua.QualifiedName{NamespaceIndex: nsIndex, Name: name})
		}
	case ua.AttributeIDDisplayName:
		if ns.folders[name] != nil || ns.exists(name) {
			return goodValue(ua.NewLocalizedText(name))
		}
	case ua.AttributeIDDescription:
		if ns.folders[name] != nil || ns.exists(name) {
			return goodValue(&ua.LocalizedText{})
		}
	case ua.AttributeIDWriteMask, ua.AttributeIDUserWriteMask:
		if ns.folders[name] != nil || ns.exists(name) {
			return goodValue(uint32(0))
		}
	}
	if ns.folders[name] != nil {
		switch attr {
		case ua.AttributeIDNodeClass:
			return goodValue(int32(ua.NodeClassObject))
		case ua.AttributeIDEventNotifier:
			return goodValue(byte(0))
		}
		return badValue(ua.StatusBadAttributeIDInvalid)
	}

	ns.s.mu.RLock()
	defer ns.s.mu.RUnlock()
	v := ns.s.vars[name]
	if v == nil {
		return badValue(ua.StatusBadNodeIDUnknown)
	}
	switch attr {
	case ua.AttributeIDNodeClass:
		return goodValue(int32(ua.NodeClassVariable))
	case ua.AttributeIDValue:
		return v.dataValue(time.Now())
	case ua.AttributeIDDataType:
		return goodValue(v.dataTypeID())
	case ua.AttributeIDValueRank:
		if v.array {
			return goodValue(int32(valueRankOneDimension))
		}
		return goodValue(int32(valueRankScalar))
	case ua.AttributeIDArrayDimensions:
		if v.array {
			return goodValue([]uint32{0})
		}
		return &ua.DataValue{} // Good, null: scalars have no dimensions
	case ua.AttributeIDAccessLevel, ua.AttributeIDUserAccessLevel:
		return goodValue(v.accessLevel())
	case ua.AttributeIDAccessLevelEx:
		return goodValue(uint32(v.accessLevel()))
	case ua.AttributeIDMinimumSamplingInterval:
		return goodValue(float64(0))
	case ua.AttributeIDHistorizing:
		return goodValue(false)
	}
	return badValue(ua.StatusBadAttributeIDInvalid)
}

func (ns *namespace) exists(name string) bool {
	ns.s.mu.RLock()
	defer ns.s.mu.RUnlock()
	return ns.s.vars[name] != nil
}

// SetAttribute serves a client's write: only the Value of a writable
// variable, with a value of its type.
func (ns *namespace) SetAttribute(nid *ua.NodeID, attr ua.AttributeID, dv *ua.DataValue) ua.StatusCode {
	name, ok := localName(nid)
	switch {
	case !ok:
		return ua.StatusBadNodeIDUnknown
	case ns.folders[name] != nil:
		return ua.StatusBadNotWritable
	case dv == nil || dv.Value == nil:
		return ua.StatusBadTypeMismatch
	}
	val, t, array, err := toVariant(dv.Value.Value())
	s := ns.s
	s.mu.Lock()
	v := s.vars[name]
	switch {
	case v == nil:
		s.mu.Unlock()
		return ua.StatusBadNodeIDUnknown
	case attr != ua.AttributeIDValue || !v.writable:
		s.mu.Unlock()
		return ua.StatusBadNotWritable
	case err != nil || !v.accepts(t, array):
		s.mu.Unlock()
		return ua.StatusBadTypeMismatch
	}
	v.value, v.stamp = val, time.Now()
	s.mu.Unlock()
	s.record(Write{Name: name, Value: fromVariant(val)})
	s.notify(name)
	return ua.StatusOK
}

// Browse lists a folder's or variable's references: its type definition,
// a folder's variables and the inverse reference to its parent.
func (ns *namespace) Browse(bd *ua.BrowseDescription) *ua.BrowseResult {
	name, ok := localName(bd.NodeID)
	if !ok {
		return &ua.BrowseResult{StatusCode: ua.StatusBadNodeIDUnknown}
	}
	var refs []*ua.ReferenceDescription
	if f, ok := folderByName(name); ok {
		refs = append(refs,
			typeRef(f.typeDef, ua.NodeClassObjectType),
			&ua.ReferenceDescription{
				ReferenceTypeID: ua.NewNumericNodeID(0, id.Organizes),
				IsForward:       false,
				NodeID:          ua.NewNumericExpandedNodeID(0, id.ObjectsFolder),
				BrowseName:      &ua.QualifiedName{Name: "Objects"},
				DisplayName:     ua.NewLocalizedText("Objects"),
				NodeClass:       ua.NodeClassObject,
				TypeDefinition:  ua.NewNumericExpandedNodeID(0, id.FolderType),
			})
		ns.s.mu.RLock()
		children := ns.s.children[name]
		for _, child := range children {
			refs = append(refs, &ua.ReferenceDescription{
				ReferenceTypeID: ua.NewNumericNodeID(0, f.ref),
				IsForward:       true,
				NodeID:          ua.NewStringExpandedNodeID(nsIndex, child),
				BrowseName:      &ua.QualifiedName{NamespaceIndex: nsIndex, Name: child},
				DisplayName:     ua.NewLocalizedText(child),
				NodeClass:       ua.NodeClassVariable,
				TypeDefinition:  ua.NewNumericExpandedNodeID(0, id.BaseDataVariableType),
			})
		}
		ns.s.mu.RUnlock()
	} else {
		ns.s.mu.RLock()
		v := ns.s.vars[name]
		ns.s.mu.RUnlock()
		if v == nil {
			return &ua.BrowseResult{StatusCode: ua.StatusBadNodeIDUnknown}
		}
		parent, _ := folderByName(v.folder)
		refs = append(refs,
			typeRef(id.BaseDataVariableType, ua.NodeClassVariableType),
			&ua.ReferenceDescription{
				ReferenceTypeID: ua.NewNumericNodeID(0, parent.ref),
				IsForward:       false,
				NodeID:          ua.NewStringExpandedNodeID(nsIndex, parent.name),
				BrowseName:      &ua.QualifiedName{NamespaceIndex: nsIndex, Name: parent.name},
				DisplayName:     ua.NewLocalizedText(parent.name),
				NodeClass:       ua.NodeClassObject,
				TypeDefinition:  ua.NewNumericExpandedNodeID(0, parent.typeDef),
			})
	}
	kept := refs[:0]
	for _, r := range refs {
		if wantRef(bd, r) {
			kept = append(kept, r)
		}
	}
	return &ua.BrowseResult{StatusCode: ua.StatusGood, References: kept}
}

func folderByName(name string) (folder, bool) {
	for _, f := range folders() {
		if f.name == name {
			return f, true
		}
	}
	return folder{}, false
}

// typeRef is the HasTypeDefinition reference to a type in namespace 0.
func typeRef(typeID uint32, class ua.NodeClass) *ua.ReferenceDescription {
	name := map[uint32]string{
		id.FolderType:           "FolderType",
		id.BaseObjectType:       "BaseObjectType",
		id.BaseDataVariableType: "BaseDataVariableType",
	}[typeID]
	return &ua.ReferenceDescription{
		ReferenceTypeID: ua.NewNumericNodeID(0, id.HasTypeDefinition),
		IsForward:       true,
		NodeID:          ua.NewNumericExpandedNodeID(0, typeID),
		BrowseName:      &ua.QualifiedName{Name: name},
		DisplayName:     ua.NewLocalizedText(name),
		NodeClass:       class,
		TypeDefinition:  ua.NewTwoByteExpandedNodeID(0), // types have none; nil would not encode
	}
}

// wantRef applies a browse request's direction, reference type and node
// class filters.
func wantRef(bd *ua.BrowseDescription, r *ua.ReferenceDescription) bool {
	switch bd.BrowseDirection {
	case ua.BrowseDirectionForward:
		if !r.IsForward {
			return false
		}
	case ua.BrowseDirectionInverse:
		if r.IsForward {
			return false
		}
	}
	if bd.NodeClassMask != 0 && bd.NodeClassMask&uint32(r.NodeClass) == 0 {
		return false
	}
	want := bd.ReferenceTypeID
	if want == nil || (want.Namespace() == 0 && want.IntID() == 0) {
		return true
	}
	if want.Namespace() != 0 {
		return false
	}
	for t := r.ReferenceTypeID.IntID(); t != 0; t = superType(t) {
		if t == want.IntID() {
			return true
		}
		if !bd.IncludeSubtypes {
			return false
		}
	}
	return false
}

// superType is the parent of the reference types this namespace uses, in
// namespace 0's type hierarchy, or 0 at the top.
func superType(t uint32) uint32 {
	switch t {
	case id.Organizes, id.HasChild:
		return id.HierarchicalReferences
	case id.HasComponent:
		return id.Aggregates
	case id.Aggregates:
		return id.HasChild
	case id.HasTypeDefinition:
		return id.NonHierarchicalReferences
	case id.HierarchicalReferences, id.NonHierarchicalReferences:
		return id.References
	}
	return 0
}
