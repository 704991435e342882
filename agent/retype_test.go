package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/drivertest"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// learnedConfig is a push device whose tag "speed" has no type: the driver
// learns it from the PLC at every connect (as OPC UA learns a node's
// DataType).
func learnedConfig(broker, stateDir, plc string) string {
	return fmt.Sprintf(`node: {group_id: plant, edge_node_id: edge1}
mqtt: {servers: [%s], keepalive: 1s, reconnect_min: 100ms, reconnect_max: 200ms}
state_dir: %s
devices:
  - id: learner
    driver: memory
    plc: %s
    push: true
    tags:
      - {name: speed, writable: true}
      - {name: mode, type: string}
`, broker, stateDir, plc)
}

func birthMetric(t *testing.T, obs *testutil.Observer, i int, name string) sparkplug.Metric {
	t.Helper()
	m, ok := metricsByName(obs.Msgs()[i].Payload)[name]
	if !ok {
		t.Fatalf("birth %d has no %s: %s", i, name, obs.Msgs()[i].Raw)
	}
	return m
}

// A tag whose type the PLC gives is born with it; when a PLC restart
// changes it, the device is re-born with the new type and a fresh alias,
// and no value is ever published under the old one.
func TestLearnedTypeChangeRebirths(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	plc := drivertest.NewPLC(t.Name())
	defer plc.Close()
	plc.Set("speed", drivers.IntValue(drivers.Int32, 7), time.Now())
	runAgent(t, learnedConfig(broker.URL(), t.TempDir(), t.Name()))

	b1 := obs.WaitFor(0, 10*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "learner"))
	s1 := birthMetric(t, obs, b1, "speed")
	if s1.Type != sparkplug.TypeInt32 || int32(s1.Int) != 7 {
		t.Fatalf("speed born as %v %s, want Int32 7", s1.Type, s1.ValueString())
	}

	plc.SetDown(true)
	d := obs.WaitFor(b1, 10*time.Second, "DDEATH", testutil.Is(sparkplug.DDEATH, "learner"))
	plc.Set("speed", drivers.FloatValue(drivers.Float64, 2.5), time.Now())
	plc.SetDown(false)
	b2 := obs.WaitFor(d, 10*time.Second, "DBIRTH after the PLC came back", testutil.Is(sparkplug.DBIRTH, "learner"))
	s2 := birthMetric(t, obs, b2, "speed")
	if s2.Type != sparkplug.TypeDouble || s2.Float != 2.5 {
		t.Fatalf("speed re-born as %v %s, want Double 2.5", s2.Type, s2.ValueString())
	}
	if s2.Alias == s1.Alias {
		t.Errorf("speed kept alias %d across a type change", s1.Alias)
	}

	plc.Set("speed", drivers.FloatValue(drivers.Float64, 3.5), time.Now())
	obs.WaitFor(b2, 10*time.Second, "3.5 as Double", func(m testutil.Msg) bool {
		if m.Topic.Type != sparkplug.DDATA || m.Topic.Device != "learner" {
			return false
		}
		for _, x := range m.Payload.Metrics {
			if x.Alias == s2.Alias && x.Resolve(sparkplug.TypeDouble) == nil && x.Float == 3.5 {
				return true
			}
		}
		return false
	})
	// Back to a number of the old type: a third birth; the host never sees
	// the Double alias carry an integer or the reverse.
	plc.SetDown(true)
	d2 := obs.WaitFor(b2, 10*time.Second, "second DDEATH", testutil.Is(sparkplug.DDEATH, "learner"))
	plc.Set("speed", drivers.IntValue(drivers.Int32, 9), time.Now())
	plc.SetDown(false)
	b3 := obs.WaitFor(d2, 10*time.Second, "third DBIRTH", testutil.Is(sparkplug.DBIRTH, "learner"))
	if s3 := birthMetric(t, obs, b3, "speed"); s3.Type != sparkplug.TypeInt32 || int32(s3.Int) != 9 {
		t.Fatalf("speed re-born as %v %s, want Int32 9", s3.Type, s3.ValueString())
	}
	types := map[uint64]sparkplug.DataType{}
	for _, m := range obs.Msgs() {
		if m.Topic.Device != "learner" || m.Payload == nil {
			continue
		}
		switch m.Topic.Type {
		case sparkplug.DBIRTH:
			for _, x := range m.Payload.Metrics {
				if prev, ok := types[x.Alias]; ok && prev != x.Type {
					t.Errorf("alias %d born as %v, earlier as %v", x.Alias, x.Type, prev)
				}
				types[x.Alias] = x.Type
			}
		case sparkplug.DDATA:
			for _, x := range m.Payload.Metrics {
				if typ, ok := types[x.Alias]; !ok || x.Resolve(typ) != nil {
					t.Errorf("DDATA metric alias %d does not fit its birth's %v: %s", x.Alias, typ, m.Raw)
				}
			}
		}
	}
	checkSeq(t, obs.Msgs())
}

// History stored before a restart replays with the types the tags had,
// even when the PLC is unreachable after the restart (the driver has not
// learned them again): nothing is dropped.
func TestLearnedTypesReplayAfterRestart(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	proxy := testutil.NewProxy(t, broker.Addr())
	plc := drivertest.NewPLC(t.Name())
	defer plc.Close()
	plc.Set("speed", drivers.IntValue(drivers.Int32, 0), time.Now())
	plc.Set("mode", drivers.StringValue("auto"), time.Now())
	state := t.TempDir()
	cfg := learnedConfig(proxy.URL(), state, t.Name())

	a, stop := runAgent(t, cfg)
	obs.WaitFor(0, 10*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "learner"))
	proxy.Cut()
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	for i := 1; i <= 5; i++ {
		plc.Set("speed", drivers.IntValue(drivers.Int32, int64(i)), base.Add(time.Duration(i)*time.Second))
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.Stats().Buffer.Records < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("5 changes not buffered: %+v", a.Stats().Buffer)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()

	plc.SetDown(true)
	proxy.Restore()
	from := obs.Len()
	a2, _ := runAgent(t, cfg)
	got := map[int32]bool{}
	obs.WaitFor(from, 15*time.Second, "the 5 buffered values, historical", func(m testutil.Msg) bool {
		if m.Topic.Type == sparkplug.DDATA && m.Topic.Device == "learner" {
			for _, x := range m.Payload.Metrics {
				if x.Historical && x.Resolve(sparkplug.TypeInt32) == nil {
					got[int32(x.Int)] = true
				}
			}
		}
		return len(got) >= 5
	})
	for i := int32(1); i <= 5; i++ {
		if !got[i] {
			t.Errorf("value %d not replayed", i)
		}
	}
	// The replay's birth declares the learned type, Int32.
	for i, m := range obs.Msgs()[from:] {
		if m.Topic.Type == sparkplug.DBIRTH && m.Topic.Device == "learner" {
			if s := birthMetric(t, obs, from+i, "speed"); s.Type != sparkplug.TypeInt32 {
				t.Errorf("replay birth declares speed %v, want Int32", s.Type)
			}
		}
	}
	if n := a2.Stats().DroppedUnknown; n != 0 {
		t.Errorf("%d samples dropped", n)
	}
}
