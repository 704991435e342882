package modbus

import (
	"reflect"
	"testing"
)

func TestPlan(t *testing.T) {
	h := func(tag int, start, size uint16) span {
		return span{tag: tag, table: Holding, start: start, size: size}
	}
	in := func(tag int, start, size uint16) span { return span{tag: tag, table: Input, start: start, size: size} }
	c := func(tag int, start uint16) span { return span{tag: tag, table: Coil, start: start, size: 1} }
	di := func(tag int, start uint16) span { return span{tag: tag, table: Discrete, start: start, size: 1} }
	def := limits{maxRegisters: 125, maxBits: 2000}
	gap := func(n int) limits { l := def; l.maxGap = n; return l }
	contiguous := func(n int) []span {
		s := make([]span, n)
		for i := range s {
			s[i] = h(i, uint16(i), 1)
		}
		return s
	}
	type r = Request
	cases := []struct {
		name  string
		spans []span
		lim   limits
		want  []Request
	}{
		{"none", nil, def, nil},
		{"one", []span{h(0, 20, 2)}, def, []r{{Holding, 20, 2, []int{0}}}},
		{"adjacent", []span{h(0, 20, 2), h(1, 22, 2), h(2, 24, 1)}, def,
			[]r{{Holding, 20, 5, []int{0, 1, 2}}}},
		{"unsorted in, by address out", []span{h(0, 24, 1), h(1, 20, 2), h(2, 22, 2)}, def,
			[]r{{Holding, 20, 5, []int{1, 2, 0}}}},
		{"gap 1 not merged by default", []span{h(0, 20, 2), h(1, 23, 1)}, def,
			[]r{{Holding, 20, 2, []int{0}}, {Holding, 23, 1, []int{1}}}},
		{"gap 1 merged with max_gap 1", []span{h(0, 20, 2), h(1, 23, 1)}, gap(1),
			[]r{{Holding, 20, 4, []int{0, 1}}}},
		{"gap 5 not merged with max_gap 4", []span{h(0, 20, 2), h(1, 27, 1)}, gap(4),
			[]r{{Holding, 20, 2, []int{0}}, {Holding, 27, 1, []int{1}}}},
		{"overlap: bits of one register and a wider value", []span{h(0, 10, 1), h(1, 10, 1), h(2, 9, 2), h(3, 10, 4)}, def,
			[]r{{Holding, 9, 5, []int{2, 0, 1, 3}}}},
		{"nested", []span{h(0, 10, 4), h(1, 11, 1)}, def, []r{{Holding, 10, 4, []int{0, 1}}}},
		{"tables apart, in fixed order", []span{di(0, 0), c(1, 5), in(2, 0, 4), h(3, 0, 2)}, def,
			[]r{{Holding, 0, 2, []int{3}}, {Input, 0, 4, []int{2}}, {Coil, 5, 1, []int{1}}, {Discrete, 0, 1, []int{0}}}},
		{"same address, different tables", []span{h(0, 7, 1), in(1, 7, 1)}, def,
			[]r{{Holding, 7, 1, []int{0}}, {Input, 7, 1, []int{1}}}},
		{"125 registers fit one request", contiguous(125), def, []r{{Holding, 0, 125, seq(0, 125)}}},
		{"126 do not", contiguous(126), def, []r{{Holding, 0, 125, seq(0, 125)}, {Holding, 125, 1, []int{125}}}},
		{"a value is never split: 62 float32 + 1", func() []span {
			s := make([]span, 63)
			for i := range s {
				s[i] = h(i, uint16(2*i), 2)
			}
			return s
		}(), def, []r{{Holding, 0, 124, seq(0, 62)}, {Holding, 124, 2, []int{62}}}},
		{"max_registers 10", contiguous(25), limits{maxRegisters: 10, maxBits: 10},
			[]r{{Holding, 0, 10, seq(0, 10)}, {Holding, 10, 10, seq(10, 20)}, {Holding, 20, 5, seq(20, 25)}}},
		{"gap counts toward the limit", []span{h(0, 0, 1), h(1, 124, 2)}, gap(200),
			[]r{{Holding, 0, 1, []int{0}}, {Holding, 124, 2, []int{1}}}},
		{"2000 coils fit, 2001 do not", func() []span {
			s := make([]span, 2001)
			for i := range s {
				s[i] = c(i, uint16(i))
			}
			return s
		}(), def, []r{{Coil, 0, 2000, seq(0, 2000)}, {Coil, 2000, 1, []int{2000}}}},
		{"last address", []span{h(0, 65532, 4), h(1, 65531, 1)}, def, []r{{Holding, 65531, 5, []int{1, 0}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := plan(c.spans, c.lim)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("plan\n got %v\nwant %v", got, c.want)
			}
		})
	}
}

// TestPlan1000 is the benchmark layout: 1000 contiguous holding registers
// take 8 requests of at most 125, whatever the tag width.
func TestPlan1000(t *testing.T) {
	for _, size := range []uint16{1, 2, 4} {
		var s []span
		for a := 0; a < 1000; a += int(size) {
			s = append(s, span{tag: len(s), table: Holding, start: uint16(a), size: size})
		}
		got := plan(s, limits{maxRegisters: 125, maxBits: 2000})
		total := 0
		for _, r := range got {
			total += len(r.Tags)
		}
		// 125 is odd, so 2- and 4-register values cannot fill each request.
		want := map[uint16]int{1: 8, 2: 9, 4: 9}[size]
		if len(got) != want || total != len(s) {
			t.Errorf("size %d: %d requests carrying %d tags, want %d carrying %d: %v", size, len(got), total, want, len(s), got)
		}
	}
}

func seq(from, to int) []int {
	s := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
