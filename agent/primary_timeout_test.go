package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// A server where the primary host never reports is given up after
// primary_host_timeout, and the next server is tried.
func TestPrimaryHostTimeoutMovesOn(t *testing.T) {
	silent := testutil.Mosquitto(t)
	good := testutil.Mosquitto(t)
	obsGood := testutil.Observe(t, good.URL())
	// The host is online on the second server only.
	state := sparkplug.State{Online: true, Timestamp: uint64(time.Now().UnixMilli())}
	obsGood.Client().Publish("spBv1.0/STATE/scada", 1, true, state.JSON()).Wait()
	sim := newSim(t)
	cfg := e2eConfig(silent.URL()+", "+good.URL(), t.TempDir(), sim.URL(), "")
	cfg = replaceOnce(t, cfg, "  keepalive: 2s\n", "  keepalive: 2s\n  primary_host_id: scada\n  primary_host_timeout: 1s\n")
	runAgent(t, cfg)
	obsGood.WaitFor(0, 15*time.Second, "NBIRTH on the server where the host is online", testutil.Is(sparkplug.NBIRTH, ""))
	obsGood.WaitFor(0, 5*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	i := strings.Index(s, old)
	if i < 0 {
		t.Fatalf("%q not in config", old)
	}
	return s[:i] + new + s[i+len(old):]
}
