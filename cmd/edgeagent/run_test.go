package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/agent"
	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/drivertest"
)

// notifySocket listens where the agent's sd_notify messages go, as
// systemd would; there is no systemd as PID 1 here.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock"), msgs: make(chan string, 1024)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	return n
}

// expect waits for a message starting with prefix, skipping watchdog
// pings, and returns it.
func (n *notifySocket) expect(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-n.msgs:
			if strings.HasPrefix(m, prefix) {
				return m
			}
			if m != "WATCHDOG=1" {
				t.Fatalf("got %q while waiting for %s", m, prefix)
			}
		case <-deadline:
			t.Fatalf("no %s within %v", prefix, timeout)
		}
	}
}

// pings counts watchdog pings over d, failing on any other message.
func (n *notifySocket) pings(t *testing.T, d time.Duration) int {
	t.Helper()
	count := 0
	deadline := time.After(d)
	for {
		select {
		case m := <-n.msgs:
			if m != "WATCHDOG=1" {
				t.Fatalf("unexpected %q", m)
			}
			count++
		case <-deadline:
			return count
		}
	}
}

// The notify protocol and the watchdog, against a socket of the test's
// own: READY once running; RELOADING then READY around a SIGHUP reload;
// watchdog pings all along while the broker and a PLC are unreachable
// (healthy states); no pings once a loop hangs; STOPPING on the way out.
func TestNotifyAndWatchdog(t *testing.T) {
	sock := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", sock.path)
	const watchdog = 4 * time.Second // pings every 1.33 s, a loop stalls after 2 s
	t.Setenv("WATCHDOG_USEC", fmt.Sprint(watchdog.Microseconds()))
	ok := drivertest.NewPLC("notify-ok")
	defer ok.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	write := func(extra string) {
		// The broker is unreachable (nothing listens on port 1): a dead
		// WAN. The PLC "notify-gone" does not exist: a dead PLC.
		os.WriteFile(file, []byte(fmt.Sprintf(`node: {group_id: g, edge_node_id: e}
mqtt: {servers: [tcp://127.0.0.1:1], reconnect_min: 200ms, reconnect_max: 400ms}
state_dir: %s
devices:
  - {id: ok, driver: memory, plc: notify-ok, poll: 50ms, timeout: 200ms, tags: [{name: a, type: int32}]}
  - {id: gone, driver: memory, plc: notify-gone, poll: 50ms, timeout: 200ms, tags: [{name: a, type: int32}]}
%s`, dir, extra)), 0o600)
	}
	write("")
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, agent.NewLogger(os.Stderr, config.LogConfig{Level: "warn"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, a, agent.NewLogger(os.Stderr, config.LogConfig{Level: "warn"})) }()
	stopped := false
	defer func() {
		if !stopped {
			ok.SetHang(false)
			cancel()
			<-done
		}
	}()

	sock.expect(t, "READY=1", 5*time.Second)
	if n := sock.pings(t, 2*watchdog); n < 4 {
		t.Fatalf("%d watchdog pings in %v with a dead WAN and a dead PLC, want about 6", n, 2*watchdog)
	}

	write("  - {id: added, driver: memory, plc: notify-ok, tags: [{name: b, type: int32}]}\n")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	m := sock.expect(t, "RELOADING=1", 5*time.Second)
	if !strings.Contains(m, "\nMONOTONIC_USEC=") {
		t.Errorf("RELOADING without MONOTONIC_USEC: %q", m)
	}
	sock.expect(t, "READY=1", 5*time.Second)
	if got := a.Stats().Reloads[agent.ReloadApplied]; got != 1 {
		t.Errorf("%d reloads applied, want 1", got)
	}

	// A PLC whose driver hangs in a call, past every timeout.
	ok.Set("a", drivers.IntValue(drivers.Int32, 1), time.Now())
	ok.SetHang(true)
	sock.pings(t, watchdog/2+watchdog/6) // the pings before the stall is seen
	if n := sock.pings(t, watchdog); n != 0 {
		t.Errorf("%d watchdog pings while a loop hangs, want none", n)
	}
	ok.SetHang(false)
	cancel()
	sock.expect(t, "STOPPING=1", 15*time.Second)
	stopped = true
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// systemctl reload must fail on an invalid file: the unit validates before
// it signals.
func TestUnitValidatesBeforeReload(t *testing.T) {
	b, err := os.ReadFile("../../packaging/edgeagent.service")
	if err != nil {
		t.Fatal(err)
	}
	var reload []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecReload="); ok {
			reload = append(reload, v)
		}
	}
	if len(reload) != 2 || !strings.Contains(reload[0], "edgeagent validate -c /etc/edgeagent/config.yaml") || !strings.Contains(reload[1], "kill -HUP $MAINPID") {
		t.Errorf("ExecReload lines = %q, want validate then kill -HUP", reload)
	}
	if !strings.Contains(string(b), "Type=notify\n") || !strings.Contains(string(b), "WatchdogSec=") {
		t.Error("the unit must be Type=notify with a watchdog")
	}
	if code := run(context.Background(), []string{"validate", "-c", "testdata/invalid.yaml"}, new(strings.Builder), new(strings.Builder)); code == 0 {
		t.Error("validate of an invalid file exited 0: ExecReload would go on to signal")
	}
}
