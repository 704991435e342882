package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// TestPrimaryHost22: a primary host speaking Sparkplug 2.2 STATE
// (STATE/<host_id>, retained ONLINE / OFFLINE, no timestamp), chosen by
// mqtt.primary_host_version. The node births only once the host is
// ONLINE, ends its session on OFFLINE (NDEATH, buffering meanwhile), and
// births again, replaying what it read, when the host is back. Other
// hosts' STATE and the 3.0 form of its own are not its host's.
func TestPrimaryHost22(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	host := obs.Client()
	sim := scSim(t)
	a, stop, logs := scRun(t, scConfig(scOpts{servers: []string{broker.URL()}, stateDir: t.TempDir(), plc: sim.URL(),
		mqtt: `primary_host_id: scada, primary_host_version: "2.2"`}))
	defer stop()
	cnt := newSCCounter(t, sim, a)
	state := func(host22 string, payload string) {
		scPublish(t, host, "STATE/"+host22, 1, true, []byte(payload))
	}
	t.Cleanup(func() { scPublish(t, host, "STATE/scada", 1, true, nil) })

	logs.waitFor(10*time.Second, 1, "", "waiting for primary host")
	from := obs.Len()
	state("other", "ONLINE")
	scState(t, host, "scada", true, scNowMs()) // the 3.0 form: not this host's
	state("scada", "OFFLINE")
	var early []scValue
	for range 3 {
		early = append(early, cnt.step())
	}
	scQuiet(t, obs, from, 1500*time.Millisecond, "published before the 2.2 host was ONLINE", scFromEdge)

	on := obs.Len()
	state("scada", "ONLINE")
	nb := obs.WaitFor(on, 10*time.Second, "NBIRTH after ONLINE", testutil.Is(sparkplug.NBIRTH, ""))
	db := obs.WaitFor(nb, 5*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
	alias := scAliasOf(t, obs.Msgs()[db], "count")
	v := cnt.step()
	obs.WaitFor(db, 10*time.Second, fmt.Sprintf("live value %d", v.v), scHasValue(v.v, alias, false))

	off := obs.Len()
	state("scada", "OFFLINE")
	nd := obs.WaitFor(off, 10*time.Second, "NDEATH after OFFLINE", testutil.Is(sparkplug.NDEATH, ""))
	bd0 := bdSeqOf(t, obs.Msgs()[nb].Payload)
	if bd := bdSeqOf(t, obs.Msgs()[nd].Payload); bd != bd0 {
		t.Errorf("NDEATH bdSeq %d, want the NBIRTH's %d", bd, bd0)
	}
	scWaitStat(t, a, 10*time.Second, "a second connection", func(s Stats) bool { return s.Connects >= 2 })
	logs.waitFor(10*time.Second, 2, "", "waiting for primary host")
	var offline []scValue
	for range 5 {
		offline = append(offline, cnt.step())
	}
	scQuiet(t, obs, nd+1, time.Second, "published while the 2.2 host was OFFLINE", scFromEdge)

	back := obs.Len()
	state("scada", "ONLINE")
	nb2 := obs.WaitFor(back, 10*time.Second, "NBIRTH after the host came back", testutil.Is(sparkplug.NBIRTH, ""))
	if bd := bdSeqOf(t, obs.Msgs()[nb2].Payload); bd != bd0+1 {
		t.Errorf("NBIRTH after the host came back: bdSeq %d, want %d", bd, bd0+1)
	}
	scWaitReplayed(t, obs, nb2, offline, 10*time.Second)
	scWaitStat(t, a, 20*time.Second, "an empty buffer", func(s Stats) bool { return s.Buffer.Records == 0 })
	stop()
	msgs := obs.Msgs()
	seen := scCounterSeen(t, msgs, "count")
	scCheckReplayed(t, seen, nb, early, "before the first ONLINE,")
	scCheckReplayed(t, seen, nb2, offline, "while the host was OFFLINE,")
	checkSeq(t, msgs)
}
