package sparkplug

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/edgeagent/edgeagent/sparkplug/sparkplugpb"
)

func i64(v int64) uint64 { return uint64(v) }

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unmarshal(t testing.TB, b []byte) *pb.Payload {
	t.Helper()
	var p pb.Payload
	if err := proto.Unmarshal(b, &p); err != nil {
		t.Fatalf("generated types reject our payload: %v\n%x", err, b)
	}
	return &p
}

var (
	dataSetBytes = func() []byte {
		b, _ := proto.Marshal(&pb.Payload_DataSet{
			NumOfColumns: proto.Uint64(2), Columns: []string{"a", "b"}, Types: []uint32{3, 12},
			Rows: []*pb.Payload_DataSet_Row{{Elements: []*pb.Payload_DataSet_DataSetValue{
				{Value: &pb.Payload_DataSet_DataSetValue_IntValue{IntValue: 7}},
				{Value: &pb.Payload_DataSet_DataSetValue_StringValue{StringValue: "x"}},
			}}},
		})
		return b
	}()
	templateBytes = func() []byte {
		b, _ := proto.Marshal(&pb.Payload_Template{TemplateRef: proto.String("Motor"), Metrics: []*pb.Payload_Metric{
			{Name: proto.String("rpm"), Datatype: proto.Uint32(9), Value: &pb.Payload_Metric_FloatValue{FloatValue: 1}},
		}})
		return b
	}()
	longText = strings.Repeat("long text ", 20)   // >127 bytes: two-byte length prefix
	hugeText = strings.Repeat("0123456789", 2000) // >16383 bytes: three-byte length prefix
)

// valueCases is every datatype with its extremes, and the value field the
// spec's table puts it in.
var valueCases = []struct {
	m    Metric
	wire any // a pb.Payload_Metric_*Value, nil for null
}{
	{Metric{Type: TypeInt8, Int: i64(math.MinInt8)}, &pb.Payload_Metric_IntValue{IntValue: 0xFFFFFF80}},
	{Metric{Type: TypeInt8, Int: i64(-1)}, &pb.Payload_Metric_IntValue{IntValue: 0xFFFFFFFF}},
	{Metric{Type: TypeInt8, Int: math.MaxInt8}, &pb.Payload_Metric_IntValue{IntValue: 127}},
	{Metric{Type: TypeInt16, Int: i64(math.MinInt16)}, &pb.Payload_Metric_IntValue{IntValue: 0xFFFF8000}},
	{Metric{Type: TypeInt16, Int: math.MaxInt16}, &pb.Payload_Metric_IntValue{IntValue: 0x7FFF}},
	{Metric{Type: TypeInt32, Int: i64(math.MinInt32)}, &pb.Payload_Metric_IntValue{IntValue: 0x80000000}},
	{Metric{Type: TypeInt32, Int: i64(-5)}, &pb.Payload_Metric_IntValue{IntValue: 0xFFFFFFFB}},
	{Metric{Type: TypeInt32, Int: math.MaxInt32}, &pb.Payload_Metric_IntValue{IntValue: 0x7FFFFFFF}},
	{Metric{Type: TypeInt64, Int: i64(math.MinInt64)}, &pb.Payload_Metric_LongValue{LongValue: 1 << 63}},
	{Metric{Type: TypeInt64, Int: i64(-5)}, &pb.Payload_Metric_LongValue{LongValue: math.MaxUint64 - 4}},
	{Metric{Type: TypeInt64, Int: math.MaxInt64}, &pb.Payload_Metric_LongValue{LongValue: math.MaxInt64}},
	{Metric{Type: TypeUInt8, Int: math.MaxUint8}, &pb.Payload_Metric_IntValue{IntValue: 255}},
	{Metric{Type: TypeUInt16, Int: math.MaxUint16}, &pb.Payload_Metric_IntValue{IntValue: 65535}},
	{Metric{Type: TypeUInt32, Int: math.MaxUint32}, &pb.Payload_Metric_IntValue{IntValue: math.MaxUint32}},
	{Metric{Type: TypeUInt32, Int: 0}, &pb.Payload_Metric_IntValue{IntValue: 0}},
	{Metric{Type: TypeUInt64, Int: math.MaxUint64}, &pb.Payload_Metric_LongValue{LongValue: math.MaxUint64}},
	{Metric{Type: TypeFloat, Float: math.MaxFloat32}, &pb.Payload_Metric_FloatValue{FloatValue: math.MaxFloat32}},
	{Metric{Type: TypeFloat, Float: math.SmallestNonzeroFloat32}, &pb.Payload_Metric_FloatValue{FloatValue: math.SmallestNonzeroFloat32}},
	{Metric{Type: TypeFloat, Float: -3.25}, &pb.Payload_Metric_FloatValue{FloatValue: -3.25}},
	{Metric{Type: TypeFloat, Float: math.Inf(-1)}, &pb.Payload_Metric_FloatValue{FloatValue: float32(math.Inf(-1))}},
	{Metric{Type: TypeDouble, Float: math.MaxFloat64}, &pb.Payload_Metric_DoubleValue{DoubleValue: math.MaxFloat64}},
	{Metric{Type: TypeDouble, Float: math.SmallestNonzeroFloat64}, &pb.Payload_Metric_DoubleValue{DoubleValue: math.SmallestNonzeroFloat64}},
	{Metric{Type: TypeDouble, Float: -0.1}, &pb.Payload_Metric_DoubleValue{DoubleValue: -0.1}},
	{Metric{Type: TypeBoolean, Int: 1}, &pb.Payload_Metric_BooleanValue{BooleanValue: true}},
	{Metric{Type: TypeBoolean, Int: 0}, &pb.Payload_Metric_BooleanValue{BooleanValue: false}},
	{Metric{Type: TypeString, Str: "héllo ☃"}, &pb.Payload_Metric_StringValue{StringValue: "héllo ☃"}},
	{Metric{Type: TypeString, Str: ""}, &pb.Payload_Metric_StringValue{StringValue: ""}},
	{Metric{Type: TypeDateTime, Int: 1700000000123}, &pb.Payload_Metric_LongValue{LongValue: 1700000000123}},
	{Metric{Type: TypeText, Str: longText}, &pb.Payload_Metric_StringValue{StringValue: longText}},
	{Metric{Type: TypeText, Str: hugeText}, &pb.Payload_Metric_StringValue{StringValue: hugeText}},
	{Metric{Type: TypeUUID, Str: "0f8fad5b-d9cb-469f-a165-70867728950e"}, &pb.Payload_Metric_StringValue{StringValue: "0f8fad5b-d9cb-469f-a165-70867728950e"}},
	{Metric{Type: TypeBytes, Bytes: []byte{0, 1, 0xff}}, &pb.Payload_Metric_BytesValue{BytesValue: []byte{0, 1, 0xff}}},
	{Metric{Type: TypeBytes}, &pb.Payload_Metric_BytesValue{BytesValue: []byte{}}},
	{Metric{Type: TypeFile, Bytes: []byte("PK\x03\x04")}, &pb.Payload_Metric_BytesValue{BytesValue: []byte("PK\x03\x04")}},
	{Metric{Type: TypeInt16Array, Bytes: []byte{0xfe, 0xff, 0x01, 0x00}}, &pb.Payload_Metric_BytesValue{BytesValue: []byte{0xfe, 0xff, 0x01, 0x00}}},
	{Metric{Type: TypeBooleanArray, Bytes: []byte{0x0c, 0, 0, 0, 0x34, 0xd0}}, &pb.Payload_Metric_BytesValue{BytesValue: []byte{0x0c, 0, 0, 0, 0x34, 0xd0}}},
	{Metric{Type: TypeDateTimeArray, Bytes: []byte{1, 2, 3, 4, 5, 6, 7, 8}}, &pb.Payload_Metric_BytesValue{BytesValue: []byte{1, 2, 3, 4, 5, 6, 7, 8}}},
	{Metric{Type: TypeDataSet, Bytes: dataSetBytes}, &pb.Payload_Metric_DatasetValue{DatasetValue: mustUnmarshalDataSet()}},
	{Metric{Type: TypeTemplate, Bytes: templateBytes}, &pb.Payload_Metric_TemplateValue{TemplateValue: mustUnmarshalTemplate()}},
	{Metric{Type: TypeInt32, Null: true}, nil},
	{Metric{Type: TypeString, Null: true}, nil},
}

func mustUnmarshalDataSet() *pb.Payload_DataSet {
	var v pb.Payload_DataSet
	if err := proto.Unmarshal(dataSetBytes, &v); err != nil {
		panic(err)
	}
	return &v
}

func mustUnmarshalTemplate() *pb.Payload_Template {
	var v pb.Payload_Template
	if err := proto.Unmarshal(templateBytes, &v); err != nil {
		panic(err)
	}
	return &v
}

// caseMetrics returns valueCases' metrics, named and aliased, as a caller
// builds them.
func caseMetrics() []Metric {
	ms := make([]Metric, len(valueCases))
	for i, c := range valueCases {
		ms[i] = c.m
		ms[i].Name = c.m.Type.String() + "/" + string(rune('a'+i%26))
		if i%2 == 0 {
			ms[i].Alias, ms[i].HasAlias = uint64(i+1), true
		}
		ms[i].Timestamp = 1700000000000 + uint64(i)
	}
	return ms
}

// decoded is what Decode should return for a metric the caller built.
func decoded(m Metric) Metric {
	if !m.Null {
		m.Kind = m.Type.kind()
	}
	m.Bytes = nonEmpty(m.Bytes)
	return m
}

func wireMetric(m Metric, wire any, md mode) *pb.Payload_Metric {
	w := &pb.Payload_Metric{Timestamp: proto.Uint64(m.Timestamp)}
	if md == modeBirth || md == modeMember || !m.HasAlias {
		w.Name = proto.String(m.Name)
	}
	if m.HasAlias && md != modeMember {
		w.Alias = proto.Uint64(m.Alias)
	}
	if md != modeData {
		w.Datatype = proto.Uint32(uint32(m.Type))
	}
	if m.Null {
		w.IsNull = proto.Bool(true)
	} else {
		reflect.ValueOf(w).Elem().FieldByName("Value").Set(reflect.ValueOf(wire))
	}
	return w
}

func TestBirthEveryDatatype(t *testing.T) {
	ms := caseMetrics()
	const ts = 1700000001000
	b := AppendBirth(nil, ts, 0, ms)

	// Wire: field for field as the generated types see it, and byte for byte
	// what the reference marshaller writes for the same message.
	want := &pb.Payload{Timestamp: proto.Uint64(ts), Seq: proto.Uint64(0)}
	for i, c := range valueCases {
		want.Metrics = append(want.Metrics, wireMetric(ms[i], c.wire, modeBirth))
	}
	got := unmarshal(t, b)
	for i := range want.Metrics {
		if !proto.Equal(got.Metrics[i], want.Metrics[i]) {
			t.Errorf("metric %d on the wire:\n got %v\nwant %v", i, got.Metrics[i], want.Metrics[i])
		}
	}
	if got.Seq == nil || *got.Seq != 0 {
		t.Errorf("NBIRTH seq = %v, want an explicit 0", got.Seq)
	}
	if ref := mustMarshal(t, want); !bytes.Equal(b, ref) {
		t.Errorf("encoding differs from proto.Marshal:\n got %x\nwant %x", b, ref)
	}

	// Decode gives back what went in.
	p, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Timestamp != ts || !p.HasSeq || p.Seq != 0 || len(p.Metrics) != len(ms) {
		t.Fatalf("payload header = %+v", p)
	}
	for i := range ms {
		if w := decoded(ms[i]); !metricEqual(p.Metrics[i], w) {
			t.Errorf("metric %d decoded:\n got %+v\nwant %+v", i, p.Metrics[i], w)
		}
	}
}

func TestDataEveryDatatype(t *testing.T) {
	ms := caseMetrics()
	b := AppendData(nil, 5, 17, ms)
	got := unmarshal(t, b)
	for i, c := range valueCases {
		if w := wireMetric(ms[i], c.wire, modeData); !proto.Equal(got.Metrics[i], w) {
			t.Errorf("metric %d on the wire:\n got %v\nwant %v", i, got.Metrics[i], w)
		}
		if got.Metrics[i].Datatype != nil {
			t.Errorf("metric %d: DATA carries a datatype", i)
		}
		if ms[i].HasAlias && got.Metrics[i].Name != nil {
			t.Errorf("metric %d: aliased DATA metric carries its name", i)
		}
	}
	if got.GetSeq() != 17 || got.GetTimestamp() != 5 {
		t.Errorf("seq, timestamp = %v, %v", got.Seq, got.Timestamp)
	}

	// Without datatypes Decode keeps raw values; Resolve with the BIRTH
	// types completes them.
	p, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ms {
		m := p.Metrics[i]
		if m.Type != TypeUnknown {
			t.Errorf("metric %d: Type = %v before Resolve", i, m.Type)
		}
		if err := m.Resolve(ms[i].Type); err != nil {
			t.Errorf("metric %d: Resolve(%v): %v", i, ms[i].Type, err)
		}
		w := decoded(ms[i])
		if ms[i].HasAlias {
			w.Name = ""
		}
		if !metricEqual(m, w) {
			t.Errorf("metric %d resolved:\n got %+v\nwant %+v", i, m, w)
		}
	}
}

func TestCommand(t *testing.T) {
	ms := caseMetrics()
	b := AppendCommand(nil, 9, ms)
	got := unmarshal(t, b)
	if got.Seq != nil {
		t.Errorf("command has seq %d", *got.Seq)
	}
	for i, c := range valueCases {
		if w := wireMetric(ms[i], c.wire, modeCommand); !proto.Equal(got.Metrics[i], w) {
			t.Errorf("metric %d on the wire:\n got %v\nwant %v", i, got.Metrics[i], w)
		}
	}
	p, err := Decode(AppendCommand(nil, 9, []Metric{{Name: MetricRebirth, Type: TypeBoolean, Int: 1}}))
	if err != nil || len(p.Metrics) != 1 || p.Metrics[0].Name != MetricRebirth || p.Metrics[0].Type != TypeBoolean || p.Metrics[0].Int != 1 || p.HasSeq {
		t.Errorf("rebirth command decoded to %+v, %v", p, err)
	}
}

func TestNodeDeath(t *testing.T) {
	for _, ts := range []uint64{0, 1700000000000} {
		got := unmarshal(t, AppendNodeDeath(nil, ts, 255))
		if got.Seq != nil {
			t.Errorf("NDEATH has seq %d", *got.Seq)
		}
		if (got.Timestamp != nil) != (ts != 0) || got.GetTimestamp() != ts {
			t.Errorf("ts %d: NDEATH timestamp = %v", ts, got.Timestamp)
		}
		want := &pb.Payload_Metric{Name: proto.String("bdSeq"), Datatype: proto.Uint32(4), Value: &pb.Payload_Metric_LongValue{LongValue: 255}}
		if ts != 0 {
			want.Timestamp = proto.Uint64(ts)
		}
		if len(got.Metrics) != 1 || !proto.Equal(got.Metrics[0], want) {
			t.Errorf("NDEATH metrics = %v, want only %v", got.Metrics, want)
		}
	}
	if m := BdSeqMetric(3, 7); !reflect.DeepEqual(m, Metric{Name: "bdSeq", Type: TypeInt64, Int: 3, Timestamp: 7}) {
		t.Errorf("BdSeqMetric = %+v", m)
	}
}

func TestDeviceDeath(t *testing.T) {
	got := unmarshal(t, AppendDeviceDeath(nil, 42, 0))
	if got.Seq == nil || *got.Seq != 0 || got.GetTimestamp() != 42 || len(got.Metrics) != 0 {
		t.Errorf("DDEATH = %v", got)
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{
			"birth, Int8 -1, seq 0",
			AppendBirth(nil, 1000, 0, []Metric{{Name: "a", Alias: 1, HasAlias: true, Timestamp: 1000, Type: TypeInt8, Int: i64(-1)}}),
			"08e807" + // timestamp 1000
				"1210" + // metric, 16 bytes
				"0a0161" + // name "a"
				"1001" + // alias 1
				"18e807" + // timestamp 1000
				"2001" + // datatype Int8
				"50ffffffff0f" + // int_value 0xFFFFFFFF: -1 sign-extended to 32 bits
				"1800", // seq 0, present
		},
		{
			"data, aliased Double",
			AppendData(nil, 1000, 1, []Metric{{Name: "a", Alias: 1, HasAlias: true, Timestamp: 1000, Type: TypeDouble, Float: 1.5}}),
			"08e807" + "120e" + "1001" + "18e807" + "69000000000000f83f" + "1801",
		},
		{
			"node death",
			AppendNodeDeath(nil, 0, 3),
			"120b" + "0a056264536571" + "2004" + "5803",
		},
		{
			"quality property",
			AppendData(nil, 1, 2, []Metric{{Alias: 5, HasAlias: true, Timestamp: 1, Type: TypeBoolean, Properties: []Property{QualityProperty(QualityStale)}}}),
			"0801" + "1218" + "1005" + "1801" +
				"4a10" + "0a075175616c697479" + // properties: keys ["Quality"]
				"1205" + "0803" + "18f403" + // values [{type Int32, int_value 500}]
				"7000" + "1802", // boolean_value false, seq 2
		},
	} {
		if got := hex.EncodeToString(tc.got); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	dst := []byte("prefix")
	b := AppendData(dst, 1, 2, caseMetrics())
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatal("prefix lost")
	}
	if _, err := Decode(b[len("prefix"):]); err != nil {
		t.Fatal(err)
	}
}

func TestProperties(t *testing.T) {
	props := []Property{
		QualityProperty(QualityStale),
		{Key: "unit", Type: TypeString, Str: "°C"},
		{Key: "i16", Type: TypeInt16, Int: i64(-2)},
		{Key: "u32", Type: TypeUInt32, Int: math.MaxUint32},
		{Key: "i64", Type: TypeInt64, Int: i64(math.MinInt64)},
		{Key: "f", Type: TypeFloat, Float: 1.25},
		{Key: "d", Type: TypeDouble, Float: -2.5},
		{Key: "on", Type: TypeBoolean, Bool: true},
		{Key: "off", Type: TypeBoolean, Bool: false},
		{Key: "t", Type: TypeDateTime, Int: 1700000000000},
		{Key: "n", Type: TypeInt32, Null: true},
	}
	b := AppendBirth(nil, 1, 0, []Metric{{Name: "m", Type: TypeDouble, Float: 1, Properties: props}})
	wantSet := &pb.Payload_PropertySet{
		Keys: []string{"Quality", "unit", "i16", "u32", "i64", "f", "d", "on", "off", "t", "n"},
		Values: []*pb.Payload_PropertyValue{
			{Type: proto.Uint32(3), Value: &pb.Payload_PropertyValue_IntValue{IntValue: 500}},
			{Type: proto.Uint32(12), Value: &pb.Payload_PropertyValue_StringValue{StringValue: "°C"}},
			{Type: proto.Uint32(2), Value: &pb.Payload_PropertyValue_IntValue{IntValue: 0xFFFFFFFE}},
			{Type: proto.Uint32(7), Value: &pb.Payload_PropertyValue_IntValue{IntValue: math.MaxUint32}},
			{Type: proto.Uint32(4), Value: &pb.Payload_PropertyValue_LongValue{LongValue: 1 << 63}},
			{Type: proto.Uint32(9), Value: &pb.Payload_PropertyValue_FloatValue{FloatValue: 1.25}},
			{Type: proto.Uint32(10), Value: &pb.Payload_PropertyValue_DoubleValue{DoubleValue: -2.5}},
			{Type: proto.Uint32(11), Value: &pb.Payload_PropertyValue_BooleanValue{BooleanValue: true}},
			{Type: proto.Uint32(11), Value: &pb.Payload_PropertyValue_BooleanValue{BooleanValue: false}},
			{Type: proto.Uint32(13), Value: &pb.Payload_PropertyValue_LongValue{LongValue: 1700000000000}},
			{Type: proto.Uint32(3), IsNull: proto.Bool(true)},
		},
	}
	if got := unmarshal(t, b).Metrics[0].Properties; !proto.Equal(got, wantSet) {
		t.Errorf("properties on the wire:\n got %v\nwant %v", got, wantSet)
	}
	p, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Metrics[0].Properties; !reflect.DeepEqual(got, props) {
		t.Errorf("properties decoded:\n got %+v\nwant %+v", got, props)
	}
}

// payloadWith marshals a one-metric payload built with the generated types.
func payloadWith(t testing.TB, m *pb.Payload_Metric) []byte {
	return mustMarshal(t, &pb.Payload{Timestamp: proto.Uint64(1), Metrics: []*pb.Payload_Metric{m}})
}

func TestDecodeLenient(t *testing.T) {
	pv := func(typ uint32, v any) *pb.Payload_PropertyValue {
		p := &pb.Payload_PropertyValue{Type: proto.Uint32(typ)}
		reflect.ValueOf(p).Elem().FieldByName("Value").Set(reflect.ValueOf(v))
		return p
	}
	for _, tc := range []struct {
		name string
		in   *pb.Payload_Metric
		want Metric
	}{
		{"UInt32 in long_value (tahu)",
			&pb.Payload_Metric{Name: proto.String("u"), Datatype: proto.Uint32(7), Value: &pb.Payload_Metric_LongValue{LongValue: math.MaxUint32}},
			Metric{Name: "u", Type: TypeUInt32, Int: math.MaxUint32, Kind: KindLong}},
		{"Int8 zero-extended in int_value",
			&pb.Payload_Metric{Name: proto.String("i"), Datatype: proto.Uint32(1), Value: &pb.Payload_Metric_IntValue{IntValue: 0xFB}},
			Metric{Name: "i", Type: TypeInt8, Int: i64(-5), Kind: KindInt}},
		{"Int32 in long_value",
			&pb.Payload_Metric{Name: proto.String("i"), Datatype: proto.Uint32(3), Value: &pb.Payload_Metric_LongValue{LongValue: i64(-5)}},
			Metric{Name: "i", Type: TypeInt32, Int: i64(-5), Kind: KindLong}},
		{"Int64 in int_value is sign-extended",
			&pb.Payload_Metric{Name: proto.String("i"), Datatype: proto.Uint32(4), Value: &pb.Payload_Metric_IntValue{IntValue: 0xFFFFFFFF}},
			Metric{Name: "i", Type: TypeInt64, Int: i64(-1), Kind: KindInt}},
		{"Float in double_value is rounded",
			&pb.Payload_Metric{Name: proto.String("f"), Datatype: proto.Uint32(9), Value: &pb.Payload_Metric_DoubleValue{DoubleValue: 0.1}},
			Metric{Name: "f", Type: TypeFloat, Float: float64(float32(0.1)), Kind: KindDouble}},
		{"Double in float_value",
			&pb.Payload_Metric{Name: proto.String("d"), Datatype: proto.Uint32(10), Value: &pb.Payload_Metric_FloatValue{FloatValue: 0.5}},
			Metric{Name: "d", Type: TypeDouble, Float: 0.5, Kind: KindFloat}},
		{"null wins over a value",
			&pb.Payload_Metric{Name: proto.String("n"), Datatype: proto.Uint32(3), IsNull: proto.Bool(true), Value: &pb.Payload_Metric_IntValue{IntValue: 3}},
			Metric{Name: "n", Type: TypeInt32, Null: true}},
		{"no datatype keeps the raw value",
			&pb.Payload_Metric{Alias: proto.Uint64(9), Value: &pb.Payload_Metric_IntValue{IntValue: 0xFFFFFFFF}},
			Metric{Alias: 9, HasAlias: true, Int: math.MaxUint32, Kind: KindInt}},
		{"Quality as Int64 in long_value (TCK)",
			&pb.Payload_Metric{Name: proto.String("q"), Datatype: proto.Uint32(11), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true},
				Properties: &pb.Payload_PropertySet{Keys: []string{"Quality"}, Values: []*pb.Payload_PropertyValue{pv(4, &pb.Payload_PropertyValue_LongValue{LongValue: 192})}}},
			Metric{Name: "q", Type: TypeBoolean, Int: 1, Kind: KindBoolean, Properties: []Property{{Key: "Quality", Type: TypeInt64, Int: QualityGood}}}},
		{"Quality as Int32 in long_value",
			&pb.Payload_Metric{Name: proto.String("q"), Datatype: proto.Uint32(11), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: false},
				Properties: &pb.Payload_PropertySet{Keys: []string{"Quality"}, Values: []*pb.Payload_PropertyValue{pv(3, &pb.Payload_PropertyValue_LongValue{LongValue: 0})}}},
			Metric{Name: "q", Type: TypeBoolean, Kind: KindBoolean, Properties: []Property{{Key: "Quality", Type: TypeInt32, Int: QualityBad}}}},
	} {
		p, err := Decode(payloadWith(t, tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !metricEqual(p.Metrics[0], tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, p.Metrics[0], tc.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	pset := func(keys []string, vals ...*pb.Payload_PropertyValue) *pb.Payload_Metric {
		return &pb.Payload_Metric{Name: proto.String("m"), Datatype: proto.Uint32(11), Value: &pb.Payload_Metric_BooleanValue{},
			Properties: &pb.Payload_PropertySet{Keys: keys, Values: vals}}
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
		is   error
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}, "decoding sparkplug payload: ", nil},
		{"truncated", AppendBirth(nil, 1, 0, caseMetrics())[:100], "decoding sparkplug payload: ", nil},
		{"Int32 in string_value",
			payloadWith(t, &pb.Payload_Metric{Name: proto.String("x"), Datatype: proto.Uint32(3), Value: &pb.Payload_Metric_StringValue{StringValue: "1"}}),
			`decoding sparkplug payload: metric 0 ("x"): value does not match datatype: Int32 in string_value`, ErrTypeMismatch},
		{"UInt8 out of range",
			payloadWith(t, &pb.Payload_Metric{Alias: proto.Uint64(4), Datatype: proto.Uint32(5), Value: &pb.Payload_Metric_IntValue{IntValue: 256}}),
			`metric 0 (alias 4): value does not match datatype: UInt8 cannot hold int_value 256`, ErrTypeMismatch},
		{"Int8 long_value out of range",
			payloadWith(t, &pb.Payload_Metric{Name: proto.String("x"), Datatype: proto.Uint32(1), Value: &pb.Payload_Metric_LongValue{LongValue: 128}}),
			"Int8 cannot hold long_value 128", ErrTypeMismatch},
		{"Int16 int_value neither sign- nor zero-extended",
			payloadWith(t, &pb.Payload_Metric{Name: proto.String("x"), Datatype: proto.Uint32(2), Value: &pb.Payload_Metric_IntValue{IntValue: 0x10000}}),
			"Int16 cannot hold int_value 65536", ErrTypeMismatch},
		{"Boolean in int_value",
			payloadWith(t, &pb.Payload_Metric{Name: proto.String("x"), Datatype: proto.Uint32(11), Value: &pb.Payload_Metric_IntValue{IntValue: 1}}),
			"Boolean in int_value", ErrTypeMismatch},
		{"typed metric without value",
			payloadWith(t, &pb.Payload_Metric{Name: proto.String("x"), Datatype: proto.Uint32(3)}),
			"Int32 has no value and is not null", ErrTypeMismatch},
		{"datatype out of the enum",
			payloadWith(t, &pb.Payload_Metric{Name: proto.String("x"), Datatype: proto.Uint32(99), IsNull: proto.Bool(true)}),
			"DataType(99) is not a metric datatype", ErrTypeMismatch},
		{"PropertySet metric",
			payloadWith(t, &pb.Payload_Metric{Name: proto.String("x"), Datatype: proto.Uint32(20), IsNull: proto.Bool(true)}),
			"PropertySet is not a metric datatype", ErrTypeMismatch},
		{"property keys and values differ",
			payloadWith(t, pset([]string{"a", "b"}, &pb.Payload_PropertyValue{Type: proto.Uint32(3), IsNull: proto.Bool(true)})),
			"property set has 2 keys and 1 values", nil},
		{"property without type",
			payloadWith(t, pset([]string{"a"}, &pb.Payload_PropertyValue{Value: &pb.Payload_PropertyValue_IntValue{}})),
			`property "a": value does not match datatype: no type`, ErrTypeMismatch},
		{"nested property set",
			payloadWith(t, pset([]string{"a"}, &pb.Payload_PropertyValue{Type: proto.Uint32(20), Value: &pb.Payload_PropertyValue_PropertysetValue{}})),
			`property "a": value does not match datatype: PropertySet properties are not supported`, ErrTypeMismatch},
		{"property out of range",
			payloadWith(t, pset([]string{"a"}, &pb.Payload_PropertyValue{Type: proto.Uint32(1), Value: &pb.Payload_PropertyValue_LongValue{LongValue: 300}})),
			"Int8 cannot hold long_value 300", ErrTypeMismatch},
	} {
		_, err := Decode(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: error = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		t    DataType
		kind ValueKind
		raw  uint64
		want uint64
		err  bool
	}{
		{TypeInt8, KindInt, 0xFFFFFF80, i64(-128), false},
		{TypeInt8, KindInt, 0x80, i64(-128), false},
		{TypeInt8, KindInt, 0x100, 0, true},
		{TypeInt8, KindLong, i64(-128), i64(-128), false},
		{TypeInt8, KindLong, i64(-129), 0, true},
		{TypeInt16, KindInt, 0xFFFF8000, i64(math.MinInt16), false},
		{TypeInt16, KindLong, 0x8000, 0, true},
		{TypeInt32, KindInt, 0x80000000, i64(math.MinInt32), false},
		{TypeInt32, KindLong, 0x80000000, 0, true},
		{TypeInt64, KindLong, 1 << 63, 1 << 63, false},
		{TypeUInt8, KindInt, 255, 255, false},
		{TypeUInt8, KindInt, 0xFFFFFFFF, 0, true},
		{TypeUInt16, KindLong, 65536, 0, true},
		{TypeUInt32, KindInt, math.MaxUint32, math.MaxUint32, false},
		{TypeUInt32, KindLong, math.MaxUint32, math.MaxUint32, false},
		{TypeUInt32, KindLong, math.MaxUint32 + 1, 0, true},
		{TypeUInt64, KindInt, math.MaxUint32, math.MaxUint32, false},
		{TypeDateTime, KindLong, 1700000000000, 1700000000000, false},
		{TypeBoolean, KindBoolean, 1, 1, false},
		{TypeBoolean, KindLong, 1, 0, true},
		{TypeString, KindInt, 1, 0, true},
		{TypeBytes, KindString, 0, 0, true},
		{TypeDataSet, KindBytes, 0, 0, true},
		{TypeInt32, KindExtension, 0, 0, true},
		{TypeInt32, KindNone, 0, 0, true},
		{TypeUnknown, KindInt, 0, 0, true},
		{TypePropertySetList, KindNone, 0, 0, true},
	} {
		m := Metric{Kind: tc.kind, Int: tc.raw}
		err := m.Resolve(tc.t)
		switch {
		case tc.err && err == nil:
			t.Errorf("Resolve(%v) of %v %#x = %+v, want an error", tc.t, tc.kind, tc.raw, m)
		case tc.err && (m.Type != TypeUnknown || m.Int != tc.raw):
			t.Errorf("failed Resolve(%v) of %v changed the metric to %+v", tc.t, tc.kind, m)
		case !tc.err && (err != nil || m.Type != tc.t || m.Int != tc.want):
			t.Errorf("Resolve(%v) of %v %#x = %+v, %v; want Int %#x", tc.t, tc.kind, tc.raw, m, err, tc.want)
		case !tc.err:
			if err := m.Resolve(tc.t); err != nil || m.Int != tc.want {
				t.Errorf("second Resolve(%v) = %v, Int %#x", tc.t, err, m.Int)
			}
		}
	}
	m := Metric{Null: true}
	if err := m.Resolve(TypeFloat); err != nil || m.Type != TypeFloat {
		t.Errorf("Resolve of a null metric = %v, %+v", err, m)
	}
}

func TestValueString(t *testing.T) {
	for _, tc := range []struct {
		m    Metric
		want string
	}{
		{Metric{Type: TypeBoolean, Int: 1}, "true"},
		{Metric{Type: TypeBoolean}, "false"},
		{Metric{Type: TypeInt8, Int: i64(-5)}, "-5"},
		{Metric{Type: TypeInt64, Int: i64(math.MinInt64)}, "-9223372036854775808"},
		{Metric{Type: TypeUInt64, Int: math.MaxUint64}, "18446744073709551615"},
		{Metric{Type: TypeUInt32, Int: 7}, "7"},
		{Metric{Type: TypeFloat, Float: float64(float32(0.1))}, "0.1"},
		{Metric{Type: TypeDouble, Float: 3.25}, "3.25"},
		{Metric{Type: TypeString, Str: `say "hi"`}, `"say \"hi\""`},
		{Metric{Type: TypeUUID, Str: "x"}, `"x"`},
		{Metric{Type: TypeDateTime, Int: 1700000000123}, "2023-11-14T22:13:20.123Z"},
		{Metric{Type: TypeBytes, Bytes: []byte{0xde, 0xad}}, "0xdead"},
		{Metric{Type: TypeInt32, Null: true}, "null"},
		{Metric{Kind: KindInt, Int: 0xFFFFFFFF}, "4294967295"},
		{Metric{Kind: KindBoolean, Int: 1}, "true"},
		{Metric{Kind: KindString, Str: "s"}, `"s"`},
		{Metric{}, ""},
	} {
		if got := tc.m.ValueString(); got != tc.want {
			t.Errorf("%+v.ValueString() = %q, want %q", tc.m, got, tc.want)
		}
	}
}

func TestDataTypeString(t *testing.T) {
	for dt, want := range map[DataType]string{
		TypeUnknown: "Unknown", TypeInt32: "Int32", TypeDouble: "Double", TypeUUID: "UUID",
		TypePropertySetList: "PropertySetList", TypeInt8Array: "Int8Array", TypeDateTimeArray: "DateTimeArray", 35: "DataType(35)",
	} {
		if got := dt.String(); got != want {
			t.Errorf("DataType(%d).String() = %q, want %q", uint32(dt), got, want)
		}
	}
	// The names are the enum's in sparkplug_b.proto.
	for dt := TypeUnknown; dt <= TypeDateTimeArray; dt++ {
		if got := pb.DataType(dt).String(); got != dt.String() {
			t.Errorf("DataType %d: %q here, %q in the .proto", uint32(dt), dt.String(), got)
		}
	}
}

func TestAppendDataAllocs(t *testing.T) {
	ms := benchMetrics(200)
	buf := AppendData(nil, 1, 1, ms)
	allocs := testing.AllocsPerRun(50, func() { buf = AppendData(buf[:0], 1, 1, ms) })
	if allocs != 0 {
		t.Errorf("AppendData with a reused buffer: %v allocs, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(50, func() {
		buf = AppendBirth(buf[:0], 1, 0, ms)
		buf = AppendNodeDeath(buf[:0], 1, 1)
	})
	if allocs != 0 {
		t.Errorf("AppendBirth/AppendNodeDeath with a reused buffer: %v allocs, want 0", allocs)
	}
}

// metricEqual compares metrics, floats by bit pattern so that NaNs compare.
func metricEqual(a, b Metric) bool {
	if math.Float64bits(a.Float) != math.Float64bits(b.Float) || len(a.Properties) != len(b.Properties) {
		return false
	}
	for i := range a.Properties {
		pa, pb := a.Properties[i], b.Properties[i]
		if math.Float64bits(pa.Float) != math.Float64bits(pb.Float) {
			return false
		}
		pa.Float, pb.Float = 0, 0
		if pa != pb {
			return false
		}
	}
	a.Float, b.Float, a.Properties, b.Properties = 0, 0, nil, nil
	return reflect.DeepEqual(a, b)
}
