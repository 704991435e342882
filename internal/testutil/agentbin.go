package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var agentBin struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// AgentBinary builds cmd/edgeagent as `make build` does (static, no race
// detector), once per test process, and returns its path. Tests that kill
// the agent, or measure it, run this real binary: the same run() a
// gateway runs. Call RemoveAgentBinary from TestMain when done.
func AgentBinary(tb testing.TB) string {
	tb.Helper()
	agentBin.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			agentBin.err = err
			return
		}
		agentBin.dir, agentBin.err = os.MkdirTemp("", "edgeagent-test-bin-")
		if agentBin.err != nil {
			return
		}
		agentBin.path = filepath.Join(agentBin.dir, "edgeagent")
		cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags", "-s -w", "-o", agentBin.path, "github.com/edgeagent/edgeagent/cmd/edgeagent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		agentBin.out, agentBin.err = cmd.CombinedOutput()
	})
	if agentBin.err != nil {
		tb.Fatalf("building the agent: %v\n%s", agentBin.err, agentBin.out)
	}
	return agentBin.path
}

// RemoveAgentBinary deletes what AgentBinary built.
func RemoveAgentBinary() {
	if agentBin.dir != "" {
		os.RemoveAll(agentBin.dir)
	}
}
