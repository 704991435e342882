package agent

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	_ "github.com/edgeagent/edgeagent/drivers/modbus"
	_ "github.com/edgeagent/edgeagent/drivers/opcua"
	"github.com/edgeagent/edgeagent/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveAgentBinary()
	os.Exit(code)
}

// childAgent is the agent running as its own process: the edgeagent
// binary, started as systemd would (edgeagent run -c FILE).
type childAgent struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startChildAgent runs the agent with the configuration in file as a
// separate process, with env (KEY=value) added to its environment.
func startChildAgent(t testing.TB, file string, env ...string) *childAgent {
	t.Helper()
	cmd := exec.Command(testutil.AgentBinary(t), "run", "-c", file)
	cmd.Env = append(os.Environ(), env...)
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
