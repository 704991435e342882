package sparkplug

import (
	"fmt"
	"testing"
)

// benchMetrics returns n aliased metrics of mixed types, as a poll of a PLC
// produces them, every tenth with a Quality property.
func benchMetrics(n int) []Metric {
	ms := make([]Metric, n)
	for i := range ms {
		m := &ms[i]
		m.Name = fmt.Sprintf("Line1/PLC2/Tag%04d", i)
		m.Alias, m.HasAlias = uint64(i+1), true
		m.Timestamp = 1700000000000 + uint64(i)
		switch i % 5 {
		case 0:
			m.Type, m.Float = TypeDouble, float64(i)*1.25
		case 1:
			m.Type, m.Float = TypeFloat, float64(i)/4
		case 2:
			m.Type, m.Int = TypeInt16, uint64(int64(-i))
		case 3:
			m.Type, m.Int = TypeBoolean, uint64(i&1)
		case 4:
			m.Type, m.Str = TypeString, "RUNNING"
		}
		if i%10 == 0 {
			m.Properties = []Property{QualityProperty(QualityBad)}
		}
	}
	return ms
}

func BenchmarkAppendData(b *testing.B) {
	ms := benchMetrics(1000)
	buf := AppendData(nil, 1, 1, ms)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = AppendData(buf[:0], 1700000000000, uint64(i%256), ms)
	}
	b.ReportMetric(float64(len(ms))*float64(b.N)/b.Elapsed().Seconds(), "metrics/s")
}

func BenchmarkAppendBirth(b *testing.B) {
	ms := benchMetrics(1000)
	buf := AppendBirth(nil, 1, 0, ms)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = AppendBirth(buf[:0], 1700000000000, 0, ms)
	}
	b.ReportMetric(float64(len(ms))*float64(b.N)/b.Elapsed().Seconds(), "metrics/s")
}

func BenchmarkDecode(b *testing.B) {
	ms := benchMetrics(1000)
	buf := AppendBirth(nil, 1, 0, ms)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(ms))*float64(b.N)/b.Elapsed().Seconds(), "metrics/s")
}

// BenchmarkAppendTemplate encodes a DDATA whose one metric is a template
// instance of 1000 members, as a device published as a UDT instance sends
// it: the template into a reused buffer, then the payload.
func BenchmarkAppendTemplate(b *testing.B) {
	ms := benchMetrics(1000)
	for i := range ms {
		ms[i].HasAlias = false
	}
	t := &Template{Ref: "Line", Metrics: ms}
	tb := AppendTemplate(nil, t)
	m := []Metric{{Alias: 1, HasAlias: true, Timestamp: 1700000000000, Type: TypeTemplate, Bytes: tb}}
	buf := AppendData(nil, 1, 1, m)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m[0].Bytes = AppendTemplate(m[0].Bytes[:0], t)
		buf = AppendData(buf[:0], 1700000000000, uint64(i%256), m)
	}
	b.ReportMetric(float64(len(ms))*float64(b.N)/b.Elapsed().Seconds(), "members/s")
}
