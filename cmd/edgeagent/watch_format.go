package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/edgeagent/edgeagent/sparkplug"
	"github.com/edgeagent/edgeagent/sparkplug/sparkplugpb"
)

// How much of a long value a traffic line shows.
const (
	showBytes    = 32 // of Bytes and File values
	showElements = 16 // of arrays
	showRows     = 4  // of DataSets
)

// formatValue formats a metric's value for a traffic line, decoding what
// travels in bytes: arrays element by element, DataSets as columns and
// rows, templates as Ref{member=value, ...}. A metric whose type is not
// known (an alias the watcher has no birth for) is formatted by the field
// its value came in. The error says why a bytes-carried value does not
// decode as its datatype; the string is then the raw hex.
func formatValue(m *sparkplug.Metric) (string, error) {
	if m.Null {
		return "null", nil
	}
	t := m.Type
	switch {
	case t >= sparkplug.TypeInt8Array && t <= sparkplug.TypeDateTimeArray:
		s, err := formatArray(t, m.Bytes)
		if err != nil {
			return formatBytes(m.Bytes), fmt.Errorf("%s value of %d bytes: %w", t, len(m.Bytes), err)
		}
		return s, nil
	case t == sparkplug.TypeDataSet || t == sparkplug.TypeUnknown && m.Kind == sparkplug.KindDataSet:
		s, err := formatDataSet(m.Bytes)
		if err != nil {
			return formatBytes(m.Bytes), fmt.Errorf("DataSet: %w", err)
		}
		return s, nil
	case t == sparkplug.TypeTemplate || t == sparkplug.TypeUnknown && m.Kind == sparkplug.KindTemplate:
		tp, err := sparkplug.DecodeTemplate(m.Bytes)
		if err != nil {
			return formatBytes(m.Bytes), err
		}
		return formatTemplate(tp), nil
	case t == sparkplug.TypeBytes, t == sparkplug.TypeFile,
		t == sparkplug.TypeUnknown && (m.Kind == sparkplug.KindBytes || m.Kind == sparkplug.KindExtension):
		return formatBytes(m.Bytes), nil
	}
	return m.ValueString(), nil
}

// formatBytes is hex, cut after showBytes bytes.
func formatBytes(b []byte) string {
	if len(b) <= showBytes {
		return "0x" + hex.EncodeToString(b)
	}
	return fmt.Sprintf("0x%s…(%d bytes)", hex.EncodeToString(b[:showBytes]), len(b))
}

// elemWidth is the packed width of the elements of a fixed-width array type.
func elemWidth(t sparkplug.DataType) int {
	switch t {
	case sparkplug.TypeInt8Array, sparkplug.TypeUInt8Array:
		return 1
	case sparkplug.TypeInt16Array, sparkplug.TypeUInt16Array:
		return 2
	case sparkplug.TypeInt32Array, sparkplug.TypeUInt32Array, sparkplug.TypeFloatArray:
		return 4
	}
	return 8 // Int64, UInt64, Double, DateTime
}

// decodeArray splits a Sparkplug array (Sparkplug 3.0 ch.6 §Datatype
// Details: little-endian, BooleanArray as a 4-byte count and bits MSB
// first, StringArray NUL-terminated) into formatted elements.
func decodeArray(t sparkplug.DataType, b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	switch t {
	case sparkplug.TypeBooleanArray:
		if len(b) < 4 {
			return nil, errors.New("shorter than its 4-byte count")
		}
		n := int(binary.LittleEndian.Uint32(b))
		if (n+7)/8 != len(b)-4 {
			return nil, fmt.Errorf("a count of %d booleans in %d bytes of bits", n, len(b)-4)
		}
		out := make([]string, n)
		for i := range out {
			out[i] = strconv.FormatBool(b[4+i/8]&(0x80>>(i%8)) != 0)
		}
		return out, nil
	case sparkplug.TypeStringArray:
		if b[len(b)-1] != 0 {
			return nil, errors.New("the last string is not NUL-terminated")
		}
		parts := strings.Split(string(b[:len(b)-1]), "\x00")
		for i, p := range parts {
			parts[i] = strconv.Quote(p)
		}
		return parts, nil
	}
	w := elemWidth(t)
	if len(b)%w != 0 {
		return nil, fmt.Errorf("not whole elements of %d bytes", w)
	}
	out := make([]string, len(b)/w)
	for i := range out {
		var u uint64
		for k := w - 1; k >= 0; k-- {
			u = u<<8 | uint64(b[i*w+k])
		}
		switch t {
		case sparkplug.TypeInt8Array:
			out[i] = strconv.Itoa(int(int8(u)))
		case sparkplug.TypeInt16Array:
			out[i] = strconv.Itoa(int(int16(u)))
		case sparkplug.TypeInt32Array:
			out[i] = strconv.Itoa(int(int32(u)))
		case sparkplug.TypeInt64Array:
			out[i] = strconv.FormatInt(int64(u), 10)
		case sparkplug.TypeFloatArray:
			out[i] = strconv.FormatFloat(float64(math.Float32frombits(uint32(u))), 'g', -1, 32)
		case sparkplug.TypeDoubleArray:
			out[i] = strconv.FormatFloat(math.Float64frombits(u), 'g', -1, 64)
		case sparkplug.TypeDateTimeArray:
			out[i] = time.UnixMilli(int64(u)).UTC().Format("2006-01-02T15:04:05.000Z07:00")
		default: // unsigned
			out[i] = strconv.FormatUint(u, 10)
		}
	}
	return out, nil
}

// formatArray is [e1 e2 ...], cut after showElements elements.
func formatArray(t sparkplug.DataType, b []byte) (string, error) {
	elems, err := decodeArray(t, b)
	if err != nil {
		return "", err
	}
	var s strings.Builder
	s.WriteByte('[')
	for i, e := range elems {
		if i == showElements {
			fmt.Fprintf(&s, " … +%d", len(elems)-i)
			break
		}
		if i > 0 {
			s.WriteByte(' ')
		}
		s.WriteString(e)
	}
	s.WriteByte(']')
	return s.String(), nil
}

// formatDataSet decodes a serialised DataSet, checks its shape (as many
// columns as types and as num_of_columns, every row as wide, basic types
// only, every value fitting its column's type) and formats it as
// {col:Type col:Type; [v v] [v v]}, cut after showRows rows.
func formatDataSet(b []byte) (string, error) {
	var ds sparkplugpb.Payload_DataSet
	if err := proto.Unmarshal(b, &ds); err != nil {
		return "", err
	}
	cols, types := ds.GetColumns(), ds.GetTypes()
	if len(cols) != len(types) || ds.NumOfColumns != nil && ds.GetNumOfColumns() != uint64(len(cols)) {
		return "", fmt.Errorf("%d columns, %d types, num_of_columns %d: they must agree", len(cols), len(types), ds.GetNumOfColumns())
	}
	var s strings.Builder
	s.WriteByte('{')
	for i, c := range cols {
		t := sparkplug.DataType(types[i])
		if t < sparkplug.TypeInt8 || t > sparkplug.TypeText {
			return "", fmt.Errorf("column %q has type %s; DataSet columns take basic types only", c, t)
		}
		if i > 0 {
			s.WriteByte(' ')
		}
		fmt.Fprintf(&s, "%s:%s", c, t)
	}
	s.WriteByte(';')
	for r, row := range ds.GetRows() {
		els := row.GetElements()
		if len(els) != len(cols) {
			return "", fmt.Errorf("row %d has %d values for %d columns", r, len(els), len(cols))
		}
		var line strings.Builder
		for i, e := range els {
			m := sparkplug.Metric{}
			switch v := e.GetValue().(type) {
			case *sparkplugpb.Payload_DataSet_DataSetValue_IntValue:
				m.Kind, m.Int = sparkplug.KindInt, uint64(v.IntValue)
			case *sparkplugpb.Payload_DataSet_DataSetValue_LongValue:
				m.Kind, m.Int = sparkplug.KindLong, v.LongValue
			case *sparkplugpb.Payload_DataSet_DataSetValue_FloatValue:
				m.Kind, m.Float = sparkplug.KindFloat, float64(v.FloatValue)
			case *sparkplugpb.Payload_DataSet_DataSetValue_DoubleValue:
				m.Kind, m.Float = sparkplug.KindDouble, v.DoubleValue
			case *sparkplugpb.Payload_DataSet_DataSetValue_BooleanValue:
				m.Kind = sparkplug.KindBoolean
				if v.BooleanValue {
					m.Int = 1
				}
			case *sparkplugpb.Payload_DataSet_DataSetValue_StringValue:
				m.Kind, m.Str = sparkplug.KindString, v.StringValue
			default:
				m.Null = true // an absent value: an empty cell
			}
			if err := m.Resolve(sparkplug.DataType(types[i])); err != nil {
				return "", fmt.Errorf("row %d, column %q: %w", r, cols[i], err)
			}
			if i > 0 {
				line.WriteByte(' ')
			}
			line.WriteString(m.ValueString())
		}
		if r < showRows {
			fmt.Fprintf(&s, " [%s]", line.String())
		} else if r == showRows {
			fmt.Fprintf(&s, " … +%d rows", len(ds.GetRows())-r)
		}
	}
	s.WriteByte('}')
	return s.String(), nil
}

// formatTemplate is Ref(param=value ...){member=value, ...}, "definition"
// standing for the Ref of a definition; members are formatted as metrics.
func formatTemplate(t *sparkplug.Template) string {
	var s strings.Builder
	if t.IsDefinition {
		s.WriteString("definition")
	} else {
		s.WriteString(t.Ref)
	}
	if len(t.Parameters) > 0 {
		s.WriteByte('(')
		for i, p := range t.Parameters {
			if i > 0 {
				s.WriteString(", ")
			}
			v := sparkplug.Metric{Type: p.Type, Int: p.Int, Float: p.Float, Str: p.Str, Null: p.Null}
			if p.Type == sparkplug.TypeBoolean && p.Bool {
				v.Int = 1
			}
			s.WriteString(p.Name + "=" + v.ValueString())
		}
		s.WriteByte(')')
	}
	s.WriteByte('{')
	for i := range t.Metrics {
		if i > 0 {
			s.WriteString(", ")
		}
		v, _ := formatValue(&t.Metrics[i])
		s.WriteString(t.Metrics[i].Name + "=" + v)
	}
	s.WriteByte('}')
	return s.String()
}

// qualityNote is " (quality bad)" and the like for a metric whose Quality
// property is not good, else "".
func qualityNote(m *sparkplug.Metric) string {
	for _, p := range m.Properties {
		if p.Key != sparkplug.PropertyQuality || p.Null {
			continue
		}
		switch q := int64(p.Int); q {
		case sparkplug.QualityGood:
			return ""
		case sparkplug.QualityBad:
			return " (quality bad)"
		case sparkplug.QualityStale:
			return " (quality stale)"
		default:
			return fmt.Sprintf(" (quality %d)", q)
		}
	}
	return ""
}

// clockMs formats a Sparkplug timestamp (UTC ms) in local time, as the
// lines are stamped.
func clockMs(ms uint64) string { return time.UnixMilli(int64(ms)).Format("15:04:05.000") }

// countNames lists names with how often each occurs, in first-seen order:
// "speed ×19, torque ×19".
func countNames(names []string) string {
	var order []string
	n := map[string]int{}
	for _, name := range names {
		if n[name] == 0 {
			order = append(order, name)
		}
		n[name]++
	}
	var b strings.Builder
	for i, name := range order {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s ×%d", name, n[name])
	}
	return b.String()
}
