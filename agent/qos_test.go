package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// TestDataQoS1: with mqtt.data_qos 1, DDATA (live and replayed) reach a
// QoS 1 subscriber at QoS 1; births stay QoS 0, the Will QoS 1; the seq
// chain, bdSeq and replay work as with QoS 0, and the buffer empties once
// everything is delivered.
func TestDataQoS1(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL()) // subscribes at QoS 1
	proxy := testutil.NewProxy(t, broker.Addr())
	sim := scSim(t)
	a, stop, _ := scRun(t, scConfig(scOpts{servers: []string{proxy.URL()}, stateDir: t.TempDir(), plc: sim.URL(), mqtt: "data_qos: 1"}))
	cnt := newSCCounter(t, sim, a)

	alias := cnt.liveStart(obs, 5)
	scWaitStat(t, a, 20*time.Second, "an empty buffer after live delivery", func(s Stats) bool { return s.Buffer.Records == 0 })

	// An outage: the values read meanwhile are replayed, at QoS 1 too.
	cut := obs.Len()
	proxy.Cut()
	will := obs.WaitFor(cut, 10*time.Second, "NDEATH (Will)", testutil.Is(sparkplug.NDEATH, ""))
	if m := obs.Msgs()[will]; m.QoS != 1 || bdSeqOf(t, m.Payload) != 0 {
		t.Errorf("Will: QoS %d bdSeq %d, want QoS 1 bdSeq 0", m.QoS, bdSeqOf(t, m.Payload))
	}
	var outage []scValue
	for range 5 {
		outage = append(outage, cnt.step())
	}
	proxy.Restore()
	nb2 := obs.WaitFor(will, 15*time.Second, "NBIRTH after the outage", testutil.Is(sparkplug.NBIRTH, ""))
	if bd := bdSeqOf(t, obs.Msgs()[nb2].Payload); bd < 1 {
		t.Errorf("bdSeq after reconnect %d, want > 0", bd)
	}
	scWaitReplayed(t, obs, nb2, outage, 10*time.Second)
	var v scValue
	for range 3 {
		v = cnt.step()
	}
	obs.WaitFor(nb2, 10*time.Second, fmt.Sprintf("live value %d after the outage", v.v), scHasValue(v.v, alias, false))
	scWaitStat(t, a, 20*time.Second, "an empty buffer after replay", func(s Stats) bool { return s.Buffer.Records == 0 })
	stop()

	msgs := obs.Msgs()
	ddata := 0
	for i, m := range msgs {
		if m.Topic.Node != "edge1" || m.Retained {
			if m.Retained {
				t.Errorf("msg %d %s retained", i, m.Raw)
			}
			continue
		}
		want := byte(0)
		switch m.Topic.Type {
		case sparkplug.DDATA:
			want = 1
			ddata++
		case sparkplug.NDEATH:
			if i == will {
				want = 1
			}
		case sparkplug.NCMD, sparkplug.DCMD:
			continue
		}
		if m.QoS != want {
			t.Errorf("msg %d %s arrived at QoS %d, want %d", i, m.Raw, m.QoS, want)
		}
	}
	if ddata == 0 {
		t.Error("no DDATA at all")
	}
	seen := scCounterSeen(t, msgs, "count")
	for _, x := range cnt.vals {
		if len(seen[x.v]) == 0 {
			t.Errorf("value %d never arrived", x.v)
		}
	}
	scCheckReplayed(t, seen, nb2, outage, "read during the outage,")
	checkSeq(t, msgs)
}
