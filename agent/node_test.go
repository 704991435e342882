package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// nodeCmd publishes an NCMD to edge1 with one Boolean true metric.
func nodeCmd(t *testing.T, obs *testutil.Observer, m sparkplug.Metric) {
	t.Helper()
	topic := sparkplug.Topic{Group: "plant", Type: sparkplug.NCMD, Node: "edge1"}.String()
	scPublish(t, obs.Client(), topic, 0, false, sparkplug.AppendCommand(nil, scNowMs(), []sparkplug.Metric{m}))
}

// nodeMetricOf returns the metric an NBIRTH or NDATA gives name, resolving
// aliases with the NBIRTH's.
func nodeMetricOf(birth *sparkplug.Payload, p *sparkplug.Payload, name string) (sparkplug.Metric, bool) {
	var alias uint64
	var typ sparkplug.DataType
	for _, m := range birth.Metrics {
		if m.Name == name {
			alias, typ = m.Alias, m.Type
		}
	}
	for _, m := range p.Metrics {
		if m.Name == name || m.Name == "" && m.HasAlias && m.Alias == alias {
			if m.Type == sparkplug.TypeUnknown {
				_ = m.Resolve(typ)
			}
			return m, true
		}
	}
	return sparkplug.Metric{}, false
}

// TestNodeBirthMetrics: the NBIRTH carries bdSeq and every node metric with
// name and alias, Node Control/Rebirth without one, and no alias twice
// across the NBIRTH and the DBIRTH.
func TestNodeBirthMetrics(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	sim := scSim(t)
	_, stop, _ := scRun(t, scConfig(scOpts{servers: []string{broker.URL()}, stateDir: t.TempDir(), plc: sim.URL()}))
	defer stop()
	nb := obs.WaitFor(0, 10*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
	db := obs.WaitFor(nb, 5*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
	msgs := obs.Msgs()
	aliases := map[uint64]string{}
	names := map[string]sparkplug.Metric{}
	for _, m := range append(msgs[nb].Payload.Metrics, msgs[db].Payload.Metrics...) {
		names[m.Name] = m
		if m.Name == sparkplug.MetricRebirth {
			if m.HasAlias {
				t.Errorf("%s has alias %d; it must have none", m.Name, m.Alias)
			}
			continue
		}
		if m.Name == "" || !m.HasAlias {
			t.Errorf("birth metric %q (alias %d, has %v): want both name and alias", m.Name, m.Alias, m.HasAlias)
			continue
		}
		if o, dup := aliases[m.Alias]; dup {
			t.Errorf("alias %d given to %q and %q", m.Alias, o, m.Name)
		}
		aliases[m.Alias] = m.Name
	}
	for _, want := range []struct {
		name string
		typ  sparkplug.DataType
	}{
		{sparkplug.MetricBdSeq, sparkplug.TypeInt64},
		{"Node Control/Next Server", sparkplug.TypeBoolean},
		{"Properties/Version", sparkplug.TypeString},
		{"Properties/Hostname", sparkplug.TypeString},
		{"Buffer/Records", sparkplug.TypeUInt64},
		{"Buffer/Oldest Age", sparkplug.TypeDouble},
		{"Buffer/Dropped", sparkplug.TypeUInt64},
		{"Uplink/Reconnects", sparkplug.TypeUInt64},
		{"Writes/Failed", sparkplug.TypeUInt64},
		{"Devices/Online", sparkplug.TypeUInt32},
		{"Devices/Offline", sparkplug.TypeString},
	} {
		m, ok := names[want.name]
		switch {
		case !ok:
			t.Errorf("NBIRTH has no %q", want.name)
		case m.Type != want.typ:
			t.Errorf("%q is %s, want %s", want.name, m.Type, want.typ)
		}
	}
	// The first scan may end after the NBIRTH: then the device is
	// offline in it, and an NDATA says so once it is online.
	switch on, off := names["Devices/Online"], names["Devices/Offline"]; {
	case on.Int == 1 && off.Str == "":
	case on.Int == 0 && off.Str == "plc1":
		birth := msgs[nb].Payload
		obs.WaitFor(nb, 12*time.Second, "NDATA with Devices/Online 1", func(m testutil.Msg) bool {
			if m.Payload == nil || m.Topic.Type != sparkplug.NDATA {
				return false
			}
			on, ok1 := nodeMetricOf(birth, m.Payload, "Devices/Online")
			off, ok2 := nodeMetricOf(birth, m.Payload, "Devices/Offline")
			return ok1 && ok2 && on.Int == 1 && off.Str == ""
		})
	default:
		t.Errorf("Devices/Online = %d, Devices/Offline = %q; want 1 and \"\" or 0 and \"plc1\"", on.Int, off.Str)
	}
	if m := names["Properties/Version"]; m.Str == "" {
		t.Error("Properties/Version is empty")
	}
}

// TestNodeControlNextServer: an NCMD Next Server makes the node publish
// its NDEATH on the server it is on and connect to the next one of
// mqtt.servers at once, with the next bdSeq.
func TestNodeControlNextServer(t *testing.T) {
	b1, b2 := testutil.Mosquitto(t), testutil.Mosquitto(t)
	o1, o2 := testutil.Observe(t, b1.URL()), testutil.Observe(t, b2.URL())
	sim := scSim(t)
	// A long reconnect backoff: moving on a host's request must not wait
	// for it.
	a, stop, _ := scRun(t, scConfig(scOpts{servers: []string{b1.URL(), b2.URL()}, stateDir: t.TempDir(), plc: sim.URL(), reconnect: "20s"}))
	defer stop()
	cnt := newSCCounter(t, sim, a)
	alias := cnt.liveStart(o1, 2)
	nb1 := o1.WaitFor(0, time.Second, "NBIRTH on b1", testutil.Is(sparkplug.NBIRTH, ""))
	bd0 := bdSeqOf(t, o1.Msgs()[nb1].Payload)

	// A false value does nothing.
	from1 := o1.Len()
	nodeCmd(t, o1, sparkplug.Metric{Name: "Node Control/Next Server", Type: sparkplug.TypeBoolean, Int: 0})
	scQuiet(t, o1, from1, 500*time.Millisecond, "NDEATH after Next Server false", testutil.Is(sparkplug.NDEATH, ""))

	asked := time.Now()
	nodeCmd(t, o1, sparkplug.Metric{Name: "Node Control/Next Server", Type: sparkplug.TypeBoolean, Int: 1})
	nd := o1.WaitFor(from1, 5*time.Second, "NDEATH on b1", testutil.Is(sparkplug.NDEATH, ""))
	if bd := bdSeqOf(t, o1.Msgs()[nd].Payload); bd != bd0 {
		t.Errorf("NDEATH on b1: bdSeq %d, want %d", bd, bd0)
	}
	nb2 := o2.WaitFor(0, 5*time.Second, "NBIRTH on b2", testutil.Is(sparkplug.NBIRTH, ""))
	t.Logf("on b2 %v after the NCMD", time.Since(asked).Round(time.Millisecond))
	if bd := bdSeqOf(t, o2.Msgs()[nb2].Payload); bd != bd0+1 {
		t.Errorf("NBIRTH on b2: bdSeq %d, want %d", bd, bd0+1)
	}
	db2 := o2.WaitFor(nb2, 5*time.Second, "DBIRTH on b2", testutil.Is(sparkplug.DBIRTH, "plc1"))
	v := cnt.step()
	o2.WaitFor(db2, 10*time.Second, fmt.Sprintf("live value %d on b2", v.v), scHasValue(v.v, alias, false))
	scQuiet(t, o1, nd+1, 500*time.Millisecond, "agent published on b1 after moving", scFromEdge)

	// By alias too: from b2 the next server is b1 again.
	from1 = o1.Len()
	var nextAlias uint64
	for _, m := range o2.Msgs()[nb2].Payload.Metrics {
		if m.Name == "Node Control/Next Server" {
			nextAlias = m.Alias
		}
	}
	nodeCmd(t, o2, sparkplug.Metric{Alias: nextAlias, HasAlias: true, Type: sparkplug.TypeBoolean, Int: 1})
	o2.WaitFor(nb2, 5*time.Second, "NDEATH on b2", testutil.Is(sparkplug.NDEATH, ""))
	o1.WaitFor(from1, 5*time.Second, "NBIRTH back on b1", testutil.Is(sparkplug.NBIRTH, ""))
	scWaitStat(t, a, 10*time.Second, "an empty buffer", func(s Stats) bool { return s.Buffer.Records == 0 })
	stop()
	checkSeq(t, o1.Msgs())
	checkSeq(t, o2.Msgs())
}

// TestNodeMetricsDuringCut: node metrics describe the present. During a
// WAN cut the buffer fills; the NBIRTH after it carries the backlog and
// the reconnect, and an NDATA follows once history has drained, after the
// history it describes. Nothing of the node metrics is replayed.
func TestNodeMetricsDuringCut(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	proxy := testutil.NewProxy(t, broker.Addr())
	sim := scSim(t)
	a, stop, _ := scRun(t, scConfig(scOpts{servers: []string{proxy.URL()}, stateDir: t.TempDir(), plc: sim.URL(), buffer: "replay_rate: 20"}))
	defer stop()
	cnt := newSCCounter(t, sim, a)
	cnt.liveStart(obs, 2)

	cutAt := obs.Len()
	proxy.Cut()
	for range 40 {
		cnt.step()
	}
	scWaitStat(t, a, 5*time.Second, "a backlog", func(s Stats) bool { return s.Buffer.Records >= 40 })
	time.Sleep(1100 * time.Millisecond) // an oldest age of at least a second
	proxy.Restore()

	nb := obs.WaitFor(cutAt, 15*time.Second, "NBIRTH after the cut", testutil.Is(sparkplug.NBIRTH, ""))
	birth := obs.Msgs()[nb].Payload
	recs, _ := nodeMetricOf(birth, birth, "Buffer/Records")
	age, _ := nodeMetricOf(birth, birth, "Buffer/Oldest Age")
	rc, _ := nodeMetricOf(birth, birth, "Uplink/Reconnects")
	if recs.Int < 40 || age.Float < 1 || rc.Int < 1 {
		t.Errorf("NBIRTH after the cut: Buffer/Records %d (want ≥ 40), Oldest Age %g s (want ≥ 1), Reconnects %d (want ≥ 1)", recs.Int, age.Float, rc.Int)
	}
	// At replay_rate 20 the backlog takes about two seconds; the node
	// metrics say it is empty only after the last of it.
	drained := obs.WaitFor(nb, 20*time.Second, "NDATA with Buffer/Records 0", func(m testutil.Msg) bool {
		if m.Payload == nil || m.Topic.Type != sparkplug.NDATA || m.Topic.Node != "edge1" {
			return false
		}
		r, ok := nodeMetricOf(birth, m.Payload, "Buffer/Records")
		return ok && r.Int == 0
	})
	stop()
	msgs := obs.Msgs()
	lastHist := -1
	for i := nb; i < len(msgs); i++ {
		m := msgs[i]
		if m.Payload == nil || m.Topic.Node != "edge1" {
			continue
		}
		if m.Topic.Type == sparkplug.DDATA && len(m.Payload.Metrics) > 0 && m.Payload.Metrics[0].Historical {
			lastHist = i
		}
		if m.Topic.Type == sparkplug.NDATA {
			for _, x := range m.Payload.Metrics {
				if x.Historical {
					t.Errorf("msg %d: a node metric published as history", i)
				}
			}
		}
	}
	if lastHist < 0 || drained < lastHist {
		t.Errorf("Buffer/Records 0 published at msg %d, the last history at msg %d", drained, lastHist)
	}
	checkSeq(t, msgs)
}

// TestRebirthBurst: a burst of rebirth requests costs one rebirth.
func TestRebirthBurst(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	sim := scSim(t)
	a, stop, _ := scRun(t, scConfig(scOpts{servers: []string{broker.URL()}, stateDir: t.TempDir(), plc: sim.URL()}))
	defer stop()
	cnt := newSCCounter(t, sim, a)
	alias := cnt.liveStart(obs, 2)
	from := obs.Len()
	for range 5 {
		nodeCmd(t, obs, sparkplug.Metric{Name: sparkplug.MetricRebirth, Type: sparkplug.TypeBoolean, Int: 1})
	}
	nb := obs.WaitFor(from, 5*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
	v := cnt.step()
	obs.WaitFor(nb, 10*time.Second, fmt.Sprintf("live value %d", v.v), scHasValue(v.v, alias, false))
	time.Sleep(500 * time.Millisecond)
	births := 0
	for _, m := range obs.Msgs()[from:] {
		if m.Topic.Type == sparkplug.NBIRTH {
			births++
		}
	}
	if births != 1 {
		t.Errorf("%d NBIRTHs for a burst of 5 rebirth requests, want 1:\n%s", births, obs.Dump(from))
	}
	// A request after the burst is a new one.
	from = obs.Len()
	time.Sleep(time.Second)
	nodeCmd(t, obs, sparkplug.Metric{Name: sparkplug.MetricRebirth, Type: sparkplug.TypeBoolean, Int: 1})
	obs.WaitFor(from, 5*time.Second, "NBIRTH for a later request", testutil.Is(sparkplug.NBIRTH, ""))
	stop()
	checkSeq(t, obs.Msgs())
}

// TestHistoryOfOfflineDevice: a device that went offline during a cut has
// history but is not alive at reconnect. Its DBIRTH (needed to carry the
// history) marks its values stale, the history follows as historical
// DDATA, and its DDEATH carries the time the device was lost.
func TestHistoryOfOfflineDevice(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	proxy := testutil.NewProxy(t, broker.Addr())
	sim := scSim(t)
	a, stop, _ := scRun(t, scConfig(scOpts{servers: []string{proxy.URL()}, stateDir: t.TempDir(), plc: sim.URL()}))
	defer stop()
	cnt := newSCCounter(t, sim, a)
	alias := cnt.liveStart(obs, 2)

	cutAt := obs.Len()
	proxy.Cut()
	first := cnt.last() + 1
	for range 5 {
		cnt.step()
	}
	sim.Close()
	lostBy := time.Now()
	scWaitStat(t, a, 10*time.Second, "the device offline", func(s Stats) bool { return s.DevicesOnline == 0 })
	time.Sleep(500 * time.Millisecond)
	proxy.Restore()

	nb := obs.WaitFor(cutAt, 15*time.Second, "NBIRTH after the cut", testutil.Is(sparkplug.NBIRTH, ""))
	if off, _ := nodeMetricOf(obs.Msgs()[nb].Payload, obs.Msgs()[nb].Payload, "Devices/Offline"); off.Str != "plc1" {
		t.Errorf("NBIRTH Devices/Offline = %q, want plc1", off.Str)
	}
	db := obs.WaitFor(nb, 10*time.Second, "DBIRTH carrying history", testutil.Is(sparkplug.DBIRTH, "plc1"))
	for _, m := range obs.Msgs()[db].Payload.Metrics {
		q := uint64(sparkplug.QualityGood)
		for _, p := range m.Properties {
			if p.Key == "Quality" {
				q = p.Int
			}
		}
		if q != sparkplug.QualityStale {
			t.Errorf("DBIRTH of the offline device: %s quality %d, want %d (stale)", m.Name, q, sparkplug.QualityStale)
		}
	}
	dd := obs.WaitFor(db, 10*time.Second, "DDEATH after its history", testutil.Is(sparkplug.DDEATH, "plc1"))
	msgs := obs.Msgs()
	ddTs := msgs[dd].Payload.Timestamp
	if ddTs > uint64(lostBy.Add(2*time.Second).UnixMilli()) || ddTs < uint64(cnt.vals[len(cnt.vals)-1].set.UnixMilli()) {
		t.Errorf("DDEATH timestamp %s: want when the device was lost (after %s, by %s)",
			time.UnixMilli(int64(ddTs)).Format("15:04:05.000"), cnt.vals[len(cnt.vals)-1].set.Format("15:04:05.000"), lostBy.Add(2*time.Second).Format("15:04:05.000"))
	}
	if nbTs := msgs[nb].Payload.Timestamp; ddTs >= nbTs {
		t.Errorf("DDEATH timestamp %d is not before the session that replays the history (NBIRTH %d)", ddTs, nbTs)
	}
	seen := scCounterSeen(t, msgs[:dd], "count")
	for v := first; v <= cnt.last(); v++ {
		ok := false
		for _, s := range seen[v] {
			if s.idx > db && s.historical {
				ok = true
			}
		}
		if !ok && !(len(seen[v]) > 0 && seen[v][0].idx == db) {
			t.Errorf("value %d of the cut was not replayed as history between the DBIRTH and the DDEATH", v)
		}
	}
	_ = alias
	stop()
	checkSeq(t, obs.Msgs())
}
