package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// Outage mode keeps live data in memory while the link is healthy and
// spills the unproven window and everything after it when the link drops:
// link cuts lose nothing either (only a kill -9 can lose its memory).
func TestOutageModeLinkCutsLoseNothing(t *testing.T) {
	r := newCounterRig(t)
	obs, proxy, cnt := r.obs, r.proxy, r.cnt
	a, stop := r.start(t, "{mode: outage}")
	var down []window
	for i := range 4 {
		time.Sleep(time.Duration(400+time.Now().UnixNano()%600) * time.Millisecond)
		if s := a.Stats().Buffer; i == 0 && s.Records > 0 && s.MemRecords == 0 {
			t.Errorf("outage mode with the link up keeps records on disk: %+v", s)
		}
		w := window{from: time.Now()}
		if i%2 == 0 {
			proxy.Cut()
		} else {
			proxy.Blackhole()
		}
		time.Sleep(1500 * time.Millisecond)
		if s := a.Stats().Buffer; s.MemRecords > 0 && i%2 == 0 {
			t.Errorf("link down but %d records only in memory", s.MemRecords)
		}
		before := obs.Len()
		w.to = time.Now()
		proxy.Restore()
		down = append(down, w)
		obs.WaitFor(before, 15*time.Second, "NBIRTH after the link is back", testutil.Is(sparkplug.NBIRTH, ""))
	}
	finishAndCheck(t, cnt, obs, a, stop, down)
}

// Live data keeps flowing during a slow replay; in_order holds it back
// until history is flushed.
func TestReplayLiveAndInOrder(t *testing.T) {
	for _, inOrder := range []bool{false, true} {
		t.Run(fmt.Sprintf("in_order=%v", inOrder), func(t *testing.T) {
			r := newCounterRig(t)
			obs, proxy, cnt := r.obs, r.proxy, r.cnt
			// 20 messages/s: a 2 s outage's ~50 records take seconds to
			// replay, while live values keep coming.
			a, stop := r.start(t, fmt.Sprintf("{replay_rate: 20, in_order: %v, max_metrics_per_message: 1}", inOrder))
			time.Sleep(300 * time.Millisecond)
			w := window{from: time.Now()}
			proxy.Cut()
			time.Sleep(2 * time.Second)
			before := obs.Len()
			w.to = time.Now()
			proxy.Restore()
			nb := obs.WaitFor(before, 15*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
			time.Sleep(3 * time.Second)
			finishAndCheck(t, cnt, obs, a, stop, []window{w})

			// After the outage's NBIRTH: count live values that arrived
			// before the last historical one.
			msgs := obs.Msgs()
			lastHist, liveBefore, hist := -1, 0, 0
			for i, m := range msgs[nb:] {
				if m.Topic.Type != sparkplug.DDATA {
					continue
				}
				for _, x := range m.Payload.Metrics {
					if x.Historical {
						lastHist, hist = i, hist+1
					}
				}
			}
			for _, m := range msgs[nb : nb+lastHist+1] {
				if m.Topic.Type == sparkplug.DDATA && !m.Payload.Metrics[0].Historical {
					liveBefore++
				}
			}
			if hist < 20 {
				t.Fatalf("only %d historical values: no real replay to observe", hist)
			}
			switch {
			case inOrder && liveBefore > 0:
				t.Errorf("in_order: %d live values arrived before history was flushed", liveBefore)
			case !inOrder && liveBefore == 0:
				t.Error("live data was starved during a replay of several seconds")
			}
			t.Logf("%d historical values; %d live values arrived during the replay", hist, liveBefore)
		})
	}
}

// Records written under one configuration are replayed under the next:
// samples of tags or devices that no longer exist are dropped and
// counted, the rest delivered.
func TestReplayAfterConfigChangeDropsVanishedTags(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	proxy := testutil.NewProxy(t, broker.Addr())
	sim := newSim(t)
	sim2 := newSim(t)
	state := t.TempDir()
	cnt := startCounter(sim)
	extra := fmt.Sprintf(`      - {name: gone, table: holding, address: 4, type: uint16}
  - id: plc2
    driver: modbus
    url: %s
    poll: 50ms
    tags:
      - {name: other, table: holding, address: 0, type: uint16}
`, sim2.URL())
	_, stop := runAgent(t, counterConfigBuf(proxy.URL(), state, sim.URL(), "{}", "100ms", extra))
	obs.WaitFor(0, 10*time.Second, "DBIRTH plc2", testutil.Is(sparkplug.DBIRTH, "plc2"))
	proxy.Cut()
	for v := range uint16(20) { // values of tags that will vanish
		sim.SetHolding(4, 100+v)
		sim2.SetHolding(0, 200+v)
		time.Sleep(60 * time.Millisecond)
	}
	cnt.finish()
	time.Sleep(200 * time.Millisecond) // agent 1 reads the counter's final value
	stop()                             // and cannot deliver: the link is cut

	cnt = startCounterFrom(sim, cnt.last.Load()+1)
	b, stop2 := runAgent(t, counterConfigBuf(proxy.URL(), state, sim.URL(), "{}", "100ms", ""))
	before := obs.Len()
	proxy.Restore()
	obs.WaitFor(before, 15*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
	time.Sleep(500 * time.Millisecond)
	last := cnt.finish()
	waitForValue(t, obs, last, 30*time.Second)
	waitEmpty(t, b)
	stopAndSettle(t, obs, stop2)
	if d := b.Stats().DroppedUnknown; d < 20 {
		t.Errorf("dropped %d samples of vanished tags and devices, want at least 20", d)
	}
	for _, m := range obs.Msgs()[before:] {
		if m.Topic.Device == "plc2" {
			t.Errorf("message for the removed device: %s", m.Raw)
		}
	}
	checkCounter(t, obs.Msgs(), last, nil, 2)
}
