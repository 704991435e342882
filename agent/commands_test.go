package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// TestGarbageCommands: commands a broken or hostile host may send are
// refused one by one (Stats().CommandsRefused counts each), never reach the
// PLC, never trigger a rebirth, and the session goes on with its seq chain
// intact.
func TestGarbageCommands(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	sim := scSim(t)
	tags := scCounterTag + "      - {name: setpoint, table: holding, address: 2, type: uint16, writable: true}\n"
	a, stop, _ := scRun(t, scConfig(scOpts{servers: []string{broker.URL()}, stateDir: t.TempDir(), plc: sim.URL(), tags: tags}))
	cnt := newSCCounter(t, sim, a)
	host := obs.Client()

	nb := obs.WaitFor(0, 10*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
	db := obs.WaitFor(nb, 5*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
	alias := scAliasOf(t, obs.Msgs()[db], "count")
	v := cnt.step()
	obs.WaitFor(db, 10*time.Second, fmt.Sprintf("live value %d", v.v), scHasValue(v.v, alias, false))

	ncmd := sparkplug.Topic{Group: "plant", Type: sparkplug.NCMD, Node: "edge1"}.String()
	dcmd := func(dev string) string {
		return sparkplug.Topic{Group: "plant", Type: sparkplug.DCMD, Node: "edge1", Device: dev}.String()
	}
	cmd := func(ms ...sparkplug.Metric) []byte {
		return sparkplug.AppendCommand(nil, uint64(time.Now().UnixMilli()), ms)
	}
	cases := []struct {
		name    string
		topic   string
		qos     byte
		payload []byte
	}{
		{"NCMD with garbage bytes", ncmd, 0, []byte{0xff, 0xfe, 0x00, 0x12, 0x80, 0x80, 0x80}},
		{"NCMD with an unknown metric", ncmd, 1, cmd(sparkplug.Metric{Name: "Node Control/Self Destruct", Type: sparkplug.TypeBoolean, Int: 1})},
		{"NCMD rebirth with a string datatype", ncmd, 1, cmd(sparkplug.Metric{Name: sparkplug.MetricRebirth, Type: sparkplug.TypeString, Str: "true"})},
		{"DCMD to an unknown device", dcmd("plc9"), 0, cmd(sparkplug.Metric{Name: "setpoint", Type: sparkplug.TypeUInt16, Int: 7})},
		{"DCMD by an alias out of range", dcmd("plc1"), 0, cmd(sparkplug.Metric{Alias: 9999, HasAlias: true, Type: sparkplug.TypeUInt16, Int: 7})},
	}
	for _, c := range cases {
		before := a.Stats().CommandsRefused
		scPublish(t, host, c.topic, c.qos, false, c.payload)
		deadline := time.Now().Add(5 * time.Second)
		for a.Stats().CommandsRefused == before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := a.Stats().CommandsRefused - before; got != 1 {
			t.Errorf("%s: %d refusals counted, want 1", c.name, got)
		}
		// The session goes on: a new value arrives live, in sequence.
		v = cnt.step()
		obs.WaitFor(db, 10*time.Second, fmt.Sprintf("live value %d after %s", v.v, c.name), scHasValue(v.v, alias, false))
	}

	select {
	case w := <-sim.Writes():
		t.Errorf("a refused command reached the PLC: %+v", w)
	default:
	}
	if s := a.Stats(); s.Connects != 1 || s.Rebirths != 0 {
		t.Errorf("after the garbage: %d connects, %d rebirths; want 1 and 0", s.Connects, s.Rebirths)
	}
	msgs := obs.Msgs()
	for i, m := range msgs[db+1:] {
		if m.Topic.Node == "edge1" && (m.Topic.Type == sparkplug.NBIRTH || m.Topic.Type == sparkplug.NDEATH) {
			t.Errorf("msg %d: %s after garbage commands", db+1+i, m.Raw)
		}
	}

	// A valid command still works afterwards.
	scPublish(t, host, dcmd("plc1"), 0, false, cmd(sparkplug.Metric{Name: "setpoint", Type: sparkplug.TypeUInt16, Int: 42}))
	select {
	case w := <-sim.Writes():
		if w.Addr != 2 || len(w.Regs) != 1 || w.Regs[0] != 42 {
			t.Errorf("write %+v, want 42 to holding 2", w)
		}
	case <-time.After(10 * time.Second):
		t.Error("a valid DCMD after the garbage never reached the PLC")
	}
	stop()
	checkSeq(t, obs.Msgs())
}

// Writes reach the PLC in the order the broker delivered their DCMDs: 100
// pairs of back-to-back writes to one tag, and the PLC holds the second
// value of each pair every time (paho used to dispatch each message on a
// goroutine of its own, and the first value won about half the time).
func TestDCMDsInArrivalOrder(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	sim := scSim(t)
	tags := scCounterTag + "      - {name: setpoint, table: holding, address: 2, type: uint16, writable: true}\n"
	scRun(t, scConfig(scOpts{servers: []string{broker.URL()}, stateDir: t.TempDir(), plc: sim.URL(), tags: tags, poll: "20ms"}))
	obs.WaitFor(0, 10*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
	host := obs.Client()
	topic := sparkplug.Topic{Group: "plant", Type: sparkplug.DCMD, Node: "edge1", Device: "plc1"}.String()
	write := func(v uint16) {
		m := sparkplug.Metric{Name: "setpoint", Type: sparkplug.TypeUInt16, Int: uint64(v)}
		host.Publish(topic, 0, false, sparkplug.AppendCommand(nil, uint64(time.Now().UnixMilli()), []sparkplug.Metric{m}))
	}
	writes := sim.Writes()
	next := func() uint16 {
		t.Helper()
		select {
		case w := <-writes:
			return w.Regs[0]
		case <-time.After(5 * time.Second):
			t.Fatal("a write did not reach the PLC within 5s")
			return 0
		}
	}
	for i := range uint16(100) {
		first, second := 2*i+1, 2*i+2
		write(first)
		write(second)
		if a, b := next(), next(); a != first || b != second {
			t.Fatalf("pair %d: the PLC got %d then %d, want %d then %d", i, a, b, first, second)
		}
		if v := sim.Holding(2, 1)[0]; v != second {
			t.Fatalf("pair %d: the PLC holds %d, want %d", i, v, second)
		}
	}
}

// Every intentional disconnect publishes the NDEATH first: here the
// buffer fails under the uplink (closed beneath it), the session ends on
// the read error, and the host sees the node die with its bdSeq, not a
// silent DISCONNECT that discards the Will.
func TestBufferErrorPublishesNDEATH(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	sim := scSim(t)
	a, _, logs := scRun(t, scConfig(scOpts{servers: []string{broker.URL()}, stateDir: t.TempDir(), plc: sim.URL(), reconnect: "2s"}))
	nb := obs.WaitFor(0, 10*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
	obs.WaitFor(nb, 5*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
	bd := bdSeqOf(t, obs.Msgs()[nb].Payload)
	a.buf.Close()
	nd := obs.WaitFor(nb, 10*time.Second, "NDEATH after the buffer read error", testutil.Is(sparkplug.NDEATH, ""))
	if got := bdSeqOf(t, obs.Msgs()[nd].Payload); got != bd {
		t.Errorf("NDEATH bdSeq %d, want %d", got, bd)
	}
	if len(logs.waitFor(5*time.Second, 1, "WARN", "broker session ended", "reading buffer")) == 0 {
		t.Error("the session did not end on the buffer read error")
	}
}
