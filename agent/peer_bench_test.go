package agent

// Telegraf as a peer for the process benchmarks: the same job as the
// agent's (the same simulated PLCs, registers, names and poll interval, to
// the same Mosquitto), measured in the same run with the same agentProc
// readings of /proc/<pid>, so that the figures can stand side by side.
//
// Telegraf is not built here: EDGEAGENT_BENCH_TELEGRAF names a binary that
// has the modbus input, the mqtt output and the influx serializer (a
// custom build: go build -tags custom,inputs.modbus,outputs.mqtt,serializers.influx
// ./cmd/telegraf). Unset, a benchmark skips the peer and reports the agent
// alone.
//
// The two jobs differ where Telegraf has no equivalent, and a reader
// should know it: Telegraf publishes every register every scan (influx
// line protocol, field names in every message) where the agent publishes
// changes only (Sparkplug B, names by alias); it keeps unsent metrics in
// memory where the agent appends each scan to its write-ahead buffer with
// fsync; and it sends no births, deaths or receipts.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeagent/edgeagent/drivers/modbus/modbustest"
	"github.com/edgeagent/edgeagent/internal/testutil"
)

// telegrafBinary returns the Telegraf binary named by
// EDGEAGENT_BENCH_TELEGRAF, or "" when there is none: the caller then
// skips the peer, it does not fail.
func telegrafBinary(tb testing.TB) string {
	tb.Helper()
	bin := os.Getenv("EDGEAGENT_BENCH_TELEGRAF")
	if bin == "" {
		return ""
	}
	// Set but wrong is a mistake to report at once, not a peer to skip
	// quietly or a failure half-way through a long benchmark.
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		tb.Fatalf("EDGEAGENT_BENCH_TELEGRAF=%s is not an executable file (%v)", bin, err)
	}
	return bin
}

// writeTelegrafConfig writes dir/telegraf.conf: for each PLC (device d of
// plcURLs) a modbus input reading holding registers 0..tags-1 of slave 1
// as uint16 fields named as the agent's benchmark names device d's tags,
// every poll; and one mqtt output publishing to broker. It returns the
// path.
//
// The registers are one request definition, which Telegraf splits into
// reads of at most 125 registers: 8 per scan for 1,000, as the agent
// does. Each scan of a PLC becomes one metric of tags fields, published as
// one MQTT message on bench/<plc>, QoS 1: as the agent's DDATA per device,
// which a QoS 1 receipt confirms.
func writeTelegrafConfig(tb testing.TB, dir, broker string, plcURLs []string, tags int, poll time.Duration) string {
	tb.Helper()
	// A batch holds a whole scan even if Telegraf made a metric of every
	// field; no jitter, so that it reads and writes when the agent would.
	// Only the output logs at debug level: one "Wrote batch" line per
	// flush shows in the log that data went out. The modbus input at debug
	// would log every register of every scan, a cost of its own.
	// skip_processors_after_aggregators only silences a warning of 1.37
	// about its default changing (there are neither here).
	batch := len(plcURLs) * tags
	var sb strings.Builder
	fmt.Fprintf(&sb, `[agent]
  interval = %q
  round_interval = true
  collection_jitter = "0s"
  flush_interval = %q
  flush_jitter = "0s"
  metric_batch_size = %d
  metric_buffer_limit = %d
  omit_hostname = true
  debug = false
  quiet = false
  skip_processors_after_aggregators = true

[[outputs.mqtt]]
  servers = [%q]
  topic = 'bench/{{ .Tag "name" }}'
  qos = 1
  keep_alive = 10
  client_id = "telegraf-bench"
  timeout = "5s"
  layout = "non-batch"
  data_format = "influx"
  log_level = "debug"
`, poll, poll, batch, 10*batch, broker)
	for d, u := range plcURLs {
		fmt.Fprintf(&sb, `
[[inputs.modbus]]
  name = "plc%02d"
  controller = %q
  timeout = "2s"
  configuration_type = "request"

  [[inputs.modbus.request]]
    slave_id = 1
    byte_order = "ABCD"
    register = "holding"
    fields = [
`, d, u)
		for i := range tags {
			fmt.Fprintf(&sb, "      { address=%d, name=%q, type=\"UINT16\" },\n", i, distinctTagName(d, i))
		}
		sb.WriteString("    ]\n")
	}
	path := filepath.Join(dir, "telegraf.conf")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// startTelegraf starts bin with config as startAgent starts the agent:
// its own process, output to telegraf.log beside config, gctrace on as
// for the agent (the same logging cost, and gcStats works), stopped with
// SIGTERM at cleanup. --strict-env-handling (the configuration has no
// variables) silences 1.37's warning about that default changing, so
// that any warning in the log is about the job.
func startTelegraf(tb testing.TB, bin, config string) *agentProc {
	tb.Helper()
	p := &agentProc{tb: tb, log: filepath.Join(filepath.Dir(config), "telegraf.log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		tb.Fatal(err)
	}
	p.cmd = exec.Command(bin, "--strict-env-handling", "--config", config)
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

// peerCostOnce is costOnce for Telegraf: the same simulators, changes and
// window, the same readings of its process. Start-up is from process start
// to the first message of every PLC at a subscriber; samples/s counts the
// fields of the messages that arrived in the window (every register of
// every scan: Telegraf publishes them whether they changed or not).
func peerCostOnce(b *testing.B, broker *testutil.Broker, sims []*modbustest.Server, urls []string, bin string, every time.Duration, frac float64, window time.Duration) {
	const poll = time.Second
	var msgs, fields atomic.Int64
	var seen sync.Map
	var plcsSeen atomic.Int64
	opts := mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID(fmt.Sprintf("bench-peer-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(false)
	sub := mqtt.NewClient(opts)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscriber connecting: %v", tok.Error())
	}
	defer sub.Disconnect(0)
	count := func(_ mqtt.Client, m mqtt.Message) {
		msgs.Add(1)
		// influx line protocol: measurement,tags fields timestamp; the
		// fields are comma-separated and names hold no commas here.
		if sp := bytes.IndexByte(m.Payload(), ' '); sp >= 0 {
			fields.Add(int64(bytes.Count(m.Payload()[sp:], []byte{','}) + 1))
		}
		if _, loaded := seen.LoadOrStore(m.Topic(), true); !loaded {
			plcsSeen.Add(1)
		}
	}
	if tok := sub.Subscribe("bench/#", 0, count); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscribing: %v", tok.Error())
	}

	dir := b.TempDir()
	p := startTelegraf(b, bin, writeTelegrafConfig(b, dir, broker.URL(), urls, benchTags, poll))
	deadline := time.Now().Add(3 * time.Minute)
	for plcsSeen.Load() < int64(len(urls)) {
		if p.exited() || time.Now().After(deadline) {
			b.Fatalf("Telegraf published for %d of %d PLCs; its log tail:\n%s", plcsSeen.Load(), len(urls), p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	startup := time.Since(p.started)
	stopChanges := benchChanger(sims, benchTags, every, frac)
	defer stopChanges()
	time.Sleep(5 * time.Second)

	t0, cpu0, req0, m0, f0 := time.Now(), p.cpu(), simRequests(sims), msgs.Load(), fields.Load()
	w := p.sampleRSS(t0, window)
	t1, cpu1, req1, m1, f1 := time.Now(), p.cpu(), simRequests(sims), msgs.Load(), fields.Load()
	m := p.mem()
	gcs, live, _ := p.gcStats(t0.Sub(p.started), t1.Sub(p.started))
	stopChanges()
	p.stop()

	wall := t1.Sub(t0)
	scans := float64(len(sims)) * wall.Seconds() / poll.Seconds()
	b.ReportMetric(100*(cpu1-cpu0).Seconds()/wall.Seconds(), "%core")
	b.ReportMetric(toMiB(w.mean), "RSS-MiB")
	b.ReportMetric(toMiB(w.anonMean), "anon-MiB")
	b.ReportMetric(toMiB(w.max), "RSS-max-MiB")
	b.ReportMetric(toMiB(m.hwm), "HWM-MiB")
	b.ReportMetric(startup.Seconds(), "s-startup")
	b.ReportMetric(float64(req1-req0)/scans, "req/scan")
	b.ReportMetric(float64(f1-f0)/wall.Seconds(), "samples/s")
	b.ReportMetric(float64(m1-m0)/wall.Seconds(), "msgs/s")
	b.ReportMetric(float64(gcs)/wall.Seconds(), "gc/s")
	b.ReportMetric(live, "heap-live-MiB")
	if m1 == m0 {
		b.Errorf("Telegraf published nothing in the window; its log tail:\n%s", p.tail())
	}
}
