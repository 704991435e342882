package agent

// Benchmarks for `make bench`: what the agent costs the gateway it runs on.
//
//	BenchmarkAgentCost     the agent as its own process, 10 PLCs × 1,000 registers, poll 1s, to Mosquitto:
//	                       CPU (% of one core), RSS, Modbus requests per scan, samples published per second
//	BenchmarkScanAllocs    in-process: allocations, bytes and CPU per 1,000-tag device scan along the real
//	                       path read → record → buffer (fsync) → publish → receipt → delete
//	BenchmarkReplay        a 1,000,000-sample backlog replayed to Mosquitto: messages/s, samples/s, RSS, heap
//	BenchmarkBacklogRSS    the agent's RSS, sampled every second, while the broker is unreachable and a
//	                       backlog grows to one million samples
//	BenchmarkLoadConfig    loading a configuration with a tag map of 500 to 2,000 tags, per tag
//
// The process benchmarks run the shipped binary: `go build` of ./cmd/edgeagent with the release flags
// (CGO_ENABLED=0 -trimpath -s -w) into b.TempDir(). That, not a re-exec of this test binary, because
// the figures are meant for users: the binary they install, with nothing from the testing framework,
// the observer, the simulators or Mosquitto's launcher mapped into it; the build is cached, so the cost
// is a link (a second or two). Simulated PLCs and the counting observer run in this process, Mosquitto
// in its own; CPU and memory are read from /proc/<pid> of the agent alone, heap figures from its
// GODEBUG=gctrace=1 output. Each benchmark does its work once per b.N (`make bench` uses -benchtime 1x).
//
// EDGEAGENT_BENCH_WINDOW (a duration, default 30s) sets the steady-state window of BenchmarkAgentCost.
// Nothing here asserts timing; a benchmark fails only when data is lost or the agent misbehaves.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/agent/record"
	"github.com/edgeagent/edgeagent/agent/scan"
	"github.com/edgeagent/edgeagent/buffer"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/modbus/modbustest"
	"github.com/edgeagent/edgeagent/internal/testutil"
)

const (
	benchDevices = 10
	benchTags    = 1000 // contiguous uint16 holding registers: 8 requests of ≤125 per scan
	benchReqs    = 8
	clockTicks   = 100 // USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every Linux ABI Go supports
)

func benchTagName(i int) string { return fmt.Sprintf("Line1/HR%04d", i) }

// distinctTagName is tag i of device d with a name as plants write them,
// different on every device.
func distinctTagName(d, i int) string {
	return fmt.Sprintf("Line%02d/Press%02d/Hydraulics/Register_%04d", d/10, d%10, i)
}

// tagLines writes n tag entries of device d (d < 0: the shared names),
// each on its own line with the given indentation.
func tagLines(sb *strings.Builder, indent string, d, n int) {
	for i := range n {
		name := benchTagName(i)
		if d >= 0 {
			name = distinctTagName(d, i)
		}
		fmt.Fprintf(sb, "%s- {name: %s, table: holding, address: %d, type: uint16}\n", indent, name, i)
	}
}

// writeTagMap writes a tag map of n contiguous uint16 holding registers.
func writeTagMap(tb testing.TB, path string, n int) {
	tb.Helper()
	var sb strings.Builder
	sb.WriteString("tags:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - {name: %s, table: holding, address: %d, type: uint16}\n", benchTagName(i), i)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// benchConfig is the agent configuration the benchmarks write.
type benchConfig struct {
	dir     string   // state_dir is dir/state, tag maps dir/tags*.yaml
	servers []string // broker URLs
	plcs    []string // one device per PLC URL
	tags    int
	poll    time.Duration
	buffer  string // extra lines in the buffer section, e.g. "replay_rate: 1000"
	layout  string // how the tags are written, one of the layout* constants
}

// How a benchmark configuration writes its devices' tags.
const (
	layoutShared = ""       // one tag-map file every device names (the same tags)
	layoutInline = "inline" // each device its own tags, inline in the configuration
	layoutMaps   = "maps"   // each device its own tags, in its own tag-map file
)

func (c benchConfig) stateDir() string   { return filepath.Join(c.dir, "state") }
func (c benchConfig) bufferPath() string { return filepath.Join(c.stateDir(), "buffer.db") }

// write writes the tag map and the configuration and returns its path.
func (c benchConfig) write(tb testing.TB) string {
	tb.Helper()
	if c.layout == layoutShared {
		writeTagMap(tb, filepath.Join(c.dir, "tags.yaml"), c.tags)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "node: {group_id: bench, edge_node_id: edge1}\nmqtt:\n  servers: [%s]\n  keepalive: 10s\n  reconnect_min: 200ms\n  reconnect_max: 2s\n",
		strings.Join(c.servers, ", "))
	fmt.Fprintf(&sb, "state_dir: %s\n", c.stateDir())
	if c.buffer != "" {
		sb.WriteString("buffer:\n")
		for l := range strings.SplitSeq(c.buffer, "\n") {
			fmt.Fprintf(&sb, "  %s\n", l)
		}
	}
	sb.WriteString("log: {level: info}\ndevices:\n")
	for i, u := range c.plcs {
		fmt.Fprintf(&sb, "  - id: plc%02d\n    driver: modbus\n    url: %s\n    poll: %s\n    timeout: 2s\n", i, u, c.poll)
		switch c.layout {
		case layoutShared:
			sb.WriteString("    tag_map: tags.yaml\n")
		case layoutInline:
			sb.WriteString("    tags:\n")
			tagLines(&sb, "      ", i, c.tags)
		case layoutMaps:
			var m strings.Builder
			m.WriteString("tags:\n")
			tagLines(&m, "  ", i, c.tags)
			name := fmt.Sprintf("tags%02d.yaml", i)
			if err := os.WriteFile(filepath.Join(c.dir, name), []byte(m.String()), 0o644); err != nil {
				tb.Fatal(err)
			}
			fmt.Fprintf(&sb, "    tag_map: %s\n", name)
		}
	}
	path := filepath.Join(c.dir, "config.yaml")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// benchSims starts n simulated PLCs with registers 0..tags-1 set.
func benchSims(tb testing.TB, n, tags int) ([]*modbustest.Server, []string) {
	tb.Helper()
	sims := make([]*modbustest.Server, n)
	urls := make([]string, n)
	regs := make([]uint16, tags)
	for i := range sims {
		s, err := modbustest.NewServer("127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() })
		for j := range regs {
			regs[j] = uint16(i*7919 + j)
		}
		s.SetHolding(0, regs...)
		sims[i], urls[i] = s, s.URL()
	}
	return sims, urls
}

func simRequests(sims []*modbustest.Server) uint64 {
	var n uint64
	for _, s := range sims {
		n += s.Requests()
	}
	return n
}

// changer rewrites registers of every simulator on a ticker until stopped:
// frac of them per tick (1 = all), a different window each tick, each to a
// value it did not hold before.
func benchChanger(sims []*modbustest.Server, tags int, every time.Duration, frac float64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		n := max(1, int(float64(tags)*frac))
		regs := make([]uint16, n)
		for gen := 1; ; gen++ {
			select {
			case <-done:
				return
			case <-t.C:
			}
			start := (gen * n) % tags
			if start+n > tags {
				start = 0
			}
			for i, s := range sims {
				for j := range regs {
					regs[j] = uint16(gen*31 + i*7919 + start + j)
				}
				s.SetHolding(uint16(start), regs...)
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// agentProc is the agent running as its own process.
type agentProc struct {
	tb      testing.TB
	cmd     *exec.Cmd
	log     string
	started time.Time
	done    chan struct{}
	err     error
	stopped bool
}

func startAgent(tb testing.TB, bin, config string) *agentProc {
	tb.Helper()
	p := &agentProc{tb: tb, log: filepath.Join(filepath.Dir(config), "agent.log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		tb.Fatal(err)
	}
	p.cmd = exec.Command(bin, "run", "-c", config)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		f.Close()
		tb.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); f.Close(); close(p.done) }()
	tb.Cleanup(p.stop)
	return p
}

func (p *agentProc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits for the graceful stop; a non-zero exit or a
// hang fails the benchmark.
func (p *agentProc) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.tb.Errorf("agent did not stop within 30s of SIGTERM; log tail:\n%s", p.tail())
		return
	}
	if p.err != nil {
		p.tb.Errorf("agent exited with %v; log tail:\n%s", p.err, p.tail())
	}
}

// exited reports whether the process is gone already.
func (p *agentProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *agentProc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(string(b), "\n")
	var keep []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "gc ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep[max(0, len(keep)-30):], "\n")
}

// cpu returns the process's user+system CPU time so far.
func (p *agentProc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		p.tb.Fatalf("reading agent CPU: %v", err)
	}
	// Fields after "(comm)": state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, _ := strconv.ParseUint(f[14-3], 10, 64)
	st, _ := strconv.ParseUint(f[15-3], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// memStatus is a reading of /proc/<pid>/status, in bytes.
type memStatus struct{ rss, hwm, anon, file uint64 }

// rssWindow is a process's VmRSS sampled every second over a window.
type rssWindow struct{ mean, anonMean, max uint64 }

// sampleRSS samples p's memory every second from t0 for window.
func (p *agentProc) sampleRSS(t0 time.Time, window time.Duration) rssWindow {
	var w rssWindow
	var rssSum, anonSum uint64
	var n uint64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for end := t0.Add(window); time.Now().Before(end); {
		<-tick.C
		m := p.mem()
		rssSum += m.rss
		anonSum += m.anon
		w.max = max(w.max, m.rss)
		n++
	}
	if n > 0 {
		w.mean, w.anonMean = rssSum/n, anonSum/n
	}
	return w
}

func (p *agentProc) mem() memStatus {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		p.tb.Fatalf("reading agent memory: %v", err)
	}
	var m memStatus
	for l := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.rss = kb << 10
		case "VmHWM":
			m.hwm = kb << 10
		case "RssAnon":
			m.anon = kb << 10
		case "RssFile":
			m.file = kb << 10
		}
	}
	return m
}

var gcLine = regexp.MustCompile(`^gc (\d+) @([0-9.]+)s .* (\d+)->(\d+)->(\d+) MB, (\d+) MB goal`)

// gcStats reads the agent's gctrace: collections that started within
// [from, to] after process start, and the largest live heap (after GC)
// and heap goal among them, in MiB; with none in the range, those of the
// last collection before it.
func (p *agentProc) gcStats(from, to time.Duration) (gcs int, maxLive, maxGoal float64) {
	f, err := os.Open(p.log)
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	var lastLive, lastGoal float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		m := gcLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, _ := strconv.ParseFloat(m[2], 64)
		live, _ := strconv.ParseFloat(m[5], 64)
		goal, _ := strconv.ParseFloat(m[6], 64)
		switch d := time.Duration(at * float64(time.Second)); {
		case d < from:
			lastLive, lastGoal = live, goal
		case d <= to:
			gcs++
			maxLive, maxGoal = max(maxLive, live), max(maxGoal, goal)
		}
	}
	if gcs == 0 {
		return 0, lastLive, lastGoal
	}
	return gcs, maxLive, maxGoal
}

func toMiB(n uint64) float64 { return float64(n) / (1 << 20) }

// sparkCounter is a Sparkplug host that only counts: births, and DDATA
// messages and their metrics, found by walking the protobuf wire format
// without decoding values, so that it keeps up with the replay.
type sparkCounter struct {
	client mqtt.Client

	nbirths, dbirths, ddeaths atomic.Int64
	dataMsgs, dataMetrics     atomic.Int64
	histMsgs, histMetrics     atomic.Int64
	firstHist, lastHist       atomic.Int64 // arrival, Unix ns
	bad                       atomic.Int64
}

func newSparkCounter(tb testing.TB, url string) *sparkCounter {
	tb.Helper()
	c := &sparkCounter{}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("bench-counter-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true)
	c.client = mqtt.NewClient(opts)
	if tok := c.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("counter connecting to %s: %v", url, tok.Error())
	}
	if tok := c.client.Subscribe("spBv1.0/bench/#", 0, c.handle); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("counter subscribing: %v", tok.Error())
	}
	return c
}

// close unsubscribes the counter. Each run of a benchmark closes its
// counter: one left subscribed would make the broker fan every later
// run's messages out to it too.
func (c *sparkCounter) close() { c.client.Disconnect(0) }

func (c *sparkCounter) handle(_ mqtt.Client, m mqtt.Message) {
	// spBv1.0/bench/<TYPE>/edge1[/device]
	parts := strings.SplitN(m.Topic(), "/", 5)
	if len(parts) < 4 {
		c.bad.Add(1)
		return
	}
	switch parts[2] {
	case "NBIRTH":
		c.nbirths.Add(1)
	case "DBIRTH":
		c.dbirths.Add(1)
	case "DDEATH":
		c.ddeaths.Add(1)
	case "DDATA":
		n, hist, err := countMetrics(m.Payload())
		if err != nil {
			c.bad.Add(1)
			return
		}
		c.dataMsgs.Add(1)
		c.dataMetrics.Add(int64(n))
		if hist > 0 {
			now := time.Now().UnixNano()
			c.firstHist.CompareAndSwap(0, now)
			c.histMsgs.Add(1)
			c.histMetrics.Add(int64(hist))
			c.lastHist.Store(now)
		}
	}
}

type counterSnapshot struct{ dataMsgs, dataMetrics, histMsgs, histMetrics int64 }

func (c *sparkCounter) counts() counterSnapshot {
	return counterSnapshot{c.dataMsgs.Load(), c.dataMetrics.Load(), c.histMsgs.Load(), c.histMetrics.Load()}
}

// waitBirths waits for an NBIRTH and n DBIRTHs.
func (c *sparkCounter) waitBirths(tb testing.TB, p *agentProc, n int64) {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Minute) // loading a 10,000-tag configuration can take a while
	for c.nbirths.Load() < 1 || c.dbirths.Load() < n {
		if p.exited() || time.Now().After(deadline) {
			tb.Fatalf("no births: NBIRTH %d, DBIRTH %d of %d; agent log tail:\n%s", c.nbirths.Load(), c.dbirths.Load(), n, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countMetrics counts the metrics of a Sparkplug payload and those of them
// marked is_historical.
func countMetrics(b []byte) (n, hist int, err error) {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return n, hist, protowire.ParseError(l)
		}
		b = b[l:]
		if num == 2 && typ == protowire.BytesType { // Payload.metrics
			m, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return n, hist, protowire.ParseError(l)
			}
			b = b[l:]
			n++
			h, err := isHistorical(m)
			if err != nil {
				return n, hist, err
			}
			if h {
				hist++
			}
			continue
		}
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			return n, hist, protowire.ParseError(l)
		}
		b = b[l:]
	}
	return n, hist, nil
}

func isHistorical(m []byte) (bool, error) {
	for len(m) > 0 {
		num, typ, l := protowire.ConsumeTag(m)
		if l < 0 {
			return false, protowire.ParseError(l)
		}
		m = m[l:]
		if num == 5 && typ == protowire.VarintType { // Metric.is_historical
			v, l := protowire.ConsumeVarint(m)
			if l < 0 {
				return false, protowire.ParseError(l)
			}
			return v != 0, nil
		}
		l = protowire.ConsumeFieldValue(num, typ, m)
		if l < 0 {
			return false, protowire.ParseError(l)
		}
		m = m[l:]
	}
	return false, nil
}

func benchWindow() time.Duration {
	if s := os.Getenv("EDGEAGENT_BENCH_WINDOW"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			return d
		}
	}
	return 30 * time.Second
}

// BenchmarkAgentCost runs the agent binary against 10 simulated PLCs of
// 1,000 uint16 holding registers each, every device with its own tag
// names (Line00/Press03/Hydraulics/Register_0042 and so on, inline in the
// configuration, as plants write them), poll 1s, default write-ahead
// buffer, publishing to Mosquitto, and measures its own process over a
// steady-state window after the births and a 5 s warm-up: CPU as % of one
// core ((utime+stime)/wall), VmRSS (mean and max over the window, sampled
// each second), VmHWM (peak since start, config loading included), the
// start-up time (process start to the last DBIRTH at the host), Modbus
// requests per scan, and samples published per second as a host counts
// them.
//
// change=100%: every register changes every scan (the worst case; the
// bench rewrites all 10,000 registers every 500 ms so that each 1 s scan
// sees every one of them changed). change=10%: 100 registers per PLC change
// each second, a different block each time (typical report by exception).
//
// With EDGEAGENT_BENCH_TELEGRAF set (peer_bench_test.go), each case is
// also run with Telegraf doing the same job, in the same run.
func BenchmarkAgentCost(b *testing.B) {
	broker := testutil.Mosquitto(b)
	sims, urls := benchSims(b, benchDevices, benchTags)
	bin := testutil.AgentBinary(b)
	for _, sc := range []struct {
		name  string
		every time.Duration
		frac  float64
	}{
		{"change=100%", 500 * time.Millisecond, 1},
		{"change=10%", time.Second, 0.1},
	} {
		b.Run(sc.name, func(b *testing.B) {
			for range b.N {
				costOnce(b, broker, sims, urls, bin, layoutInline, sc.every, sc.frac, benchWindow(), sc.frac == 1)
			}
		})
		if peer := telegrafBinary(b); peer != "" {
			b.Run("peer=telegraf/"+sc.name, func(b *testing.B) {
				for range b.N {
					peerCostOnce(b, broker, sims, urls, peer, sc.every, sc.frac, benchWindow())
				}
			})
		}
	}
}

// BenchmarkScale is BenchmarkAgentCost at 100,000 tags: 100 simulated PLCs
// of 1,000 registers with distinct names, all changing every second
// (100,000 samples/s), the tags inline in one configuration file (10 MB)
// or in one tag-map file per device. The simulators run in the benchmark
// process; the agent is its own.
func BenchmarkScale(b *testing.B) {
	broker := testutil.Mosquitto(b)
	sims, urls := benchSims(b, 100, benchTags)
	bin := testutil.AgentBinary(b)
	for _, layout := range []string{layoutInline, layoutMaps} {
		b.Run("devices=100/tags="+layout, func(b *testing.B) {
			for range b.N {
				costOnce(b, broker, sims, urls, bin, layout, 500*time.Millisecond, 1, benchWindow(), true)
			}
		})
	}
}

// reloadPeak resets the agent's peak RSS, has it reload its (unchanged)
// configuration, and returns the peak the reload reached: the new
// configuration is loaded and built while the old one runs.
func reloadPeak(b *testing.B, p *agentProc) uint64 {
	b.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.pid()), []byte("5"), 0); err != nil {
		b.Fatalf("resetting the peak RSS: %v", err)
	}
	before, _ := os.ReadFile(p.log)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		l, _ := os.ReadFile(p.log)
		if strings.Count(string(l), "configuration reloaded") > strings.Count(string(before), "configuration reloaded") {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no reload within a minute; log tail:\n%s", p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	return p.mem().hwm
}

func costOnce(b *testing.B, broker *testutil.Broker, sims []*modbustest.Server, urls []string, bin, layout string, every time.Duration, frac float64, window time.Duration, reload bool) {
	const poll = time.Second
	obs := newSparkCounter(b, broker.URL())
	defer obs.close()
	cfg := benchConfig{dir: b.TempDir(), servers: []string{broker.URL()}, plcs: urls, tags: benchTags, poll: poll, layout: layout}
	p := startAgent(b, bin, cfg.write(b))
	obs.waitBirths(b, p, int64(len(urls)))
	startup := time.Since(p.started)
	stopChanges := benchChanger(sims, benchTags, every, frac)
	defer stopChanges()
	time.Sleep(5 * time.Second)

	t0, cpu0, req0, c0 := time.Now(), p.cpu(), simRequests(sims), obs.counts()
	w := p.sampleRSS(t0, window)
	t1, cpu1, req1, c1 := time.Now(), p.cpu(), simRequests(sims), obs.counts()
	m := p.mem()
	gcs, live, goal := p.gcStats(t0.Sub(p.started), t1.Sub(p.started))
	if reload {
		b.ReportMetric(toMiB(reloadPeak(b, p)), "reload-HWM-MiB")
	}
	stopChanges()
	p.stop()

	wall := t1.Sub(t0)
	scans := float64(len(sims)) * wall.Seconds() / poll.Seconds()
	cpuPct := 100 * (cpu1 - cpu0).Seconds() / wall.Seconds()
	sps := float64(c1.dataMetrics-c0.dataMetrics) / wall.Seconds()
	b.ReportMetric(cpuPct, "%core")
	b.ReportMetric(toMiB(w.mean), "RSS-MiB")
	b.ReportMetric(toMiB(w.anonMean), "anon-MiB")
	b.ReportMetric(toMiB(w.max), "RSS-max-MiB")
	b.ReportMetric(toMiB(m.hwm), "HWM-MiB")
	b.ReportMetric(startup.Seconds(), "s-startup")
	b.ReportMetric(float64(req1-req0)/scans, "req/scan")
	b.ReportMetric(sps, "samples/s")
	b.ReportMetric(float64(c1.dataMsgs-c0.dataMsgs)/wall.Seconds(), "msgs/s")
	b.ReportMetric(float64(gcs)/wall.Seconds(), "gc/s")
	b.ReportMetric(live, "heap-live-MiB")
	b.Logf("%d devices (tags %s): started in %v; window %v: cpu %v (%.2f%% of a core), RSS %.1f MiB (anon %.1f, file %.1f), HWM %.1f MiB, %d requests in %.0f scans, %d samples in %d DDATA, %d GCs, live heap ≤ %.0f MiB, goal ≤ %.0f MiB",
		len(urls), layout, startup.Round(time.Millisecond), wall.Round(time.Millisecond), cpu1-cpu0, cpuPct, toMiB(m.rss), toMiB(m.anon), toMiB(m.file), toMiB(m.hwm), req1-req0, scans,
		c1.dataMetrics-c0.dataMetrics, c1.dataMsgs-c0.dataMsgs, gcs, live, goal)
	if bad := obs.bad.Load(); bad > 0 {
		b.Errorf("%d messages the counter could not parse", bad)
	}
}

// BenchmarkReplay pre-fills the agent's buffer with a backlog of 1,000,000
// samples (records encoded as scans store them; 10
// devices, 1,000 uint16 tags), then starts the agent binary against
// Mosquitto with replay_rate 1,000,000 and measures, at a host, historical
// DDATA messages/s and samples/s from the first historical message to the
// last; the agent's RSS (sampled every 50 ms) and live heap (gctrace)
// during replay. The PLCs answer throughout with unchanging values, so the
// only data is history. It fails if a sample is missing or the buffer is
// not empty after the agent stops.
//
// A replay of 1M samples lasts about a second, so one run is noisy on a
// shared machine: with -benchtime Nx it replays N times and reports the
// median rate (min and max in the log).
func BenchmarkReplay(b *testing.B) {
	const total = 1_000_000
	broker := testutil.Mosquitto(b)
	_, urls := benchSims(b, benchDevices, benchTags)
	bin := testutil.AgentBinary(b)
	for _, sc := range []struct {
		perRecord, maxMetrics int
	}{
		{100, 100},  // scans where 10 % changed: one message per record
		{1000, 500}, // full scans: two messages per record
	} {
		b.Run(fmt.Sprintf("samples_per_record=%d/max_metrics=%d", sc.perRecord, sc.maxMetrics), func(b *testing.B) {
			var rs []replayResult
			for range b.N {
				rs = append(rs, replayOnce(b, broker, urls, bin, total, sc.perRecord, sc.maxMetrics))
			}
			slices.SortFunc(rs, func(x, y replayResult) int { return cmp.Compare(x.msgsPerS, y.msgsPerS) })
			med := rs[len(rs)/2]
			var rss, hwm uint64
			var live float64
			for _, r := range rs {
				rss, hwm, live = max(rss, r.rssMax), max(hwm, r.hwm), max(live, r.live)
			}
			b.ReportMetric(med.msgsPerS, "msgs/s")
			b.ReportMetric(med.samplesPerS, "samples/s")
			b.ReportMetric(med.startToLast, "s-start-to-last")
			b.ReportMetric(toMiB(rss), "RSS-max-MiB")
			b.ReportMetric(toMiB(hwm), "HWM-MiB")
			b.ReportMetric(live, "heap-live-max-MiB")
			if len(rs) > 1 {
				b.Logf("msgs/s over %d replays: min %.0f, median %.0f, max %.0f", len(rs), rs[0].msgsPerS, med.msgsPerS, rs[len(rs)-1].msgsPerS)
			}
		})
	}
}

type replayResult struct {
	msgsPerS, samplesPerS, startToLast, live float64
	rssMax, hwm                              uint64
}

func replayOnce(b *testing.B, broker *testutil.Broker, urls []string, bin string, total, perRecord, maxMetrics int) replayResult {
	obs := newSparkCounter(b, broker.URL())
	defer obs.close()
	cfg := benchConfig{dir: b.TempDir(), servers: []string{broker.URL()}, plcs: urls, tags: benchTags, poll: time.Second,
		buffer: fmt.Sprintf("replay_rate: 1000000\nmax_metrics_per_message: %d", maxMetrics)}
	config := cfg.write(b)
	records, bytes := prefillBacklog(b, cfg.bufferPath(), len(urls), benchTags, total, perRecord)

	p := startAgent(b, bin, config)
	// Memory is sampled from the first historical message on: what
	// replay costs, apart from what starting up cost (HWM has that).
	var rssMax, anonMax, fileMax uint64
	var cpu0, cpu1 time.Duration
	var t0, t1 time.Time
	deadline := time.Now().Add(5 * time.Minute)
	for obs.histMetrics.Load() < int64(total) {
		if p.exited() || time.Now().After(deadline) {
			b.Fatalf("replay incomplete: %d of %d samples; agent log tail:\n%s", obs.histMetrics.Load(), total, p.tail())
		}
		if obs.histMetrics.Load() == 0 {
			cpu0, t0 = p.cpu(), time.Now()
			time.Sleep(time.Millisecond)
			continue
		}
		m := p.mem()
		rssMax, anonMax, fileMax = max(rssMax, m.rss), max(anonMax, m.anon), max(fileMax, m.file)
		time.Sleep(50 * time.Millisecond)
	}
	cpu1, t1 = p.cpu(), time.Now()
	m := p.mem()
	rssMax, anonMax, fileMax = max(rssMax, m.rss), max(anonMax, m.anon), max(fileMax, m.file)
	first, last := time.Unix(0, obs.firstHist.Load()), time.Unix(0, obs.lastHist.Load())
	span := last.Sub(first)
	time.Sleep(time.Second) // the last receipt, then the delete
	gcs, live, goal := p.gcStats(first.Sub(p.started), last.Sub(p.started))
	p.stop()

	c := obs.counts()
	if c.histMetrics != int64(total) {
		b.Errorf("host got %d historical samples, want exactly %d", c.histMetrics, total)
	}
	buf, err := buffer.Open(buffer.Options{Path: cfg.bufferPath(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	left := buf.Stats()
	buf.Close()
	if left.Records != 0 {
		b.Errorf("%d records (seq %d..%d) still buffered after the replay and a graceful stop", left.Records, left.OldestSeq, left.NewestSeq)
	}
	b.Logf("backlog %d records, %.1f MB encoded; replayed %d samples in %d messages over %v (first to last historical message), %v after process start; agent CPU %.0f%% of a core while replaying; RSS max %.1f MiB while replaying (anon %.1f, file %.1f), HWM %.1f MiB; while replaying %d GCs, live heap ≤ %.0f MiB, goal ≤ %.0f MiB",
		records, float64(bytes)/1e6, c.histMetrics, c.histMsgs, span.Round(time.Millisecond), last.Sub(p.started).Round(time.Millisecond),
		100*(cpu1-cpu0).Seconds()/t1.Sub(t0).Seconds(), toMiB(rssMax), toMiB(anonMax), toMiB(fileMax), toMiB(m.hwm), gcs, live, goal)
	return replayResult{msgsPerS: float64(c.histMsgs) / span.Seconds(), samplesPerS: float64(c.histMetrics) / span.Seconds(),
		startToLast: last.Sub(p.started).Seconds(), live: live, rssMax: rssMax, hwm: m.hwm}
}

// prefill appends a backlog of total samples to the buffer at path, in
// records of perRecord samples as device scans store them: devices in
// turn, each record a block of the device's tags, one second apart.
func prefillBacklog(tb testing.TB, path string, devices, tags, total, perRecord int) (records int, size int64) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		tb.Fatal(err)
	}
	buf, err := buffer.Open(buffer.Options{Path: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	defer buf.Close()
	// The schemas the agent's scanners will register for these devices:
	// the same names and types give the same ids.
	store := scan.NewStore(buf)
	names := make([]string, tags)
	types := make([]drivers.Type, tags)
	for i := range names {
		names[i], types[i] = benchTagName(i), drivers.Uint16
	}
	ids := make([]uint64, devices)
	for d := range ids {
		id, err := store.Register(&record.Schema{Device: fmt.Sprintf("plc%02d", d), Names: names, Types: types})
		if err != nil {
			tb.Fatal(err)
		}
		ids[d] = id
	}
	t0 := time.Now().Add(-3 * time.Hour).UnixMilli()
	pts := make([]record.Point, perRecord)
	var batch [][]byte
	var enc record.Encoder
	for i := 0; i*perRecord < total; i++ {
		dev, scan := i%devices, i/devices
		at := t0 + int64(scan)*1000
		first := (scan * perRecord) % tags
		for k := range pts {
			pts[k] = record.Point{Tag: int32((first + k) % tags), Value: drivers.UintValue(drivers.Uint16, uint64(uint16(scan+k))), Time: at}
		}
		rec := enc.Begin(nil, record.Data, ids[dev], types, at, len(pts))
		for k := range pts {
			rec = enc.Add(rec, &pts[k])
		}
		size += int64(len(rec))
		batch = append(batch, rec)
		records++
		if len(batch) == 500 {
			if _, _, err := buf.Append(batch...); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		if _, _, err := buf.Append(batch...); err != nil {
			tb.Fatal(err)
		}
	}
	return records, size
}

// BenchmarkNightOutage: a night without WAN. 10 hours of 1,000 tags
// changing every second, 36 million samples, are written into the
// agent's buffer at full speed (as its scanners would have, with the same
// schemas), for two layouts: one device of 1,000 tags (a record of 1,000
// samples a second) and 10 devices of 100 tags whose records interleave.
// It reports the file's size, whether it fits the default max_bytes (512
// MiB), and how long the agent binary, started with default settings
// (replay_rate 2000 messages/s, max_metrics_per_message 1000) against
// Mosquitto, takes to deliver all of it while its PLCs' live data keeps
// flowing; and the agent's anonymous memory (RssAnon: the file itself is
// mapped) over the drain, sampled each second: min, max and spread.
//
// EDGEAGENT_BENCH_NIGHT_SAMPLES scales the backlog down for a quick run.
func BenchmarkNightOutage(b *testing.B) {
	total := 36_000_000
	if v, err := strconv.Atoi(os.Getenv("EDGEAGENT_BENCH_NIGHT_SAMPLES")); err == nil && v > 0 {
		total = v
	}
	broker := testutil.Mosquitto(b)
	bin := testutil.AgentBinary(b)
	for _, lay := range []struct{ devices, tags int }{{1, 1000}, {10, 100}} {
		b.Run(fmt.Sprintf("devices=%d/tags=%d", lay.devices, lay.tags), func(b *testing.B) {
			sims, urls := benchSims(b, lay.devices, lay.tags)
			for range b.N {
				nightOnce(b, broker, sims, urls, bin, total, lay.tags)
			}
		})
	}
}

func nightOnce(b *testing.B, broker *testutil.Broker, sims []*modbustest.Server, urls []string, bin string, total, tags int) {
	obs := newSparkCounter(b, broker.URL())
	defer obs.close()
	cfg := benchConfig{dir: b.TempDir(), servers: []string{broker.URL()}, plcs: urls, tags: tags, poll: time.Second}
	config := cfg.write(b)
	w0 := time.Now()
	records, bytes := prefillBacklog(b, cfg.bufferPath(), len(urls), tags, total, tags)
	writeTook := time.Since(w0)
	fi, err := os.Stat(cfg.bufferPath())
	if err != nil {
		b.Fatal(err)
	}
	file := fi.Size()

	stopChanges := benchChanger(sims, tags, time.Second, 1) // live data all along
	defer stopChanges()
	p := startAgent(b, bin, config)
	var anonMin, anonMax uint64 = math.MaxUint64, 0
	var t0 time.Time
	var series []string
	deadline := time.Now().Add(10 * time.Minute)
	tick := time.NewTicker(time.Second)
	for obs.histMetrics.Load() < int64(total) {
		if p.exited() || time.Now().After(deadline) {
			tick.Stop()
			b.Fatalf("drain incomplete: %d of %d samples; agent log tail:\n%s", obs.histMetrics.Load(), total, p.tail())
		}
		select {
		case <-tick.C:
			if obs.histMetrics.Load() > 0 {
				if t0.IsZero() {
					t0 = time.Now()
				}
				m := p.mem()
				anonMin, anonMax = min(anonMin, m.anon), max(anonMax, m.anon)
				series = append(series, fmt.Sprintf("%.1f", toMiB(m.anon)))
			}
		case <-time.After(10 * time.Millisecond):
		}
	}
	tick.Stop()
	first, last := time.Unix(0, obs.firstHist.Load()), time.Unix(0, obs.lastHist.Load())
	drain := last.Sub(first)
	live0 := obs.counts().dataMetrics - obs.counts().histMetrics
	m := p.mem()
	anonMin, anonMax = min(anonMin, m.anon), max(anonMax, m.anon)
	time.Sleep(2 * time.Second)
	live1 := obs.counts().dataMetrics - obs.counts().histMetrics
	gcs, heapLive, heapGoal := p.gcStats(first.Sub(p.started), last.Sub(p.started))
	p.stop()
	if live1 <= live0 {
		b.Errorf("no live data after the drain (%d, %d)", live0, live1)
	}
	b.ReportMetric(float64(file)/(1<<20), "file-MiB")
	b.ReportMetric(float64(file)/float64(total), "file-B/sample")
	b.ReportMetric(drain.Seconds(), "s-drain")
	b.ReportMetric(last.Sub(p.started).Seconds(), "s-start-to-last")
	b.ReportMetric(toMiB(anonMin), "anon-min-MiB")
	b.ReportMetric(toMiB(anonMax), "anon-max-MiB")
	b.ReportMetric(toMiB(anonMax-anonMin), "anon-spread-MiB")
	b.ReportMetric(heapLive, "heap-live-max-MiB")
	b.Logf("while draining: %d GCs, live heap ≤ %.0f MiB, goal ≤ %.0f MiB", gcs, heapLive, heapGoal)
	b.Logf("%d samples in %d records (%.0f MB encoded) written in %v, file %.1f MiB (fits 512 MiB: %v); drained in %v (first to last historical message, %d messages), %v after start, live data flowing meanwhile; RssAnon %.1f..%.1f MiB (each second: %s), HWM %.1f MiB",
		total, records, float64(bytes)/1e6, writeTook.Round(time.Millisecond), float64(file)/(1<<20), file <= 512<<20, drain.Round(time.Millisecond),
		obs.histMsgs.Load(), last.Sub(p.started).Round(time.Millisecond), toMiB(anonMin), toMiB(anonMax), strings.Join(series, " "), toMiB(m.hwm))
	if file > 512<<20 {
		b.Errorf("the backlog takes %d bytes, more than the default max_bytes", file)
	}
}

// BenchmarkBacklogRSS runs the agent binary with its only broker
// unreachable (a closed port) while 10 simulated PLCs of 1,000 registers,
// polled every 250 ms with every register changing each scan (40,000
// samples/s), fill the write-ahead buffer past one million samples. It
// samples VmRSS every second and reports the first, least and largest,
// and max-min, which is flat when the backlog lives on disk, not in
// memory. The buffered samples are counted exactly afterwards, from the
// buffer file.
func BenchmarkBacklogRSS(b *testing.B) {
	const want = 1_000_000
	sims, urls := benchSims(b, benchDevices, benchTags)
	bin := testutil.AgentBinary(b)
	for range b.N {
		backlogRSSOnce(b, sims, urls, bin, want)
	}
}

func backlogRSSOnce(b *testing.B, sims []*modbustest.Server, urls []string, bin string, want int) {
	const poll = 250 * time.Millisecond
	closed := fmt.Sprintf("tcp://127.0.0.1:%d", testutil.FreePort(b))
	cfg := benchConfig{dir: b.TempDir(), servers: []string{closed}, plcs: urls, tags: benchTags, poll: poll}
	config := cfg.write(b)
	req0 := simRequests(sims)
	stopChanges := benchChanger(sims, benchTags, 100*time.Millisecond, 1)
	defer stopChanges()
	p := startAgent(b, bin, config)

	// Every scan (8 requests) stores 1,000 samples: the estimate is exact
	// but for a scan in flight; the count from the file below is exact.
	estimate := func() int { return int(simRequests(sims)-req0) / benchReqs * benchTags }
	deadline := time.Now().Add(5 * time.Minute)
	for estimate() == 0 { // still loading its configuration
		if p.exited() || time.Now().After(deadline) {
			b.Fatalf("the agent never polled; log tail:\n%s", p.tail())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cpu0, t0 := p.cpu(), time.Now()
	rss := []memStatus{p.mem()}
	tick := time.NewTicker(time.Second)
	for estimate() < want+want/50 {
		<-tick.C
		if p.exited() || time.Now().After(deadline) {
			b.Fatalf("backlog stuck at about %d samples; agent log tail:\n%s", estimate(), p.tail())
		}
		rss = append(rss, p.mem())
	}
	tick.Stop()
	cpu1, t1 := p.cpu(), time.Now()
	hwm := p.mem().hwm
	gcs, live, goal := p.gcStats(t0.Sub(p.started), t1.Sub(p.started))
	stopChanges()
	p.stop()

	buf, err := buffer.Open(buffer.Options{Path: cfg.bufferPath(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	st := buf.Stats()
	stored, recs := countBuffered(b, buf)
	buf.Close()
	if stored < want {
		b.Errorf("buffer holds %d samples, want at least %d", stored, want)
	}

	rs := rss
	first := rs[0].rss
	lo, hi := first, first
	var loA, hiA = rs[0].anon, rs[0].anon
	var series, anon []string
	for _, m := range rs {
		lo, hi = min(lo, m.rss), max(hi, m.rss)
		loA, hiA = min(loA, m.anon), max(hiA, m.anon)
		series = append(series, fmt.Sprintf("%.1f", toMiB(m.rss)))
		anon = append(anon, fmt.Sprintf("%.1f", toMiB(m.anon)))
	}
	b.ReportMetric(float64(stored), "samples-buffered")
	b.ReportMetric(toMiB(first), "RSS-first-MiB")
	b.ReportMetric(toMiB(lo), "RSS-min-MiB")
	b.ReportMetric(toMiB(hi), "RSS-max-MiB")
	b.ReportMetric(toMiB(hi-lo), "RSS-spread-MiB")
	b.ReportMetric(toMiB(hiA-loA), "anon-spread-MiB")
	b.ReportMetric(toMiB(hwm), "HWM-MiB")
	b.ReportMetric(100*(cpu1-cpu0).Seconds()/t1.Sub(t0).Seconds(), "%core")
	b.Logf("%d samples in %d records (%.1f MB accounted, file %.1f MB) buffered in %v; every second, RSS (MiB): %s; of it anonymous: %s; HWM %.1f MiB; %d GCs, live heap ≤ %.0f MiB, goal ≤ %.0f MiB",
		stored, recs, float64(st.Bytes)/1e6, float64(st.FileBytes)/1e6, t1.Sub(t0).Round(time.Second), strings.Join(series, " "),
		strings.Join(anon, " "), toMiB(hwm), gcs, live, goal)
}

// countBuffered decodes every record in buf and counts their samples.
func countBuffered(tb testing.TB, buf *buffer.Buffer) (samples, records int) {
	tb.Helper()
	var after uint64
	var r record.Record
	store := scan.NewStore(buf)
	for {
		recs, err := buf.Peek(after, 1000, 8<<20)
		if err != nil {
			tb.Fatal(err)
		}
		if len(recs) == 0 {
			return samples, records
		}
		for _, rec := range recs {
			if err := record.Decode(rec.Data, &r, store); err != nil {
				tb.Fatalf("record %d: %v", rec.Seq, err)
			}
			samples += len(r.Samples)
			records++
		}
		after = recs[len(recs)-1].Seq
	}
}

// BenchmarkLoadConfig measures Load of one device with a tag map of n
// tags: time and bytes allocated per tag, which stay flat when loading is
// linear in the tag map's size.
func BenchmarkLoadConfig(b *testing.B) {
	for _, n := range []int{500, 1000, 2000} {
		b.Run(fmt.Sprintf("tags=%d", n), func(b *testing.B) {
			path := benchConfig{dir: b.TempDir(), servers: []string{"tcp://127.0.0.1:1"}, plcs: []string{"tcp://127.0.0.1:2"}, tags: n, poll: time.Second}.write(b)
			b.ReportAllocs()
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			for b.Loop() {
				if _, err := config.Load(path); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/tag")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N*n), "B/tag")
		})
	}
}

// simHelperEnv makes the test binary a simulator process instead: it
// serves that many simulated PLCs of benchTags holding registers, prints
// their URLs on one line, then serves "set <start> <count> <base>" lines
// from stdin (registers start..start+count-1 of every PLC := base+i),
// answering "ok" to each. BenchmarkScanAllocs keeps the simulators out of
// its process so that process-wide allocation counts are the agent's.
const simHelperEnv = "EDGEAGENT_BENCH_SIM_HELPER"

func init() {
	if n, err := strconv.Atoi(os.Getenv(simHelperEnv)); err == nil && n > 0 {
		os.Exit(simHelper(n, os.Stdin, os.Stdout))
	}
}

func simHelper(n int, in io.Reader, out io.Writer) int {
	sims := make([]*modbustest.Server, n)
	urls := make([]string, n)
	for i := range sims {
		s, err := modbustest.NewServer("127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer s.Close()
		sims[i], urls[i] = s, s.URL()
	}
	fmt.Fprintln(out, strings.Join(urls, " "))
	regs := make([]uint16, benchTags)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var start, count, base int
		if _, err := fmt.Sscanf(sc.Text(), "set %d %d %d", &start, &count, &base); err != nil || start+count > len(regs) {
			fmt.Fprintln(os.Stderr, "bad command:", sc.Text())
			return 1
		}
		for j := range count {
			regs[j] = uint16(base + j)
		}
		for _, s := range sims {
			s.SetHolding(uint16(start), regs[:count]...)
		}
		fmt.Fprintln(out, "ok")
	}
	return 0
}

// simProc is a simHelper process.
type simProc struct {
	tb   testing.TB
	in   io.WriteCloser
	out  *bufio.Reader
	urls []string
}

func startSimHelper(tb testing.TB, n int) *simProc {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", simHelperEnv, n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { in.Close(); cmd.Wait() })
	p := &simProc{tb: tb, in: in, out: bufio.NewReader(out)}
	line, err := p.out.ReadString('\n')
	if err != nil {
		tb.Fatalf("simulator helper: %v", err)
	}
	p.urls = strings.Fields(line)
	return p
}

func (p *simProc) set(start, count, base int) {
	if _, err := fmt.Fprintf(p.in, "set %d %d %d\n", start, count, base); err != nil {
		p.tb.Fatal(err)
	}
	if l, err := p.out.ReadString('\n'); err != nil || l != "ok\n" {
		p.tb.Fatalf("simulator helper answered %q, %v", l, err)
	}
}

// scanRig runs the agent in this process against the simulators, with
// scans every scanPoll, for measuring what one tick of scans costs.
type scanRig struct {
	a       *Agent
	devices int
}

// scanPoll is the rig's poll interval: short, so a benchmark needs few
// seconds, and long enough for 10 scans, their publish, receipt and delete
// to finish well within half of it on a slow machine.
const scanPoll = 250 * time.Millisecond

func newScanRig(b *testing.B, broker string, plcs []string) *scanRig {
	b.Helper()
	cfg := benchConfig{dir: b.TempDir(), servers: []string{broker}, plcs: plcs, tags: benchTags, poll: scanPoll}
	c, err := config.Load(cfg.write(b))
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(c, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	r := &scanRig{a: a, devices: len(plcs)}
	deadline := time.Now().Add(20 * time.Second)
	for a.Stats().Published < uint64(1+len(plcs)) { // NBIRTH and the DBIRTHs
		if time.Now().After(deadline) {
			b.Fatalf("no births within 20s: %+v", a.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

// midTick waits until halfway between two scans: the last tick's scans
// are stored, published and proven, the next has not begun.
func (r *scanRig) midTick() {
	now := time.Now()
	next := now.Truncate(scanPoll).Add(scanPoll / 2)
	if !next.After(now) {
		next = next.Add(scanPoll)
	}
	time.Sleep(time.Until(next))
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScanAllocs measures 1,000-tag device scans along the whole
// path, with the agent running in this process as it does on a gateway:
// Modbus read (8 requests) → engineering units and report by exception →
// record encoding → durable append (fsync) → Sparkplug DDATA publish → QoS
// 1 receipt → delete (fsync). One op is one poll tick of every device
// (scans every 250 ms); allocs/scan, B/scan and cpu-µs/scan are per device
// scan: every allocation the process makes in the tick (the PLC simulators
// run in a helper process, Mosquitto in its own), and the process's
// user+system CPU, idle loops included. devices=1 pays a commit, a receipt
// and a delete per scan; with devices=10 scanning together they share
// them. changed=N tags of each device change between scans (1000: all,
// 100: typical, 0: an idle scan that reads and publishes nothing).
//
// `make bench` runs it with -benchtime 1x: one tick after 20 warm-up ticks.
// For stable figures: go test -run '^$' -bench ScanAllocs -benchtime 100x ./agent/
func BenchmarkScanAllocs(b *testing.B) {
	broker := testutil.Mosquitto(b)
	sim := startSimHelper(b, benchDevices)
	for _, sc := range []struct{ devices, changed int }{
		{1, benchTags},
		{benchDevices, benchTags},
		{benchDevices, benchTags / 10},
		{benchDevices, 0},
	} {
		b.Run(fmt.Sprintf("devices=%d/changed=%d", sc.devices, sc.changed), func(b *testing.B) {
			r := newScanRig(b, broker.URL(), sim.urls[:sc.devices])
			gen := 0
			change := func() {
				gen++
				if sc.changed > 0 {
					sim.set((gen*sc.changed)%benchTags, sc.changed, gen*31)
				}
			}
			for range 20 {
				r.midTick()
				change()
			}
			r.midTick()
			var allocs, bytes uint64
			var cpu time.Duration
			var ms0, ms1 runtime.MemStats
			samples0 := r.a.Stats().Samples
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				change()
				runtime.ReadMemStats(&ms0)
				c0 := processCPU()
				b.StartTimer()
				r.midTick()
				b.StopTimer()
				cpu += processCPU() - c0
				runtime.ReadMemStats(&ms1)
				allocs += ms1.Mallocs - ms0.Mallocs
				bytes += ms1.TotalAlloc - ms0.TotalAlloc
				b.StartTimer()
			}
			b.StopTimer()
			samples := int(r.a.Stats().Samples - samples0)
			scans := float64(b.N * sc.devices)
			b.ReportMetric(float64(allocs)/scans, "allocs/scan")
			b.ReportMetric(float64(bytes)/scans, "B/scan")
			b.ReportMetric(float64(cpu.Microseconds())/scans, "cpu-µs/scan")
			b.ReportMetric(float64(samples)/scans, "samples/scan")
		})
	}
}
