package agent

import (
	"math"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers"
)

func TestRecordRoundTrip(t *testing.T) {
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
	b := appendRecord(nil, recData, "dev-1", tags, at, pts)
	var r record
	if err := decodeRecord(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.kind != recData || string(r.device) != "dev-1" || r.time != at || len(r.points) != len(pts) {
		t.Fatalf("decoded %+v", r)
	}
	for i, p := range r.points {
		w := pts[i]
		if string(p.name) != tags[w.Tag].Name || !p.value.Equal(w.Value) || p.time != w.Time || p.quality != w.Quality {
			t.Errorf("point %d = {%s %v %d %v}, want {%s %v %d %v}", i, p.name, p.value, p.time, p.quality, tags[w.Tag].Name, w.Value, w.Time, w.Quality)
		}
	}
	// Every truncation is an error, never a panic or a short record.
	for n := 0; n < len(b); n++ {
		if err := decodeRecord(b[:n], &r); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	tags := []drivers.Tag{{Name: "a"}, {Name: "b"}}
	f.Add(appendRecord(nil, recData, "d", tags, 1, []Point{{Tag: 0, Value: drivers.BoolValue(true)}, {Tag: 1, Value: drivers.StringValue("x")}}))
	f.Add(appendRecord(nil, recOffline, "d", tags, 1, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r record
		_ = decodeRecord(b, &r) // must not panic or allocate without bound
	})
}

func TestScale(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		scale, offset *float64
		raw, want     float64
	}{
		{f(0.1), nil, 454, 45.4},
		{f(0.01), nil, 5798, 57.98},
		{f(0.1), f(-40), 650, 25},
		{f(2.5), nil, 4, 10},
		{f(-0.5), nil, 4, -2},
		{nil, f(1), 1, 2},
	} {
		tag := drivers.Tag{Scale: c.scale, Offset: c.offset}
		if got := scale(&tag, c.raw); got != c.want {
			t.Errorf("scale(%v) = %v, want %v", c.raw, got, c.want)
		}
	}
}

// A stored point finds its tag by the index it was written with while
// that tag keeps its name, by name when the tags were reordered, and not
// at all when the tag is gone.
func TestTagIndexHint(t *testing.T) {
	d := &device{}
	d.setTags([]drivers.Tag{{Name: "b"}, {Name: "a"}, {Name: "c"}})
	for _, c := range []struct {
		name string
		hint uint64
		want int
		ok   bool
	}{
		{"a", 1, 1, true},  // unchanged
		{"a", 0, 1, true},  // reordered
		{"b", 7, 0, true},  // hint out of range
		{"c", 9, 2, true},  // hint out of range, last by name
		{"d", 0, 0, false}, // removed
		{"", 0, 0, false},  // removed
	} {
		j, ok := d.tagIndex(&recPoint{name: []byte(c.name), hint: c.hint})
		if ok != c.ok || (ok && j != c.want) {
			t.Errorf("tagIndex(%s, hint %d) = %d, %v; want %d, %v", c.name, c.hint, j, ok, c.want, c.ok)
		}
	}
}
