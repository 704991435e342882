package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

func TestHealthAndMetrics(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	sim := newSim(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	runAgent(t, e2eConfig(broker.URL(), t.TempDir(), sim.URL(), "health: {listen: "+addr+"}"))
	obs.WaitFor(0, 10*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))

	get := func(path string) (int, string) {
		t.Helper()
		var err error
		for range 50 { // the listener starts with the agent
			var resp *http.Response
			if resp, err = http.Get("http://" + addr + path); err == nil {
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal(err)
		return 0, ""
	}
	var h struct {
		Alive         bool            `json:"alive"`
		Connected     bool            `json:"connected"`
		DevicesOnline map[string]bool `json:"devices_online"`
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		code, body := get(path)
		if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 || !h.Alive || !h.Connected || !h.DevicesOnline["plc1"] {
			t.Fatalf("%s = %d %s (%v)", path, code, body, err)
		}
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		"edgeagent_broker_connected 1",
		`edgeagent_device_online{device="plc1"} 1`,
		"edgeagent_published_messages_total ",
		`edgeagent_samples_dropped_total{reason="buffer_cap"} 0`,
		"edgeagent_buffer_records ",
		"process_resident_memory_bytes ",
		`edgeagent_reloads_total{result="invalid"} 0`,
		"edgeagent_alive 1",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
