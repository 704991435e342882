package agent

import (
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// wrHasValue matches a DDATA of plc1 that carries v for the metric alias.
func wrHasValue(alias, v uint64) func(testutil.Msg) bool {
	return func(m testutil.Msg) bool {
		if m.Payload == nil || m.Topic.Type != sparkplug.DDATA || m.Topic.Node != "edge1" || m.Topic.Device != "plc1" {
			return false
		}
		for _, x := range m.Payload.Metrics {
			if x.HasAlias && x.Alias == alias && !x.Historical && x.Resolve(sparkplug.TypeUInt16) == nil && x.Int == v {
				return true
			}
		}
		return false
	}
}

// wrNodeValue matches an NDATA that carries v for the node metric alias.
func wrNodeValue(alias, v uint64) func(testutil.Msg) bool {
	return func(m testutil.Msg) bool {
		if m.Payload == nil || m.Topic.Type != sparkplug.NDATA || m.Topic.Node != "edge1" {
			return false
		}
		for _, x := range m.Payload.Metrics {
			if x.HasAlias && x.Alias == alias && x.Resolve(sparkplug.TypeUInt64) == nil && x.Int == v {
				return true
			}
		}
		return false
	}
}

// TestDCMDWriteReadBack: writes an operator can trust, against real Mosquitto
// and the Modbus simulator, on a device polled every 10 s.
//   - A DCMD write is read back at once: its value arrives in a DDATA
//     before the device's next poll (polls start on multiples of the
//     interval, so the test knows when that is), and one audit line
//     (topic, device, tag, old, new) is logged.
//   - A DCMD above the tag's max is refused, logged, and never reaches the
//     PLC.
//   - A write the PLC rejects is logged with the device, tag, value and
//     reason, and shows as the node metric Writes/Failed.
func TestDCMDWriteReadBack(t *testing.T) {
	const poll = 10 * time.Second
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	sim := scSim(t)
	sim.SetHolding(2, 7)
	tags := scCounterTag + "      - {name: setpoint, table: holding, address: 2, type: uint16, writable: true, min: 0, max: 1000}\n"
	a, stop, logs := scRun(t, scConfig(scOpts{servers: []string{broker.URL()}, stateDir: t.TempDir(), plc: sim.URL(), tags: tags, poll: "10s"}))
	defer stop()
	nb := obs.WaitFor(0, 10*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
	db := obs.WaitFor(nb, 5*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
	alias := scAliasOf(t, obs.Msgs()[db], "setpoint")
	failedAlias := scAliasOf(t, obs.Msgs()[nb], "Writes/Failed")
	host := obs.Client()
	topic := sparkplug.Topic{Group: "plant", Type: sparkplug.DCMD, Node: "edge1", Device: "plc1"}.String()
	write := func(v uint64) {
		m := sparkplug.Metric{Name: "setpoint", Type: sparkplug.TypeUInt16, Int: v}
		scPublish(t, host, topic, 0, false, sparkplug.AppendCommand(nil, scNowMs(), []sparkplug.Metric{m}))
	}

	// Leave at least 6 s to the next poll, so that only the read-back
	// can deliver the value in time.
	if now := time.Now(); now.Truncate(poll).Add(poll).Sub(now) < 6*time.Second {
		time.Sleep(now.Truncate(poll).Add(poll + 200*time.Millisecond).Sub(now))
	}
	from := obs.Len()
	sent := time.Now()
	nextPoll := sent.Truncate(poll).Add(poll)
	write(42)
	i := obs.WaitFor(from, time.Until(nextPoll), "DDATA with the written setpoint 42 before the next poll", wrHasValue(alias, 42))
	if at := obs.Msgs()[i].At; !at.Before(nextPoll) || at.Sub(sent) > 5*time.Second {
		t.Errorf("the written value arrived %v after the DCMD, at %v; the next poll was at %v",
			at.Sub(sent).Round(time.Millisecond), at.Format(time.StampMilli), nextPoll.Format(time.StampMilli))
	}
	t.Logf("the written value arrived %v after the DCMD, %v before the next poll",
		obs.Msgs()[i].At.Sub(sent).Round(time.Millisecond), nextPoll.Sub(obs.Msgs()[i].At).Round(time.Millisecond))
	select {
	case w := <-sim.Writes():
		if w.Table != modbus.Holding || w.Addr != 2 || len(w.Regs) != 1 || w.Regs[0] != 42 {
			t.Errorf("write %+v, want 42 to holding 2", w)
		}
	case <-time.After(time.Second):
		t.Error("the PLC saw no write")
	}
	logs.waitFor(5*time.Second, 1, "INFO", `msg="write applied"`, "device=plc1", "topic="+topic, "tag=setpoint", "old=7", "new=42")

	// Above max: refused by the agent, never written.
	before := a.Stats().CommandsRefused
	write(1001)
	logs.waitFor(5*time.Second, 1, "WARN", "command refused", "device=plc1", "tag=setpoint", "value 1001 is above the tag's max 1000")
	if got := a.Stats().CommandsRefused - before; got != 1 {
		t.Errorf("%d refusals counted, want 1", got)
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case w := <-sim.Writes():
		t.Errorf("a write above max reached the PLC: %+v", w)
	default:
	}
	if v := sim.Holding(2, 1)[0]; v != 42 {
		t.Errorf("the PLC holds %d, want 42", v)
	}

	// The PLC rejects a write: logged, counted, published as a node metric.
	sim.FailRange(modbus.Holding, 2, 2)
	write(43)
	logs.waitFor(5*time.Second, 1, "ERROR", `msg="write failed"`, "device=plc1", "tag=setpoint", "value=43", "err=")
	if n := a.Stats().WritesFailed; n != 1 {
		t.Errorf("Stats().WritesFailed = %d, want 1", n)
	}
	obs.WaitFor(nb, 15*time.Second, "NDATA with Writes/Failed = 1", wrNodeValue(failedAlias, 1))
	sim.ClearFailures()
	if n := len(logs.find("INFO", `msg="write applied"`)); n != 1 {
		t.Errorf("%d audit lines, want 1 (one accepted write)", n)
	}
	stop()
	checkSeq(t, obs.Msgs())
}
