package agent

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// TestBufferCapDropsOldest: a small buffer.max_bytes, 960 tags changing
// on every 20 ms scan (about 4 KB per record) and an outage long enough to
// overflow the cap twice over. The agent keeps running and counts the
// drops; disk and heap stay bounded; after the link is back the counter
// values are complete except for one contiguous range (the oldest outage
// records, dropped first), and the newest values are all there.
func TestBufferCapDropsOldest(t *testing.T) {
	const (
		noise    = 960
		maxBytes = 1 << 20 // the configuration's minimum (agent/config)
	)
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	proxy := testutil.NewProxy(t, broker.Addr())
	sim := scSim(t)

	// Registers 0..959 are noise, 960..961 the counter: 8 requests per scan.
	var tags strings.Builder
	for i := range noise {
		fmt.Fprintf(&tags, "      - {name: noise_channel_%03d_with_a_deliberately_long_descriptive_name, table: holding, address: %d, type: uint16}\n", i, i)
	}
	fmt.Fprintf(&tags, "      - {name: count, table: holding, address: %d, type: uint32}\n", noise)
	a, stop, _ := scRun(t, scConfig(scOpts{servers: []string{proxy.URL()}, stateDir: t.TempDir(), plc: sim.URL(),
		poll: "20ms", buffer: fmt.Sprintf("max_bytes: %d", maxBytes), tags: tags.String()}))
	cnt := newSCCounter(t, sim, a)
	cnt.addr = noise
	cnt.perScan = 8

	// Every noise register changes after every request, so every scan
	// stores a full record.
	stopNoise := make(chan struct{})
	var noiseDone sync.WaitGroup
	noiseDone.Add(1)
	go func() {
		defer noiseDone.Done()
		vals := make([]uint16, noise)
		for i := range vals {
			vals[i] = 40000 // three bytes each as a record stores them
		}
		seen := uint64(0)
		for {
			select {
			case <-stopNoise:
				return
			case <-time.After(time.Millisecond):
			}
			if r := sim.Requests(); r != seen {
				seen = r
				for i := range vals {
					vals[i]++
				}
				sim.SetHolding(0, vals...)
			}
		}
	}()
	haltNoise := sync.OnceFunc(func() { close(stopNoise); noiseDone.Wait() })
	defer haltNoise()

	alias := cnt.liveStart(obs, 3)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapInuse

	// The outage: step the counter until the cap has dropped as much
	// again as it holds.
	cutAt := obs.Len()
	proxy.Cut()
	firstOutage := cnt.last() + 1
	deadline := time.Now().Add(60 * time.Second)
	for a.Stats().Buffer.DroppedBytes < maxBytes {
		if time.Now().After(deadline) {
			t.Fatalf("the cap dropped only %d bytes in 60s: %+v", a.Stats().Buffer.DroppedBytes, a.Stats())
		}
		cnt.step()
	}
	for range 5 { // the newest values, which must survive
		cnt.step()
	}
	lastOutage := cnt.last()
	st := a.Stats()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("outage: %d values, buffer %d records %d bytes (file %d), dropped %d records %d bytes; heap in use %d MiB before, %d MiB now",
		lastOutage-firstOutage+1, st.Buffer.Records, st.Buffer.Bytes, st.Buffer.FileBytes, st.Buffer.Dropped, st.Buffer.DroppedBytes, heapBefore>>20, ms.HeapInuse>>20)
	if st.Buffer.Dropped == 0 {
		t.Error("nothing dropped")
	}
	if st.Buffer.Bytes > maxBytes {
		t.Errorf("buffer holds %d bytes, over its cap of %d", st.Buffer.Bytes, maxBytes)
	}
	if st.Buffer.FileBytes > maxBytes+4096 {
		t.Errorf("buffer file is %d bytes for a cap of %d", st.Buffer.FileBytes, maxBytes)
	}
	if ms.HeapInuse > heapBefore+32<<20 {
		t.Errorf("heap in use grew from %d to %d bytes during the outage", heapBefore, ms.HeapInuse)
	}

	proxy.Restore()
	nb2 := obs.WaitFor(cutAt, 15*time.Second, "NBIRTH after the outage", testutil.Is(sparkplug.NBIRTH, ""))
	scWaitReplayed(t, obs, nb2, cnt.vals[lastOutage-5:lastOutage], 20*time.Second)
	var v scValue
	for range 3 {
		v = cnt.step()
	}
	obs.WaitFor(nb2, 10*time.Second, fmt.Sprintf("live value %d", v.v), scHasValue(v.v, alias, false))
	haltNoise()
	scWaitStat(t, a, 20*time.Second, "an empty buffer", func(s Stats) bool { return s.Buffer.Records == 0 })
	if s := a.Stats(); !s.Connected || s.StoreFailed != 0 {
		t.Errorf("after the outage: connected %v, store failures %d", s.Connected, s.StoreFailed)
	}
	stop()

	msgs := obs.Msgs()
	seen := scCounterSeen(t, msgs, "count")
	var missing []uint32
	for _, x := range cnt.vals {
		if len(seen[x.v]) == 0 {
			missing = append(missing, x.v)
		}
	}
	switch {
	case len(missing) == 0:
		t.Error("no counter value is missing although the cap dropped records")
	case missing[len(missing)-1]-missing[0]+1 != uint32(len(missing)):
		t.Errorf("missing values are not one contiguous range: %v", missing)
	case missing[0] < firstOutage:
		t.Errorf("missing values %d..%d start before the outage (values from %d)", missing[0], missing[len(missing)-1], firstOutage)
	case missing[len(missing)-1] >= lastOutage-5:
		t.Errorf("the newest outage values are missing: %d..%d of %d..%d", missing[0], missing[len(missing)-1], firstOutage, lastOutage)
	}
	if len(missing) > 0 && uint64(len(missing)) > st.Buffer.Dropped {
		t.Errorf("%d values missing but only %d records dropped", len(missing), st.Buffer.Dropped)
	}
	if len(missing) > 0 {
		t.Logf("values %d..%d of outage %d..%d dropped", missing[0], missing[len(missing)-1], firstOutage, lastOutage)
	}
	// Every delivered outage value came back as historical data.
	for _, x := range cnt.vals[firstOutage-1 : lastOutage] {
		for _, s := range seen[x.v] {
			if !s.birth && !s.historical {
				t.Errorf("outage value %d arrived live", x.v)
			}
		}
	}
	checkSeq(t, msgs)
}
