package agent

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers/opcua/opcuatest"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// opcuaConfig is an agent with one OPC UA device named press.
func opcuaConfig(broker, state, endpoint, mode, extra, tags string) string {
	return fmt.Sprintf(`node: {group_id: plant, edge_node_id: edge1}
mqtt: {servers: [%s], keepalive: 2s, reconnect_min: 100ms, reconnect_max: 200ms}
state_dir: %s
devices:
  - id: press
    driver: opcua
    endpoint: %s
    mode: %s
    poll: 100ms
    timeout: 2s%s
    tags:
%s`, broker, state, endpoint, mode, extra, tags)
}

func newOPCUASim(t *testing.T) *opcuatest.Server {
	t.Helper()
	s, err := opcuatest.NewServer(opcuatest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// metricOf finds a metric by alias in a DDATA of device press.
func metricOf(m testutil.Msg, alias uint64) (sparkplug.Metric, bool) {
	if m.Topic.Type != sparkplug.DDATA || m.Topic.Device != "press" || m.Payload == nil {
		return sparkplug.Metric{}, false
	}
	for _, x := range m.Payload.Metrics {
		if x.Alias == alias {
			return x, true
		}
	}
	return sparkplug.Metric{}, false
}

// An OPC UA device end to end, in both modes: a DBIRTH with the types the
// nodes have (none configured), changes with the server's source
// timestamps, a DCMD written to the node as its own type and coming back.
func TestOPCUAEndToEnd(t *testing.T) {
	for _, mode := range []string{"subscribe", "poll"} {
		t.Run(mode, func(t *testing.T) {
			broker := testutil.Mosquitto(t)
			obs := testutil.Observe(t, broker.URL())
			s := newOPCUASim(t)
			tags := fmt.Sprintf(`      - {name: Press/Counter, node: %q}
      - {name: Press/Setpoint, node: "nsu=%s;s=Setpoint", writable: true}
      - {name: Types/DoubleArray, node: %q}
      - {name: Types/ByteString, node: %q}
      - {name: Types/DateTime, node: %q}
      - {name: Types/LocalizedText, node: %q}
      - {name: Types/Int16Scaled, node: %q, scale: 0.1}
`, s.NodeID("Counter"), s.NamespaceURI(), s.NodeID("DoubleArray"), s.NodeID("ByteString"), s.NodeID("DateTime"), s.NodeID("LocalizedText"), s.NodeID("Int16"))
			runAgent(t, opcuaConfig(broker.URL(), t.TempDir(), s.URL(), mode, "", tags))
			db := obs.WaitFor(0, 20*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "press"))
			birth := metricsByName(obs.Msgs()[db].Payload)
			for name, want := range map[string]struct {
				typ sparkplug.DataType
				val string
			}{
				"Press/Counter":       {sparkplug.TypeUInt32, "0"},
				"Press/Setpoint":      {sparkplug.TypeInt32, "0"},
				"Types/DoubleArray":   {sparkplug.TypeDoubleArray, "0x000000000000e03f000000000000f83f00000000000004c0"},
				"Types/ByteString":    {sparkplug.TypeBytes, "0xdeadbeef"},
				"Types/DateTime":      {sparkplug.TypeDateTime, "2024-01-02T03:04:05.000Z"},
				"Types/LocalizedText": {sparkplug.TypeString, `"Press 1"`},
				"Types/Int16Scaled":   {sparkplug.TypeDouble, "-160"},
			} {
				m := birth[name]
				if m.Type != want.typ || m.ValueString() != want.val {
					t.Errorf("%s born as %v %s, want %v %s", name, m.Type, m.ValueString(), want.typ, want.val)
				}
			}
			counter := birth["Press/Counter"]
			for v := uint32(1); v <= 3; v++ {
				if err := s.Set("Counter", v); err != nil {
					t.Fatal(err)
				}
				obs.WaitFor(db, 10*time.Second, fmt.Sprintf("counter %d", v), func(m testutil.Msg) bool {
					x, ok := metricOf(m, counter.Alias)
					return ok && x.Resolve(sparkplug.TypeUInt32) == nil && x.Int == uint64(v) && !x.Historical
				})
			}
			from := obs.Len()
			sp := birth["Press/Setpoint"]
			topic := sparkplug.Topic{Group: "plant", Type: sparkplug.DCMD, Node: "edge1", Device: "press"}.String()
			obs.Client().Publish(topic, 0, false, sparkplug.AppendCommand(nil, uint64(time.Now().UnixMilli()),
				[]sparkplug.Metric{{Name: "Press/Setpoint", Type: sparkplug.TypeInt32, Int: uint64(uint32(0xFFFFFFF4))}}))
			obs.WaitFor(from, 10*time.Second, "the written setpoint as data", func(m testutil.Msg) bool {
				x, ok := metricOf(m, sp.Alias)
				return ok && x.Resolve(sparkplug.TypeInt32) == nil && int32(x.Int) == -12
			})
			if got := s.Get("Setpoint"); got != int32(-12) {
				t.Errorf("the simulator holds Setpoint %#v, want int32(-12)", got)
			}
			checkSeq(t, obs.Msgs())
		})
	}
}

// The server restarts: DDEATH while it is down, DBIRTH when it is back,
// and data resumes without an agent restart. A node whose type the
// restart changed (Base: BaseDataType, holding a Double, then an Int32) is
// re-born with its new type.
func TestOPCUAServerRestart(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	s := newOPCUASim(t)
	tags := fmt.Sprintf("      - {name: counter, node: %q}\n      - {name: base, node: %q}\n", s.NodeID("Counter"), s.NodeID("Base"))
	runAgent(t, opcuaConfig(broker.URL(), t.TempDir(), s.URL(), "subscribe", "", tags))
	b1 := obs.WaitFor(0, 20*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "press"))
	if m := metricsByName(obs.Msgs()[b1].Payload)["base"]; m.Type != sparkplug.TypeDouble {
		t.Fatalf("base born as %v, want Double", m.Type)
	}
	s.Stop()
	d := obs.WaitFor(b1, 20*time.Second, "DDEATH", testutil.Is(sparkplug.DDEATH, "press"))
	s.Set("Base", int32(7))
	s.Set("Counter", uint32(41))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	b2 := obs.WaitFor(d, 30*time.Second, "DBIRTH after the restart", testutil.Is(sparkplug.DBIRTH, "press"))
	birth := metricsByName(obs.Msgs()[b2].Payload)
	if m := birth["base"]; m.Type != sparkplug.TypeInt32 || m.ValueString() != "7" {
		t.Errorf("base re-born as %v %s, want Int32 7", m.Type, m.ValueString())
	}
	counter := birth["counter"]
	s.Set("Counter", uint32(42))
	obs.WaitFor(b2, 10*time.Second, "counter 42", func(m testutil.Msg) bool {
		x, ok := metricOf(m, counter.Alias)
		return ok && x.Resolve(sparkplug.TypeUInt32) == nil && x.Int == 42
	})
	checkSeq(t, obs.Msgs())
}

// A 3 s cut between the agent and the server (the session outlives it) and
// a 5 s stall: data resumes within seconds after each, the seq chain holds,
// the changes made during the cut arrive as history with their own
// timestamps (the server queued them), and no value is repeated as live.
func TestOPCUALinkCutAndStall(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	s := testutil.StartNodeOPCUA(t, testutil.NodeOPCUAOptions{Counters: 1, TickMillis: 200})
	proxy := testutil.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", s.Port()))
	endpoint := strings.Replace(proxy.URL(), "tcp://", "opc.tcp://", 1)
	tags := fmt.Sprintf("      - {name: count, node: \"nsu=%s;s=Counter0000\", sampling_interval: 50ms, queue_size: 100}\n", s.NamespaceURI())
	runAgent(t, opcuaConfig(broker.URL(), t.TempDir(), endpoint, "subscribe", "\n    publishing_interval: 100ms\n    keepalive: 1s", tags))
	b := obs.WaitFor(0, 20*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "press"))
	alias := metricsByName(obs.Msgs()[b].Payload)["count"].Alias

	for _, fault := range []struct {
		name  string
		start func()
		d     time.Duration
	}{
		{"cut", proxy.Cut, 3 * time.Second},
		{"stall", proxy.Blackhole, 5 * time.Second},
	} {
		time.Sleep(time.Second)
		from := obs.Len()
		fault.start()
		time.Sleep(fault.d)
		proxy.Restore()
		back := time.Now()
		rb := obs.WaitFor(from, 20*time.Second, "DBIRTH after the "+fault.name, testutil.Is(sparkplug.DBIRTH, "press"))
		t.Logf("%s: re-born %v after the link came back", fault.name, obs.Msgs()[rb].At.Sub(back).Round(time.Millisecond))
		obs.WaitFor(rb, 10*time.Second, "live data after the "+fault.name, func(m testutil.Msg) bool {
			x, ok := metricOf(m, alias)
			return ok && !x.Historical
		})
	}
	time.Sleep(time.Second)

	// Every counter value from the first to the last arrived; values read
	// before a re-birth's are never live after it.
	seen := map[uint64]bool{}
	var lo, hi uint64 = 1 << 62, 0
	hist := 0
	var bornAt uint64
	for _, m := range obs.Msgs() {
		if m.Topic.Device != "press" || m.Payload == nil {
			continue
		}
		switch m.Topic.Type {
		case sparkplug.DBIRTH:
			x := metricsByName(m.Payload)["count"]
			x.Resolve(sparkplug.TypeUInt32)
			seen[x.Int] = true
			bornAt = x.Timestamp
			alias = x.Alias
		case sparkplug.DDATA:
			for _, x := range m.Payload.Metrics {
				if x.Alias != alias || x.Resolve(sparkplug.TypeUInt32) != nil {
					continue
				}
				seen[x.Int] = true
				lo, hi = min(lo, x.Int), max(hi, x.Int)
				if x.Historical {
					hist++
				} else if x.Timestamp < bornAt {
					t.Errorf("value %d at %d is live but older than the birth's (%d)", x.Int, x.Timestamp, bornAt)
				}
			}
		}
	}
	missing := 0
	for v := lo; v <= hi; v++ {
		if !seen[v] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of the counter values %d..%d never arrived", missing, lo, hi)
	}
	if hist == 0 {
		t.Error("no change made during the cut arrived as history")
	}
	checkSeq(t, obs.Msgs())
}
