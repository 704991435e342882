package agent

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/drivers/modbus/modbustest"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// counter advances a uint32 in holding register 0 of the simulator, but
// only after the simulator has served two more requests since the last
// change. The agent's scans are sequential and each stores its result
// before the next request, so every value is durably stored before it
// changes: the proofs below may demand every single value.
type counter struct {
	sim  *modbustest.Server
	last atomic.Uint32
	stop chan struct{}
	done chan struct{}
}

func startCounter(sim *modbustest.Server) *counter { return startCounterFrom(sim, 1) }

// startCounterFrom starts the counter at first.
func startCounterFrom(sim *modbustest.Server, first uint32) *counter {
	c := &counter{sim: sim, stop: make(chan struct{}), done: make(chan struct{})}
	c.last.Store(first)
	sim.SetUint32(modbus.Holding, 0, modbus.ABCD, first)
	go func() {
		defer close(c.done)
		base := sim.Requests()
		for {
			select {
			case <-c.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if sim.Requests() >= base+2 {
				v := c.last.Load() + 1
				sim.SetUint32(modbus.Holding, 0, modbus.ABCD, v)
				c.last.Store(v)
				base = sim.Requests()
			}
		}
	}()
	return c
}

// finish stops the counter and returns the last value it set.
func (c *counter) finish() uint32 {
	close(c.stop)
	<-c.done
	return c.last.Load()
}

func counterConfig(servers, stateDir, plcURL string, replayRate int, reconnectMin string) string {
	return counterConfigBuf(servers, stateDir, plcURL, fmt.Sprintf("{replay_rate: %d}", replayRate), reconnectMin, "")
}

// counterConfigBuf takes the buffer section and extra tags verbatim.
func counterConfigBuf(servers, stateDir, plcURL, buffer, reconnectMin, extraTags string) string {
	return fmt.Sprintf(`
node: {group_id: plant, edge_node_id: edge1}
mqtt:
  servers: [%s]
  keepalive: 1s
  reconnect_min: %s
  reconnect_max: 1s
state_dir: %s
buffer: %s
devices:
  - id: plc1
    driver: modbus
    url: %s
    poll: 20ms
    timeout: 500ms
    tags:
      - {name: count, table: holding, address: 0, type: uint32}
%s`, servers, reconnectMin, stateDir, buffer, plcURL, extraTags)
}

// window is a span during which the link was down.
type window struct{ from, to time.Time }

// waitForValue waits until the observer saw the counter at v.
func waitForValue(t *testing.T, obs *testutil.Observer, v uint32, timeout time.Duration) {
	t.Helper()
	obs.WaitFor(0, timeout, fmt.Sprintf("counter value %d", v), func(m testutil.Msg) bool {
		if m.Payload == nil || (m.Topic.Type != sparkplug.DDATA && m.Topic.Type != sparkplug.DBIRTH) {
			return false
		}
		for _, x := range m.Payload.Metrics {
			if (x.Name == "count" || m.Topic.Type == sparkplug.DDATA) && x.Resolve(sparkplug.TypeUInt32) == nil && uint32(x.Int) == v {
				return true
			}
		}
		return false
	})
}

// waitForAll waits until the observer saw every counter value 1..last.
func waitForAll(t *testing.T, obs *testutil.Observer, last uint32, timeout time.Duration) {
	t.Helper()
	seen := make(map[uint32]bool, last)
	next := 0
	deadline := time.Now().Add(timeout)
	for {
		msgs := obs.Msgs()
		for _, m := range msgs[next:] {
			if m.Payload == nil || (m.Topic.Type != sparkplug.DDATA && m.Topic.Type != sparkplug.DBIRTH) {
				continue
			}
			for _, x := range m.Payload.Metrics {
				if (x.Name == "count" || m.Topic.Type == sparkplug.DDATA) && x.Resolve(sparkplug.TypeUInt32) == nil {
					seen[uint32(x.Int)] = true
				}
			}
		}
		next = len(msgs)
		n := 0
		for v := uint32(1); v <= last; v++ {
			if seen[v] {
				n++
			}
		}
		if n == int(last) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v the observer has %d of %d values", timeout, n, last)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkCounter is the store-and-forward proof. Over everything the
// observer received from the edge node:
//   - every counter value 1..last arrived (in a DBIRTH or DDATA);
//   - no value arrived in DDATA more than maxCopies times: a resend is
//     allowed only for the unproven in-flight window, once per fault the
//     value was in flight at (2 for tests whose faults are far apart);
//   - historical metrics carry timestamps older than their session's
//     NBIRTH, and a value read while the link was down arrived historical;
//   - live (non-historical) metrics are in chronological order;
//   - the seq chain is intact.
func checkCounter(t *testing.T, msgs []testutil.Msg, last uint32, down []window, maxCopies int) (resent, historical int) {
	t.Helper()
	seen := make(map[uint32]bool, last)
	data := make(map[uint32]int, last)
	var birthTS, lastLive uint64
	for _, m := range msgs {
		if m.Payload == nil || m.Topic.Node != "edge1" {
			continue
		}
		switch m.Topic.Type {
		case sparkplug.NBIRTH:
			birthTS, lastLive = m.Payload.Timestamp, 0
		case sparkplug.DBIRTH:
			for _, x := range m.Payload.Metrics {
				if x.Name == "count" {
					seen[uint32(x.Int)] = true
				}
			}
		case sparkplug.DDATA:
			for _, x := range m.Payload.Metrics {
				if err := x.Resolve(sparkplug.TypeUInt32); err != nil {
					t.Fatalf("DDATA metric: %v", err)
				}
				v := uint32(x.Int)
				seen[v] = true
				data[v]++
				if x.Historical {
					historical++
					if x.Timestamp > birthTS {
						t.Errorf("value %d is historical but read at %d, after its session's NBIRTH at %d", v, x.Timestamp, birthTS)
					}
					continue
				}
				if x.Timestamp < lastLive {
					t.Errorf("live value %d at %d is older than the previous live value at %d", v, x.Timestamp, lastLive)
				}
				lastLive = x.Timestamp
				at := time.UnixMilli(int64(x.Timestamp))
				for _, w := range down {
					if at.After(w.from.Add(100*time.Millisecond)) && at.Before(w.to.Add(-100*time.Millisecond)) {
						t.Errorf("value %d read at %s while the link was down (%s..%s) arrived live", v, at.Format("15:04:05.000"), w.from.Format("15:04:05.000"), w.to.Format("15:04:05.000"))
					}
				}
			}
		}
	}
	var missing []uint32
	for v := uint32(1); v <= last; v++ {
		if !seen[v] {
			missing = append(missing, v)
		}
		if n := data[v]; n > maxCopies {
			t.Errorf("value %d arrived %d times, want at most %d", v, n, maxCopies)
		} else if n > 1 {
			resent++
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d values lost, e.g. %v", len(missing), last, missing[:min(len(missing), 20)])
		if os.Getenv("EDGEAGENT_TEST_LOG") == "debug" {
			for i, m := range msgs[max(0, len(msgs)-40):] {
				line := fmt.Sprintf("%d %s %s", i, m.At.Format("15:04:05.000"), m.Raw)
				if m.Payload != nil {
					line += fmt.Sprintf(" seq=%d", m.Payload.Seq)
					for _, x := range m.Payload.Metrics {
						line += fmt.Sprintf(" [%s%d h=%v ts=%d]", x.Name, x.Int, x.Historical, x.Timestamp%100000)
					}
				}
				t.Log(line)
			}
		}
	}
	checkSeq(t, msgs)
	t.Logf("values 1..%d all delivered; %d resent from the in-flight window, %d historical", last, resent, historical)
	return resent, historical
}

// counterRig is the common stage of the counter proofs: a real broker,
// an observer on it, a proxy the agent connects through, and a simulated
// PLC whose counter advances only once each value is stored.
type counterRig struct {
	broker *testutil.Broker
	obs    *testutil.Observer
	proxy  *testutil.Proxy
	sim    *modbustest.Server
	cnt    *counter
}

func newCounterRig(t *testing.T) *counterRig {
	r := &counterRig{broker: testutil.Mosquitto(t)}
	r.obs = testutil.Observe(t, r.broker.URL())
	r.proxy = testutil.NewProxy(t, r.broker.Addr())
	r.sim = newSim(t)
	r.cnt = startCounter(r.sim)
	return r
}

// start runs the agent with the given buffer section through the proxy
// and waits for its DBIRTH.
func (r *counterRig) start(t *testing.T, buffer string) (*Agent, func()) {
	t.Helper()
	a, stop := runAgent(t, counterConfigBuf(r.proxy.URL(), t.TempDir(), r.sim.URL(), buffer, "100ms", ""))
	r.obs.WaitFor(0, 10*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
	return a, stop
}

// Link cuts, both kinds: a reset (the agent notices at once) and a
// blackhole (bytes vanish; only keepalive notices, so data is published
// into the void and must be resent from the buffer).
func TestLinkCutsLoseNothing(t *testing.T) {
	r := newCounterRig(t)
	obs, proxy, cnt := r.obs, r.proxy, r.cnt
	a, stop := r.start(t, "{replay_rate: 2000}")

	var down []window
	for i := range 6 {
		time.Sleep(time.Duration(400+rand.IntN(800)) * time.Millisecond)
		w := window{from: time.Now()}
		if i%2 == 0 {
			proxy.Cut()
		} else {
			proxy.Blackhole()
		}
		time.Sleep(time.Duration(1500+rand.IntN(1500)) * time.Millisecond)
		before := obs.Len()
		w.to = time.Now()
		proxy.Restore()
		down = append(down, w)
		obs.WaitFor(before, 15*time.Second, "NBIRTH after the link is back", testutil.Is(sparkplug.NBIRTH, ""))
	}
	_, hist := finishAndCheck(t, cnt, obs, a, stop, down)
	if hist == 0 {
		t.Error("no historical values after six outages")
	}
	if s := a.Stats(); s.Connects < 7 {
		t.Errorf("%d connects, want at least 7", s.Connects)
	}
}

// stopAndSettle stops the agent gracefully and waits for its NDEATH at the
// observer: the broker delivers in order, so everything the agent
// published before has arrived too.
func stopAndSettle(t *testing.T, obs *testutil.Observer, stop func()) {
	t.Helper()
	before := obs.Len()
	stop()
	obs.WaitFor(before, 10*time.Second, "NDEATH on stop", testutil.Is(sparkplug.NDEATH, ""))
}

// finishAndCheck ends a counter run: stop the counter, wait until the
// observer has its last value and the buffer is empty, stop the agent,
// and run the proof.
func finishAndCheck(t *testing.T, cnt *counter, obs *testutil.Observer, a *Agent, stop func(), down []window) (resent, historical int) {
	t.Helper()
	last := cnt.finish()
	waitForValue(t, obs, last, 30*time.Second)
	waitEmpty(t, a)
	stopAndSettle(t, obs, stop)
	return checkCounter(t, obs.Msgs(), last, down, 2)
}

// waitEmpty waits until every record was proven delivered and deleted.
func waitEmpty(t *testing.T, a *Agent) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for a.Stats().Buffer.Records > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("buffer still holds %d records: %+v", a.Stats().Buffer.Records, a.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The central broker is killed (SIGKILL) and restarted mid-stream.
func TestBrokerRestartLosesNothing(t *testing.T) {
	// The agent reaches the broker through a proxy that stays cut after a
	// restart until the observer is back, so the observer sees the births.
	r := newCounterRig(t)
	broker, obs, proxy, cnt := r.broker, r.obs, r.proxy, r.cnt
	a, stop := r.start(t, "{replay_rate: 2000}")
	var down []window
	for range 3 {
		time.Sleep(time.Duration(500+rand.IntN(700)) * time.Millisecond)
		w := window{from: time.Now()}
		connects := obs.Connects()
		broker.Kill()
		proxy.Cut()
		time.Sleep(time.Duration(1000+rand.IntN(1000)) * time.Millisecond)
		broker.Start()
		obs.WaitConnects(connects+1, 10*time.Second)
		before := obs.Len()
		w.to = time.Now()
		proxy.Restore()
		down = append(down, w)
		obs.WaitFor(before, 20*time.Second, "NBIRTH after the broker restarted", testutil.Is(sparkplug.NBIRTH, ""))
	}
	finishAndCheck(t, cnt, obs, a, stop, down)
}

// The agent is killed with SIGKILL during live publishing, during an
// outage and during replay, and restarted each time.
func TestAgentKill9LosesNothing(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	proxy := testutil.NewProxy(t, broker.Addr())
	sim := newSim(t)
	cnt := startCounter(sim)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "agent.yaml")
	// A slow replay, so that a kill lands inside it.
	if err := os.WriteFile(cfgFile, []byte(counterConfig(proxy.URL(), filepath.Join(dir, "state"), sim.URL(), 25, "100ms")), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() *childAgent {
		before := obs.Len()
		c := startChildAgent(t, cfgFile)
		obs.WaitFor(before, 15*time.Second, "NBIRTH of the restarted agent", testutil.Is(sparkplug.NBIRTH, ""))
		return c
	}
	var down []window
	c := start()
	for round := range 3 {
		// Live publishing.
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
		c.kill()
		c = start()

		// During an outage: the agent is killed while it buffers.
		w := window{from: time.Now()}
		proxy.Cut()
		time.Sleep(time.Duration(500+rand.IntN(1000)) * time.Millisecond)
		c.kill()
		c = startChildAgent(t, cfgFile) // cannot reach the broker yet
		time.Sleep(time.Duration(800+rand.IntN(800)) * time.Millisecond)
		w.to = time.Now()
		down = append(down, w)

		// During replay: history drains at 25 messages/s.
		before := obs.Len()
		proxy.Restore()
		nb := obs.WaitFor(before, 15*time.Second, "NBIRTH after the outage", testutil.Is(sparkplug.NBIRTH, ""))
		obs.WaitFor(nb, 10*time.Second, "historical data", func(m testutil.Msg) bool {
			return m.Topic.Type == sparkplug.DDATA && len(m.Payload.Metrics) > 0 && m.Payload.Metrics[0].Historical
		})
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		c.kill()
		t.Logf("round %d: killed during replay", round)
		c = start()
	}
	last := cnt.finish()
	waitForAll(t, obs, last, 60*time.Second)
	stopAndSettle(t, obs, func() { c.stop(t) })

	msgs := obs.Msgs()
	// A value in flight at a kill is resent in the next session, whose
	// own kill may come before its receipt: one more copy per kill.
	checkCounter(t, msgs, last, down, 4)
	// bdSeq never repeats: every CONNECT, across kills, took a new one.
	var bds []uint64
	for _, m := range msgs {
		if m.Topic.Type == sparkplug.NBIRTH && m.Payload != nil {
			bds = append(bds, bdSeqOf(t, m.Payload))
		}
	}
	for i := 1; i < len(bds); i++ {
		if bds[i] <= bds[i-1] {
			t.Errorf("bdSeq went from %d to %d across a restart: %v", bds[i-1], bds[i], bds)
		}
	}
	if len(bds) < 10 {
		t.Errorf("only %d NBIRTHs: %v", len(bds), bds)
	}
}

// The receipt proof rests on this: a QoS 1 publish after QoS 0 publishes
// on one paho connection reaches the broker after them, so the broker's
// PUBACK for it means it read them all. A subscriber sees the broker's
// order, so every receipt must arrive after all data published before it.
func TestReceiptFollowsEarlierPublishes(t *testing.T) {
	broker := testutil.Mosquitto(t)
	const rounds, perRound = 30, 400
	var mu sync.Mutex
	seen := 0
	var bad []string
	got := make(chan struct{}, rounds)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("order-sub").SetOrderMatters(true))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(0)
	sub.Subscribe("order/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		var r int
		fmt.Sscan(string(m.Payload()), &r)
		if m.Topic() == "order/receipt" {
			if seen < (r+1)*perRound {
				bad = append(bad, fmt.Sprintf("receipt %d after only %d of %d data messages", r, seen, (r+1)*perRound))
			}
			got <- struct{}{}
			return
		}
		seen++
	}).Wait()

	// Configured as the uplink configures its client.
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("order-pub").
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(false))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(0)
	var receipts []mqtt.Token
	for r := range rounds {
		for i := range perRound {
			pub.Publish("order/data", 0, false, fmt.Sprint(r, " ", i))
		}
		// Control packets overtaking publishes is what must not matter.
		pub.Subscribe("order/unused", 1, nil)
		receipts = append(receipts, pub.Publish("order/receipt", 1, false, fmt.Sprint(r)))
	}
	for i, tok := range receipts {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("receipt %d: %v", i, tok.Error())
		}
	}
	for range rounds {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("receipts did not all reach the subscriber")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	if seen != rounds*perRound {
		t.Errorf("subscriber saw %d data messages, want %d", seen, rounds*perRound)
	}
}
