package sparkplug

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of sparkplug_b.proto used by the encoder.
const (
	fPayloadTimestamp protowire.Number = 1
	fPayloadMetrics   protowire.Number = 2
	fPayloadSeq       protowire.Number = 3
	fPayloadUUID      protowire.Number = 4
	fPayloadBody      protowire.Number = 5

	fMetricName       protowire.Number = 1
	fMetricAlias      protowire.Number = 2
	fMetricTimestamp  protowire.Number = 3
	fMetricDatatype   protowire.Number = 4
	fMetricHistorical protowire.Number = 5
	fMetricTransient  protowire.Number = 6
	fMetricNull       protowire.Number = 7
	fMetricProperties protowire.Number = 9
	fMetricValue0     protowire.Number = 9 // + ValueKind

	fSetKeys   protowire.Number = 1
	fSetValues protowire.Number = 2

	fPropType   protowire.Number = 1
	fPropNull   protowire.Number = 2
	fPropValue0 protowire.Number = 2 // + ValueKind, KindInt..KindString only

	fTemplateVersion    protowire.Number = 1
	fTemplateMetrics    protowire.Number = 2 // = fPayloadMetrics, so appendMetric serves both
	fTemplateParameters protowire.Number = 3
	fTemplateRef        protowire.Number = 4
	fTemplateIsDef      protowire.Number = 5

	fParamName   protowire.Number = 1
	fParamType   protowire.Number = 2
	fParamValue0 protowire.Number = 2 // + ValueKind, KindInt..KindString only
)

// mode selects which metric fields a message type carries.
type mode uint8

const (
	modeBirth   mode = iota // name, alias if any, datatype
	modeData                // alias if any, else name; no datatype
	modeCommand             // alias if any, else name; datatype
	modeRaw                 // whatever is set: name if non-empty, datatype if known
	modeMember              // template member: name, never an alias, datatype if known
)

// AppendBirth appends an NBIRTH or DBIRTH payload: timestamp, every metric
// with name, alias (if HasAlias) and datatype, and seq, present even when 0.
func AppendBirth(dst []byte, ts, seq uint64, metrics []Metric) []byte {
	dst = appendVarintField(dst, fPayloadTimestamp, ts)
	dst = appendMetrics(dst, metrics, modeBirth)
	return appendVarintField(dst, fPayloadSeq, seq)
}

// AppendData appends an NDATA or DDATA payload: timestamp, metrics without
// datatype and with the alias only (no name) when HasAlias, and seq.
func AppendData(dst []byte, ts, seq uint64, metrics []Metric) []byte {
	dst = appendVarintField(dst, fPayloadTimestamp, ts)
	dst = appendMetrics(dst, metrics, modeData)
	return appendVarintField(dst, fPayloadSeq, seq)
}

// AppendNodeDeath appends an NDEATH payload, the MQTT Will: only the bdSeq
// metric (by name, Int64 in long_value) and no seq. ts, written only if
// non-zero, stamps both the payload and the metric.
func AppendNodeDeath(dst []byte, ts uint64, bdSeq uint64) []byte {
	if ts != 0 {
		dst = appendVarintField(dst, fPayloadTimestamp, ts)
	}
	m := BdSeqMetric(bdSeq, ts)
	return appendMetric(dst, &m, modeBirth)
}

// AppendDeviceDeath appends a DDEATH payload: timestamp and seq, no metrics.
func AppendDeviceDeath(dst []byte, ts, seq uint64) []byte {
	dst = appendVarintField(dst, fPayloadTimestamp, ts)
	return appendVarintField(dst, fPayloadSeq, seq)
}

// AppendCommand appends an NCMD or DCMD payload as a host sends it:
// timestamp, metrics with alias (when HasAlias) or name, datatype and value,
// and no seq.
func AppendCommand(dst []byte, ts uint64, metrics []Metric) []byte {
	dst = appendVarintField(dst, fPayloadTimestamp, ts)
	return appendMetrics(dst, metrics, modeCommand)
}

// appendPayload writes every field p has: the inverse of Decode, used to
// check that decoding loses nothing.
func appendPayload(dst []byte, p *Payload) []byte {
	if p.Timestamp != 0 {
		dst = appendVarintField(dst, fPayloadTimestamp, p.Timestamp)
	}
	dst = appendMetrics(dst, p.Metrics, modeRaw)
	if p.HasSeq {
		dst = appendVarintField(dst, fPayloadSeq, p.Seq)
	}
	if p.UUID != "" {
		dst = protowire.AppendTag(dst, fPayloadUUID, protowire.BytesType)
		dst = protowire.AppendString(dst, p.UUID)
	}
	if len(p.Body) > 0 {
		dst = protowire.AppendTag(dst, fPayloadBody, protowire.BytesType)
		dst = protowire.AppendBytes(dst, p.Body)
	}
	return dst
}

func appendMetrics(b []byte, ms []Metric, md mode) []byte {
	for i := range ms {
		b = appendMetric(b, &ms[i], md)
	}
	return b
}

func appendMetric(b []byte, m *Metric, md mode) []byte {
	b, start := openMessage(b, fPayloadMetrics)
	name := !m.HasAlias || md == modeBirth || md == modeMember
	if md == modeRaw {
		name = m.Name != ""
	}
	if name {
		b = protowire.AppendTag(b, fMetricName, protowire.BytesType)
		b = protowire.AppendString(b, m.Name)
	}
	if m.HasAlias && md != modeMember {
		b = appendVarintField(b, fMetricAlias, m.Alias)
	}
	if m.Timestamp != 0 {
		b = appendVarintField(b, fMetricTimestamp, m.Timestamp)
	}
	if md == modeBirth || md == modeCommand || (md == modeRaw || md == modeMember) && m.Type != TypeUnknown {
		b = appendVarintField(b, fMetricDatatype, uint64(m.Type))
	}
	if m.Historical {
		b = appendVarintField(b, fMetricHistorical, 1)
	}
	if m.Transient {
		b = appendVarintField(b, fMetricTransient, 1)
	}
	if m.Null {
		b = appendVarintField(b, fMetricNull, 1)
	}
	if len(m.Properties) > 0 {
		b = appendProperties(b, m.Properties)
	}
	if !m.Null {
		k := m.Type.kind()
		if m.Type == TypeUnknown {
			k = m.Kind
		}
		b = appendValue(b, fMetricValue0, k, m.Type, m.Int, m.Float, m.Str, m.Bytes)
	}
	return closeMessage(b, start)
}

func appendProperties(b []byte, ps []Property) []byte {
	b, set := openMessage(b, fMetricProperties)
	for i := range ps {
		b = protowire.AppendTag(b, fSetKeys, protowire.BytesType)
		b = protowire.AppendString(b, ps[i].Key)
	}
	for i := range ps {
		p := &ps[i]
		var v int
		b, v = openMessage(b, fSetValues)
		b = appendVarintField(b, fPropType, uint64(p.Type))
		if p.Null {
			b = appendVarintField(b, fPropNull, 1)
		} else if k := p.Type.kind(); k >= KindInt && k <= KindString {
			n := p.Int
			if k == KindBoolean {
				n = b2u(p.Bool)
			}
			b = appendValue(b, fPropValue0, k, p.Type, n, p.Float, p.Str, nil)
		}
		b = closeMessage(b, v)
	}
	return closeMessage(b, set)
}

// appendValue writes the value field of kind k, numbered base+k.
func appendValue(b []byte, base protowire.Number, k ValueKind, t DataType, n uint64, f float64, s string, raw []byte) []byte {
	num := base + protowire.Number(k)
	switch k {
	case KindInt:
		return appendVarintField(b, num, uint64(intValue(t, n)))
	case KindLong:
		return appendVarintField(b, num, n)
	case KindFloat:
		b = protowire.AppendTag(b, num, protowire.Fixed32Type)
		return protowire.AppendFixed32(b, math.Float32bits(float32(f)))
	case KindDouble:
		b = protowire.AppendTag(b, num, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(f))
	case KindBoolean:
		if n != 0 {
			n = 1
		}
		return appendVarintField(b, num, n)
	case KindString:
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, s)
	case KindBytes, KindDataSet, KindTemplate, KindExtension:
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, raw)
	}
	return b
}

// intValue is the int_value encoding of n for type t: truncated to t's width,
// signed types sign-extended to 32 bits.
func intValue(t DataType, n uint64) uint32 {
	switch t {
	case TypeInt8:
		return uint32(int8(n))
	case TypeInt16:
		return uint32(int16(n))
	case TypeUInt8:
		return uint32(uint8(n))
	case TypeUInt16:
		return uint32(uint16(n))
	}
	return uint32(n)
}

func b2u(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// openMessage starts an embedded message field: its tag and one byte
// reserved for the length, which closeMessage fills in. It returns where the
// message body starts.
func openMessage(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = append(b, 0)
	return b, len(b)
}

// closeMessage writes the length of the body that began at start. Most
// metrics are under 128 bytes and fit the reserved byte; a longer body is
// moved right to make room, which keeps the encoding canonical without a
// separate sizing pass.
func closeMessage(b []byte, start int) []byte {
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	b = append(b, make([]byte, extra)...)
	copy(b[start+extra:], b[start:start+n])
	protowire.AppendVarint(b[:start-1], uint64(n))
	return b
}
