package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// TestMultipleServers: mqtt.servers [b1, b2]. The agent lives on b1; when
// b1 dies it walks to b2 (new CONNECT, bdSeq+1, births) and replays there
// what b1 never provably got; when b1 comes back it stays on b2 (one
// connection at a time) until b2 dies, then walks back to b1. Across both
// brokers every counter value arrives.
func TestMultipleServers(t *testing.T) {
	b1, b2 := testutil.Mosquitto(t), testutil.Mosquitto(t)
	o1, o2 := testutil.Observe(t, b1.URL()), testutil.Observe(t, b2.URL())
	sim := scSim(t)
	// reconnect 1s (±20 %): the switch takes long enough that several
	// values are read while the agent is on neither broker.
	a, stop, _ := scRun(t, scConfig(scOpts{servers: []string{b1.URL(), b2.URL()}, stateDir: t.TempDir(), plc: sim.URL(), reconnect: "1s"}))
	cnt := newSCCounter(t, sim, a)

	nb1 := o1.WaitFor(0, 10*time.Second, "NBIRTH on b1", testutil.Is(sparkplug.NBIRTH, ""))
	bd0 := bdSeqOf(t, o1.Msgs()[nb1].Payload)
	db1 := o1.WaitFor(nb1, 5*time.Second, "DBIRTH on b1", testutil.Is(sparkplug.DBIRTH, "plc1"))
	alias := scAliasOf(t, o1.Msgs()[db1], "count")
	var v scValue
	for range 3 {
		v = cnt.step()
	}
	o1.WaitFor(db1, 10*time.Second, fmt.Sprintf("live value %d on b1", v.v), scHasValue(v.v, alias, false))
	if o2.Len() != 0 {
		t.Errorf("b2 got messages while the agent was on b1:\n%s", o2.Dump(0))
	}

	// b1 dies: walk to b2.
	killed := time.Now()
	b1.Kill()
	lastOnB1 := cnt.last()
	var switching []scValue
	for o2.Len() == 0 || a.Stats().Connects < 2 {
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("the agent did not reach b2 within 15s of b1's death; stats %+v", a.Stats())
		}
		switching = append(switching, cnt.step())
	}
	nb2 := o2.WaitFor(0, 10*time.Second, "NBIRTH on b2", testutil.Is(sparkplug.NBIRTH, ""))
	if bd := bdSeqOf(t, o2.Msgs()[nb2].Payload); bd != bd0+1 {
		t.Errorf("NBIRTH on b2: bdSeq %d, want %d", bd, bd0+1)
	}
	db2 := o2.WaitFor(nb2, 5*time.Second, "DBIRTH on b2", testutil.Is(sparkplug.DBIRTH, "plc1"))
	for range 3 {
		v = cnt.step()
	}
	o2.WaitFor(db2, 10*time.Second, fmt.Sprintf("live value %d on b2", v.v), scHasValue(v.v, alias, false))

	// b1 is back: the agent stays on b2.
	b1.Start()
	deadline := time.Now().Add(10 * time.Second)
	for !o1.Client().IsConnectionOpen() {
		if time.Now().After(deadline) {
			t.Fatal("observer of b1 did not reconnect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	from1 := o1.Len()
	for range 10 {
		v = cnt.step()
	}
	o2.WaitFor(db2, 10*time.Second, fmt.Sprintf("live value %d on b2 after b1 returned", v.v), scHasValue(v.v, alias, false))
	scQuiet(t, o1, from1, time.Second, "agent published on b1 while connected to b2", scFromEdge)
	if s := a.Stats(); s.Connects != 2 {
		t.Errorf("b1's return cost a reconnect: %d connects", s.Connects)
	}

	// b2 dies: back to b1.
	from1 = o1.Len()
	b2.Kill()
	nb3 := o1.WaitFor(from1, 15*time.Second, "NBIRTH on b1 after b2 died", testutil.Is(sparkplug.NBIRTH, ""))
	if bd := bdSeqOf(t, o1.Msgs()[nb3].Payload); bd != bd0+2 {
		t.Errorf("NBIRTH back on b1: bdSeq %d, want %d", bd, bd0+2)
	}
	db3 := o1.WaitFor(nb3, 5*time.Second, "DBIRTH on b1", testutil.Is(sparkplug.DBIRTH, "plc1"))
	for range 3 {
		v = cnt.step()
	}
	o1.WaitFor(db3, 10*time.Second, fmt.Sprintf("live value %d back on b1", v.v), scHasValue(v.v, alias, false))
	scWaitStat(t, a, 20*time.Second, "an empty buffer", func(s Stats) bool { return s.Buffer.Records == 0 })
	stop()

	s1, s2 := scCounterSeen(t, o1.Msgs(), "count"), scCounterSeen(t, o2.Msgs(), "count")
	for _, x := range cnt.vals {
		if len(s1[x.v])+len(s2[x.v]) == 0 {
			t.Errorf("value %d (read %s) reached neither broker", x.v, x.set.Format("15:04:05.000"))
		}
	}
	// Stored before the agent connected to b2 and not delivered on b1:
	// it must be on b2, after the births, as historical data.
	replayed := 0
	for _, x := range append(cnt.vals[:lastOnB1:lastOnB1], switching...) {
		if x.connects >= 2 || len(s1[x.v]) > 0 {
			continue
		}
		scCheckReplayed(t, s2, nb2, []scValue{x}, "read while the agent was on no broker,")
		replayed++
	}
	if replayed == 0 {
		t.Errorf("no value was read during the switch (%d steps while switching); the test proves nothing", len(switching))
	}
	t.Logf("%d values, %d replayed on b2 after the switch", cnt.last(), replayed)
	checkSeq(t, o1.Msgs())
	checkSeq(t, o2.Msgs())
	if s := a.Stats(); s.Connects != 3 {
		t.Errorf("%d connects, want 3", s.Connects)
	}
}
