package agent

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// TestPrimaryHost walks Sparkplug 3.0's STATE rules (SPARKPLUG.md §1.9)
// the way the TCK's PrimaryHostTest does, against a real Mosquitto, with a
// counter tag proving that what was read while the host was away is
// replayed, historical and complete, once it is back.
func TestPrimaryHost(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	host := obs.Client() // the test is the primary host "scada"
	sim := scSim(t)
	a, stop, logs := scRun(t, scConfig(scOpts{servers: []string{broker.URL()}, stateDir: t.TempDir(), plc: sim.URL(), mqtt: "primary_host_id: scada"}))
	cnt := newSCCounter(t, sim, a)
	isEdge := func(ty sparkplug.MessageType) func(testutil.Msg) bool {
		return func(m testutil.Msg) bool { return m.Topic.Node == "edge1" && m.Topic.Type == ty }
	}

	// (a) Connected and subscribed (the log line follows the SUBACK), no
	// births: not for another host's online STATE, not for a legacy
	// "ONLINE", not for our host's offline STATE.
	logs.waitFor(10*time.Second, 1, "", "waiting for primary host")
	from := obs.Len()
	scState(t, host, "scada_WRONG", true, scNowMs())
	scPublish(t, host, "spBv1.0/STATE/scada", 1, true, []byte("ONLINE"))
	legacy := logs.waitFor(10*time.Second, 1, "", "legacy")
	for _, l := range legacy {
		if !bytes.Contains([]byte(l), []byte("level=WARN")) && !bytes.Contains([]byte(l), []byte("level=ERROR")) {
			t.Errorf("legacy STATE logged below warning level: %s", l)
		}
	}
	t0 := scNowMs()
	scState(t, host, "scada", false, t0)
	var early []scValue
	for range 4 {
		early = append(early, cnt.step())
	}
	scQuiet(t, obs, from, 1500*time.Millisecond, "published before the primary host was online", scFromEdge)
	if s := a.Stats(); s.Connects != 1 || !s.Connected {
		t.Errorf("while waiting for the host: %d connects, connected %v; want one live connection", s.Connects, s.Connected)
	}

	// (b) Online → NBIRTH (bdSeq 0), DBIRTH, live data.
	t1 := t0 + 1
	if now := scNowMs(); now > t1 {
		t1 = now
	}
	onIdx := obs.Len()
	online1 := scState(t, host, "scada", true, t1)
	nb := obs.WaitFor(onIdx, 10*time.Second, "NBIRTH after the online STATE", isEdge(sparkplug.NBIRTH))
	msgs := obs.Msgs()
	stIdx := -1
	for i := onIdx; i < len(msgs); i++ {
		if msgs[i].Raw == "spBv1.0/STATE/scada" && bytes.Equal(msgs[i].Bytes, online1) {
			stIdx = i
			break
		}
	}
	if stIdx < 0 || stIdx > nb {
		t.Errorf("NBIRTH (msg %d) came before the online STATE (msg %d)", nb, stIdx)
	}
	if bd := bdSeqOf(t, msgs[nb].Payload); bd != 0 {
		t.Errorf("first NBIRTH bdSeq %d, want 0", bd)
	}
	db := obs.WaitFor(nb, 5*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
	alias := scAliasOf(t, obs.Msgs()[db], "count")
	v := cnt.step()
	obs.WaitFor(db, 10*time.Second, fmt.Sprintf("live value %d", v.v), scHasValue(v.v, alias, false))

	// (c) Offline with an older timestamp (a late Will of an earlier host
	// session): no NDEATH, no disconnect, data goes on.
	c0 := obs.Len()
	scState(t, host, "scada", false, 16671135)
	for range 5 {
		v = cnt.step()
	}
	obs.WaitFor(c0, 10*time.Second, fmt.Sprintf("live value %d after the stale offline STATE", v.v), scHasValue(v.v, alias, false))
	scQuiet(t, obs, c0, time.Second, "NDEATH or new birth after an offline STATE older than the online one", func(m testutil.Msg) bool {
		return isEdge(sparkplug.NDEATH)(m) || isEdge(sparkplug.NBIRTH)(m)
	})
	if s := a.Stats(); s.Connects != 1 {
		t.Errorf("the stale offline STATE cost a reconnect: %d connects", s.Connects)
	}

	// (d) Offline with timestamp == the online one: the agent publishes
	// NDEATH (QoS 0: its own publish, not the broker's QoS 1 Will) and
	// disconnects; it reconnects (bdSeq 1) and waits for the host while the
	// counter keeps changing: all of that is buffered.
	d0 := obs.Len()
	scState(t, host, "scada", false, t1)
	nd := obs.WaitFor(d0, 10*time.Second, "NDEATH after the host went offline", isEdge(sparkplug.NDEATH))
	if m := obs.Msgs()[nd]; m.QoS != 0 || bdSeqOf(t, m.Payload) != 0 {
		t.Errorf("NDEATH: QoS %d bdSeq %d; want the agent's own QoS 0 NDEATH with bdSeq 0", m.QoS, bdSeqOf(t, m.Payload))
	}
	scWaitStat(t, a, 10*time.Second, "a second connection", func(s Stats) bool { return s.Connects >= 2 })
	logs.waitFor(10*time.Second, 2, "", "waiting for primary host")
	var offline []scValue
	for range 8 {
		offline = append(offline, cnt.step())
	}
	// TCK step 6: an online STATE older than the last one seen is ignored.
	scState(t, host, "scada", true, t1-1)
	scQuiet(t, obs, nd+1, 1500*time.Millisecond, "published while the primary host was offline", scFromEdge)
	if s := a.Stats(); s.Connects != 2 || s.Buffer.Records == 0 {
		t.Errorf("while the host is offline: %d connects (want 2), %d buffered records (want > 0)", s.Connects, s.Buffer.Records)
	}

	// (e) Online again with a newer timestamp: NBIRTH with bdSeq 1,
	// DBIRTH, then every value read meanwhile as historical DDATA with
	// the time it was read.
	t2 := max(t1+1, scNowMs())
	e0 := obs.Len()
	scState(t, host, "scada", true, t2)
	nb2 := obs.WaitFor(e0, 10*time.Second, "NBIRTH after the host came back", isEdge(sparkplug.NBIRTH))
	if bd := bdSeqOf(t, obs.Msgs()[nb2].Payload); bd != 1 {
		t.Errorf("NBIRTH after the host came back: bdSeq %d, want 1", bd)
	}
	db2 := obs.WaitFor(nb2, 5*time.Second, "DBIRTH after the host came back", testutil.Is(sparkplug.DBIRTH, "plc1"))
	if next := obs.WaitFor(nb2+1, 5*time.Second, "message after NBIRTH", scFromEdge); next != db2 {
		t.Errorf("after the NBIRTH came %s, want the DBIRTH", obs.Msgs()[next].Raw)
	}
	scWaitReplayed(t, obs, nb2, offline, 10*time.Second)
	v = cnt.step()
	obs.WaitFor(db2, 10*time.Second, fmt.Sprintf("live value %d", v.v), scHasValue(v.v, alias, false))
	scWaitStat(t, a, 20*time.Second, "an empty buffer", func(s Stats) bool { return s.Buffer.Records == 0 })
	stop()

	msgs = obs.Msgs()
	seen := scCounterSeen(t, msgs, "count")
	// Every value the PLC held reached the host.
	for _, x := range cnt.vals {
		if len(seen[x.v]) == 0 {
			t.Errorf("value %d (read %s) never arrived", x.v, x.set.Format("15:04:05.000"))
		}
	}
	// Values read before a session's births arrive after them as
	// historical DDATA stamped with the time they were read (the newest,
	// the state at the session start, in the DBIRTH instead).
	scCheckReplayed(t, seen, nb, early, "before the first online STATE,")
	scCheckReplayed(t, seen, nb2, offline, "while the host was offline,")
	// Exactly one NDEATH between the offline STATE and the next birth:
	// the agent's own; a clean DISCONNECT suppresses the Will.
	n := 0
	for _, m := range msgs[d0:nb2] {
		if isEdge(sparkplug.NDEATH)(m) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d NDEATHs between the offline STATE and the next NBIRTH, want 1", n)
	}
	checkSeq(t, msgs)
	if s := a.Stats(); s.Connects != 2 {
		t.Errorf("%d connects over the test, want 2", s.Connects)
	}
}

// TestPrimaryHostMovesBetweenServers is the TCK's MultipleBrokerTest: the
// primary host is online on both servers; the agent births on server 1
// only. The host goes offline on 1: the agent sends its NDEATH there,
// walks to 2 (bdSeq+1) and births there, replaying what it read in
// between. The host comes back on 1: the agent stays on 2 (one server at a
// time). The host goes offline on 2: the agent walks back to 1.
//
// The host has one MQTT session per server, each with its own STATE
// timestamp (taken at that CONNECT). Which server it joined first is
// chance, so both orders are run: a timestamp from server 2 older than one
// seen on server 1 is not a stale message.
func TestPrimaryHostMovesBetweenServers(t *testing.T) {
	t.Run("host_joined_server_1_first", func(t *testing.T) { scHostMoves(t, false) })
	t.Run("host_joined_server_2_first", func(t *testing.T) { scHostMoves(t, true) })
}

func scHostMoves(t *testing.T, server2First bool) {
	b1, b2 := testutil.Mosquitto(t), testutil.Mosquitto(t)
	o1, o2 := testutil.Observe(t, b1.URL()), testutil.Observe(t, b2.URL())
	sim := scSim(t)
	t1, t2 := scNowMs(), scNowMs()+1000
	if server2First {
		t1, t2 = t2, t1
	}
	scState(t, o1.Client(), "scada", true, t1)
	scState(t, o2.Client(), "scada", true, t2)
	a, stop, _ := scRun(t, scConfig(scOpts{servers: []string{b1.URL(), b2.URL()}, stateDir: t.TempDir(), plc: sim.URL(), mqtt: "primary_host_id: scada"}))
	cnt := newSCCounter(t, sim, a)

	nb := o1.WaitFor(0, 10*time.Second, "NBIRTH on server 1", testutil.Is(sparkplug.NBIRTH, ""))
	bd := bdSeqOf(t, o1.Msgs()[nb].Payload)
	db := o1.WaitFor(nb, 5*time.Second, "DBIRTH on server 1", testutil.Is(sparkplug.DBIRTH, "plc1"))
	alias := scAliasOf(t, o1.Msgs()[db], "count")
	v := cnt.step()
	o1.WaitFor(db, 10*time.Second, "live value on server 1", scHasValue(v.v, alias, false))

	// The host leaves server 1 (offline with its online timestamp there).
	from1 := o1.Len()
	scState(t, o1.Client(), "scada", false, t1)
	moving := []scValue{cnt.step()}
	nd := o1.WaitFor(from1, 10*time.Second, "NDEATH on server 1", testutil.Is(sparkplug.NDEATH, ""))
	if m := o1.Msgs()[nd]; m.QoS != 0 || bdSeqOf(t, m.Payload) != bd {
		t.Errorf("NDEATH on server 1: QoS %d bdSeq %d, want the agent's own (QoS 0) with bdSeq %d", m.QoS, bdSeqOf(t, m.Payload), bd)
	}
	moving = append(moving, cnt.step())
	nb2 := o2.WaitFor(0, 10*time.Second, "NBIRTH on server 2, where the host is online", testutil.Is(sparkplug.NBIRTH, ""))
	if got := bdSeqOf(t, o2.Msgs()[nb2].Payload); got != bd+1 {
		t.Errorf("NBIRTH on server 2: bdSeq %d, want %d", got, bd+1)
	}
	db2 := o2.WaitFor(nb2, 5*time.Second, "DBIRTH on server 2", testutil.Is(sparkplug.DBIRTH, "plc1"))
	for range 3 {
		v = cnt.step()
	}
	o2.WaitFor(db2, 10*time.Second, "live value on server 2", scHasValue(v.v, alias, false))

	// The host is back on server 1: the agent stays on server 2.
	t3 := max(t1, t2) + 1000
	scState(t, o1.Client(), "scada", true, t3)
	for range 5 {
		v = cnt.step()
	}
	o2.WaitFor(db2, 10*time.Second, "live value on server 2 after the host returned to server 1", scHasValue(v.v, alias, false))
	scQuiet(t, o1, nd+1, time.Second, "edge node published on server 1 while connected to server 2", scFromEdge)

	// The host leaves server 2: back to server 1.
	from2, from1 := o2.Len(), o1.Len()
	scState(t, o2.Client(), "scada", false, t2)
	back := []scValue{cnt.step()}
	nd2 := o2.WaitFor(from2, 10*time.Second, "NDEATH on server 2", testutil.Is(sparkplug.NDEATH, ""))
	if m := o2.Msgs()[nd2]; m.QoS != 0 || bdSeqOf(t, m.Payload) != bd+1 {
		t.Errorf("NDEATH on server 2: QoS %d bdSeq %d, want the agent's own (QoS 0) with bdSeq %d", m.QoS, bdSeqOf(t, m.Payload), bd+1)
	}
	back = append(back, cnt.step())
	nb3 := o1.WaitFor(from1, 10*time.Second, "NBIRTH back on server 1", testutil.Is(sparkplug.NBIRTH, ""))
	if got := bdSeqOf(t, o1.Msgs()[nb3].Payload); got != bd+2 {
		t.Errorf("NBIRTH back on server 1: bdSeq %d, want %d", got, bd+2)
	}
	db3 := o1.WaitFor(nb3, 5*time.Second, "DBIRTH back on server 1", testutil.Is(sparkplug.DBIRTH, "plc1"))
	for range 3 {
		v = cnt.step()
	}
	o1.WaitFor(db3, 10*time.Second, "live value back on server 1", scHasValue(v.v, alias, false))
	scWaitStat(t, a, 20*time.Second, "an empty buffer", func(s Stats) bool { return s.Buffer.Records == 0 })
	stop()

	s1, s2 := scCounterSeen(t, o1.Msgs(), "count"), scCounterSeen(t, o2.Msgs(), "count")
	for _, x := range cnt.vals {
		if len(s1[x.v])+len(s2[x.v]) == 0 {
			t.Errorf("value %d never arrived on either server", x.v)
		}
	}
	// Stored before the agent connected to the next server, and not
	// delivered on the one it left: replayed after the births.
	for _, x := range moving {
		if x.connects < 2 && len(s1[x.v]) == 0 {
			scCheckReplayed(t, s2, nb2, []scValue{x}, "read while moving to server 2,")
		}
	}
	for _, x := range back {
		if x.connects < 3 && len(s2[x.v]) == 0 {
			scCheckReplayed(t, s1, nb3, []scValue{x}, "read while moving back to server 1,")
		}
	}
	checkSeq(t, o1.Msgs())
	checkSeq(t, o2.Msgs())
	if s := a.Stats(); s.Connects != 3 {
		t.Errorf("%d connects, want 3", s.Connects)
	}
}
