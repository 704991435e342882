package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers/opcua"
	"github.com/edgeagent/edgeagent/drivers/opcua/opcuatest"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// The tag map edgeagent browse prints for the simulator validates and
// runs: the agent births every browsed variable of the simulator and
// publishes its changes.
func TestBrowseValidatesAndRuns(t *testing.T) {
	sim, err := opcuatest.NewServer(opcuatest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	tags := filepath.Join(dir, "press.yaml")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"browse", "-endpoint", sim.URL(), "-root", "nsu=" + sim.NamespaceURI() + ";s=Press", "-o", tags, "-state-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("browse exited %d: %s", code, stderr.String())
	}
	t.Log(stderr.String())
	m, _ := os.ReadFile(tags)
	for _, want := range []string{`name: "Setpoint"`, "writable: true", "type: uint32", "nsu=" + sim.NamespaceURI()} {
		if !strings.Contains(string(m), want) {
			t.Errorf("tag map lacks %q:\n%s", want, m)
		}
	}
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	file := filepath.Join(dir, "config.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`node: {group_id: plant, edge_node_id: edge1}
mqtt: {servers: [%s]}
state_dir: %s
devices:
  - {id: press, driver: opcua, endpoint: %s, publishing_interval: 100ms, tag_map: press.yaml}
`, broker.URL(), dir, sim.URL())), 0o600)
	stdout.Reset()
	if code := run(context.Background(), []string{"validate", "-c", file}, &stdout, &stderr); code != 0 {
		t.Fatalf("validate exited %d: %s", code, stderr.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "-c", file}, &bytes.Buffer{}, &bytes.Buffer{}) }()
	defer func() { cancel(); <-done }()
	b := obs.WaitFor(0, 20*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "press"))
	birth := obs.Msgs()[b].Payload
	if len(birth.Metrics) != 5 {
		t.Errorf("DBIRTH has %d metrics, want the 5 variables of Press", len(birth.Metrics))
	}
	var counter sparkplug.Metric
	for _, x := range birth.Metrics {
		if x.Name == "Counter" {
			counter = x
		}
	}
	sim.Set("Counter", uint32(5))
	obs.WaitFor(b, 10*time.Second, "Counter 5", func(m testutil.Msg) bool {
		if m.Topic.Type != sparkplug.DDATA || m.Payload == nil {
			return false
		}
		for _, x := range m.Payload.Metrics {
			if x.Alias == counter.Alias && x.Resolve(sparkplug.TypeUInt32) == nil && x.Int == 5 {
				return true
			}
		}
		return false
	})
}

// opcua-cert makes the client certificate once and prints its path and
// thumbprint; run again, it prints the same.
func TestOPCUACert(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`node: {group_id: plant, edge_node_id: edge1}
mqtt: {servers: [tcp://127.0.0.1:1883]}
state_dir: %s
devices:
  - id: oven
    driver: opcua
    endpoint: opc.tcp://10.0.0.9:4840
    security: {policy: Basic256Sha256, mode: SignAndEncrypt, trust_any_server_certificate: true}
    tags: [{name: t, node: "ns=2;s=T"}]
`, dir)), 0o600)
	var outs [2]string
	for i := range outs {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"opcua-cert", "-c", file}, &stdout, &stderr); code != 0 {
			t.Fatalf("opcua-cert exited %d: %s", code, stderr.String())
		}
		outs[i] = stdout.String()
	}
	c, err := opcua.LoadClientCert(dir, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{c.CertFile, c.Thumbprint(), "used by             oven"} {
		if !strings.Contains(outs[0], want) {
			t.Errorf("output lacks %q:\n%s", want, outs[0])
		}
	}
	if outs[0] != outs[1] {
		t.Errorf("a second run printed something else:\n%s\n%s", outs[0], outs[1])
	}
}
