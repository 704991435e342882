package agent

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers/modbus/modbustest"
	"github.com/edgeagent/edgeagent/internal/testutil"
)

// BenchmarkFlashWrites measures what the buffer costs the gateway's flash
// per hour, for a typical site: 5 PLCs × 50 tags polled every second, 10
// of each PLC's tags changing per scan, the link healthy. The agent runs
// as its own process. Two figures: the bytes bbolt commits to the file
// (edgeagent_buffer_written_bytes_total: pages plus a meta page per
// commit), which is what the flash receives, and the kernel's write_bytes
// accounting of the process, which on filesystems that book a whole
// block per fdatasync (64 KiB per 4 KiB write on this VM's ext4) is far
// higher. Run it with -benchtime 1x; it takes about a minute.
func BenchmarkFlashWrites(b *testing.B) {
	for _, mode := range []string{"write_ahead", "outage"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				buf, kernel := flashWritesPerHour(b, mode)
				b.ReportMetric(buf/1e6, "MB/hour")
				b.ReportMetric(kernel/1e6, "kernel-MB/hour")
			}
		})
	}
}

func flashWritesPerHour(b *testing.B, mode string) (buffer, kernel float64) {
	broker := testutil.Mosquitto(b)
	dir := b.TempDir()
	var devs strings.Builder
	var sims []*modbustest.Server
	for d := range 5 {
		sim, err := modbustest.NewServer("127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sim.Close() })
		sims = append(sims, sim)
		fmt.Fprintf(&devs, "  - id: plc%d\n    driver: modbus\n    url: %s\n    poll: 1s\n    tags:\n", d, sim.URL())
		for t := range 50 {
			fmt.Fprintf(&devs, "      - {name: Line/Station%d/value%d, table: holding, address: %d, type: uint16}\n", d, t, t)
		}
	}
	health := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(b))
	cfg := fmt.Sprintf("node: {group_id: plant, edge_node_id: edge1}\nmqtt: {servers: [\"%s\"]}\nstate_dir: %s\nbuffer: {mode: %s}\nhealth: {listen: \"%s\"}\ndevices:\n%s",
		broker.URL(), filepath.Join(dir, "state"), mode, health, devs.String())
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // 10 of 50 tags per PLC change every second
		for v := uint16(1); ; v++ {
			for _, s := range sims {
				for t := range 10 {
					s.SetHolding(uint16(t*5), v)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	c := startChildAgent(b, file)
	time.Sleep(5 * time.Second) // births, first compaction, page cache settled
	w0, m0 := writeBytes(b, c.pid()), scrape(b, health, "edgeagent_buffer_written_bytes_total")
	const span = 30 * time.Second
	time.Sleep(span)
	w1, m1 := writeBytes(b, c.pid()), scrape(b, health, "edgeagent_buffer_written_bytes_total")
	c.stop(b)
	perHour := float64(time.Hour / span)
	return (m1 - m0) * perHour, float64(w1-w0) * perHour
}

// scrape reads one unlabelled metric from the agent's /metrics.
func scrape(b *testing.B, addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
	}
	b.Fatalf("%s not in /metrics", name)
	return 0
}

// writeBytes reads the bytes a process caused to be written to storage.
func writeBytes(b *testing.B, pid int) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no write_bytes in /proc/pid/io")
	return 0
}
