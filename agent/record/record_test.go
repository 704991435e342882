package record

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers"
)

// schemas is a fixed set of schemas for decoding.
type schemas map[uint64][]drivers.Type

func (s schemas) Types(id uint64) ([]drivers.Type, bool) { t, ok := s[id]; return t, ok }

var allTypes = []drivers.Type{drivers.Bool, drivers.Int8, drivers.Int64, drivers.Uint64, drivers.Float32, drivers.Float64, drivers.String, drivers.DateTime, drivers.Uint16, drivers.Int32,
	drivers.Bytes, drivers.ArrayOf(drivers.Float32), drivers.ArrayOf(drivers.Bool), drivers.ArrayOf(drivers.String), drivers.ArrayOf(drivers.Int16), drivers.ArrayOf(drivers.DateTime)}

func mustArray(elem drivers.Type, vs ...drivers.Value) drivers.Value {
	v, err := drivers.Array(elem, vs)
	if err != nil {
		panic(err)
	}
	return v
}

func testPoints(at int64) []Point {
	return []Point{
		{Tag: 0, Value: drivers.BoolValue(true), Time: at - 5},
		{Tag: 1, Value: drivers.IntValue(drivers.Int8, -128), Time: at},
		{Tag: 2, Value: drivers.IntValue(drivers.Int64, math.MinInt64), Time: at + 1},
		{Tag: 3, Value: drivers.UintValue(drivers.Uint64, math.MaxUint64), Time: at},
		{Tag: 4, Value: drivers.FloatValue(drivers.Float32, float64(float32(3.25))), Time: at},
		{Tag: 5, Value: drivers.FloatValue(drivers.Float64, math.Inf(-1)), Time: at},
		{Tag: 6, Value: drivers.StringValue("héllo\x00"), Time: at},
		{Tag: 7, Value: drivers.TimeValueMs(-1000), Time: at},
		{Tag: 8, Value: drivers.UintValue(drivers.Uint16, 0), Time: at, Quality: drivers.QualityBad},
		{Tag: 9, Value: drivers.IntValue(drivers.Int32, 12), Time: at - 60000, Quality: drivers.QualityStale},
		{Tag: 10, Value: drivers.BytesValue([]byte{0, 1, 0xff}), Time: at},
		{Tag: 11, Value: mustArray(drivers.Float32, drivers.FloatValue(drivers.Float32, 1.5), drivers.FloatValue(drivers.Float32, -2)), Time: at},
		{Tag: 12, Value: mustArray(drivers.Bool, drivers.BoolValue(true), drivers.BoolValue(false), drivers.BoolValue(true)), Time: at},
		{Tag: 13, Value: mustArray(drivers.String, drivers.StringValue("a"), drivers.StringValue(""), drivers.StringValue("ü")), Time: at},
		{Tag: 14, Value: mustArray(drivers.Int16), Time: at},
		{Tag: 15, Value: mustArray(drivers.DateTime, drivers.TimeValueMs(1), drivers.TimeValueMs(-2)), Time: at},
		{Tag: 3, Value: drivers.UintValue(drivers.Uint64, 7), Time: at + 100}, // a tag again, later
		{Tag: 0, Value: drivers.BoolValue(false), Time: at + 100},             // going back
	}
}

func TestRoundTripV3(t *testing.T) {
	names := []string{"b", "i8", "i64", "u64", "f32", "f64", "s", "dt", "bad", "stale", "bytes", "f32s", "bools", "strings", "i16s", "dts"}
	sch := &Schema{Device: "dev-1", Names: names, Types: allTypes}
	enc := sch.Encode()
	got, err := DecodeSchema(enc)
	if err != nil || got.Device != "dev-1" || strings.Join(got.Names, ",") != strings.Join(names, ",") || len(got.Types) != len(allTypes) {
		t.Fatalf("schema round trip: %+v, %v", got, err)
	}
	id := SchemaID(enc)
	at := time.Now().UnixMilli()
	pts := testPoints(at)
	var e Encoder
	b := e.Begin(nil, Data, id, sch.Types, at, len(pts))
	for i := range pts {
		b = e.Add(b, &pts[i])
	}
	var r Record
	if err := Decode(b, &r, schemas{id: allTypes}); err != nil {
		t.Fatal(err)
	}
	if r.Version != 3 || r.Kind != Data || r.Schema != id || r.Time != at || len(r.Samples) != len(pts) {
		t.Fatalf("decoded %+v", r)
	}
	for i, p := range r.Samples {
		w := pts[i]
		want := w.Value
		if w.Quality == drivers.QualityBad {
			want = drivers.ZeroValue(allTypes[w.Tag])
		}
		if p.Index != w.Tag || !p.Value.Equal(want) || p.Time != w.Time || p.Quality != w.Quality {
			t.Errorf("sample %d = {%d %v %d %v}, want {%d %v %d %v}", i, p.Index, p.Value, p.Time, p.Quality, w.Tag, want, w.Time, w.Quality)
		}
	}
	for n := 0; n < len(b); n++ {
		if err := Decode(b[:n], &r, schemas{id: allTypes}); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
	if err := Decode(b, &r, schemas{}); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("unknown schema: %v", err)
	}
}

// What a sample costs, whatever its tag's name: the figures the
// documentation gives.
func TestSampleCosts(t *testing.T) {
	types := []drivers.Type{drivers.Uint16, drivers.Uint16, drivers.Float64, drivers.String, drivers.Int32}
	at := int64(1_800_000_000_000)
	for _, c := range []struct {
		name string
		p    Point
		max  int
	}{
		{"uint16 register, next tag, scan time", Point{Tag: 0, Value: drivers.UintValue(drivers.Uint16, 65535), Time: at}, 4},
		{"uint16 register, small value", Point{Tag: 0, Value: drivers.UintValue(drivers.Uint16, 100), Time: at}, 2},
		{"double", Point{Tag: 2, Value: drivers.FloatValue(drivers.Float64, 21.5), Time: at}, 10},
		{"8-character string", Point{Tag: 3, Value: drivers.StringValue("RECIPE-7"), Time: at}, 11},
		{"bad quality", Point{Tag: 4, Value: drivers.IntValue(drivers.Int32, 0), Time: at, Quality: drivers.QualityBad}, 2},
		{"uint16, another request's time", Point{Tag: 0, Value: drivers.UintValue(drivers.Uint16, 65535), Time: at + 3}, 5},
	} {
		var e Encoder
		h := e.Begin(nil, Data, 1, types, at, 1)
		b := e.Add(nil, &c.p)
		if len(b) > c.max {
			t.Errorf("%s: %d bytes, want at most %d", c.name, len(b), c.max)
		}
		_ = h
	}
	// A run of consecutive changed registers: one head byte each.
	var e Encoder
	b := e.Begin(nil, Data, 1, []drivers.Type{drivers.Uint16, drivers.Uint16, drivers.Uint16}, at, 3)
	n := len(b)
	for i := range 3 {
		p := Point{Tag: int32(i), Value: drivers.UintValue(drivers.Uint16, 1000), Time: at}
		b = e.Add(b, &p)
	}
	if per := (len(b) - n) / 3; per != 3 {
		t.Errorf("consecutive uint16 registers cost %d bytes each, want 3", per)
	}
}

func TestRoundTripV2(t *testing.T) {
	tags := []drivers.Tag{{Name: "b"}, {Name: "i8"}, {Name: "i64"}, {Name: "u64"}, {Name: "f32"}, {Name: "f64"}, {Name: "s"}, {Name: "dt"}, {Name: "bad"}, {Name: "stale"}}
	at := time.Now().UnixMilli()
	var pts []Point
	for _, p := range testPoints(at) {
		if int(p.Tag) < len(tags) { // version 2 predates bytes and arrays
			pts = append(pts, p)
		}
	}
	b := AppendV2(nil, Data, "dev-1", tags, at, pts)
	var r Record
	if err := Decode(b, &r, nil); err != nil {
		t.Fatal(err)
	}
	if r.Version != 2 || r.Kind != Data || string(r.Device) != "dev-1" || r.Time != at || len(r.Samples) != len(pts) {
		t.Fatalf("decoded %+v", r)
	}
	for i, p := range r.Samples {
		w := pts[i]
		if string(p.Name) != tags[w.Tag].Name || p.Index != w.Tag || !p.Value.Equal(w.Value) || p.Time != w.Time || p.Quality != w.Quality {
			t.Errorf("point %d = {%s %d %v %d %v}, want {%s %d %v %d %v}", i, p.Name, p.Index, p.Value, p.Time, p.Quality, tags[w.Tag].Name, w.Tag, w.Value, w.Time, w.Quality)
		}
	}
	for n := 0; n < len(b); n++ {
		if err := Decode(b[:n], &r, nil); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
}

func FuzzDecode(f *testing.F) {
	tags := []drivers.Tag{{Name: "a"}, {Name: "b"}}
	f.Add(AppendV2(nil, Data, "d", tags, 1, []Point{{Tag: 0, Value: drivers.BoolValue(true)}, {Tag: 1, Value: drivers.StringValue("x")}}))
	f.Add(AppendV2(nil, Offline, "d", tags, 1, nil))
	var e Encoder
	at := int64(1000)
	pts := testPoints(at)
	b := e.Begin(nil, Online, 42, allTypes, at, len(pts))
	for i := range pts {
		b = e.Add(b, &pts[i])
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if Decode(b, &r, schemas{42: allTypes}) == nil {
			for _, s := range r.Samples {
				if r.Version == 3 && (s.Index < 0 || int(s.Index) >= len(allTypes)) {
					t.Fatalf("index %d out of the schema", s.Index)
				}
			}
		}
	})
}

func FuzzDecodeSchema(f *testing.F) {
	f.Add((&Schema{Device: "d", Names: []string{"a", "b"}, Types: []drivers.Type{drivers.Bool, drivers.String}}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := DecodeSchema(b); err == nil && len(s.Names) != len(s.Types) {
			t.Fatal("names and types differ in length")
		}
	})
}
