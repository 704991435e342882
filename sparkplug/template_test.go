package sparkplug

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/edgeagent/edgeagent/sparkplug/sparkplugpb"
)

// paramCases is a parameter of every scalar type and the value field it
// travels in.
var paramCases = []struct {
	p    Parameter
	wire any // a pb.Payload_Template_Parameter_*Value, nil for none
}{
	{Parameter{Name: "i8", Type: TypeInt8, Int: i64(-1)}, &pb.Payload_Template_Parameter_IntValue{IntValue: 0xFFFFFFFF}},
	{Parameter{Name: "i16", Type: TypeInt16, Int: i64(math.MinInt16)}, &pb.Payload_Template_Parameter_IntValue{IntValue: 0xFFFF8000}},
	{Parameter{Name: "i32", Type: TypeInt32, Int: i64(math.MinInt32)}, &pb.Payload_Template_Parameter_IntValue{IntValue: 0x80000000}},
	{Parameter{Name: "i64", Type: TypeInt64, Int: i64(-9)}, &pb.Payload_Template_Parameter_LongValue{LongValue: i64(-9)}},
	{Parameter{Name: "u8", Type: TypeUInt8, Int: math.MaxUint8}, &pb.Payload_Template_Parameter_IntValue{IntValue: 255}},
	{Parameter{Name: "u16", Type: TypeUInt16, Int: math.MaxUint16}, &pb.Payload_Template_Parameter_IntValue{IntValue: 65535}},
	{Parameter{Name: "u32", Type: TypeUInt32, Int: math.MaxUint32}, &pb.Payload_Template_Parameter_IntValue{IntValue: math.MaxUint32}},
	{Parameter{Name: "u64", Type: TypeUInt64, Int: math.MaxUint64}, &pb.Payload_Template_Parameter_LongValue{LongValue: math.MaxUint64}},
	{Parameter{Name: "f", Type: TypeFloat, Float: -1.5}, &pb.Payload_Template_Parameter_FloatValue{FloatValue: -1.5}},
	{Parameter{Name: "d", Type: TypeDouble, Float: 0.1}, &pb.Payload_Template_Parameter_DoubleValue{DoubleValue: 0.1}},
	{Parameter{Name: "on", Type: TypeBoolean, Bool: true}, &pb.Payload_Template_Parameter_BooleanValue{BooleanValue: true}},
	{Parameter{Name: "off", Type: TypeBoolean}, &pb.Payload_Template_Parameter_BooleanValue{BooleanValue: false}},
	{Parameter{Name: "line", Type: TypeString, Str: "Line ☃"}, &pb.Payload_Template_Parameter_StringValue{StringValue: "Line ☃"}},
	{Parameter{Name: "since", Type: TypeDateTime, Int: 1700000000000}, &pb.Payload_Template_Parameter_LongValue{LongValue: 1700000000000}},
	{Parameter{Name: "note", Type: TypeText, Str: longText}, &pb.Payload_Template_Parameter_StringValue{StringValue: longText}},
	{Parameter{Name: "id", Type: TypeUUID, Str: "0f8fad5b-d9cb-469f-a165-70867728950e"}, &pb.Payload_Template_Parameter_StringValue{StringValue: "0f8fad5b-d9cb-469f-a165-70867728950e"}},
	{Parameter{Name: "nodefault", Type: TypeInt32, Null: true}, nil},
}

// memberMetrics is valueCases as template members: every datatype,
// arrays, a DataSet, a nested Motor instance and nulls, each uniquely named
// and without alias. The first carries an engUnit property; the last has no
// timestamp.
func memberMetrics() []Metric {
	ms := caseMetrics()
	for i := range ms {
		ms[i].Name += string(rune('0' + i/26))
		ms[i].Alias, ms[i].HasAlias = 0, false
	}
	ms[0].Properties = []Property{{Key: "engUnit", Type: TypeString, Str: "bar"}}
	ms[len(ms)-1].Timestamp = 0
	return ms
}

func pressDefinition() *Template {
	t := &Template{Version: "1.2", IsDefinition: true, Metrics: memberMetrics()}
	for _, c := range paramCases {
		t.Parameters = append(t.Parameters, c.p)
	}
	return t
}

// wireTemplate is what the generated types should see for pressDefinition
// turned into an instance (ref != "") or left a definition.
func wireTemplate(t *Template) *pb.Payload_Template {
	w := &pb.Payload_Template{IsDefinition: proto.Bool(t.IsDefinition)}
	if t.Version != "" {
		w.Version = proto.String(t.Version)
	}
	if t.Ref != "" {
		w.TemplateRef = proto.String(t.Ref)
	}
	ms := memberMetrics()
	for i, c := range valueCases {
		m := wireMetric(ms[i], c.wire, modeMember)
		if ms[i].Timestamp == 0 {
			m.Timestamp = nil
		}
		w.Metrics = append(w.Metrics, m)
	}
	w.Metrics[0].Properties = &pb.Payload_PropertySet{Keys: []string{"engUnit"}, Values: []*pb.Payload_PropertyValue{
		{Type: proto.Uint32(uint32(TypeString)), Value: &pb.Payload_PropertyValue_StringValue{StringValue: "bar"}},
	}}
	for _, c := range paramCases {
		p := &pb.Payload_Template_Parameter{Name: proto.String(c.p.Name), Type: proto.Uint32(uint32(c.p.Type))}
		if c.wire != nil {
			reflect.ValueOf(p).Elem().FieldByName("Value").Set(reflect.ValueOf(c.wire))
		}
		w.Parameters = append(w.Parameters, p)
	}
	return w
}

// decodedTemplate is what DecodeTemplate should return for t.
func decodedTemplate(t *Template) *Template {
	d := *t
	d.Metrics = make([]Metric, len(t.Metrics))
	for i, m := range t.Metrics {
		d.Metrics[i] = decoded(m)
	}
	return &d
}

func templateEqual(t *testing.T, what string, got, want *Template) {
	t.Helper()
	if got.Version != want.Version || got.Ref != want.Ref || got.IsDefinition != want.IsDefinition {
		t.Errorf("%s: version, ref, is_definition = %q, %q, %v; want %q, %q, %v",
			what, got.Version, got.Ref, got.IsDefinition, want.Version, want.Ref, want.IsDefinition)
	}
	if len(got.Metrics) != len(want.Metrics) {
		t.Errorf("%s: %d members, want %d", what, len(got.Metrics), len(want.Metrics))
	} else {
		for i := range want.Metrics {
			if !metricEqual(got.Metrics[i], want.Metrics[i]) {
				t.Errorf("%s: member %d:\n got %+v\nwant %+v", what, i, got.Metrics[i], want.Metrics[i])
			}
		}
	}
	if !reflect.DeepEqual(got.Parameters, want.Parameters) {
		t.Errorf("%s: parameters:\n got %+v\nwant %+v", what, got.Parameters, want.Parameters)
	}
}

// TestTemplateWire checks AppendTemplate field for field against the
// generated types, and byte for byte against proto.Marshal.
func TestTemplateWire(t *testing.T) {
	def := pressDefinition()
	inst := pressDefinition()
	inst.IsDefinition, inst.Ref, inst.Version = false, "Press", ""
	for _, tc := range []struct {
		name string
		t    *Template
	}{{"definition", def}, {"instance", inst}} {
		b := AppendTemplate(nil, tc.t)
		var got pb.Payload_Template
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: generated types reject our template: %v", tc.name, err)
		}
		want := wireTemplate(tc.t)
		for i := range want.Metrics {
			if !proto.Equal(got.Metrics[i], want.Metrics[i]) {
				t.Errorf("%s: member %d on the wire:\n got %v\nwant %v", tc.name, i, got.Metrics[i], want.Metrics[i])
			}
		}
		for i := range want.Parameters {
			if !proto.Equal(got.Parameters[i], want.Parameters[i]) {
				t.Errorf("%s: parameter %d on the wire:\n got %v\nwant %v", tc.name, i, got.Parameters[i], want.Parameters[i])
			}
		}
		if got.IsDefinition == nil || *got.IsDefinition != tc.t.IsDefinition {
			t.Errorf("%s: is_definition = %v, want present and %v", tc.name, got.IsDefinition, tc.t.IsDefinition)
		}
		if (got.TemplateRef != nil) != (tc.t.Ref != "") {
			t.Errorf("%s: template_ref = %v", tc.name, got.TemplateRef)
		}
		if ref := mustMarshal(t, want); !bytes.Equal(b, ref) {
			t.Errorf("%s: encoding differs from proto.Marshal:\n got %x\nwant %x", tc.name, b, ref)
		}
	}

	// The encoder writes what it is given: an instance without a ref has
	// none, and an empty template is only is_definition=false.
	if got := AppendTemplate(nil, &Template{}); !bytes.Equal(got, []byte{0x28, 0}) {
		t.Errorf("empty template = %x, want 2800", got)
	}
	// Members never carry an alias, and carry their datatype.
	b := AppendTemplate(nil, &Template{Ref: "X", Metrics: []Metric{{Name: "m", Alias: 7, HasAlias: true, Type: TypeInt32, Int: 1}}})
	var got pb.Payload_Template
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if m := got.Metrics[0]; m.Alias != nil || m.GetName() != "m" || m.Datatype == nil || m.GetDatatype() != 3 || m.Timestamp != nil {
		t.Errorf("aliased member on the wire: %v", m)
	}
}

// TestTemplateInPayloads publishes a definition in an NBIRTH, an instance
// with all members in a DBIRTH and one with a subset in a DDATA, and reads
// them back with Decode and DecodeTemplate, and with the generated types.
func TestTemplateInPayloads(t *testing.T) {
	def := pressDefinition()
	inst := pressDefinition()
	inst.IsDefinition, inst.Ref, inst.Version = false, "Press", ""
	inst.Parameters = inst.Parameters[12:13] // the instance's own "line"
	inst.Parameters[0].Str = "Line 2"
	change := &Template{Ref: "Press", Metrics: []Metric{
		{Name: "speed", Timestamp: 1700000000500, Type: TypeDouble, Float: 1.5},
		{Name: "running", Timestamp: 1700000000500, Type: TypeBoolean, Int: 1},
		{Name: "count", Timestamp: 1700000000500, Type: TypeInt32, Null: true},
	}}
	for _, tc := range []struct {
		name    string
		tmpl    *Template
		payload func(m Metric) []byte
		birth   bool
	}{
		{"NBIRTH definition", def, func(m Metric) []byte {
			return AppendBirth(nil, 1700000000001, 0, []Metric{BdSeqMetric(1, 1700000000001), m})
		}, true},
		{"DBIRTH instance", inst, func(m Metric) []byte {
			return AppendBirth(nil, 1700000000002, 1, []Metric{m})
		}, true},
		{"DDATA subset", change, func(m Metric) []byte {
			return AppendData(nil, 1700000000600, 2, []Metric{m})
		}, false},
	} {
		if err := tc.tmpl.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", tc.name, err)
		}
		tb := AppendTemplate(nil, tc.tmpl)
		m := Metric{Name: "Press", Alias: 10, HasAlias: true, Timestamp: 1700000000003, Type: TypeTemplate, Bytes: tb}
		b := tc.payload(m)

		// The generated types see a template_value.
		wire := unmarshal(t, b)
		pm := wire.Metrics[len(wire.Metrics)-1]
		tv, ok := pm.Value.(*pb.Payload_Metric_TemplateValue)
		if !ok {
			t.Fatalf("%s: value on the wire is %T", tc.name, pm.Value)
		}
		if tb2 := mustMarshal(t, tv.TemplateValue); !bytes.Equal(tb2, tb) {
			t.Errorf("%s: template re-marshalled by protobuf differs:\n got %x\nwant %x", tc.name, tb2, tb)
		}
		if tc.tmpl == def || tc.tmpl == inst {
			w := wireTemplate(tc.tmpl)
			if tc.tmpl == inst {
				w.Parameters = []*pb.Payload_Template_Parameter{{Name: proto.String("line"), Type: proto.Uint32(12),
					Value: &pb.Payload_Template_Parameter_StringValue{StringValue: "Line 2"}}}
			}
			if !proto.Equal(tv.TemplateValue, w) {
				t.Errorf("%s: template on the wire:\n got %v\nwant %v", tc.name, tv.TemplateValue, w)
			}
		}
		if (pm.Datatype != nil) != tc.birth {
			t.Errorf("%s: template metric datatype = %v", tc.name, pm.Datatype)
		}
		for i, mm := range tv.TemplateValue.Metrics {
			if mm.Datatype == nil || mm.Name == nil || mm.Alias != nil {
				t.Errorf("%s: member %d: datatype %v, name %v, alias %v", tc.name, i, mm.Datatype, mm.Name, mm.Alias)
			}
		}

		// Decode carries the bytes unchanged; DecodeTemplate gives back
		// what went in.
		p, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := p.Metrics[len(p.Metrics)-1]
		wantType := TypeTemplate
		if !tc.birth {
			wantType = TypeUnknown
		}
		if got.Type != wantType || got.Kind != KindTemplate || !bytes.Equal(got.Bytes, tb) {
			t.Errorf("%s: decoded metric Type %v, Kind %v, bytes equal %v", tc.name, got.Type, got.Kind, bytes.Equal(got.Bytes, tb))
		}
		dt, err := DecodeTemplate(got.Bytes)
		if err != nil {
			t.Fatalf("%s: DecodeTemplate: %v", tc.name, err)
		}
		templateEqual(t, tc.name, dt, decodedTemplate(tc.tmpl))
		if err := dt.Validate(); err != nil {
			t.Errorf("%s: decoded template does not validate: %v", tc.name, err)
		}
	}

	// A nested template member comes back as bytes, for DecodeTemplate.
	motor := memberMetrics()[len(valueCases)-3] // valueCases' Template case
	if motor.Type != TypeTemplate {
		t.Fatalf("member %q is %v", motor.Name, motor.Type)
	}
	nested, err := DecodeTemplate(motor.Bytes)
	if err != nil || nested.Ref != "Motor" || nested.IsDefinition || len(nested.Metrics) != 1 ||
		nested.Metrics[0].Name != "rpm" || nested.Metrics[0].Type != TypeFloat || nested.Metrics[0].Float != 1 {
		t.Errorf("nested template = %+v, %v", nested, err)
	}
}

func TestDecodeTemplateLenient(t *testing.T) {
	in := &pb.Payload_Template{
		TemplateRef: proto.String("X"), // no is_definition: false
		Metrics: []*pb.Payload_Metric{
			{Name: proto.String("raw"), Value: &pb.Payload_Metric_IntValue{IntValue: 0xFFFFFFFF}},
			{Name: proto.String("u32"), Datatype: proto.Uint32(7), Value: &pb.Payload_Metric_LongValue{LongValue: 9}},
		},
		Parameters: []*pb.Payload_Template_Parameter{
			{Name: proto.String("u32"), Type: proto.Uint32(7), Value: &pb.Payload_Template_Parameter_LongValue{LongValue: math.MaxUint32}}, // tahu
			{Name: proto.String("i8"), Type: proto.Uint32(1), Value: &pb.Payload_Template_Parameter_IntValue{IntValue: 0xFB}},
			{Name: proto.String("f"), Type: proto.Uint32(9), Value: &pb.Payload_Template_Parameter_DoubleValue{DoubleValue: 0.1}},
			{Name: proto.String("none"), Type: proto.Uint32(12)},
		},
	}
	got, err := DecodeTemplate(mustMarshal(t, in))
	if err != nil {
		t.Fatal(err)
	}
	want := &Template{Ref: "X",
		Metrics: []Metric{
			{Name: "raw", Kind: KindInt, Int: math.MaxUint32},
			{Name: "u32", Type: TypeUInt32, Kind: KindLong, Int: 9},
		},
		Parameters: []Parameter{
			{Name: "u32", Type: TypeUInt32, Int: math.MaxUint32},
			{Name: "i8", Type: TypeInt8, Int: i64(-5)},
			{Name: "f", Type: TypeFloat, Float: float64(float32(0.1))},
			{Name: "none", Type: TypeString, Null: true},
		},
	}
	templateEqual(t, "lenient", got, want)
	if got, err := DecodeTemplate(nil); err != nil || !reflect.DeepEqual(got, &Template{}) {
		t.Errorf("DecodeTemplate(nil) = %+v, %v", got, err)
	}
}

func TestDecodeTemplateErrors(t *testing.T) {
	param := func(p *pb.Payload_Template_Parameter) []byte {
		return mustMarshal(t, &pb.Payload_Template{TemplateRef: proto.String("X"), Parameters: []*pb.Payload_Template_Parameter{p}})
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
		is   error
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}, "decoding sparkplug template: ", nil},
		{"truncated", AppendTemplate(nil, pressDefinition())[:100], "decoding sparkplug template: ", nil},
		{"member value mismatch",
			mustMarshal(t, &pb.Payload_Template{TemplateRef: proto.String("X"), Metrics: []*pb.Payload_Metric{
				{Name: proto.String("m"), Datatype: proto.Uint32(3), Value: &pb.Payload_Metric_StringValue{StringValue: "1"}}}}),
			`decoding sparkplug template "X": member 0 ("m"): value does not match datatype: Int32 in string_value`, ErrTypeMismatch},
		{"parameter without type",
			param(&pb.Payload_Template_Parameter{Name: proto.String("p"), Value: &pb.Payload_Template_Parameter_IntValue{}}),
			`decoding sparkplug template "X": parameter 0 ("p"): value does not match datatype: no type`, ErrTypeMismatch},
		{"parameter of a non-scalar type",
			param(&pb.Payload_Template_Parameter{Name: proto.String("p"), Type: proto.Uint32(19)}),
			"Template parameters are not supported", ErrTypeMismatch},
		{"parameter out of range",
			param(&pb.Payload_Template_Parameter{Name: proto.String("p"), Type: proto.Uint32(5), Value: &pb.Payload_Template_Parameter_IntValue{IntValue: 256}}),
			"UInt8 cannot hold int_value 256", ErrTypeMismatch},
		{"parameter in the wrong field",
			param(&pb.Payload_Template_Parameter{Name: proto.String("p"), Type: proto.Uint32(11), Value: &pb.Payload_Template_Parameter_StringValue{}}),
			"Boolean in string_value", ErrTypeMismatch},
		{"parameter extension",
			param(&pb.Payload_Template_Parameter{Name: proto.String("p"), Type: proto.Uint32(3),
				Value: &pb.Payload_Template_Parameter_ExtensionValue{ExtensionValue: &pb.Payload_Template_Parameter_ParameterValueExtension{}}}),
			"parameter extensions are not supported", ErrTypeMismatch},
	} {
		_, err := DecodeTemplate(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: error = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// nestedTemplate returns n instances of "L", each the only member of the
// next.
func nestedTemplate(n int) *Template {
	t := &Template{Ref: "L"}
	for i := 1; i < n; i++ {
		t = &Template{Ref: "L", Metrics: []Metric{{Name: "n", Type: TypeTemplate, Bytes: AppendTemplate(nil, t)}}}
	}
	return t
}

func TestTemplateValidate(t *testing.T) {
	inst := func(ms ...Metric) *Template { return &Template{Ref: "Motor", Metrics: ms} }
	i32 := func(name string) Metric { return Metric{Name: name, Type: TypeInt32} }
	tmpl := func(t *Template) Metric {
		return Metric{Name: "sub", Type: TypeTemplate, Bytes: AppendTemplate(nil, t)}
	}
	for _, tc := range []struct {
		name string
		t    *Template
		want string // "" valid
	}{
		{"definition", pressDefinition(), ""},
		{"instance", inst(i32("a"), i32("b")), ""},
		{"instance without members (DATA with nothing changed)", inst(), ""},
		{"nested instance", inst(tmpl(inst(i32("a")))), ""},
		{"32 levels", nestedTemplate(32), ""},
		{"33 levels", nestedTemplate(33), "templates nested more than 32 deep"},
		{"null nested template", inst(Metric{Name: "sub", Type: TypeTemplate, Null: true}), ""},
		{"definition with template_ref", &Template{IsDefinition: true, Ref: "Motor"}, `definition has template_ref "Motor"; a definition must omit it`},
		{"instance without template_ref", &Template{Metrics: []Metric{i32("a")}}, "instance has no template_ref"},
		{"template_ref not UTF-8", &Template{Ref: "\xff"}, "is not UTF-8"},
		{"version not UTF-8", &Template{Ref: "X", Version: "\xff"}, "is not UTF-8"},
		{"member without name", inst(i32("a"), i32("")), `instance of "Motor" member 1 (""): no name`},
		{"member name not UTF-8", inst(i32("\xff")), "name is not UTF-8"},
		{"duplicate member", inst(i32("a"), i32("b"), i32("a")), `instance of "Motor" member 2 ("a"): duplicate name`},
		{"aliased member", inst(Metric{Name: "a", Alias: 1, HasAlias: true, Type: TypeInt32}), "members have no alias"},
		{"member without datatype", inst(Metric{Name: "a", Kind: KindInt}), "Unknown is not a member datatype"},
		{"PropertySet member", inst(Metric{Name: "a", Type: TypePropertySet}), "PropertySet is not a member datatype"},
		{"nested garbage", inst(Metric{Name: "sub", Type: TypeTemplate, Bytes: []byte{0xff}}), `member 0 ("sub"): decoding sparkplug template`},
		{"nested definition", inst(tmpl(&Template{IsDefinition: true})), "a nested template must be an instance"},
		{"nested instance without ref", inst(tmpl(&Template{})), `instance of "Motor" member 0 ("sub"): instance has no template_ref`},
		{"nested bad member", inst(tmpl(inst(i32("")))), `instance of "Motor" member 0 ("sub"): instance of "Motor" member 0 (""): no name`},
		{"parameter without name", &Template{IsDefinition: true, Parameters: []Parameter{{Type: TypeInt32}}}, `definition parameter 0 (""): no name`},
		{"parameter name not UTF-8", &Template{IsDefinition: true, Parameters: []Parameter{{Name: "\xff", Type: TypeInt32}}}, "name is not UTF-8"},
		{"duplicate parameter", &Template{IsDefinition: true, Parameters: []Parameter{{Name: "p", Type: TypeInt32}, {Name: "p", Type: TypeString}}},
			`definition parameter 1 ("p"): duplicate name`},
		{"parameter and member may share a name", &Template{IsDefinition: true, Metrics: []Metric{i32("p")}, Parameters: []Parameter{{Name: "p", Type: TypeInt32}}}, ""},
		{"Bytes parameter", &Template{IsDefinition: true, Parameters: []Parameter{{Name: "p", Type: TypeBytes}}}, "Bytes is not a parameter datatype"},
		{"untyped parameter", &Template{IsDefinition: true, Parameters: []Parameter{{Name: "p", Null: true}}}, "Unknown is not a parameter datatype"},
	} {
		err := tc.t.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrInvalidTemplate) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestTemplateValueString(t *testing.T) {
	motor := AppendTemplate(nil, &Template{Ref: "Motor", Metrics: []Metric{{Name: "rpm", Type: TypeUInt16, Int: 1500}}})
	press := AppendTemplate(nil, &Template{Ref: "Press",
		Parameters: []Parameter{{Name: "line", Type: TypeString, Str: "A"}, {Name: "on", Type: TypeBoolean, Bool: true}, {Name: "n", Type: TypeInt8, Null: true}},
		Metrics: []Metric{
			{Name: "speed", Type: TypeDouble, Float: 1.5},
			{Name: "count", Type: TypeInt32, Int: i64(-12)},
			{Name: "fault", Type: TypeString, Null: true},
			{Name: "motor", Type: TypeTemplate, Bytes: motor},
		}})
	def := AppendTemplate(nil, &Template{IsDefinition: true, Metrics: []Metric{{Name: "rpm", Type: TypeUInt16}}})
	for _, tc := range []struct {
		m    Metric
		want string
	}{
		{Metric{Type: TypeTemplate, Bytes: press}, `Press(line="A", on=true, n=null){speed=1.5, count=-12, fault=null, motor=Motor{rpm=1500}}`},
		{Metric{Kind: KindTemplate, Bytes: motor}, "Motor{rpm=1500}"}, // DATA, before Resolve
		{Metric{Type: TypeTemplate, Bytes: def}, "definition{rpm=0}"},
		{Metric{Type: TypeTemplate, Bytes: AppendTemplate(nil, &Template{Ref: "Empty"})}, "Empty{}"},
		{Metric{Type: TypeTemplate, Null: true}, "null"},
		{Metric{Type: TypeTemplate, Bytes: AppendTemplate(nil, nestedTemplate(32))}, strings.Repeat("L{n=", 31) + "L{}" + strings.Repeat("}", 31)},
		{Metric{Type: TypeTemplate, Bytes: AppendTemplate(nil, nestedTemplate(33))}, strings.Repeat("L{n=", 32) + "{…}" + strings.Repeat("}", 32)},
		{Metric{Type: TypeTemplate, Bytes: []byte{0xff, 0x01}}, "0xff01"},
	} {
		if got := tc.m.ValueString(); got != tc.want {
			t.Errorf("ValueString() = %s, want %s", got, tc.want)
		}
	}
}

func TestAppendTemplateAllocs(t *testing.T) {
	def := pressDefinition()
	buf := AppendTemplate(nil, def)
	if allocs := testing.AllocsPerRun(50, func() { buf = AppendTemplate(buf[:0], def) }); allocs != 0 {
		t.Errorf("AppendTemplate with a reused buffer: %v allocs, want 0", allocs)
	}
	ms := []Metric{{Name: "Press", Alias: 1, HasAlias: true, Type: TypeTemplate, Bytes: buf}}
	out := AppendData(nil, 1, 1, ms)
	if allocs := testing.AllocsPerRun(50, func() { out = AppendData(out[:0], 1, 1, ms) }); allocs != 0 {
		t.Errorf("AppendData of a template with a reused buffer: %v allocs, want 0", allocs)
	}
}
