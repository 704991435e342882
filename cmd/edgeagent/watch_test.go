package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeagent/edgeagent/agent"
	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/drivertest"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// ---- the checker, fed directly ----

// node builds the payloads of a fake edge node g/e with device d: births
// with aliases (the node's from 1, the device's from 10) and stamped
// metrics, as an agent sends them.
type node struct{ ts uint64 }

func newNode() *node {
	return &node{ts: uint64(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())}
}

func (n *node) tick() uint64 { n.ts += 100; return n.ts }

func (n *node) nbirth(seq, bdSeq uint64, extra ...sparkplug.Metric) []byte {
	ts := n.tick()
	ms := []sparkplug.Metric{
		sparkplug.BdSeqMetric(bdSeq, ts),
		{Name: sparkplug.MetricRebirth, Type: sparkplug.TypeBoolean, Timestamp: ts},
		{Name: "uptime", Alias: 1, HasAlias: true, Type: sparkplug.TypeInt64, Int: 5, Timestamp: ts},
	}
	return sparkplug.AppendBirth(nil, ts, seq, append(ms, extra...))
}

// dbirth: speed Int16 alias 10, on Boolean alias 11, name String alias 12.
func (n *node) dbirth(seq uint64) []byte {
	ts := n.tick()
	return sparkplug.AppendBirth(nil, ts, seq, []sparkplug.Metric{
		{Name: "speed", Alias: 10, HasAlias: true, Type: sparkplug.TypeInt16, Int: 7, Timestamp: ts},
		{Name: "on", Alias: 11, HasAlias: true, Type: sparkplug.TypeBoolean, Int: 1, Timestamp: ts},
		{Name: "name", Alias: 12, HasAlias: true, Type: sparkplug.TypeString, Str: "P-1", Timestamp: ts},
	})
}

// speed is a DDATA metric by alias.
func (n *node) speed(v int64) sparkplug.Metric {
	return sparkplug.Metric{Alias: 10, HasAlias: true, Type: sparkplug.TypeInt16, Int: uint64(v), Timestamp: n.tick()}
}

func (n *node) data(seq uint64, ms ...sparkplug.Metric) []byte {
	return sparkplug.AppendData(nil, n.tick(), seq, ms)
}

const (
	tNBIRTH = "spBv1.0/g/NBIRTH/e"
	tNDEATH = "spBv1.0/g/NDEATH/e"
	tNDATA  = "spBv1.0/g/NDATA/e"
	tDBIRTH = "spBv1.0/g/DBIRTH/e/d"
	tDDATA  = "spBv1.0/g/DDATA/e/d"
	tDDEATH = "spBv1.0/g/DDEATH/e/d"
	tNCMD   = "spBv1.0/g/NCMD/e"
)

// msg is a message to feed: QoS 0, not retained.
type msg struct {
	topic   string
	payload []byte
}

// feed runs messages through a checker and returns its output and the
// counts of violations and info by kind.
func feed(t *testing.T, c *checker, out *bytes.Buffer, msgs ...msg) (text string, v, i map[string]int) {
	t.Helper()
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.Local)
	for k, m := range msgs {
		c.handle(watchMsg{At: at.Add(time.Duration(k) * time.Millisecond), Topic: m.topic, Payload: m.payload})
	}
	var total nodeStats
	for _, n := range c.nodes {
		total.add(&n.st)
	}
	total.add(&c.global)
	return out.String(), total.violations, total.infos
}

func run1(t *testing.T, msgs ...msg) (string, map[string]int, map[string]int) {
	t.Helper()
	var out bytes.Buffer
	return feed(t, newChecker(&out, false), &out, msgs...)
}

// want checks the violations and info by kind, and that the output has
// every line fragment in lines.
func want(t *testing.T, text string, v, i map[string]int, wantV, wantI map[string]int, lines ...string) {
	t.Helper()
	if !mapsEqual(v, wantV) || !mapsEqual(i, wantI) {
		t.Errorf("violations %v, info %v; want %v and %v\n%s", v, i, wantV, wantI, text)
	}
	for _, l := range lines {
		if !strings.Contains(text, l) {
			t.Errorf("no %q in the output:\n%s", l, text)
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// counts0 is a literal of counts by kind.
type counts0 = map[string]int

func TestCheckHealthyStreamWithRebirth(t *testing.T) {
	n := newNode()
	rebirth := sparkplug.AppendCommand(nil, n.tick(), []sparkplug.Metric{{Name: sparkplug.MetricRebirth, Type: sparkplug.TypeBoolean, Int: 1}})
	text, v, i := run1(t,
		msg{tNBIRTH, n.nbirth(0, 3)}, msg{tDBIRTH, n.dbirth(1)},
		msg{tDDATA, n.data(2, n.speed(8))}, msg{tNDATA, n.data(3, sparkplug.Metric{Alias: 1, HasAlias: true, Type: sparkplug.TypeInt64, Int: 6, Timestamp: n.tick()})},
		msg{tNCMD, rebirth},
		msg{tNBIRTH, n.nbirth(0, 3)}, msg{tDBIRTH, n.dbirth(1)}, msg{tDDATA, n.data(2, n.speed(-9))},
		msg{tDDEATH, sparkplug.AppendDeviceDeath(nil, n.tick(), 3)}, msg{tDBIRTH, n.dbirth(4)},
		msg{tNDEATH, sparkplug.AppendNodeDeath(nil, 0, 3)},
		msg{tNBIRTH, n.nbirth(0, 4)},
	)
	want(t, text, v, i, nil, nil,
		"DDATA   g/e/d                              seq=2   speed=8",
		"NDATA   g/e                                seq=3   uptime=6",
		"DDATA   g/e/d                              seq=2   speed=-9",
		fmt.Sprintf("%-7s %-34s %6s %s", "NDEATH", "g/e", "", "bdSeq=3"))
}

func TestCheckSeq(t *testing.T) {
	n := newNode()
	births := []msg{{tNBIRTH, n.nbirth(0, 0)}, {tDBIRTH, n.dbirth(1)}}
	t.Run("gap", func(t *testing.T) {
		text, v, i := run1(t, append(births, msg{tDDATA, n.data(2, n.speed(1))}, msg{tDDATA, n.data(5, n.speed(2))}, msg{tDDATA, n.data(6, n.speed(3))})...)
		want(t, text, v, i, counts0{kSeq: 1}, nil, "VIOLATION [seq] #4 "+tDDATA+": seq gap: expected 3, got 5 (2 message(s) missing)")
	})
	t.Run("two swapped", func(t *testing.T) {
		text, v, i := run1(t, append(births, msg{tDDATA, n.data(3, n.speed(1))}, msg{tDDATA, n.data(2, n.speed(2))}, msg{tDDATA, n.data(4, n.speed(3))})...)
		want(t, text, v, i, counts0{kSeq: 2}, nil, "seq gap: expected 2, got 3", "seq out of order: expected 4, got 2 (2 behind)")
	})
	t.Run("restarted chain followed", func(t *testing.T) {
		text, v, i := run1(t, append(births, msg{tDDATA, n.data(2, n.speed(1))}, msg{tDDATA, n.data(0, n.speed(2))}, msg{tDDATA, n.data(1, n.speed(3))}, msg{tDDATA, n.data(2, n.speed(4))})...)
		want(t, text, v, i, counts0{kSeq: 1}, nil, "seq out of order: expected 3, got 0 (3 behind)")
	})
	t.Run("wraps 255 to 0", func(t *testing.T) {
		var ms []msg
		for s := range 260 {
			ms = append(ms, msg{tNDATA, n.data(uint64(s) % 256)})
		}
		text, v, i := run1(t, ms...)
		want(t, text, v, i, nil, counts0{iJoined: 1})
	})
	t.Run("missing and NBIRTH not 0", func(t *testing.T) {
		noSeq := sparkplug.AppendDeviceDeath(nil, n.tick(), 0)
		noSeq = noSeq[:len(noSeq)-2] // drop the seq field (tag + varint 0)
		text, v, i := run1(t, msg{tNBIRTH, n.nbirth(4, 0)}, msg{tDDEATH, noSeq}, msg{tNDATA, n.data(9)})
		want(t, text, v, i, counts0{kNBirth: 1, kSeq: 1}, nil, "NBIRTH with seq 4", "DDEATH without seq")
	})
}

// The watcher joined while the node was publishing: info, then it checks
// from there; the next NBIRTH makes everything checkable.
func TestCheckJoinedMidSession(t *testing.T) {
	n := newNode()
	var out bytes.Buffer
	c := newChecker(&out, false)
	var asked []string
	c.rebirth = func(g, e string) error { asked = append(asked, g+"/"+e); return nil }
	text, v, i := feed(t, c, &out,
		msg{tDDATA, n.data(17, n.speed(1))}, msg{tNDATA, n.data(18)}, msg{tDDATA, n.data(19, n.speed(2))},
		msg{tNBIRTH, n.nbirth(0, 2)}, msg{tDBIRTH, n.dbirth(1)}, msg{tDDATA, n.data(2, n.speed(3))},
	)
	want(t, text, v, i, nil, counts0{iJoined: 1, iRebirth: 1},
		"info      [joined] #1 "+tDDATA+": joined mid-session (no NBIRTH seen since the watcher subscribed): seq is checked from this DDATA (seq 17) on",
		"info      [rebirth] #1 "+tDDATA+": requested a rebirth: NCMD Node Control/Rebirth=true on spBv1.0/g/NCMD/e",
		"DDATA   g/e/d                              seq=17  alias:10=1",
		"DDATA   g/e/d                              seq=2   speed=3")
	if !slices.Equal(asked, []string{"g/e"}) {
		t.Errorf("rebirth requested for %v, want g/e once", asked)
	}

	// The watcher's own connection drops: a blind spot, not a gap.
	c.connectionLost(time.Now(), fmt.Errorf("EOF"))
	text, v, i = feed(t, c, &out, msg{tDDATA, n.data(40, n.speed(4))}, msg{tDDATA, n.data(41, n.speed(5))})
	want(t, text, v, i, nil, counts0{iJoined: 2, iRebirth: 1, iReconnect: 1},
		"joined mid-session (no NBIRTH seen since the watcher resubscribed)")
}

// A node re-sends its in-flight window after a fault: the values repeat,
// flagged is_historical, in the new session.
func TestCheckDuplicateResend(t *testing.T) {
	n := newNode()
	a, b := n.speed(1), n.speed(2)
	ha, hb := a, b
	ha.Historical, hb.Historical = true, true
	text, v, i := run1(t,
		msg{tNBIRTH, n.nbirth(0, 0)}, msg{tDBIRTH, n.dbirth(1)}, msg{tDDATA, n.data(2, a)}, msg{tDDATA, n.data(3, b)},
		msg{tNDEATH, sparkplug.AppendNodeDeath(nil, 0, 0)},
		msg{tNBIRTH, n.nbirth(0, 1)}, msg{tDBIRTH, n.dbirth(1)}, msg{tDDATA, n.data(2, ha, hb, n.speed(3))},
	)
	want(t, text, v, i, nil, counts0{iDuplicate: 1},
		"info      [duplicate] #8 "+tDDATA+": 2 of 3 metrics repeat ones already received (same metric, timestamp and value; flagged is_historical)")
}

func TestCheckNDeath(t *testing.T) {
	n := newNode()
	t.Run("another session's Will is ignored", func(t *testing.T) {
		text, v, i := run1(t, msg{tNBIRTH, n.nbirth(0, 5)}, msg{tNDEATH, sparkplug.AppendNodeDeath(nil, 0, 4)}, msg{tNDATA, n.data(1)})
		want(t, text, v, i, nil, counts0{iDeath: 1},
			"NDEATH of another session ignored: bdSeq=4, the last NBIRTH's is 5; the Will of an older connection (the session stays online)")
	})
	t.Run("data after the matching NDEATH", func(t *testing.T) {
		text, v, i := run1(t, msg{tNBIRTH, n.nbirth(0, 5)}, msg{tDBIRTH, n.dbirth(1)}, msg{tNDEATH, sparkplug.AppendNodeDeath(nil, 0, 5)},
			msg{tDDATA, n.data(2, n.speed(1))}, msg{tNBIRTH, n.nbirth(0, 5)})
		want(t, text, v, i, counts0{kOrder: 1, kBdSeq: 1}, nil,
			"DDATA after the node's NDEATH (bdSeq=5), before a new NBIRTH",
			"NBIRTH with bdSeq=5, the session whose NDEATH was seen")
	})
	t.Run("without bdSeq, with seq", func(t *testing.T) {
		bad := sparkplug.AppendBirth(nil, n.tick(), 3, nil)
		text, v, i := run1(t, msg{tNBIRTH, n.nbirth(0, 1)}, msg{tNDEATH, bad})
		want(t, text, v, i, counts0{kNDeath: 2}, nil, "NDEATH with seq 3", "NDEATH without a bdSeq metric")
	})
	t.Run("new session without NDEATH, then the late Will", func(t *testing.T) {
		text, v, i := run1(t, msg{tNBIRTH, n.nbirth(0, 1)}, msg{tNBIRTH, n.nbirth(0, 2)}, msg{tNDEATH, sparkplug.AppendNodeDeath(nil, 0, 1)}, msg{tNDATA, n.data(1)})
		want(t, text, v, i, nil, counts0{iNoDeath: 1, iDeath: 1}, "new session bdSeq=2 while session bdSeq=1 had no NDEATH")
	})
}

func TestCheckBirthsAndMetrics(t *testing.T) {
	n := newNode()
	births := []msg{{tNBIRTH, n.nbirth(0, 0)}, {tDBIRTH, n.dbirth(1)}}
	for _, tc := range []struct {
		name  string
		msgs  []msg
		wantV map[string]int
		line  string
	}{
		{"DDATA before DBIRTH", []msg{births[0], {tDDATA, n.data(1, n.speed(1))}}, counts0{kOrder: 1},
			"VIOLATION [order] #2 " + tDDATA + ": DDATA of device d, which has no DBIRTH since the NBIRTH"},
		{"DDATA after DDEATH", append(births, msg{tDDEATH, sparkplug.AppendDeviceDeath(nil, n.tick(), 2)}, msg{tDDATA, n.data(3, n.speed(1))}),
			counts0{kOrder: 1}, "DDATA of device d after its DDEATH, before a new DBIRTH"},
		{"unknown alias", append(births, msg{tDDATA, n.data(2, sparkplug.Metric{Alias: 99, HasAlias: true, Type: sparkplug.TypeInt32, Int: 1, Timestamp: n.tick()})}),
			counts0{kAlias: 1}, "DDATA metrics not in the birth: alias:99"},
		{"unknown name", append(births, msg{tDDATA, n.data(2, sparkplug.Metric{Name: "torque", Type: sparkplug.TypeInt32, Int: 1, Timestamp: n.tick()})}),
			counts0{kAlias: 1}, "DDATA metrics not in the birth: torque"},
		{"alias of the node in DDATA", append(births, msg{tDDATA, n.data(2, sparkplug.Metric{Alias: 1, HasAlias: true, Type: sparkplug.TypeInt64, Int: 1, Timestamp: n.tick()})}),
			counts0{kAlias: 1}, `alias 1 is "uptime" of the node, not a metric of this DDATA`},
		{"value out of range", append(births, msg{tDDATA, n.data(2, sparkplug.Metric{Alias: 10, HasAlias: true, Type: sparkplug.TypeInt32, Int: 70000, Timestamp: n.tick()})}),
			counts0{kDatatype: 1}, "speed: value does not match datatype: Int16 cannot hold int_value 70000 (its birth declared Int16)"},
		{"value in the wrong field", append(births, msg{tDDATA, n.data(2, sparkplug.Metric{Alias: 11, HasAlias: true, Type: sparkplug.TypeString, Str: "yes", Timestamp: n.tick()})}),
			counts0{kDatatype: 1}, "on: value does not match datatype: Boolean in string_value"},
		{"no timestamps", append(births, msg{tDDATA, sparkplug.AppendData(nil, 0, 2, []sparkplug.Metric{{Alias: 10, HasAlias: true, Type: sparkplug.TypeInt16, Int: 1}})}),
			counts0{kTime: 2}, "DDATA metrics without a timestamp: speed"},
		{"NBIRTH without bdSeq and Rebirth", []msg{{tNBIRTH, sparkplug.AppendBirth(nil, n.tick(), 0, []sparkplug.Metric{{Name: "x", Type: sparkplug.TypeInt8, Timestamp: n.tick()}})}},
			counts0{kNBirth: 2}, `NBIRTH without "Node Control/Rebirth"`},
		{"aliased Rebirth", []msg{{tNBIRTH, sparkplug.AppendBirth(nil, n.tick(), 0, []sparkplug.Metric{sparkplug.BdSeqMetric(0, n.ts), {Name: sparkplug.MetricRebirth, Alias: 3, HasAlias: true, Type: sparkplug.TypeBoolean, Timestamp: n.ts}})}},
			counts0{kNBirth: 1}, `NBIRTH "Node Control/Rebirth" has alias 3`},
		{"birth without datatype", append(births[:1:1], msg{tDBIRTH, sparkplug.AppendBirth(nil, n.tick(), 1, []sparkplug.Metric{{Name: "raw", Kind: sparkplug.KindLong, Int: 4, Timestamp: n.ts}})}),
			counts0{kBirth: 1}, "DBIRTH metrics without a datatype: raw"},
		{"alias collision", append(births, msg{"spBv1.0/g/DBIRTH/e/d2", sparkplug.AppendBirth(nil, n.tick(), 2, []sparkplug.Metric{{Name: "x", Alias: 10, HasAlias: true, Type: sparkplug.TypeInt8, Timestamp: n.ts}})}),
			counts0{kAlias: 1}, `alias 10 of "x" is already "speed" of device d`},
		{"undecodable, chain kept", append(births, msg{tDDATA, []byte{0xff, 0xff}}, msg{tDDATA, n.data(3, n.speed(1))}),
			counts0{kPayload: 1}, "payload does not decode"},
		{"bad topic", []msg{{"spBv1.0/g/NOPE/e", nil}}, counts0{kPayload: 1}, `unknown message type "NOPE"`},
		{"STATE", []msg{{"spBv1.0/STATE/scada", []byte(`{"online":true,"timestamp":1}`)}, {"spBv1.0/STATE/scada", []byte("ONLINE")}},
			counts0{kState: 1}, "legacy Sparkplug 2.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, v, _ := run1(t, tc.msgs...)
			want(t, text, v, nil, tc.wantV, nil, tc.line)
		})
	}
}

// A DATA metric may carry a datatype (it SHOULD NOT); it must then be the
// birth's.
func TestCheckDatatypeDiffersFromBirth(t *testing.T) {
	n := newNode()
	// A DATA payload with a datatype: AppendCommand writes one, then seq.
	p := sparkplug.AppendCommand(nil, n.tick(), []sparkplug.Metric{{Alias: 11, HasAlias: true, Type: sparkplug.TypeString, Str: "x", Timestamp: n.tick()}})
	p = append(p, 0x18, 2) // field 3 (seq), varint 2
	text, v, i := run1(t, msg{tNBIRTH, n.nbirth(0, 0)}, msg{tDBIRTH, n.dbirth(1)}, msg{tDDATA, p})
	want(t, text, v, i, counts0{kDatatype: 1}, nil, "on is String here, Boolean in its birth")
}

// Decode refuses a birth whose value does not fit its datatype: the
// message is reported, and its seq still counts.
func TestCheckUndecodableKeepsChain(t *testing.T) {
	n := newNode()
	bad := sparkplug.AppendBirth(nil, n.tick(), 2, []sparkplug.Metric{{Name: "x", Type: sparkplug.TypeUnknown, Kind: sparkplug.KindString, Str: "s", Timestamp: n.ts}})
	// Turn the datatype 0 into Int8 (3 is Int32: 0x20 is field 4's tag).
	i := bytes.Index(bad, []byte{0x20, 0x00})
	bad[i+1] = byte(sparkplug.TypeInt8)
	text, v, info := run1(t, msg{tNBIRTH, n.nbirth(0, 0)}, msg{tDBIRTH, n.dbirth(1)}, msg{"spBv1.0/g/DBIRTH/e/d2", bad}, msg{tDDATA, n.data(3, n.speed(1))})
	want(t, text, v, info, counts0{kPayload: 1}, nil, "payload does not decode", "Int8 in string_value")
}

func TestCheckQoSAndRetain(t *testing.T) {
	n := newNode()
	var out bytes.Buffer
	c := newChecker(&out, false)
	c.handle(watchMsg{At: time.Now(), Topic: tNBIRTH, Payload: n.nbirth(0, 0), Retained: true})
	c.handle(watchMsg{At: time.Now(), Topic: tNBIRTH, Payload: n.nbirth(0, 1)})
	c.handle(watchMsg{At: time.Now(), Topic: tNDATA, Payload: n.data(1), QoS: 1})
	c.handle(watchMsg{At: time.Now(), Topic: tNDEATH, Payload: sparkplug.AppendNodeDeath(nil, 0, 1), QoS: 1}) // the Will: fine
	c.handle(watchMsg{At: time.Now(), Topic: "spBv1.0/g/DCMD/e/d", Payload: sparkplug.AppendCommand(nil, n.tick(), nil), Retained: true})
	text, v, i := feed(t, c, &out)
	want(t, text, v, i, counts0{kQoS: 3}, nil, "retained NBIRTH (delivered at subscribe, so it is old)",
		"NDATA published at QoS 1", "retained DCMD: the broker hands it to the node again at every subscribe")
}

// Every datatype is decoded on the traffic line, aliases resolved.
func TestCheckPrintsEveryDatatype(t *testing.T) {
	n := newNode()
	ts := n.tick()
	le := func(w int, vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, v)[:len(b)+w]
		}
		return b
	}
	def := sparkplug.AppendTemplate(nil, &sparkplug.Template{IsDefinition: true, Metrics: []sparkplug.Metric{
		{Name: "rpm", Type: sparkplug.TypeFloat}, {Name: "mode", Type: sparkplug.TypeString}}})
	inst := sparkplug.AppendTemplate(nil, &sparkplug.Template{Ref: "Motor", Metrics: []sparkplug.Metric{
		{Name: "rpm", Type: sparkplug.TypeFloat, Float: 1500}, {Name: "mode", Type: sparkplug.TypeString, Str: "auto"}}})
	part := sparkplug.AppendTemplate(nil, &sparkplug.Template{Ref: "Motor", Metrics: []sparkplug.Metric{{Name: "rpm", Type: sparkplug.TypeFloat, Float: 1450}}})
	ds := dataSet(t)
	neg := int64(-5)
	all := []struct {
		m    sparkplug.Metric
		want string
	}{
		{sparkplug.Metric{Type: sparkplug.TypeInt8, Int: uint64(neg)}, "=-5"},
		{sparkplug.Metric{Type: sparkplug.TypeUInt32, Int: 4000000000}, "=4000000000"},
		{sparkplug.Metric{Type: sparkplug.TypeUInt64, Int: math.MaxUint64}, "=18446744073709551615"},
		{sparkplug.Metric{Type: sparkplug.TypeFloat, Float: 1.5}, "=1.5"},
		{sparkplug.Metric{Type: sparkplug.TypeDouble, Float: 0.1}, "=0.1"},
		{sparkplug.Metric{Type: sparkplug.TypeBoolean, Int: 1}, "=true"},
		{sparkplug.Metric{Type: sparkplug.TypeText, Str: "hi"}, `="hi"`},
		{sparkplug.Metric{Type: sparkplug.TypeDateTime, Int: 1735787045000}, "=2025-01-02T03:04:05.000Z"},
		{sparkplug.Metric{Type: sparkplug.TypeBytes, Bytes: []byte{0xde, 0xad}}, "=0xdead"},
		{sparkplug.Metric{Type: sparkplug.TypeInt16Array, Bytes: le(2, uint64(neg), 300)}, "=[-5 300]"},
		{sparkplug.Metric{Type: sparkplug.TypeUInt32Array, Bytes: le(4, 1, 4000000000)}, "=[1 4000000000]"},
		{sparkplug.Metric{Type: sparkplug.TypeFloatArray, Bytes: le(4, uint64(math.Float32bits(2.5)))}, "=[2.5]"},
		{sparkplug.Metric{Type: sparkplug.TypeDoubleArray, Bytes: le(8, math.Float64bits(-0.25))}, "=[-0.25]"},
		{sparkplug.Metric{Type: sparkplug.TypeBooleanArray, Bytes: []byte{3, 0, 0, 0, 0xa0}}, "=[true false true]"},
		{sparkplug.Metric{Type: sparkplug.TypeStringArray, Bytes: []byte("a\x00bc\x00")}, `=["a" "bc"]`},
		{sparkplug.Metric{Type: sparkplug.TypeDateTimeArray, Bytes: le(8, 1735787045000)}, "=[2025-01-02T03:04:05.000Z]"},
		{sparkplug.Metric{Type: sparkplug.TypeDataSet, Bytes: ds}, `={t:DateTime v:Double; [2025-01-02T03:04:05.000Z 1.5] [2025-01-02T03:04:06.000Z null]}`},
		{sparkplug.Metric{Type: sparkplug.TypeTemplate, Bytes: inst}, `=Motor{rpm=1500, mode="auto"}`},
		{sparkplug.Metric{Type: sparkplug.TypeString, Null: true}, "=null"},
	}
	var birth, data []sparkplug.Metric
	for k, a := range all {
		m := a.m
		m.Name, m.Alias, m.HasAlias, m.Timestamp = fmt.Sprintf("m%d", k), uint64(100+k), true, ts
		birth = append(birth, m)
		m.Name = ""
		data = append(data, m)
	}
	nb := n.nbirth(0, 0, sparkplug.Metric{Name: "Motor", Type: sparkplug.TypeTemplate, Bytes: def, Timestamp: ts})
	var msgs []msg
	msgs = append(msgs, msg{tNBIRTH, nb}, msg{tDBIRTH, sparkplug.AppendBirth(nil, ts, 1, birth)})
	for k, m := range data { // one metric per DDATA: a line shows six
		msgs = append(msgs, msg{tDDATA, n.data(uint64(2+k), m)})
	}
	tm := sparkplug.Metric{Alias: uint64(100 + len(all) - 2), HasAlias: true, Type: sparkplug.TypeTemplate, Bytes: part, Timestamp: n.tick()}
	msgs = append(msgs, msg{tDDATA, n.data(uint64(2+len(data)), tm)})
	text, v, i := run1(t, msgs...)
	var lines []string
	for k, a := range all {
		lines = append(lines, fmt.Sprintf("seq=%-3d m%d%s", 2+k, k, a.want))
	}
	lines = append(lines, fmt.Sprintf("m%d=Motor{rpm=1450}", len(all)-2))
	want(t, text, v, i, nil, nil, lines...)

	// Malformed values are violations.
	text, v, _ = run1(t, msg{tNBIRTH, nb}, msg{tDBIRTH, sparkplug.AppendBirth(nil, ts, 1, []sparkplug.Metric{
		{Name: "a", Type: sparkplug.TypeInt32Array, Bytes: []byte{1, 2, 3, 4, 5, 6, 7}, Timestamp: ts},
		{Name: "b", Type: sparkplug.TypeBooleanArray, Bytes: []byte{9, 0, 0, 0, 1}, Timestamp: ts},
		{Name: "c", Type: sparkplug.TypeTemplate, Bytes: sparkplug.AppendTemplate(nil, &sparkplug.Template{Ref: "Pump"}), Timestamp: ts},
		{Name: "d", Type: sparkplug.TypeTemplate, Bytes: def, Timestamp: ts},
	})})
	want(t, text, v, nil, counts0{kDatatype: 2, kTemplate: 2}, nil,
		"a: Int32Array value of 7 bytes: not whole elements of 4 bytes",
		"b: BooleanArray value of 5 bytes: a count of 9 booleans in 1 bytes of bits",
		`c: an instance of "Pump", which the NBIRTH does not define`,
		"d: a template definition in a DBIRTH")
}

// dataSet is a serialised DataSet of a DateTime and a Double column, two
// rows, the second value absent.
func dataSet(t *testing.T) []byte {
	t.Helper()
	// Written by hand (protowire field numbers of DataSet, Row and
	// DataSetValue), as the sparkplug package has no DataSet encoder.
	var b []byte
	b = append(b, 0x08, 2)                    // num_of_columns
	b = append(b, 0x12, 1, 't', 0x12, 1, 'v') // columns
	b = append(b, 0x18, 13, 0x18, 10)         // types DateTime, Double
	row := func(ms uint64, v *float64) []byte {
		var e []byte
		l := binary.AppendUvarint([]byte{0x10}, ms) // DataSetValue.long_value
		e = append(e, 0x0a, byte(len(l)))
		e = append(e, l...)
		if v != nil {
			d := binary.LittleEndian.AppendUint64([]byte{0x21}, math.Float64bits(*v)) // double_value
			e = append(e, 0x0a, byte(len(d)))
			e = append(e, d...)
		} else {
			e = append(e, 0x0a, 0)
		}
		return append([]byte{0x22, byte(len(e))}, e...)
	}
	v := 1.5
	b = append(b, row(1735787045000, &v)...)
	return append(b, row(1735787046000, nil)...)
}

func TestSummary(t *testing.T) {
	n := newNode()
	var out bytes.Buffer
	c := newChecker(&out, true)
	feed(t, c, &out, msg{tNBIRTH, n.nbirth(0, 0)}, msg{tDBIRTH, n.dbirth(1)}, msg{tDDATA, n.data(3, n.speed(1))},
		msg{"spBv1.0/h/NDATA/x", n.data(7)})
	out.Reset()
	from := time.Date(2025, 1, 2, 3, 4, 5, 0, time.Local)
	v, msgs := c.summary(&out, watchRun{broker: "tcp://u:secret@b:1883", topic: "spBv1.0/#", from: from, to: from.Add(5 * time.Second), check: 5 * time.Second})
	text := out.String()
	t.Log("\n" + text)
	if v != 1 || msgs != 4 {
		t.Errorf("summary counted %d violations in %d messages, want 1 in 4", v, msgs)
	}
	for _, l := range []string{
		"Sparkplug B summary: checked for 5s, spBv1.0/# on tcp://u:xxxxx@b:1883, 2025-01-02 03:04:05.000 to 03:04:10.000 (5s)",
		"g/e        3         1/1         0/0         0/1       0         7        1       1 (seq 1)   -",
		"h/x        1         0/0         0/0         1/0       0         0        0       0           joined 1",
		"first violation of each kind:\n  ",
		"VIOLATION [seq] #3 spBv1.0/g/DDATA/e/d: seq gap: expected 2, got 3 (1 message(s) missing)",
		"result: FAIL: 1 violation(s) (seq 1) in 4 messages from 2 edge node(s); info: joined 1",
	} {
		if !strings.Contains(text, l) {
			t.Errorf("no %q in the summary", l)
		}
	}
}

// ---- against Mosquitto ----

// watchBuffer is an output the watcher writes while the test reads it.
type watchBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// watching is a run of edgeagent watch in the background.
type watching struct {
	out, errOut watchBuffer
	code        chan int
	cancel      context.CancelFunc
}

// startWatch runs edgeagent watch with args and waits until it has
// subscribed.
func startWatch(t *testing.T, args ...string) *watching {
	t.Helper()
	w := &watching{code: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() { w.code <- run(ctx, append([]string{"watch"}, args...), &w.out, &w.errOut) }()
	t.Cleanup(func() { cancel(); w.wait(t, 10*time.Second) })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.out.String(), "  watching ") {
		select {
		case c := <-w.code:
			w.code <- c
			t.Fatalf("watch exited with %d before subscribing:\n%s%s", c, w.out.String(), w.errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch did not subscribe within 10s:\n%s%s", w.out.String(), w.errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return w
}

// wait returns the exit code.
func (w *watching) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case c := <-w.code:
		w.code <- c
		return c
	case <-time.After(timeout):
		t.Fatalf("watch did not exit within %v:\n%s", timeout, w.out.String())
		return -1
	}
}

// startAgent runs the agent in-process on one memory PLC with tags of many
// types, which a goroutine changes every 100 ms until the test ends.
func startAgent(t *testing.T, broker string) {
	t.Helper()
	plc := drivertest.NewPLC(t.Name())
	t.Cleanup(plc.Close)
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf(`node: {group_id: plant, edge_node_id: edge1}
mqtt: {servers: [%s], keepalive: 2s, reconnect_min: 100ms, reconnect_max: 200ms}
state_dir: %s
devices:
  - id: press
    driver: memory
    plc: %s
    poll: 100ms
    tags:
      - {name: blob, type: bytes}
      - {name: labels, type: string_array}
      - {name: changed, type: datetime}
      - {name: speed, type: int16, writable: true}
      - {name: count, type: uint64}
      - {name: temp, type: float32}
      - {name: running, type: bool}
      - {name: recipe, type: string}
      - {name: profile, type: int32_array}
      - {name: flags, type: bool_array}
  - id: oven
    driver: memory
    plc: %[3]s
    push: true
    tags:
      - {name: zone, type: float64}
`, broker, dir, t.Name())
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, agent.NewLogger(os.Stderr, config.LogConfig{Level: "warn"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for k := int64(0); ; k++ {
			now := time.Now()
			plc.Set("speed", drivers.IntValue(drivers.Int16, k%200-100), now)
			plc.Set("count", drivers.UintValue(drivers.Uint64, uint64(k)), now)
			plc.Set("temp", drivers.FloatValue(drivers.Float32, 20+float64(k%10)/4), now)
			plc.Set("running", drivers.BoolValue(k%7 < 4), now)
			plc.Set("recipe", drivers.StringValue(fmt.Sprintf("R-%d", k/20)), now)
			plc.Set("changed", drivers.TimeValue(now.Truncate(time.Second)), now)
			p, _ := drivers.Array(drivers.Int32, []drivers.Value{drivers.IntValue(drivers.Int32, k), drivers.IntValue(drivers.Int32, -k)})
			plc.Set("profile", p, now)
			f, _ := drivers.Array(drivers.Bool, []drivers.Value{drivers.BoolValue(k%2 == 0), drivers.BoolValue(true), drivers.BoolValue(false)})
			plc.Set("flags", f, now)
			l, _ := drivers.Array(drivers.String, []drivers.Value{drivers.StringValue("a"), drivers.StringValue(fmt.Sprint(k / 10))})
			plc.Set("labels", l, now)
			plc.Set("blob", drivers.BytesValue([]byte{0xca, 0xfe, byte(k / 10)}), now)
			plc.Deliver("zone", drivers.FloatValue(drivers.Float64, 180+float64(k%20)), now)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("agent did not stop within 15s")
		}
	})
}

// rebirthNCMD asks the node plant/edge1 for its births, as a host does.
func rebirthNCMD(t *testing.T, client mqtt.Client) {
	t.Helper()
	now := uint64(time.Now().UnixMilli())
	p := sparkplug.AppendCommand(nil, now, []sparkplug.Metric{{Name: sparkplug.MetricRebirth, Type: sparkplug.TypeBoolean, Int: 1}})
	if tok := client.Publish("spBv1.0/plant/NCMD/edge1", 1, false, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing the rebirth NCMD: %v", tok.Error())
	}
}

var nbirthLineRE = regexp.MustCompile(`(?m)^\S+\s+NBIRTH\s+plant/edge1\s+seq=0\s+bdSeq=(\d+)`)

// The real agent, watched from before it starts, with a host's rebirth
// request in the middle: watch -check passes, the seq reset to 0 of the
// rebirth included, and every datatype the agent publishes is decoded.
// What an observer recorded meanwhile, with one DDATA taken out, fails.
func TestWatchCheckHealthyAgent(t *testing.T) {
	broker := testutil.Mosquitto(t)
	w := startWatch(t, "-b", broker.URL(), "-check", "6s")
	obs := testutil.Observe(t, broker.URL())
	startAgent(t, broker.URL())
	obs.WaitFor(0, 10*time.Second, "the first NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
	time.Sleep(2 * time.Second)
	rebirthNCMD(t, obs.Client())
	code := w.wait(t, 15*time.Second)
	text := w.out.String()
	t.Logf("summary:%s", text[strings.LastIndex(text, "\nSparkplug B summary"):])
	if code != 0 {
		t.Fatalf("watch -check exited %d on a healthy agent:\n%s%s", code, text, w.errOut.String())
	}
	if n := len(nbirthLineRE.FindAllString(text, -1)); n != 2 {
		t.Errorf("%d NBIRTH lines with seq=0, want 2 (the start and the rebirth)", n)
	}
	for _, re := range []string{
		`NCMD\s+plant/edge1\s+Node Control/Rebirth=true`,
		`DBIRTH\s+plant/edge1/press\s+seq=\d+\s+blob=0xcafe[0-9a-f]{2}, labels=\["a" "\d+"\], changed=20\d\d-\d\d-\d\dT[\d:.]+Z, speed=-?\d+, count=\d+, temp=[\d.]+, … \+4 more`,
		`DDATA\s+plant/edge1/press\s+seq=\d+\s+blob=0xcafe[0-9a-f]{2}, labels=\["a" "\d+"\]`,
		`DDATA\s+plant/edge1/press\s.*profile=\[-?\d+ -?\d+\]`,
		`DDATA\s+plant/edge1/press\s.*flags=\[(true|false) true false\]`,
		`DDATA\s+plant/edge1/press\s.*running=(true|false)`,
		`DDATA\s+plant/edge1/oven\s+seq=\d+\s+zone=1\d\d`,
		`(?m)^plant/edge1\s+\d+\s+2/4\s+0/0\s+0/\d+\s+1\s+\d+\s+\d+\s+0\s+-$`,
		`result: PASS: 0 violations in \d+ messages from 1 edge node\(s\); info: none`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("no match for %s in:\n%s", re, text)
		}
	}

	// The recording of the same stream, one DDATA dropped.
	msgs := obs.Msgs()
	var drop int
	for k := len(msgs) / 2; k < len(msgs); k++ {
		if msgs[k].Topic.Type == sparkplug.DDATA && msgs[k+1].Topic.Type == sparkplug.DDATA {
			drop = k
			break
		}
	}
	if drop == 0 {
		t.Fatal("no DDATA to drop in the recording")
	}
	var out bytes.Buffer
	c := newChecker(&out, true)
	for k, m := range msgs {
		if k != drop {
			c.handle(watchMsg{At: m.At, Topic: m.Raw, Payload: m.Bytes, QoS: m.QoS, Retained: m.Retained})
		}
	}
	seq := msgs[drop].Payload.Seq
	line := fmt.Sprintf("VIOLATION [seq] #%d %s: seq gap: expected %d, got %d (1 message(s) missing)", drop+1, msgs[drop+1].Raw, seq, (seq+1)%256)
	if c.summary(&out, watchRun{}); !strings.Contains(out.String(), line) || strings.Count(out.String(), "VIOLATION") != 2 /* the line, and the summary's copy */ {
		t.Errorf("the recording without message %d: want only %q, got:\n%s", drop+1, line, out.String())
	}
}

// publisher publishes crafted payloads to the broker, as a recorded stream
// would be replayed.
func publisher(t *testing.T, url string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("replay-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connecting: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func publish(t *testing.T, c mqtt.Client, msgs ...msg) {
	t.Helper()
	for _, m := range msgs {
		if tok := c.Publish(m.topic, 0, false, m.payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publishing to %s: %v", m.topic, tok.Error())
		}
	}
}

// A stream with a seq gap fails watch -check, which names the gap and the
// topic; -q leaves out the traffic lines.
func TestWatchCheckFailsOnSeqGap(t *testing.T) {
	broker := testutil.Mosquitto(t)
	w := startWatch(t, "-b", broker.URL(), "--check", "2s", "-q")
	n := newNode()
	publish(t, publisher(t, broker.URL()),
		msg{tNBIRTH, n.nbirth(0, 0)}, msg{tDBIRTH, n.dbirth(1)},
		msg{tDDATA, n.data(2, n.speed(1))}, msg{tDDATA, n.data(4, n.speed(2))}, msg{tDDATA, n.data(5, n.speed(3))})
	code := w.wait(t, 10*time.Second)
	text := w.out.String()
	t.Logf("output:\n%s%s", text, w.errOut.String())
	if code == 0 {
		t.Fatal("watch -check passed a stream with a seq gap")
	}
	for _, l := range []string{
		"VIOLATION [seq] #4 spBv1.0/g/DDATA/e/d: seq gap: expected 3, got 4 (1 message(s) missing)",
		"result: FAIL: 1 violation(s) (seq 1) in 5 messages from 1 edge node(s)",
	} {
		if !strings.Contains(text, l) {
			t.Errorf("no %q in the output", l)
		}
	}
	if strings.Contains(text, "DDATA   g/e/d") {
		t.Error("traffic lines despite -q")
	}
	if e := w.errOut.String(); !strings.Contains(e, "edgeagent: sparkplug check failed: 1 violation(s) in 2s") {
		t.Errorf("stderr = %q", e)
	}
}

// Joining a running agent: info, not a violation; -rebirth asks the node
// for its births, which arrive with seq 0 and pass.
func TestWatchRebirthJoinedMidSession(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	startAgent(t, broker.URL())
	db := obs.WaitFor(0, 10*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, ""))
	obs.WaitFor(db, 10*time.Second, "DDATA", testutil.Is(sparkplug.DDATA, ""))
	w := startWatch(t, "-b", broker.URL(), "-check", "3s", "-rebirth")
	code := w.wait(t, 10*time.Second)
	text := w.out.String()
	if code != 0 {
		t.Fatalf("watch -check -rebirth exited %d:\n%s%s", code, text, w.errOut.String())
	}
	for _, re := range []string{
		`info      \[joined\] #1 spBv1.0/plant/D(DATA|BIRTH|DEATH)/edge1/\w+: joined mid-session`,
		`info      \[rebirth\] #1 \S+: requested a rebirth: NCMD Node Control/Rebirth=true on spBv1.0/plant/NCMD/edge1`,
		`NCMD\s+plant/edge1\s+Node Control/Rebirth=true`,
		`(?m)^\S+\s+NBIRTH\s+plant/edge1\s+seq=0\s+bdSeq=0`,
		`result: PASS: 0 violations in \d+ messages from 1 edge node\(s\); info: joined 1, rebirth 1`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("no match for %s in:\n%s", re, text)
		}
	}
}

// watch over TLS with a client certificate; the TLS flags fail clearly.
func TestWatchTLS(t *testing.T) {
	pki := testutil.NewTLSFiles(t)
	broker := testutil.MosquittoTLS(t, pki)
	w := startWatch(t, "-b", broker.TLSURL(), "-ca-file", pki.CA, "-cert-file", pki.ClientCert, "-key-file", pki.ClientKey, "-check", "1s")
	n := newNode()
	publish(t, publisher(t, broker.URL()), msg{tNBIRTH, n.nbirth(0, 0)}, msg{tNDATA, n.data(1)})
	if code := w.wait(t, 10*time.Second); code != 0 || !strings.Contains(w.out.String(), "result: PASS: 0 violations in 2 messages") {
		t.Fatalf("watch over TLS: exit %d\n%s%s", code, w.out.String(), w.errOut.String())
	}

	missing := filepath.Join(t.TempDir(), "nope.pem")
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("secret\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-b", broker.TLSURL(), "-ca-file", pki.CA}, "connecting to " + broker.TLSURL() + ":"}, // no client certificate
		{[]string{"-b", broker.TLSURL(), "-ca-file", missing}, "-ca-file: open " + missing + ": no such file or directory"},
		{[]string{"-b", broker.TLSURL(), "-ca-file", pki.ClientKey}, "-ca-file " + pki.ClientKey + ": no PEM certificate in it"},
		{[]string{"-b", broker.TLSURL(), "-cert-file", pki.ClientCert}, "-cert-file and -key-file go together"},
		{[]string{"-b", broker.TLSURL(), "-cert-file", pki.ClientCert, "-key-file", missing}, "-key-file " + missing + ": open " + missing},
		{[]string{"-b", broker.URL(), "-ca-file", pki.CA}, "need a TLS broker URL (ssl://, tls://, mqtts:// or wss://), not tcp://"},
		{[]string{"-b", "http://x:1"}, `unsupported scheme "http"`},
		{[]string{"-b", broker.URL(), "-password-file", pw}, "-password-file needs -username"},
		{[]string{"-b", broker.URL(), "-check", "-1s"}, "want a positive duration"},
	} {
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		code := run(ctx, append([]string{"watch"}, tc.args...), &out, &errOut)
		cancel()
		if code == 0 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("watch %s: exit %d, stderr %q; want an error with %q", strings.Join(tc.args, " "), code, errOut.String(), tc.want)
		}
	}

	// The TLS configuration the flags build.
	o := watchOptions{broker: "ssl://127.0.0.1:8883", caFile: pki.CA, certFile: pki.ClientCert, keyFile: pki.ClientKey, serverName: "broker.plant", username: "u", passwordFile: pw}
	opts, err := o.clientOptions()
	if err != nil {
		t.Fatal(err)
	}
	tc := opts.TLSConfig
	if tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "broker.plant" || tc.InsecureSkipVerify || opts.Password != "secret" || opts.Username != "u" {
		t.Errorf("options from the flags: TLS %+v, username %q, password %q", tc, opts.Username, opts.Password)
	}
}

// The agent's template shapes (node.templates): a definition in the
// NBIRTH, an instance in the DBIRTH, an alias-only instance with one
// member in DDATA. No violation; the members are printed.
func TestCheckTemplates(t *testing.T) {
	n := newNode()
	member := func(name string, typ sparkplug.DataType, v uint64, null bool) sparkplug.Metric {
		return sparkplug.Metric{Name: name, Type: typ, Int: v, Null: null}
	}
	def := sparkplug.Template{IsDefinition: true, Metrics: []sparkplug.Metric{
		member("speed", sparkplug.TypeUInt16, 0, true), member("running", sparkplug.TypeBoolean, 0, true)}}
	inst := func(ms ...sparkplug.Metric) []byte {
		return sparkplug.AppendTemplate(nil, &sparkplug.Template{Ref: "press", Metrics: ms})
	}
	ts := n.tick()
	dbirth := sparkplug.AppendBirth(nil, ts, 1, []sparkplug.Metric{{Name: "press", Alias: 10, HasAlias: true, Type: sparkplug.TypeTemplate, Timestamp: ts,
		Bytes: inst(member("speed", sparkplug.TypeUInt16, 1200, false), member("running", sparkplug.TypeBoolean, 1, false))}})
	ddata := n.data(2, sparkplug.Metric{Alias: 10, HasAlias: true, Timestamp: n.tick(), Type: sparkplug.TypeTemplate, Bytes: inst(member("speed", sparkplug.TypeUInt16, 900, false))})
	text, v, i := run1(t,
		msg{tNBIRTH, n.nbirth(0, 0, sparkplug.Metric{Name: "press", Alias: 2, HasAlias: true, Type: sparkplug.TypeTemplate, Timestamp: n.ts + 100, Bytes: sparkplug.AppendTemplate(nil, &def)})},
		msg{tDBIRTH, dbirth},
		msg{tDDATA, ddata},
	)
	want(t, text, v, i, counts0{}, counts0{}, "press=press{speed=1200, running=true}", "press=press{speed=900}")
}
