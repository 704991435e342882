package sparkplug

import (
	"bytes"
	"math"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	pb "github.com/edgeagent/edgeagent/sparkplug/sparkplugpb"
)

func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff})
	f.Add(AppendBirth(nil, 1, 0, caseMetrics()[:20]))
	f.Add(AppendData(nil, 1, 1, caseMetrics()[20:]))
	f.Add(AppendNodeDeath(nil, 0, 7))
	f.Add(AppendCommand(nil, 1, []Metric{{Name: MetricRebirth, Type: TypeBoolean, Int: 1}}))
	f.Add(AppendData(nil, 1, 2, benchMetrics(20)))
	f.Add(mustMarshal(f, &pb.Payload{Uuid: proto.String("u"), Body: []byte("b"), Metrics: []*pb.Payload_Metric{
		{Name: proto.String("u32"), Datatype: proto.Uint32(7), Value: &pb.Payload_Metric_LongValue{LongValue: 7}},
		{Alias: proto.Uint64(3), Value: &pb.Payload_Metric_ExtensionValue{ExtensionValue: &pb.Payload_Metric_MetricValueExtension{}}},
		{Alias: proto.Uint64(4), Value: &pb.Payload_Metric_DatasetValue{DatasetValue: mustUnmarshalDataSet()}},
	}}))
	f.Add(AppendBirth(nil, 1, 0, []Metric{{Name: "Press", Type: TypeTemplate, Bytes: AppendTemplate(nil, fuzzPress())}}))
	f.Add(AppendData(nil, 1, 3, []Metric{{Alias: 1, HasAlias: true, Type: TypeTemplate, Bytes: templateBytes}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to a payload that decodes the same.
		b2 := appendPayload(nil, p)
		p2, err := Decode(b2)
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v\nin  %x\nout %x", err, b, b2)
		}
		if p.Timestamp != p2.Timestamp || p.Seq != p2.Seq || p.HasSeq != p2.HasSeq || p.UUID != p2.UUID ||
			!bytes.Equal(p.Body, p2.Body) || len(p.Metrics) != len(p2.Metrics) {
			t.Fatalf("payload changed:\n%+v\n%+v", p, p2)
		}
		for i := range p.Metrics {
			m := p.Metrics[i]
			if m.Type != TypeUnknown && !m.Null {
				m.Kind = m.Type.kind() // the encoder writes a typed value to its canonical field
			}
			if !metricEqual(m, p2.Metrics[i]) {
				t.Fatalf("metric %d changed:\n%+v\n%+v", i, m, p2.Metrics[i])
			}
			_ = m.ValueString()
		}
		if b3 := appendPayload(nil, p2); !bytes.Equal(b2, b3) {
			t.Fatalf("encoding is not stable:\n%x\n%x", b2, b3)
		}
	})
}

// fuzzPress is pressDefinition without its 20 kB text member, a seed small
// enough for the fuzzer to mutate quickly.
func fuzzPress() *Template {
	t := pressDefinition()
	ms := t.Metrics[:0]
	for _, m := range t.Metrics {
		if len(m.Str) < 1000 {
			ms = append(ms, m)
		}
	}
	t.Metrics = ms
	return t
}

// FuzzDecodeTemplate feeds DecodeTemplate, Validate and ValueString arbitrary
// bytes: none may panic, and what decodes re-encodes with AppendTemplate to
// a template that decodes the same.
func FuzzDecodeTemplate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff})
	f.Add(AppendTemplate(nil, fuzzPress()))
	f.Add(AppendTemplate(nil, &Template{Ref: "Press", Metrics: memberMetrics()[:3]}))
	f.Add(templateBytes)
	f.Add(mustMarshal(f, &pb.Payload_Template{Metrics: []*pb.Payload_Metric{
		{Name: proto.String("raw"), Alias: proto.Uint64(2), Value: &pb.Payload_Metric_LongValue{LongValue: 7}},
		{Name: proto.String("t"), Datatype: proto.Uint32(19), Value: &pb.Payload_Metric_TemplateValue{TemplateValue: mustUnmarshalTemplate()}},
	}, Parameters: []*pb.Payload_Template_Parameter{
		{Name: proto.String("u32"), Type: proto.Uint32(7), Value: &pb.Payload_Template_Parameter_LongValue{LongValue: 7}},
		{Name: proto.String("none"), Type: proto.Uint32(3)},
	}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = (&Metric{Type: TypeTemplate, Bytes: b}).ValueString()
		tm, err := DecodeTemplate(b)
		if err != nil {
			return
		}
		_ = tm.Validate()
		b2 := AppendTemplate(nil, tm)
		tm2, err := DecodeTemplate(b2)
		if err != nil {
			t.Fatalf("re-encoded template does not decode: %v\nin  %x\nout %x", err, b, b2)
		}
		if tm.Version != tm2.Version || tm.Ref != tm2.Ref || tm.IsDefinition != tm2.IsDefinition ||
			len(tm.Metrics) != len(tm2.Metrics) || len(tm.Parameters) != len(tm2.Parameters) {
			t.Fatalf("template changed:\n%+v\n%+v", tm, tm2)
		}
		for i := range tm.Metrics {
			m := tm.Metrics[i]
			m.Alias, m.HasAlias = 0, false // members are written without alias
			if m.Type != TypeUnknown && !m.Null {
				m.Kind = m.Type.kind()
			}
			if !metricEqual(m, tm2.Metrics[i]) {
				t.Fatalf("member %d changed:\n%+v\n%+v", i, m, tm2.Metrics[i])
			}
		}
		for i := range tm.Parameters {
			p, p2 := tm.Parameters[i], tm2.Parameters[i]
			if math.Float64bits(p.Float) != math.Float64bits(p2.Float) {
				t.Fatalf("parameter %d changed:\n%+v\n%+v", i, p, p2)
			}
			p.Float, p2.Float = 0, 0
			if p != p2 {
				t.Fatalf("parameter %d changed:\n%+v\n%+v", i, p, p2)
			}
		}
		if b3 := AppendTemplate(nil, tm2); !bytes.Equal(b2, b3) {
			t.Fatalf("encoding is not stable:\n%x\n%x", b2, b3)
		}
	})
}

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		"spBv1.0/g/NBIRTH/e", "spBv1.0/g/DDATA/e/d", "spBv1.0/STATE/h", "spBv1.0/STATE/NCMD/e",
		"spBv1.0/g/DDATA/e", "spBv1.0//NDATA/e", "spBv1.0/g/NDATA/e/", "spBv1.0/g+/NDATA/e", "spBv1.0/\xff/NDATA/e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTopic(s)
		if err != nil {
			if tp != (Topic{}) {
				t.Fatalf("ParseTopic(%q) failed but returned %+v", s, tp)
			}
			return
		}
		if !utf8.ValidString(s) {
			t.Fatalf("ParseTopic accepted invalid UTF-8 %q", s)
		}
		if err := tp.Validate(); err != nil {
			t.Fatalf("ParseTopic(%q) = %+v, which does not validate: %v", s, tp, err)
		}
		if got := tp.String(); got != s {
			t.Fatalf("ParseTopic(%q).String() = %q", s, got)
		}
	})
}
