package record

import (
	"math"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers"
)

func TestRoundTrip(t *testing.T) {
	tags := []drivers.Tag{{Name: "b"}, {Name: "i8"}, {Name: "i64"}, {Name: "u64"}, {Name: "f32"}, {Name: "f64"}, {Name: "s"}, {Name: "dt"}, {Name: "bad"}}
	at := time.Now().UnixMilli()
	pts := []Point{
		{Tag: 0, Value: drivers.BoolValue(true), Time: at - 5},
		{Tag: 1, Value: drivers.IntValue(drivers.Int8, -128), Time: at},
		{Tag: 2, Value: drivers.IntValue(drivers.Int64, math.MinInt64), Time: at + 1},
		{Tag: 3, Value: drivers.UintValue(drivers.Uint64, math.MaxUint64), Time: at},
		{Tag: 4, Value: drivers.FloatValue(drivers.Float32, float64(float32(3.25))), Time: at},
		{Tag: 5, Value: drivers.FloatValue(drivers.Float64, math.Inf(-1)), Time: at},
		{Tag: 6, Value: drivers.StringValue("héllo\x00"), Time: at},
		{Tag: 7, Value: drivers.TimeValueMs(-1000), Time: at},
		{Tag: 8, Value: drivers.UintValue(drivers.Uint16, 0), Time: at, Quality: drivers.QualityBad},
	}
	b := Append(nil, Data, "dev-1", tags, at, pts)
	var r Record
	if err := Decode(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Kind != Data || string(r.Device) != "dev-1" || r.Time != at || len(r.Samples) != len(pts) {
		t.Fatalf("decoded %+v", r)
	}
	for i, p := range r.Samples {
		w := pts[i]
		if string(p.Name) != tags[w.Tag].Name || p.Hint != uint64(w.Tag) || !p.Value.Equal(w.Value) || p.Time != w.Time || p.Quality != w.Quality {
			t.Errorf("point %d = {%s %d %v %d %v}, want {%s %d %v %d %v}", i, p.Name, p.Hint, p.Value, p.Time, p.Quality, tags[w.Tag].Name, w.Tag, w.Value, w.Time, w.Quality)
		}
	}
	// Every truncation is an error, never a panic or a short record.
	for n := 0; n < len(b); n++ {
		if err := Decode(b[:n], &r); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
}

func FuzzDecode(f *testing.F) {
	tags := []drivers.Tag{{Name: "a"}, {Name: "b"}}
	f.Add(Append(nil, Data, "d", tags, 1, []Point{{Tag: 0, Value: drivers.BoolValue(true)}, {Tag: 1, Value: drivers.StringValue("x")}}))
	f.Add(Append(nil, Offline, "d", tags, 1, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		_ = Decode(b, &r) // must not panic or allocate without bound
	})
}
