package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// envChildConfig makes the test binary run as an agent process instead of
// running tests: crash tests SIGKILL it, benchmarks measure its CPU and RSS.
const envChildConfig = "EDGEAGENT_TEST_AGENT_CONFIG"

func TestMain(m *testing.M) {
	if cfgPath := os.Getenv(envChildConfig); cfgPath != "" {
		os.Exit(runChildAgent(cfgPath))
	}
	os.Exit(m.Run())
}

func runChildAgent(path string) int {
	cfg, err := Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child agent:", err)
		return 2
	}
	lvl := slog.LevelWarn
	switch os.Getenv("EDGEAGENT_TEST_LOG") {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	a, err := New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child agent:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child agent:", err)
		return 1
	}
	return 0
}

// childAgent is an agent running in its own process.
type childAgent struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startChildAgent runs the agent with the configuration in file as a
// separate process (this test binary, re-executed), with env (KEY=value)
// added to its environment.
func startChildAgent(t testing.TB, file string, env ...string) *childAgent {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envChildConfig+"="+file), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &childAgent{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(c.kill)
	return c
}

// kill sends SIGKILL and waits: no NDEATH, no flush, no clean close.
func (c *childAgent) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// stop asks for a graceful stop and waits up to 15 s.
func (c *childAgent) stop(t testing.TB) {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		t.Error("child agent did not stop on SIGTERM")
		c.kill()
	}
}

// pid is the child's process id.
func (c *childAgent) pid() int { return c.cmd.Process.Pid }
