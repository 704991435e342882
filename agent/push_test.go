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

// A device whose driver pushes changes (drivers.Subscriber) reaches the
// host like a polled one: DBIRTH with every tag, then each change as DDATA
// with the PLC's source timestamp and quality; a write comes back as data.
func TestPushDeviceEndToEnd(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	plc := drivertest.NewPLC(t.Name())
	defer plc.Close()
	src := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	plc.Set("speed", drivers.IntValue(drivers.Int32, 7), src)
	runAgent(t, fmt.Sprintf(`node: {group_id: plant, edge_node_id: edge1}
mqtt: {servers: [%s], keepalive: 2s, reconnect_min: 100ms, reconnect_max: 100ms}
state_dir: %s
devices:
  - id: pusher
    driver: memory
    plc: %s
    push: true
    tags:
      - {name: speed, type: int32, writable: true}
      - {name: mode, type: string}
`, broker.URL(), t.TempDir(), t.Name()))
	db := obs.WaitFor(0, 10*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "pusher"))
	birth := metricsByName(obs.Msgs()[db].Payload)
	speed := birth["speed"]
	if speed.Resolve(sparkplug.TypeInt32) != nil || int64(speed.Int) != 7 || speed.Timestamp != uint64(src.UnixMilli()) {
		t.Fatalf("speed in the DBIRTH = %+v, want 7 at %d", speed, src.UnixMilli())
	}
	t1 := src.Add(time.Minute)
	plc.Set("speed", drivers.IntValue(drivers.Int32, -3), t1)
	plc.SetQuality("mode", drivers.StringValue(""), t1, drivers.QualityBad)
	got := map[uint64]sparkplug.Metric{}
	obs.WaitFor(db, 10*time.Second, "both changes", func(m testutil.Msg) bool {
		if m.Topic.Type == sparkplug.DDATA && m.Topic.Device == "pusher" {
			for _, x := range m.Payload.Metrics {
				got[x.Alias] = x
			}
		}
		return len(got) == 2
	})
	s, mode := got[speed.Alias], got[birth["mode"].Alias]
	if s.Resolve(sparkplug.TypeInt32) != nil || int32(s.Int) != -3 || s.Timestamp != uint64(t1.UnixMilli()) || s.Historical {
		t.Errorf("speed change = %+v, want -3 at %d, live", s, t1.UnixMilli())
	}
	if !mode.Null || len(mode.Properties) != 1 || mode.Properties[0].Key != "Quality" || mode.Properties[0].Int != sparkplug.QualityBad {
		t.Errorf("bad-quality mode = %+v, want null with Quality 0", mode)
	}

	from := obs.Len()
	topic := sparkplug.Topic{Group: "plant", Type: sparkplug.DCMD, Node: "edge1", Device: "pusher"}.String()
	obs.Client().Publish(topic, 0, false, sparkplug.AppendCommand(nil, uint64(time.Now().UnixMilli()),
		[]sparkplug.Metric{{Name: "speed", Type: sparkplug.TypeInt32, Int: 42}}))
	obs.WaitFor(from, 10*time.Second, "the written value as data", func(m testutil.Msg) bool {
		if m.Topic.Type != sparkplug.DDATA || m.Topic.Device != "pusher" {
			return false
		}
		for _, x := range m.Payload.Metrics {
			if x.Alias == speed.Alias && x.Resolve(sparkplug.TypeInt32) == nil && x.Int == 42 {
				return true
			}
		}
		return false
	})
	if w := plc.Writes(); len(w) != 1 || w[0].Tag != "speed" || w[0].Value.Int() != 42 {
		t.Errorf("PLC writes = %+v", w)
	}

	// A change the PLC held while the link was down, older than the
	// current value: history, with its own timestamp.
	from = obs.Len()
	held := src.Add(30 * time.Second)
	plc.Deliver("speed", drivers.IntValue(drivers.Int32, 5), held)
	obs.WaitFor(from, 10*time.Second, "the held change as history", func(m testutil.Msg) bool {
		if m.Topic.Type != sparkplug.DDATA || m.Topic.Device != "pusher" {
			return false
		}
		for _, x := range m.Payload.Metrics {
			if x.Alias == speed.Alias && x.Resolve(sparkplug.TypeInt32) == nil && x.Int == 5 {
				if !x.Historical || x.Timestamp != uint64(held.UnixMilli()) {
					t.Errorf("held change = %+v, want historical at %d", x, held.UnixMilli())
				}
				return true
			}
		}
		return false
	})
}

// A write to a PLC that hangs holds up nothing but that device: the host's
// rebirth request is answered at once, and another device's writes land.
func TestSlowPLCBlocksOnlyItself(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	slow, fast := drivertest.NewPLC(t.Name()+"-slow"), drivertest.NewPLC(t.Name()+"-fast")
	defer slow.Close()
	defer fast.Close()
	runAgent(t, fmt.Sprintf(`node: {group_id: plant, edge_node_id: edge1}
mqtt: {servers: [%s], keepalive: 2s, reconnect_min: 100ms, reconnect_max: 100ms}
state_dir: %s
devices:
  - {id: slow, driver: memory, plc: %s, push: true, timeout: 200ms, tags: [{name: sp, type: int32, writable: true}]}
  - {id: fast, driver: memory, plc: %s, push: true, tags: [{name: sp, type: int32, writable: true}]}
`, broker.URL(), t.TempDir(), t.Name()+"-slow", t.Name()+"-fast"))
	obs.WaitFor(0, 10*time.Second, "DBIRTH slow", testutil.Is(sparkplug.DBIRTH, "slow"))
	obs.WaitFor(0, 10*time.Second, "DBIRTH fast", testutil.Is(sparkplug.DBIRTH, "fast"))
	write := func(dev string, v int32) {
		topic := sparkplug.Topic{Group: "plant", Type: sparkplug.DCMD, Node: "edge1", Device: dev}.String()
		obs.Client().Publish(topic, 0, false, sparkplug.AppendCommand(nil, uint64(time.Now().UnixMilli()),
			[]sparkplug.Metric{{Name: "sp", Type: sparkplug.TypeInt32, Int: uint64(v)}}))
	}
	slow.SetHang(true)
	defer slow.SetHang(false)
	write("slow", 1) // its scanner blocks in the driver
	write("slow", 2) // queued behind it
	from := obs.Len()
	rebirth := sparkplug.Topic{Group: "plant", Type: sparkplug.NCMD, Node: "edge1"}.String()
	obs.Client().Publish(rebirth, 0, false, sparkplug.AppendCommand(nil, uint64(time.Now().UnixMilli()),
		[]sparkplug.Metric{{Name: sparkplug.MetricRebirth, Type: sparkplug.TypeBoolean, Int: 1}}))
	nb := obs.WaitFor(from, 3*time.Second, "NBIRTH answering the rebirth while a PLC hangs", testutil.Is(sparkplug.NBIRTH, ""))
	obs.WaitFor(nb, 3*time.Second, "DBIRTH fast after the rebirth", testutil.Is(sparkplug.DBIRTH, "fast"))
	write("fast", 7)
	deadline := time.Now().Add(3 * time.Second)
	for len(fast.Writes()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a write to the other device did not land while one PLC hangs")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if w := fast.Writes(); w[0].Value.Int() != 7 {
		t.Errorf("fast got %+v", w)
	}
}
