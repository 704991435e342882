package modbus

import (
	"cmp"
	"fmt"
	"slices"
)

// Table is one of the four Modbus data tables. It is a string type so that
// "holding" can be written where a Table is wanted.
type Table string

// The Modbus tables.
const (
	Holding  Table = "holding"  // holding registers, read/write 16-bit
	Input    Table = "input"    // input registers, read-only 16-bit
	Coil     Table = "coil"     // coils, read/write bits
	Discrete Table = "discrete" // discrete inputs, read-only bits
)

var tables = [...]Table{Holding, Input, Coil, Discrete}

// ParseTable checks a table name as written in configuration.
func ParseTable(s string) (Table, error) {
	for _, t := range tables {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("%q is not one of holding, input, coil, discrete", s)
}

// IsBits reports whether the table holds bits rather than registers.
func (t Table) IsBits() bool { return t == Coil || t == Discrete }

func (t Table) rank() int { return slices.Index(tables[:], t) }

// unit names the table's items for messages: "holding registers 20..35".
func (t Table) unit() string {
	switch t {
	case Holding:
		return "holding registers"
	case Input:
		return "input registers"
	case Coil:
		return "coils"
	case Discrete:
		return "discrete inputs"
	}
	return string(t)
}

// Request is one read of a device's scan: Count registers (or bits) of
// Table from Start, carrying the tags listed in Tags (indexes into
// Driver.Tags, ordered by address).
type Request struct {
	Table Table
	Start uint16
	Count uint16
	Tags  []int
}

// Last is the address of the last register or bit read.
func (r Request) Last() uint16 { return r.Start + r.Count - 1 }

func (r Request) String() string {
	return fmt.Sprintf("%s %d..%d", r.Table.unit(), r.Start, r.Last())
}

// span is the address range one tag occupies.
type span struct {
	tag   int
	table Table
	start uint16
	size  uint16 // registers or bits, at least 1
}

func (s span) end() int { return int(s.start) + int(s.size) } // exclusive; may be 65536

// limits bound how spans are merged into requests.
type limits struct {
	maxGap       int // unread addresses a request may cover between tags
	maxRegisters int // per register request, 1..125
	maxBits      int // per bit request, 1..2000
}

// plan groups spans into as few requests as the limits allow: per table,
// by address, merging neighbours while the gap between them is at most
// maxGap (overlaps merge always) and the request stays within its size
// limit. Each span is read whole by one request. Requests come out ordered
// by table (holding, input, coil, discrete) then address. Greedy in
// address order, which is optimal when tags do not overlap.
func plan(spans []span, lim limits) []Request {
	s := slices.Clone(spans)
	slices.SortStableFunc(s, func(a, b span) int {
		return cmp.Or(
			cmp.Compare(a.table.rank(), b.table.rank()),
			cmp.Compare(a.start, b.start),
			cmp.Compare(a.end(), b.end()),
			cmp.Compare(a.tag, b.tag),
		)
	})
	var reqs []Request
	var cur *Request
	curEnd := 0 // exclusive end of cur
	for _, sp := range s {
		limit := lim.maxRegisters
		if sp.table.IsBits() {
			limit = lim.maxBits
		}
		if cur != nil && cur.Table == sp.table &&
			int(sp.start)-curEnd <= lim.maxGap &&
			max(curEnd, sp.end())-int(cur.Start) <= limit {
			curEnd = max(curEnd, sp.end())
			cur.Count = uint16(curEnd - int(cur.Start))
			cur.Tags = append(cur.Tags, sp.tag)
			continue
		}
		reqs = append(reqs, Request{Table: sp.table, Start: sp.start, Count: sp.size, Tags: []int{sp.tag}})
		cur = &reqs[len(reqs)-1]
		curEnd = sp.end()
	}
	return reqs
}
