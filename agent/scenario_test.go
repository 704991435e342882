package agent

// Helpers shared by the scenario tests (primary host, multiple servers,
// data_qos, buffer cap, corrupt buffer, garbage commands). Everything here
// is prefixed sc so it cannot collide with the other test files.

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/drivers/modbus/modbustest"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// scLog captures every log line of an agent (text format, all levels) and
// passes warnings and errors on to the test log (everything with
// EDGEAGENT_TEST_LOG=debug).
type scLog struct {
	t     testing.TB
	debug bool

	mu    sync.Mutex
	lines []string
	done  bool
}

func (l *scLog) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	l.mu.Lock()
	l.lines = append(l.lines, line)
	done := l.done
	l.mu.Unlock()
	if !done && (l.debug || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR")) {
		l.t.Log(line)
	}
	return len(p), nil
}

// find returns the lines at level (e.g. "ERROR"; "" for any) containing
// every one of subs.
func (l *scLog) find(level string, subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, line := range l.lines {
		if level != "" && !strings.Contains(line, "level="+level+" ") {
			continue
		}
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

// waitFor waits until at least n lines match; it fails the test after timeout.
func (l *scLog) waitFor(timeout time.Duration, n int, level string, subs ...string) []string {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if got := l.find(level, subs...); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("timed out after %v waiting for %d log line(s) at level %q containing %q; have %d", timeout, n, level, subs, len(l.find(level, subs...)))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scRun starts an agent from YAML with a capturing logger and returns a
// stop function (graceful, waits; also registered as cleanup).
func scRun(t testing.TB, yaml string) (*Agent, func(), *scLog) {
	t.Helper()
	logs := &scLog{t: t, debug: os.Getenv("EDGEAGENT_TEST_LOG") == "debug"}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, stop := runAgentLog(t, yaml, log, func() {
		logs.mu.Lock()
		logs.done = true
		logs.mu.Unlock()
	})
	return a, stop, logs
}

// scOpts shapes a test configuration: node plant/edge1, one modbus
// device plc1.
type scOpts struct {
	servers   []string
	stateDir  string
	plc       string
	mqtt      string // extra keys under mqtt:, flow style, e.g. "primary_host_id: scada, data_qos: 1"
	buffer    string // keys under buffer:, flow style
	poll      string // default 50ms
	reconnect string // reconnect_min and reconnect_max; default 100ms
	tags      string // YAML list items, each line "      - {...}"; default scCounterTag
}

// The counter tag: holding 0..1, uint32. Alone it makes a one-request scan.
const scCounterTag = "      - {name: count, table: holding, address: 0, type: uint32}\n"

func scConfig(o scOpts) string {
	if o.poll == "" {
		o.poll = "50ms"
	}
	if o.reconnect == "" {
		o.reconnect = "100ms"
	}
	if o.tags == "" {
		o.tags = scCounterTag
	}
	mq := ""
	for _, kv := range strings.Split(o.mqtt, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			mq += "\n  " + kv
		}
	}
	buf := ""
	if o.buffer != "" {
		buf = "buffer: {" + o.buffer + "}\n"
	}
	return fmt.Sprintf(`node: {group_id: plant, edge_node_id: edge1}
mqtt:
  servers: [%s]
  keepalive: 2s
  reconnect_min: %s
  reconnect_max: %s%s
state_dir: %s
%sdevices:
  - id: plc1
    driver: modbus
    url: %s
    poll: %s
    timeout: 500ms
    tags:
%s`, strings.Join(o.servers, ", "), o.reconnect, o.reconnect, mq, o.stateDir, buf, o.plc, o.poll, o.tags)
}

func scSim(t testing.TB) *modbustest.Server {
	t.Helper()
	sim, err := modbustest.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// scValue is one counter value the test set.
type scValue struct {
	v        uint32
	set      time.Time // just before the simulator held it
	stored   time.Time // when it was provably read and stored by the agent
	connects uint64    // the agent's connection count when it was stored
}

// scCounter drives the counter tag from the test goroutine. step sets the
// next value and returns only once the simulator has served 2×perScan more
// requests: scans are sequential and each stores its samples (write-ahead:
// durably) before the next scan's first request, so the value has been
// read and stored before it ever changes again. Every value is therefore a
// sample the agent must deliver.
type scCounter struct {
	t       testing.TB
	sim     *modbustest.Server
	a       *Agent
	addr    uint16
	perScan uint64 // requests per scan
	vals    []scValue
}

func newSCCounter(t testing.TB, sim *modbustest.Server, a *Agent) *scCounter {
	return &scCounter{t: t, sim: sim, a: a, perScan: 1}
}

// liveStart waits for the NBIRTH and plc1's DBIRTH, then steps the counter
// n times and waits for the last value to arrive live. It returns the
// counter's alias.
func (c *scCounter) liveStart(obs *testutil.Observer, n int) uint64 {
	c.t.Helper()
	nb := obs.WaitFor(0, 10*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
	db := obs.WaitFor(nb, 5*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
	alias := scAliasOf(c.t, obs.Msgs()[db], "count")
	var v scValue
	for range n {
		v = c.step()
	}
	obs.WaitFor(db, 10*time.Second, fmt.Sprintf("live value %d", v.v), scHasValue(v.v, alias, false))
	return alias
}

func (c *scCounter) step() scValue {
	c.t.Helper()
	v := scValue{v: uint32(len(c.vals) + 1), set: time.Now()}
	c.sim.SetUint32(modbus.Holding, c.addr, modbus.ABCD, v.v)
	base := c.sim.Requests()
	deadline := time.Now().Add(20 * time.Second)
	for c.sim.Requests() < base+2*c.perScan {
		if time.Now().After(deadline) {
			c.t.Fatalf("the agent stopped polling: %d requests in 20s", c.sim.Requests()-base)
		}
		time.Sleep(2 * time.Millisecond)
	}
	v.stored = time.Now()
	if c.a != nil {
		v.connects = c.a.Stats().Connects
	}
	c.vals = append(c.vals, v)
	return v
}

func (c *scCounter) last() uint32 { return uint32(len(c.vals)) }

// scSeen is how one counter value reached an observer.
type scSeen struct {
	idx        int    // message index
	historical bool   //
	ts         uint64 // metric timestamp
	birth      bool   // in a DBIRTH rather than a DDATA
}

// scCounterSeen collects every arrival of tag's values from plc1 of
// edge1: DBIRTH by name, DDATA by the alias the latest DBIRTH gave it.
func scCounterSeen(t testing.TB, msgs []testutil.Msg, tag string) map[uint32][]scSeen {
	t.Helper()
	out := map[uint32][]scSeen{}
	alias, haveAlias := uint64(0), false
	for i, m := range msgs {
		if m.Payload == nil || m.Topic.Node != "edge1" || m.Topic.Device != "plc1" {
			continue
		}
		switch m.Topic.Type {
		case sparkplug.DBIRTH:
			for _, x := range m.Payload.Metrics {
				if x.Name == tag {
					alias, haveAlias = x.Alias, x.HasAlias
					out[uint32(x.Int)] = append(out[uint32(x.Int)], scSeen{idx: i, historical: x.Historical, ts: x.Timestamp, birth: true})
				}
			}
		case sparkplug.DDATA:
			for _, x := range m.Payload.Metrics {
				if !(x.Name == tag || (x.Name == "" && haveAlias && x.HasAlias && x.Alias == alias)) {
					continue
				}
				if err := x.Resolve(sparkplug.TypeUInt32); err != nil {
					t.Errorf("msg %d: %s value: %v", i, tag, err)
					continue
				}
				out[uint32(x.Int)] = append(out[uint32(x.Int)], scSeen{idx: i, historical: x.Historical, ts: x.Timestamp})
			}
		}
	}
	return out
}

// scHasValue matches a DDATA of plc1 carrying value v of the counter
// (by alias: the counter is the only tag, or alias given).
func scHasValue(v uint32, alias uint64, historical bool) func(testutil.Msg) bool {
	return func(m testutil.Msg) bool {
		if m.Payload == nil || m.Topic.Type != sparkplug.DDATA || m.Topic.Node != "edge1" || m.Topic.Device != "plc1" {
			return false
		}
		for _, x := range m.Payload.Metrics {
			if x.HasAlias && x.Alias == alias && x.Historical == historical && x.Resolve(sparkplug.TypeUInt32) == nil && uint32(x.Int) == v {
				return true
			}
		}
		return false
	}
}

// scAliasOf returns the alias a DBIRTH gave tag.
func scAliasOf(t testing.TB, m testutil.Msg, tag string) uint64 {
	t.Helper()
	if m.Payload == nil {
		t.Fatalf("%s: no payload", m.Raw)
	}
	for _, x := range m.Payload.Metrics {
		if x.Name == tag {
			if !x.HasAlias {
				t.Fatalf("%s: %s has no alias", m.Raw, tag)
			}
			return x.Alias
		}
	}
	t.Fatalf("%s has no metric %q", m.Raw, tag)
	return 0
}

// scQuiet waits d, then fails if any message from index from on matches bad.
// It is the only way to assert that something did NOT happen.
func scQuiet(t testing.TB, obs *testutil.Observer, from int, d time.Duration, what string, bad func(testutil.Msg) bool) {
	t.Helper()
	time.Sleep(d)
	for i, m := range obs.Msgs() {
		if i >= from && bad(m) {
			t.Errorf("%s: message %d %s\n%s", what, i, m.Raw, obs.Dump(from))
			return
		}
	}
}

// scFromEdge matches anything edge1 published.
func scFromEdge(m testutil.Msg) bool {
	if m.Topic.Node != "edge1" {
		return false
	}
	switch m.Topic.Type {
	case sparkplug.NBIRTH, sparkplug.NDEATH, sparkplug.DBIRTH, sparkplug.DDEATH, sparkplug.NDATA, sparkplug.DDATA:
		return true
	}
	return false
}

func scPublish(t testing.TB, c mqtt.Client, topic string, qos byte, retained bool, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing %s: %v", topic, tok.Error())
	}
}

// scState publishes a Sparkplug 3.0 STATE as a primary host does: QoS 1,
// retained.
func scState(t testing.TB, c mqtt.Client, host string, online bool, ts uint64) []byte {
	t.Helper()
	p := sparkplug.State{Online: online, Timestamp: ts}.JSON()
	scPublish(t, c, sparkplug.Topic{Type: sparkplug.STATE, Host: host}.String(), 1, true, p)
	return p
}

// scWaitStat polls an agent counter until ok; it fails the test after timeout.
func scWaitStat(t testing.TB, a *Agent, timeout time.Duration, what string, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := a.Stats()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; stats %+v", timeout, what, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func scNowMs() uint64 { return uint64(time.Now().UnixMilli()) }

// scReplayed finds how a value read before a session's births arrived
// after message index from: as historical DDATA, or in the DBIRTH, which
// carries each tag's latest sample as of the session start (the agent does
// not repeat that sample as history). ok is false if it did neither.
func scReplayed(seen []scSeen, from int) (s scSeen, ok bool) {
	for _, s := range seen {
		if s.idx > from && (s.birth || s.historical) {
			return s, true
		}
	}
	return scSeen{}, false
}

// scWaitReplayed waits until every value in vals arrived after message
// index from as scReplayed describes; it fails the test after timeout.
func scWaitReplayed(t testing.TB, obs *testutil.Observer, from int, vals []scValue, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		seen := scCounterSeen(t, obs.Msgs(), "count")
		var missing []uint32
		for _, x := range vals {
			if _, ok := scReplayed(seen[x.v], from); !ok {
				missing = append(missing, x.v)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for values %v to be replayed after msg %d; got:\n%s", timeout, missing, from, obs.Dump(from))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scCheckReplayed asserts that each value arrived after message index from
// as historical DDATA or in the DBIRTH, every such arrival stamped with the
// time the value was read (not the time it was sent).
func scCheckReplayed(t testing.TB, seen map[uint32][]scSeen, from int, vals []scValue, what string) {
	t.Helper()
	for _, x := range vals {
		if _, ok := scReplayed(seen[x.v], from); !ok {
			t.Errorf("%s value %d did not arrive after msg %d as historical DDATA or in the DBIRTH: %+v", what, x.v, from, seen[x.v])
			continue
		}
		for _, s := range seen[x.v] {
			if s.idx <= from || !(s.birth || s.historical) {
				continue
			}
			if s.ts < uint64(x.set.UnixMilli()) || s.ts > uint64(x.stored.UnixMilli()) {
				t.Errorf("%s value %d (msg %d, birth %v): timestamp %d outside the time it was read (%d..%d)", what, x.v, s.idx, s.birth, s.ts, x.set.UnixMilli(), x.stored.UnixMilli())
			}
		}
	}
}
