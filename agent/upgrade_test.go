package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// The fixture in testdata/buffer-v2 is a buffer file written by the release
// before the core was reshaped (record format version 2): three PLCs, each
// with eight tags of seven types, a scaled tag, a tag whose register range
// the PLC refuses (bad quality), one PLC going offline and back. records.json
// lists what it holds, decoded by that release. Gateways are upgraded with a
// backlog on disk: every later release must replay it.

type fixtureSample struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Value   string `json:"value"`
	Time    int64  `json:"time"`
	Quality string `json:"quality"`
}

type fixtureRecord struct {
	Seq     uint64          `json:"seq"`
	Kind    string          `json:"kind"`
	Device  string          `json:"device"`
	Time    int64           `json:"time"`
	Samples []fixtureSample `json:"samples"`
}

// fixtureTags are the fixture's tags, as they were configured.
const fixtureTags = `      - {name: Line1/Press/pressure, table: holding, address: 0, type: float32}
      - {name: Line1/Press/temperature, table: input, address: 0, type: int16, scale: 0.1, offset: -40}
      - {name: Line1/Press/strokes, table: holding, address: 2, type: uint32, byte_order: CDAB}
      - {name: Line1/Press/running, table: coil, address: 0, type: bool}
      - {name: Line1/Press/recipe, table: holding, address: 10, type: string, length: 4}
      - {name: Line1/Press/batch, table: holding, address: 20, type: uint64}
      - {name: Line1/Press/setpoint, table: holding, address: 30, type: float64}
      - {name: Line1/Press/faulty, table: holding, address: 40, type: int32}
`

func TestReplayBufferOfPreviousRelease(t *testing.T) {
	raw, err := os.ReadFile("testdata/buffer-v2/records.json")
	if err != nil {
		t.Fatal(err)
	}
	var recs []fixtureRecord
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatal(err)
	}
	// Every sample of the backlog must arrive once as history. Offline
	// events carry none; an online event's snapshot is data like a scan's.
	want := map[string]int{}
	total := 0
	for _, r := range recs {
		for _, s := range r.Samples {
			want[fixtureKey(r.Device, s)]++
			total++
		}
	}

	dir := t.TempDir()
	data, err := os.ReadFile("testdata/buffer-v2/buffer.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "buffer.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	// The PLCs are gone (a closed port): what reaches the broker is the
	// backlog alone.
	dead := fmt.Sprintf("tcp://127.0.0.1:%d", testutil.FreePort(t))
	devs := ""
	for i := 1; i <= 3; i++ {
		devs += fmt.Sprintf("  - id: plc%d\n    driver: modbus\n    url: %s\n    poll: 200ms\n    timeout: 300ms\n    tags:\n%s", i, dead, fixtureTags)
	}
	a, stop := runAgent(t, fmt.Sprintf(`node: {group_id: plant, edge_node_id: edge1}
mqtt:
  servers: [%s]
  keepalive: 2s
  reconnect_min: 100ms
  reconnect_max: 100ms
state_dir: %s
devices:
%s`, broker.URL(), dir, devs))
	deadline := time.Now().Add(20 * time.Second)
	for a.Stats().Buffer.Records > 0 || a.Stats().HistoricalSamples < uint64(total) {
		if time.Now().After(deadline) {
			t.Fatalf("backlog not replayed in 20s: %+v", a.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	obs.WaitFor(0, 10*time.Second, "NDEATH", testutil.Is(sparkplug.NDEATH, ""))

	got := map[string]int{}
	aliases := map[uint64]sparkplug.Metric{} // from the DBIRTHs
	for _, m := range obs.Msgs() {
		if m.Payload == nil || m.Topic.Node != "edge1" {
			continue
		}
		switch m.Topic.Type {
		case sparkplug.DBIRTH:
			for _, x := range m.Payload.Metrics {
				aliases[x.Alias] = x
			}
		case sparkplug.DDATA:
			for _, x := range m.Payload.Metrics {
				b, ok := aliases[x.Alias]
				if !ok {
					t.Errorf("%s: alias %d was not born", m.Raw, x.Alias)
					continue
				}
				if !x.Historical {
					t.Errorf("%s: %s is not marked historical", m.Raw, b.Name)
					continue
				}
				if err := x.Resolve(b.Type); err != nil {
					t.Errorf("%s: %s: %v", m.Raw, b.Name, err)
					continue
				}
				q := "good"
				for _, p := range x.Properties {
					if p.Key == sparkplug.PropertyQuality && p.Int == sparkplug.QualityBad {
						q = "bad"
					}
				}
				got[m.Topic.Device+"|"+b.Name+"|"+metricValue(&x, q)+"|"+fmt.Sprint(x.Timestamp)+"|"+q]++
			}
		}
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("sample %s arrived %d times, want %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if want[k] == 0 {
			t.Errorf("sample %s arrived %d times but is not in the backlog", k, n)
		}
	}
}

// fixtureKey names a sample as the broker should show it.
func fixtureKey(device string, s fixtureSample) string {
	v := s.Value
	if s.Quality == "bad" {
		v = "null"
	}
	return device + "|" + s.Name + "|" + v + "|" + fmt.Sprint(s.Time) + "|" + s.Quality
}

// metricValue formats a metric's value as the fixture lists values.
func metricValue(m *sparkplug.Metric, quality string) string {
	if m.Null || quality == "bad" {
		return "null"
	}
	s := m.ValueString()
	if m.Type == sparkplug.TypeDouble || m.Type == sparkplug.TypeFloat {
		s = strings.TrimSuffix(s, ".0")
	}
	return s
}
