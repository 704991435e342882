package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers/opcua/opcuatest"
	"github.com/edgeagent/edgeagent/internal/testutil"
)

// BenchmarkOPCUA runs the agent binary against an OPC UA server (the
// simulator, in the benchmark's process) with 10,000 UInt32 variables that
// all change every second, subscribed in one device (tags named as plants
// name them, types learned from the nodes), publishing to Mosquitto, and
// measures the agent's process over a steady window after the birth, as
// BenchmarkAgentCost does: CPU, RSS mean and peak (start-up included),
// start-up time, samples published per second. With security None and
// with Basic256Sha256 SignAndEncrypt.
func BenchmarkOPCUA(b *testing.B) {
	const tags = 10000
	broker := testutil.Mosquitto(b)
	bin := testutil.AgentBinary(b)
	for _, sec := range []struct{ name, keys string }{
		{"security=None", ""},
		{"security=Basic256Sha256-SignAndEncrypt", "    security: {policy: Basic256Sha256, mode: SignAndEncrypt, server_cert: %s}\n"},
	} {
		b.Run(sec.name, func(b *testing.B) {
			dir := b.TempDir()
			sim, err := opcuatest.NewServer(opcuatest.Options{Secure: sec.keys != "", Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			defer sim.Close()
			names := sim.AddCounters("r", tags)
			var sb strings.Builder
			fmt.Fprintf(&sb, `node: {group_id: bench, edge_node_id: edge1}
mqtt: {servers: [%s], keepalive: 10s}
state_dir: %s
log: {level: warn}
devices:
  - id: oven-hall
    driver: opcua
    endpoint: %s
    poll: 1s
    timeout: 5s
`, broker.URL(), dir, sim.URL())
			if sec.keys != "" {
				fmt.Fprintf(&sb, sec.keys, sim.CertFile())
			}
			sb.WriteString("    tags:\n")
			for i, n := range names {
				fmt.Fprintf(&sb, "      - {name: %s, node: \"nsu=%s;s=%s\"}\n", distinctTagName(i/1000, i%1000), sim.NamespaceURI(), n)
			}
			config := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(config, []byte(sb.String()), 0o644); err != nil {
				b.Fatal(err)
			}
			for range b.N {
				opcuaOnce(b, broker, sim, names, bin, config)
			}
		})
	}
}

func opcuaOnce(b *testing.B, broker *testutil.Broker, sim *opcuatest.Server, names []string, bin, config string) {
	obs := newSparkCounter(b, broker.URL())
	defer obs.close()
	p := startAgent(b, bin, config)
	obs.waitBirths(b, p, 1)
	startup := time.Since(p.started)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sim.Bump(names)
			}
		}
	}()
	time.Sleep(5 * time.Second)
	window := benchWindow()
	t0, cpu0, c0 := time.Now(), p.cpu(), obs.counts()
	w := p.sampleRSS(t0, window)
	t1, cpu1, c1 := time.Now(), p.cpu(), obs.counts()
	m := p.mem()
	gcs, live, goal := p.gcStats(t0.Sub(p.started), t1.Sub(p.started))
	cancel()
	p.stop()
	wall := t1.Sub(t0)
	cpuPct := 100 * (cpu1 - cpu0).Seconds() / wall.Seconds()
	sps := float64(c1.dataMetrics-c0.dataMetrics) / wall.Seconds()
	b.ReportMetric(cpuPct, "%core")
	b.ReportMetric(toMiB(w.mean), "RSS-MiB")
	b.ReportMetric(toMiB(w.anonMean), "anon-MiB")
	b.ReportMetric(toMiB(w.max), "RSS-max-MiB")
	b.ReportMetric(toMiB(m.hwm), "HWM-MiB")
	b.ReportMetric(startup.Seconds(), "s-startup")
	b.ReportMetric(sps, "samples/s")
	b.ReportMetric(float64(gcs)/wall.Seconds(), "gc/s")
	b.Logf("started in %v; window %v: cpu %.2f%% of a core, RSS %.1f MiB (anon %.1f, file %.1f), HWM %.1f MiB, %.0f samples/s in %d DDATA, %d GCs, live heap ≤ %.0f MiB, goal ≤ %.0f MiB",
		startup.Round(time.Millisecond), wall.Round(time.Millisecond), cpuPct, toMiB(m.rss), toMiB(m.anon), toMiB(m.file), toMiB(m.hwm), sps, c1.dataMsgs-c0.dataMsgs, gcs, live, goal)
	if sps < 9000 {
		b.Errorf("%.0f samples/s published; the server changes 10,000 a second", sps)
	}
}
