package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/drivers/modbus/modbustest"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// reloadRig is an agent run from a configuration file that the test
// rewrites and reloads, publishing through a proxy to Mosquitto.
type reloadRig struct {
	t     *testing.T
	dir   string
	file  string
	obs   *testutil.Observer
	proxy *testutil.Proxy
	a     *Agent
	stop  func()
}

const reloadCount = "{name: count, table: holding, address: 0, type: uint32}"

func newReloadRig(t *testing.T) *reloadRig {
	broker := testutil.Mosquitto(t)
	r := &reloadRig{t: t, dir: t.TempDir()}
	r.file = filepath.Join(r.dir, "config.yaml")
	r.obs = testutil.Observe(t, broker.URL())
	r.proxy = testutil.NewProxy(t, broker.Addr())
	return r
}

// config writes a configuration: mqtt keys and other sections as given,
// devices as id → (url, tags).
func (r *reloadRig) config(mqttExtra, sections string, devs ...string) {
	r.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `node: {group_id: plant, edge_node_id: edge1}
mqtt:
  servers: [%s]
  keepalive: 1s
  reconnect_min: 100ms
  reconnect_max: 200ms%s
state_dir: %s
%s
devices:
`, r.proxy.URL(), mqttExtra, r.dir, sections)
	for _, d := range devs {
		b.WriteString(d)
	}
	if err := os.WriteFile(r.file, []byte(b.String()), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// modbusDevice is one modbus device entry.
func modbusDevice(id string, sim *modbustest.Server, tags ...string) string {
	return fmt.Sprintf("  - id: %s\n    driver: modbus\n    url: %s\n    poll: 20ms\n    timeout: 300ms\n    tags:\n      - %s\n", id, sim.URL(), strings.Join(tags, "\n      - "))
}

func (r *reloadRig) start() {
	r.a, r.stop = runAgentFile(r.t, r.file, testLogger(r.t), nil)
}

func (r *reloadRig) reload() ReloadReport {
	r.t.Helper()
	rep, err := r.a.Reload()
	if err != nil {
		r.t.Fatalf("reload: %v", err)
	}
	return rep
}

// none fails if any message from index from on matches.
func (r *reloadRig) none(from int, what string, bad func(testutil.Msg) bool) {
	r.t.Helper()
	for i, m := range r.obs.Msgs()[from:] {
		if bad(m) {
			r.t.Errorf("msg %d: %s: %s", from+i, what, m.Raw)
		}
	}
}

// hasMetric matches a device birth carrying a metric.
func birthWith(device, metric string) func(testutil.Msg) bool {
	return func(m testutil.Msg) bool {
		if m.Topic.Type != sparkplug.DBIRTH || m.Topic.Device != device || m.Payload == nil {
			return false
		}
		_, ok := metricsByName(m.Payload)[metric]
		return ok
	}
}

// dataValue matches a DDATA of device carrying alias = v (unsigned).
func dataValue(device string, alias uint64, t sparkplug.DataType, v uint64) func(testutil.Msg) bool {
	return func(m testutil.Msg) bool {
		if m.Topic.Type != sparkplug.DDATA || m.Topic.Device != device || m.Payload == nil {
			return false
		}
		for _, x := range m.Payload.Metrics {
			if x.HasAlias && x.Alias == alias && x.Resolve(t) == nil && x.Int == v {
				return true
			}
		}
		return false
	}
}

// Reload end to end: a tag added to a device re-births that device (and
// only it) and its data follows; a removed device gets its DDEATH; a file
// with a mistake changes nothing and says where the mistake is; a device
// whose configuration is unchanged is never reconnected or re-born.
func TestReloadDevices(t *testing.T) {
	r := newReloadRig(t)
	sim1, sim2 := scSim(t), scSim(t)
	sim1.SetUint32(modbus.Holding, 0, modbus.ABCD, 1)
	sim2.SetUint32(modbus.Holding, 0, modbus.ABCD, 1)
	r.config("", "", modbusDevice("plc1", sim1, reloadCount), modbusDevice("plc2", sim2, reloadCount))
	r.start()
	r.obs.WaitFor(0, 10*time.Second, "DBIRTH plc1", testutil.Is(sparkplug.DBIRTH, "plc1"))
	r.obs.WaitFor(0, 10*time.Second, "DBIRTH plc2", testutil.Is(sparkplug.DBIRTH, "plc2"))
	conns2 := sim2.Connections()

	// Add a tag to plc1.
	sim1.SetHolding(10, 4242)
	r.config("", "", modbusDevice("plc1", sim1, reloadCount, "{name: extra, table: holding, address: 10, type: uint16}"), modbusDevice("plc2", sim2, reloadCount))
	from := r.obs.Len()
	rep := r.reload()
	if rep.Result != ReloadApplied || !slices.Equal(rep.Changed, []string{"plc1"}) || !slices.Equal(rep.Unchanged, []string{"plc2"}) {
		t.Fatalf("reload report %+v", rep)
	}
	death := r.obs.WaitFor(from, 10*time.Second, "DDEATH plc1", testutil.Is(sparkplug.DDEATH, "plc1"))
	birth := r.obs.WaitFor(death, 10*time.Second, "DBIRTH plc1 with the new tag", birthWith("plc1", "extra"))
	extra := metricsByName(r.obs.Msgs()[birth].Payload)["extra"]
	if err := extra.Resolve(sparkplug.TypeUInt16); err != nil || extra.Int != 4242 {
		t.Errorf("extra in the DBIRTH = %+v (%v), want 4242", extra, err)
	}
	sim1.SetHolding(10, 4243)
	r.obs.WaitFor(birth, 10*time.Second, "DDATA of the new tag", dataValue("plc1", extra.Alias, sparkplug.TypeUInt16, 4243))
	// The aliases of the new birth are not those of any other metric the
	// node has born this session.
	for _, m := range r.obs.Msgs()[:birth] {
		if m.Topic.Type == sparkplug.DBIRTH && m.Topic.Device == "plc2" {
			for _, x := range m.Payload.Metrics {
				if x.Alias == extra.Alias {
					t.Errorf("alias %d of plc1/extra is also plc2/%s's", x.Alias, x.Name)
				}
			}
		}
	}

	// Remove plc2.
	r.config("", "", modbusDevice("plc1", sim1, reloadCount, "{name: extra, table: holding, address: 10, type: uint16}"))
	from = r.obs.Len()
	rep = r.reload()
	if !slices.Equal(rep.Removed, []string{"plc2"}) || !slices.Equal(rep.Unchanged, []string{"plc1"}) {
		t.Fatalf("reload report %+v", rep)
	}
	r.obs.WaitFor(from, 10*time.Second, "DDEATH plc2", testutil.Is(sparkplug.DDEATH, "plc2"))
	sim2.SetUint32(modbus.Holding, 0, modbus.ABCD, 99)
	sim1.SetHolding(10, 4244)
	r.obs.WaitFor(from, 10*time.Second, "plc1 data after removing plc2", dataValue("plc1", extra.Alias, sparkplug.TypeUInt16, 4244))
	time.Sleep(200 * time.Millisecond)
	r.none(from, "plc1 re-born though unchanged", testutil.Is(sparkplug.DBIRTH, "plc1"))
	r.none(from, "plc2 publishes after its removal", testutil.Is(sparkplug.DDATA, "plc2"))

	// A mistake: nothing changes, the error says where.
	good, _ := os.ReadFile(r.file)
	bad := strings.Replace(string(good), "    poll: 20ms\n", "    poll: 20ms\n    pol: 1s\n", 1)
	if err := os.WriteFile(r.file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	line := strings.Count(bad[:strings.Index(bad, "    pol: 1s")], "\n") + 1
	from = r.obs.Len()
	rep, err := r.a.Reload()
	var es config.Errors
	if !errors.As(err, &es) || rep.Result != ReloadInvalid || !strings.Contains(err.Error(), fmt.Sprintf("config.yaml:%d:5:", line)) || !strings.Contains(err.Error(), `unknown key "pol"`) {
		t.Fatalf("reload of a bad file: %+v, %v; want an error at config.yaml:%d:5", rep, err, line)
	}
	sim1.SetHolding(10, 4245)
	r.obs.WaitFor(from, 10*time.Second, "plc1 data after a refused reload", dataValue("plc1", extra.Alias, sparkplug.TypeUInt16, 4245))
	r.none(from, "a refused reload touched the session", func(m testutil.Msg) bool {
		return m.Topic.Type != sparkplug.DDATA
	})
	s := r.a.Stats()
	if s.Reloads[ReloadApplied] != 2 || s.Reloads[ReloadInvalid] != 1 {
		t.Errorf("reloads = %v", s.Reloads)
	}
	if n := sim2.Connections(); n != conns2 {
		t.Errorf("plc2 (unchanged, then removed) was reconnected: %d connections, had %d", n, conns2)
	}
	r.stop()
	checkSeq(t, r.obs.Msgs())
}

// A reload while the WAN is cut: every value stored before it, and after
// it, reaches the host once the link is back, and the device added
// meanwhile is born.
func TestReloadWhileWANCut(t *testing.T) {
	r := newReloadRig(t)
	sim1, sim2 := scSim(t), scSim(t)
	cnt := startCounter(sim1)
	r.config("", "", modbusDevice("plc1", sim1, reloadCount))
	r.start()
	r.obs.WaitFor(0, 10*time.Second, "DBIRTH plc1", testutil.Is(sparkplug.DBIRTH, "plc1"))
	time.Sleep(300 * time.Millisecond)
	down := window{from: time.Now()}
	r.proxy.Cut()
	time.Sleep(800 * time.Millisecond)
	r.config("", "", modbusDevice("plc1", sim1, reloadCount), modbusDevice("plc2", sim2, reloadCount))
	rep := r.reload()
	if !slices.Equal(rep.Added, []string{"plc2"}) || !slices.Equal(rep.Unchanged, []string{"plc1"}) {
		t.Fatalf("reload report %+v", rep)
	}
	time.Sleep(800 * time.Millisecond)
	if r.a.Stats().Buffer.Records == 0 {
		t.Fatal("nothing buffered during the cut")
	}
	from := r.obs.Len()
	down.to = time.Now()
	r.proxy.Restore()
	r.obs.WaitFor(from, 15*time.Second, "DBIRTH plc2 after the link is back", testutil.Is(sparkplug.DBIRTH, "plc2"))
	_, hist := finishAndCheck(t, cnt, r.obs, r.a, r.stop, []window{down})
	if hist == 0 {
		t.Error("no history replayed: the values of the cut were not buffered")
	}
}

// A change under mqtt starts a new session (NDEATH, next bdSeq, births)
// without reconnecting the PLCs; keys that need a restart keep their
// value and say so; the other settings apply.
func TestReloadSessionAndSettings(t *testing.T) {
	r := newReloadRig(t)
	sim := scSim(t)
	sim.SetUint32(modbus.Holding, 0, modbus.ABCD, 5)
	r.config("", "buffer: {max_bytes: 64MiB}", modbusDevice("plc1", sim, reloadCount))
	r.start()
	nb := r.obs.WaitFor(0, 10*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
	r.obs.WaitFor(nb, 10*time.Second, "DBIRTH plc1", testutil.Is(sparkplug.DBIRTH, "plc1"))
	bd := bdSeqOf(t, r.obs.Msgs()[nb].Payload)
	conns := sim.Connections()

	r.config("\n  connect_timeout: 5s", fmt.Sprintf("buffer: {max_bytes: 32MiB, path: %s}\nlog: {level: debug}", filepath.Join(r.dir, "other.db")), modbusDevice("plc1", sim, reloadCount))
	from := r.obs.Len()
	rep := r.reload()
	if rep.Result != ReloadPartial || !slices.Equal(rep.RestartNeeded, []string{"buffer.path"}) || !rep.SessionRestarted || !slices.Equal(rep.Unchanged, []string{"plc1"}) {
		t.Fatalf("reload report %+v", rep)
	}
	nd := r.obs.WaitFor(from, 10*time.Second, "NDEATH of the old session", testutil.Is(sparkplug.NDEATH, ""))
	if got := bdSeqOf(t, r.obs.Msgs()[nd].Payload); got != bd {
		t.Errorf("NDEATH bdSeq %d, want the old session's %d", got, bd)
	}
	nb = r.obs.WaitFor(nd, 10*time.Second, "NBIRTH of the new session", testutil.Is(sparkplug.NBIRTH, ""))
	if got := bdSeqOf(t, r.obs.Msgs()[nb].Payload); got != bd+1 {
		t.Errorf("new NBIRTH bdSeq %d, want %d", got, bd+1)
	}
	db := r.obs.WaitFor(nb, 10*time.Second, "DBIRTH plc1 in the new session", testutil.Is(sparkplug.DBIRTH, "plc1"))
	if c := metricsByName(r.obs.Msgs()[db].Payload)["count"]; c.Resolve(sparkplug.TypeUInt32) != nil || c.Int != 5 {
		t.Errorf("count in the new DBIRTH = %+v", c)
	}
	if n := sim.Connections(); n != conns {
		t.Errorf("the PLC was reconnected for a broker change: %d connections, had %d", n, conns)
	}
	s := r.a.Stats()
	if s.Reloads[ReloadPartial] != 1 {
		t.Errorf("reloads = %v", s.Reloads)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "other.db")); err == nil {
		t.Error("a reload opened the new buffer.path; it needs a restart")
	}
	r.a.mu.Lock()
	kept := r.a.cfg.Buffer.Path
	r.a.mu.Unlock()
	if kept != filepath.Join(r.dir, "buffer.db") {
		t.Errorf("buffer.path in force = %s", kept)
	}
	r.stop()
	checkSeq(t, r.obs.Msgs())
}

// Records stored before a reload that renamed, retyped and removed tags:
// after the link returns, the samples of those tags are counted and
// dropped, never published as the new tags' values; the rest arrives.
func TestReloadDropsRenamedAndRetypedTags(t *testing.T) {
	r := newReloadRig(t)
	sim := scSim(t)
	cnt := startCounter(sim)
	for _, reg := range []uint16{4, 5, 6} {
		sim.SetHolding(reg, 1)
	}
	r.config("", "", modbusDevice("plc1", sim, reloadCount,
		"{name: a, table: holding, address: 4, type: uint16}",
		"{name: b, table: holding, address: 5, type: uint16}",
		"{name: c, table: holding, address: 6, type: uint16}"))
	r.start()
	r.obs.WaitFor(0, 10*time.Second, "DBIRTH plc1", testutil.Is(sparkplug.DBIRTH, "plc1"))
	r.proxy.Cut()
	for v := range uint16(20) {
		sim.SetHolding(4, 500+v, 500+v, 500+v)
		time.Sleep(60 * time.Millisecond)
	}
	// What the renamed and retyped tags read after the reload.
	sim.SetHolding(4, 9999, 9999)
	r.config("", "", modbusDevice("plc1", sim, reloadCount,
		"{name: a, table: holding, address: 4, type: int16}",
		"{name: b2, table: holding, address: 5, type: uint16}",
		"{name: d, table: holding, address: 7, type: uint16}"))
	rep := r.reload()
	if !slices.Equal(rep.Changed, []string{"plc1"}) {
		t.Fatalf("reload report %+v", rep)
	}
	time.Sleep(300 * time.Millisecond)
	from := r.obs.Len()
	r.proxy.Restore()
	r.obs.WaitFor(from, 15*time.Second, "NBIRTH after the link is back", testutil.Is(sparkplug.NBIRTH, ""))
	last := cnt.finish()
	waitForValue(t, r.obs, last, 30*time.Second)
	waitEmpty(t, r.a)
	stopAndSettle(t, r.obs, r.stop)
	if d := r.a.Stats().DroppedUnknown; d < 60 {
		t.Errorf("dropped %d samples of renamed, retyped and removed tags, want at least 60", d)
	}
	// Aliases by birth: a value from before the reload must never appear
	// under a, b2 or d as born after it.
	aliases := map[uint64]string{}
	for _, m := range r.obs.Msgs()[from:] {
		if m.Payload == nil || m.Topic.Device != "plc1" {
			continue
		}
		switch m.Topic.Type {
		case sparkplug.DBIRTH:
			for _, x := range m.Payload.Metrics {
				aliases[x.Alias] = x.Name
			}
		case sparkplug.DDATA:
			for _, x := range m.Payload.Metrics {
				name := aliases[x.Alias]
				if name == "a" || name == "b2" || name == "d" {
					if x.Int >= 500 && x.Int < 520 {
						t.Errorf("%s: %s carries %d, a value of the old configuration's tag", m.Raw, name, x.Int)
					}
				}
			}
		}
	}
	checkCounter(t, r.obs.Msgs(), last, nil, 2)
}
