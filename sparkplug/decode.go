package sparkplug

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/edgeagent/edgeagent/sparkplug/sparkplugpb"
)

// Payload is a decoded Sparkplug B payload.
type Payload struct {
	Timestamp uint64
	Seq       uint64
	HasSeq    bool // seq was present; an NBIRTH needs it (0), an NDEATH must not have it
	UUID      string
	Body      []byte
	Metrics   []Metric
}

// Decode parses a Sparkplug B payload. Metrics with a datatype are resolved
// (see Metric.Resolve); metrics without one keep the raw value and its Kind.
// Empty byte fields decode as nil. MetaData and protobuf extensions are
// dropped.
func Decode(b []byte) (*Payload, error) {
	var pb sparkplugpb.Payload
	if err := proto.Unmarshal(b, &pb); err != nil {
		return nil, fmt.Errorf("decoding sparkplug payload: %w", err)
	}
	p := &Payload{
		Timestamp: pb.GetTimestamp(),
		Seq:       pb.GetSeq(),
		HasSeq:    pb.Seq != nil,
		UUID:      pb.GetUuid(),
		Body:      nonEmpty(pb.GetBody()),
	}
	if len(pb.Metrics) > 0 {
		p.Metrics = make([]Metric, len(pb.Metrics))
	}
	for i, pm := range pb.Metrics {
		if err := decodeMetric(&p.Metrics[i], pm); err != nil {
			return nil, fmt.Errorf("decoding sparkplug payload: metric %d (%s): %w", i, metricID(pm), err)
		}
	}
	return p, nil
}

// metricID names a metric in errors: its quoted name, or its alias.
func metricID(pm *sparkplugpb.Payload_Metric) string {
	if pm.Name == nil {
		return fmt.Sprintf("alias %d", pm.GetAlias())
	}
	return fmt.Sprintf("%q", pm.GetName())
}

func decodeMetric(m *Metric, pm *sparkplugpb.Payload_Metric) error {
	m.Name = pm.GetName()
	m.Alias, m.HasAlias = pm.GetAlias(), pm.Alias != nil
	m.Timestamp = pm.GetTimestamp()
	m.Historical, m.Transient, m.Null = pm.GetIsHistorical(), pm.GetIsTransient(), pm.GetIsNull()
	if !m.Null { // a null metric has no value, whatever the sender put there
		var err error
		switch v := pm.Value.(type) {
		case *sparkplugpb.Payload_Metric_IntValue:
			m.Kind, m.Int = KindInt, uint64(v.IntValue)
		case *sparkplugpb.Payload_Metric_LongValue:
			m.Kind, m.Int = KindLong, v.LongValue
		case *sparkplugpb.Payload_Metric_FloatValue:
			m.Kind, m.Float = KindFloat, float64(v.FloatValue)
		case *sparkplugpb.Payload_Metric_DoubleValue:
			m.Kind, m.Float = KindDouble, v.DoubleValue
		case *sparkplugpb.Payload_Metric_BooleanValue:
			m.Kind, m.Int = KindBoolean, b2u(v.BooleanValue)
		case *sparkplugpb.Payload_Metric_StringValue:
			m.Kind, m.Str = KindString, v.StringValue
		case *sparkplugpb.Payload_Metric_BytesValue:
			m.Kind, m.Bytes = KindBytes, nonEmpty(v.BytesValue)
		case *sparkplugpb.Payload_Metric_DatasetValue:
			m.Kind = KindDataSet
			m.Bytes, err = marshalRaw(v.DatasetValue)
		case *sparkplugpb.Payload_Metric_TemplateValue:
			m.Kind = KindTemplate
			m.Bytes, err = marshalRaw(v.TemplateValue)
		case *sparkplugpb.Payload_Metric_ExtensionValue:
			m.Kind = KindExtension
			m.Bytes, err = marshalRaw(v.ExtensionValue)
		}
		if err != nil {
			return err
		}
	}
	if ps := pm.GetProperties(); ps != nil {
		var err error
		if m.Properties, err = decodeProperties(ps); err != nil {
			return err
		}
	}
	if pm.GetDatatype() != uint32(TypeUnknown) {
		return m.Resolve(DataType(pm.GetDatatype()))
	}
	return nil
}

// marshalRaw re-serialises a DataSet, Template or extension value so that it
// can be carried in Metric.Bytes and written back unchanged.
func marshalRaw(m proto.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	return nonEmpty(b), err
}

func decodeProperties(ps *sparkplugpb.Payload_PropertySet) ([]Property, error) {
	keys, vals := ps.GetKeys(), ps.GetValues()
	if len(keys) != len(vals) {
		return nil, fmt.Errorf("property set has %d keys and %d values", len(keys), len(vals))
	}
	if len(keys) == 0 {
		return nil, nil
	}
	out := make([]Property, len(keys))
	for i, pv := range vals {
		p := &out[i]
		p.Key, p.Type, p.Null = keys[i], DataType(pv.GetType()), pv.GetIsNull()
		if err := decodeProperty(p, pv); err != nil {
			return nil, fmt.Errorf("property %q: %w", p.Key, err)
		}
	}
	return out, nil
}

func decodeProperty(p *Property, pv *sparkplugpb.Payload_PropertyValue) error {
	if pv.Type == nil {
		return fmt.Errorf("%w: no type", ErrTypeMismatch)
	}
	if k := p.Type.kind(); k < KindInt || k > KindString {
		return fmt.Errorf("%w: %s properties are not supported", ErrTypeMismatch, p.Type)
	}
	if p.Null {
		return nil
	}
	var (
		k ValueKind
		n uint64
		f float64
	)
	switch v := pv.Value.(type) {
	case *sparkplugpb.Payload_PropertyValue_IntValue:
		k, n = KindInt, uint64(v.IntValue)
	case *sparkplugpb.Payload_PropertyValue_LongValue:
		k, n = KindLong, v.LongValue
	case *sparkplugpb.Payload_PropertyValue_FloatValue:
		k, f = KindFloat, float64(v.FloatValue)
	case *sparkplugpb.Payload_PropertyValue_DoubleValue:
		k, f = KindDouble, v.DoubleValue
	case *sparkplugpb.Payload_PropertyValue_BooleanValue:
		k, p.Bool = KindBoolean, v.BooleanValue
	case *sparkplugpb.Payload_PropertyValue_StringValue:
		k, p.Str = KindString, v.StringValue
	case nil:
	default:
		return fmt.Errorf("%w: nested property sets and extensions are not supported", ErrTypeMismatch)
	}
	var err error
	p.Int, p.Float, err = fit(p.Type, k, n, f)
	return err
}

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
