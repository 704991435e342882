package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/drivers/modbus/modbustest"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// testLogger logs to the test at warn level and above (set EDGEAGENT_TEST_LOG=debug for all).
func testLogger(t testing.TB) *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("EDGEAGENT_TEST_LOG") == "debug" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runAgent starts an agent from YAML and returns a stop function that
// stops it gracefully and waits (also registered as cleanup).
func runAgent(t testing.TB, yaml string) (*Agent, func()) {
	t.Helper()
	return runAgentLog(t, yaml, testLogger(t), nil)
}

// runAgentLog is runAgent with a logger of the test's choice; stopped, if
// set, runs once the agent has stopped. The YAML is written to a file the
// agent loads, as in production, so a test can rewrite it and Reload.
func runAgentLog(t testing.TB, yaml string, log *slog.Logger, stopped func()) (*Agent, func()) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return runAgentFile(t, file, log, stopped)
}

// runAgentFile runs the agent from a configuration file.
func runAgentFile(t testing.TB, file string, log *slog.Logger, stopped func()) (*Agent, func()) {
	t.Helper()
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent stopped with %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("agent did not stop within 15s")
			}
			if stopped != nil {
				stopped()
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

const e2eTags = `
      - {name: pressure, table: holding, address: 0, type: float32, unit: bar}
      - {name: temp, table: input, address: 0, type: int16, scale: 0.1, offset: -10}
      - {name: count, table: holding, address: 2, type: uint32, byte_order: CDAB}
      - {name: level, table: holding, address: 4, type: int64, byte_order: DCBA}
      - {name: running, table: coil, address: 0, type: bool, writable: true}
      - {name: fault, table: discrete, address: 0, type: bool}
      - {name: setpoint, table: holding, address: 10, type: float32, writable: true}
      - {name: ratio, table: holding, address: 12, type: float64, byte_order: BADC}
`

func e2eConfig(broker, stateDir, plcURL string, extra string) string {
	return fmt.Sprintf(`
node: {group_id: plant, edge_node_id: edge1}
mqtt:
  servers: [%s]
  keepalive: 2s
  reconnect_min: 100ms
  reconnect_max: 500ms
state_dir: %s
%s
devices:
  - id: plc1
    driver: modbus
    url: %s
    poll: 100ms
    timeout: 300ms
    tags:%s`, broker, stateDir, extra, plcURL, e2eTags)
}

func newSim(t testing.TB) *modbustest.Server {
	t.Helper()
	sim := scSim(t)
	sim.SetFloat32(modbus.Holding, 0, modbus.ABCD, 1.5)
	sim.SetInt16(modbus.Input, 0, modbus.ABCD, 250)
	sim.SetUint32(modbus.Holding, 2, modbus.CDAB, 4000000000)
	sim.SetInt64(modbus.Holding, 4, modbus.DCBA, -9000000000)
	sim.SetCoil(0, true)
	sim.SetDiscrete(0, false)
	sim.SetFloat32(modbus.Holding, 10, modbus.ABCD, 20)
	sim.SetFloat64(modbus.Holding, 12, modbus.BADC, math.Pi)
	return sim
}

// metricsByName indexes a birth's metrics.
func metricsByName(p *sparkplug.Payload) map[string]sparkplug.Metric {
	m := map[string]sparkplug.Metric{}
	for _, x := range p.Metrics {
		m[x.Name] = x
	}
	return m
}

func bdSeqOf(t testing.TB, p *sparkplug.Payload) uint64 {
	t.Helper()
	for _, m := range p.Metrics {
		if m.Name == sparkplug.MetricBdSeq {
			if m.Type != sparkplug.TypeInt64 {
				t.Errorf("bdSeq datatype %v, want Int64", m.Type)
			}
			return m.Int
		}
	}
	t.Fatalf("no bdSeq metric in %+v", p)
	return 0
}

// checkSeq asserts the seq chain of one edge node's messages: each NBIRTH
// has seq 0, every other message but NDEATH has the previous seq + 1.
func checkSeq(t *testing.T, msgs []testutil.Msg) {
	t.Helper()
	prev := -1
	for i, m := range msgs {
		if m.Payload == nil {
			continue
		}
		switch m.Topic.Type {
		case sparkplug.NDEATH:
			if m.Payload.HasSeq {
				t.Errorf("msg %d: NDEATH carries a seq", i)
			}
			prev = -1
			continue
		case sparkplug.NCMD, sparkplug.DCMD, sparkplug.STATE:
			continue
		case sparkplug.NBIRTH:
			if !m.Payload.HasSeq || m.Payload.Seq != 0 {
				t.Errorf("msg %d: NBIRTH seq present=%v value=%d, want explicit 0", i, m.Payload.HasSeq, m.Payload.Seq)
			}
			prev = 0
			continue
		}
		if !m.Payload.HasSeq {
			t.Errorf("msg %d %s: no seq", i, m.Raw)
			continue
		}
		if prev < 0 {
			t.Errorf("msg %d %s: before any NBIRTH", i, m.Raw)
		} else if want := uint64((prev + 1) % 256); m.Payload.Seq != want {
			t.Errorf("msg %d %s: seq %d, want %d", i, m.Raw, m.Payload.Seq, want)
		}
		prev = int(m.Payload.Seq)
	}
}

func TestEndToEnd(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	proxy := testutil.NewProxy(t, broker.Addr())
	sim := newSim(t)
	state := t.TempDir()
	a, stop := runAgent(t, e2eConfig(proxy.URL(), state, sim.URL(), ""))

	// Births: NBIRTH then DBIRTH, values exactly as the simulator holds.
	nb := obs.WaitFor(0, 10*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
	db := obs.WaitFor(nb, 10*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
	msgs := obs.Msgs()
	if msgs[nb].Topic.Group != "plant" || msgs[nb].Topic.Node != "edge1" || msgs[nb].QoS != 0 || msgs[nb].Retained {
		t.Errorf("NBIRTH topic %s qos %d retained %v", msgs[nb].Raw, msgs[nb].QoS, msgs[nb].Retained)
	}
	bd0 := bdSeqOf(t, msgs[nb].Payload)
	if bd0 != 0 {
		t.Errorf("first bdSeq = %d, want 0 on a fresh state dir", bd0)
	}
	nm := metricsByName(msgs[nb].Payload)
	if r, ok := nm[sparkplug.MetricRebirth]; !ok || r.Type != sparkplug.TypeBoolean || r.Int != 0 || r.HasAlias {
		t.Errorf("Node Control/Rebirth = %+v (present %v), want Boolean false without alias", r, ok)
	}
	if msgs[db].Payload.Seq != 1 {
		t.Errorf("DBIRTH seq %d, want 1", msgs[db].Payload.Seq)
	}
	dm := metricsByName(msgs[db].Payload)
	want := map[string]struct {
		typ sparkplug.DataType
		val string
	}{
		"pressure": {sparkplug.TypeFloat, "1.5"},
		"temp":     {sparkplug.TypeDouble, "15"}, // 250*0.1-10
		"count":    {sparkplug.TypeUInt32, "4000000000"},
		"level":    {sparkplug.TypeInt64, "-9000000000"},
		"running":  {sparkplug.TypeBoolean, "true"},
		"fault":    {sparkplug.TypeBoolean, "false"},
		"setpoint": {sparkplug.TypeFloat, "20"},
		"ratio":    {sparkplug.TypeDouble, fmt.Sprint(math.Pi)},
	}
	if len(dm) != len(want) {
		t.Errorf("DBIRTH has %d metrics, want %d: %v", len(dm), len(want), dm)
	}
	aliases := map[uint64]string{}
	for name, w := range want {
		m, ok := dm[name]
		if !ok {
			t.Errorf("DBIRTH lacks %q", name)
			continue
		}
		if m.Type != w.typ || m.ValueString() != w.val {
			t.Errorf("DBIRTH %s = %s (%v), want %s (%v)", name, m.ValueString(), m.Type, w.val, w.typ)
		}
		if m.Timestamp == 0 || !m.HasAlias {
			t.Errorf("DBIRTH %s: timestamp %d alias %v", name, m.Timestamp, m.HasAlias)
		}
		if _, dup := aliases[m.Alias]; dup {
			t.Errorf("alias %d used twice", m.Alias)
		}
		aliases[m.Alias] = name
	}
	if p := dm["pressure"].Properties; len(p) != 1 || p[0].Key != "engUnit" || p[0].Str != "bar" {
		t.Errorf("pressure properties = %+v, want engUnit bar", p)
	}

	// Report by exception: change one value, get a DDATA with only it.
	sim.SetFloat32(modbus.Holding, 0, modbus.ABCD, 2.75)
	dd := obs.WaitFor(db, 5*time.Second, "DDATA with pressure", func(m testutil.Msg) bool {
		return testutil.Is(sparkplug.DDATA, "plc1")(m) && len(m.Payload.Metrics) > 0
	})
	p := obs.Msgs()[dd].Payload
	if len(p.Metrics) != 1 || aliases[p.Metrics[0].Alias] != "pressure" || p.Metrics[0].Name != "" || p.Metrics[0].Type != 0 {
		t.Fatalf("DDATA = %+v, want only pressure, by alias, without datatype", p.Metrics)
	}
	m0 := p.Metrics[0]
	if err := m0.Resolve(sparkplug.TypeFloat); err != nil || m0.ValueString() != "2.75" || m0.Historical {
		t.Errorf("DDATA pressure = %s (err %v, historical %v), want 2.75 live", m0.ValueString(), err, m0.Historical)
	}
	if age := time.Since(time.UnixMilli(int64(m0.Timestamp))); age < 0 || age > 5*time.Second {
		t.Errorf("metric timestamp is %v old; want the acquisition time", age)
	}

	// DCMD to a writable tag reaches the PLC and comes back as data.
	dcmd := func(name string, m sparkplug.Metric) {
		m.Name = name
		topic := sparkplug.Topic{Group: "plant", Type: sparkplug.DCMD, Node: "edge1", Device: "plc1"}.String()
		obs.Client().Publish(topic, 0, false, sparkplug.AppendCommand(nil, uint64(time.Now().UnixMilli()), []sparkplug.Metric{m})).Wait()
	}
	dcmd("setpoint", sparkplug.Metric{Type: sparkplug.TypeFloat, Float: 42.5})
	select {
	case w := <-sim.Writes():
		if w.Table != modbus.Holding || w.Addr != 10 {
			t.Errorf("write = %+v, want holding 10", w)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("DCMD setpoint never reached the PLC")
	}
	obs.WaitFor(dd, 5*time.Second, "DDATA with setpoint 42.5", func(m testutil.Msg) bool {
		if !testutil.Is(sparkplug.DDATA, "plc1")(m) {
			return false
		}
		for _, x := range m.Payload.Metrics {
			if aliases[x.Alias] == "setpoint" && x.Resolve(sparkplug.TypeFloat) == nil && x.Float == 42.5 {
				return true
			}
		}
		return false
	})
	// Refused: not writable, unknown, wrong type. None may reach the PLC.
	refusedBefore := a.Stats().CommandsRefused
	dcmd("pressure", sparkplug.Metric{Type: sparkplug.TypeFloat, Float: 1})
	dcmd("nosuch", sparkplug.Metric{Type: sparkplug.TypeFloat, Float: 1})
	dcmd("running", sparkplug.Metric{Type: sparkplug.TypeString, Str: "yes"})
	topic := sparkplug.Topic{Group: "plant", Type: sparkplug.DCMD, Node: "edge1", Device: "plc1"}.String()
	obs.Client().Publish(topic, 0, false, []byte{0xff, 0xff, 0xff}).Wait() // garbage
	deadline := time.Now().Add(5 * time.Second)
	for a.Stats().CommandsRefused < refusedBefore+4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := a.Stats().CommandsRefused - refusedBefore; got != 4 {
		t.Errorf("refused %d commands, want 4", got)
	}
	select {
	case w := <-sim.Writes():
		t.Errorf("a refused DCMD reached the PLC: %+v", w)
	case <-time.After(300 * time.Millisecond):
	}

	// PLC outage: DDEATH, then DBIRTH when it answers again.
	sim.Stop()
	dd = obs.WaitFor(dd, 10*time.Second, "DDEATH", testutil.Is(sparkplug.DDEATH, "plc1"))
	sim.SetFloat32(modbus.Holding, 0, modbus.ABCD, 3.25)
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	rb := obs.WaitFor(dd, 10*time.Second, "DBIRTH after outage", testutil.Is(sparkplug.DBIRTH, "plc1"))
	if v := metricsByName(obs.Msgs()[rb].Payload)["pressure"]; v.ValueString() != "3.25" {
		t.Errorf("DBIRTH after outage: pressure %s, want 3.25", v.ValueString())
	}

	// Rebirth on NCMD: NBIRTH seq 0 with the same bdSeq, then DBIRTH.
	ncmd := sparkplug.Topic{Group: "plant", Type: sparkplug.NCMD, Node: "edge1"}.String()
	before := obs.Len()
	obs.Client().Publish(ncmd, 1, false, sparkplug.AppendCommand(nil, 0, []sparkplug.Metric{{Name: sparkplug.MetricRebirth, Type: sparkplug.TypeBoolean, Int: 1}})).Wait()
	nb2 := obs.WaitFor(before, 10*time.Second, "NBIRTH after rebirth", testutil.Is(sparkplug.NBIRTH, ""))
	msgs = obs.Msgs()
	if bd := bdSeqOf(t, msgs[nb2].Payload); bd != bd0 {
		t.Errorf("rebirth bdSeq %d, want unchanged %d", bd, bd0)
	}
	if next := obs.WaitFor(nb2+1, 5*time.Second, "DBIRTH right after NBIRTH", func(m testutil.Msg) bool { return m.Topic.Node == "edge1" }); obs.Msgs()[next].Topic.Type != sparkplug.DBIRTH {
		t.Errorf("after the rebirth NBIRTH came %s, want DBIRTH", obs.Msgs()[next].Raw)
	}

	// A link cut: the broker sends the Will, whose bdSeq equals the NBIRTH's;
	// the agent reconnects with bdSeq+1.
	before = obs.Len()
	proxy.Cut()
	will := obs.WaitFor(before, 10*time.Second, "NDEATH will", testutil.Is(sparkplug.NDEATH, ""))
	wm := obs.Msgs()[will]
	if bd := bdSeqOf(t, wm.Payload); bd != bd0 || wm.Payload.HasSeq || len(wm.Payload.Metrics) != 1 || wm.QoS != 1 {
		t.Errorf("will: bdSeq %d (want %d), seq present %v, %d metrics, qos %d", bd, bd0, wm.Payload.HasSeq, len(wm.Payload.Metrics), wm.QoS)
	}
	proxy.Restore()
	nb3 := obs.WaitFor(will, 15*time.Second, "NBIRTH after reconnect", testutil.Is(sparkplug.NBIRTH, ""))
	// CONNECTs the cut proxy swallowed may have used bdSeqs too.
	bd1 := bdSeqOf(t, obs.Msgs()[nb3].Payload)
	if bd1 <= bd0 {
		t.Errorf("bdSeq after reconnect %d, want more than %d", bd1, bd0)
	}
	obs.WaitFor(nb3, 5*time.Second, "DBIRTH after reconnect", testutil.Is(sparkplug.DBIRTH, "plc1"))

	// Graceful stop: DDEATH, then an explicit NDEATH with the current bdSeq.
	before = obs.Len()
	stop()
	ddeath := obs.WaitFor(before, 5*time.Second, "DDEATH on stop", testutil.Is(sparkplug.DDEATH, "plc1"))
	nd := obs.WaitFor(ddeath, 5*time.Second, "NDEATH on stop", testutil.Is(sparkplug.NDEATH, ""))
	if bd := bdSeqOf(t, obs.Msgs()[nd].Payload); bd != bd1 {
		t.Errorf("NDEATH on stop bdSeq %d, want %d", bd, bd1)
	}

	// A restart continues bdSeq from the state directory.
	before = obs.Len()
	_, stop2 := runAgent(t, e2eConfig(proxy.URL(), state, sim.URL(), ""))
	nb4 := obs.WaitFor(before, 10*time.Second, "NBIRTH after restart", testutil.Is(sparkplug.NBIRTH, ""))
	if bd := bdSeqOf(t, obs.Msgs()[nb4].Payload); bd != bd1+1 {
		t.Errorf("bdSeq after restart %d, want %d", bd, bd1+1)
	}
	stop2()

	all := obs.Msgs()
	for _, m := range all {
		if m.Err != nil && m.Topic.Type != sparkplug.DCMD { // the test sent one garbage DCMD
			t.Errorf("%s: %v", m.Raw, m.Err)
		}
		if m.Retained {
			t.Errorf("%s was retained", m.Raw)
		}
		if m.Topic.Type != sparkplug.NDEATH && m.Topic.Type != sparkplug.NCMD && m.QoS != 0 {
			t.Errorf("%s arrived at QoS %d, want 0", m.Raw, m.QoS)
		}
	}
	checkSeq(t, all)
}
