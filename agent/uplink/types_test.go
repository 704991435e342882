package uplink

import (
	"testing"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// Every type a tag can have is a Sparkplug datatype, and a value of it
// crosses a payload and comes back from a command as it was.
func TestTypesOnTheWire(t *testing.T) {
	elems := map[drivers.Type][]drivers.Value{
		drivers.Bool:     {drivers.BoolValue(true), drivers.BoolValue(false), drivers.BoolValue(true)},
		drivers.Int8:     {drivers.IntValue(drivers.Int8, -3)},
		drivers.Int16:    {drivers.IntValue(drivers.Int16, -300), drivers.IntValue(drivers.Int16, 7)},
		drivers.Int32:    {drivers.IntValue(drivers.Int32, -70000)},
		drivers.Int64:    {drivers.IntValue(drivers.Int64, -1<<40)},
		drivers.Uint8:    {drivers.UintValue(drivers.Uint8, 250)},
		drivers.Uint16:   {drivers.UintValue(drivers.Uint16, 65000)},
		drivers.Uint32:   {drivers.UintValue(drivers.Uint32, 4e9)},
		drivers.Uint64:   {drivers.UintValue(drivers.Uint64, 1<<63+5)},
		drivers.Float32:  {drivers.FloatValue(drivers.Float32, 0.5)},
		drivers.Float64:  {drivers.FloatValue(drivers.Float64, 1e300)},
		drivers.String:   {drivers.StringValue("pump"), drivers.StringValue("")},
		drivers.DateTime: {drivers.TimeValueMs(1_700_000_000_000)},
	}
	seen := map[sparkplug.DataType]drivers.Type{}
	check := func(dt drivers.Type, v drivers.Value) {
		st := spType(dt)
		if st == sparkplug.TypeUnknown {
			t.Errorf("%s has no Sparkplug datatype", dt)
			return
		}
		if other, dup := seen[st]; dup {
			t.Errorf("%s and %s are both %s", dt, other, st)
		}
		seen[st] = dt
		if back := fromSpType(st); back != dt {
			t.Errorf("%s → %s → %s", dt, st, back)
		}
		m := sparkplug.Metric{Name: "x", Type: st}
		setValue(&m, v)
		p, err := sparkplug.Decode(sparkplug.AppendData(nil, 1, 0, []sparkplug.Metric{m}))
		if err != nil {
			t.Fatalf("%s: %v", dt, err)
		}
		// DATA carries no datatype: a command's value is resolved
		// against the birth's, as handling a DCMD does.
		if err := p.Metrics[0].Resolve(st); err != nil {
			t.Fatalf("%s: %v", dt, err)
		}
		got, err := fromMetric(&p.Metrics[0])
		if err != nil {
			t.Fatalf("%s: %v", dt, err)
		}
		// Commands carry integers and floats at full width; the scanner
		// converts them to the tag's type (ToRaw).
		if dt.IsArray() || dt == drivers.Bytes || dt == drivers.String || dt == drivers.Bool || dt == drivers.DateTime {
			if !got.Equal(v) {
				t.Errorf("%s: %v came back as %v", dt, v, got)
			}
		} else if got.String() != v.String() {
			t.Errorf("%s: %v came back as %v", dt, v, got)
		}
	}
	for dt := drivers.Bool; dt <= drivers.Bytes; dt++ {
		if dt == drivers.Bytes {
			check(dt, drivers.BytesValue([]byte{0, 0xfe}))
			continue
		}
		check(dt, elems[dt][0])
		arr, err := drivers.Array(dt, elems[dt])
		if err != nil {
			t.Fatal(err)
		}
		check(drivers.ArrayOf(dt), arr)
	}
}
