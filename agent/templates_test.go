package agent

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/drivers/modbus/modbustest"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

const pressTags = `tags:
  - {name: speed, table: holding, address: 0, type: uint16, unit: rpm}
  - {name: temp, table: holding, address: 1, type: int16, scale: 0.1, unit: "°C"}
  - {name: running, table: coil, address: 0, type: bool}
  - {name: setpoint, table: holding, address: 2, type: float32, writable: true}
`

// templateOf decodes the Template a metric carries; DATA omits the
// datatype, which the BIRTH gave.
func templateOf(t *testing.T, m sparkplug.Metric) *sparkplug.Template {
	t.Helper()
	if m.Type == sparkplug.TypeUnknown {
		if err := m.Resolve(sparkplug.TypeTemplate); err != nil {
			t.Fatalf("metric %q alias %d: %v", m.Name, m.Alias, err)
		}
	}
	if m.Type != sparkplug.TypeTemplate {
		t.Fatalf("metric %q is %s, want Template", m.Name, m.Type)
	}
	tp, err := sparkplug.DecodeTemplate(m.Bytes)
	if err != nil {
		t.Fatalf("metric %q: %v", m.Name, err)
	}
	return tp
}

// members maps a template's members by name to their value as text.
func members(tp *sparkplug.Template) map[string]string {
	out := map[string]string{}
	for _, m := range tp.Metrics {
		out[m.Name] = m.ValueString()
	}
	return out
}

// TestTemplates: with node.templates, the devices that share a tag-map
// file are instances of one Template: its definition in the NBIRTH, an
// instance with every member in each DBIRTH (values equal to each
// simulator's), the changed members in DDATA, a DCMD to a member written to
// the PLC, and a reload that changes the shared tag map re-births the node
// with the same bdSeq. Every payload also decodes in Eclipse Tahu's
// JavaScript decoder with the same member values.
func TestTemplates(t *testing.T) {
	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	sims := make([]*modbustest.Server, 3)
	for i := range sims {
		sims[i] = scSim(t)
	}
	press := func(s *modbustest.Server, speed uint16, temp int16, running bool, setpoint float32) {
		s.SetHolding(0, speed)
		s.SetInt16(modbus.Holding, 1, modbus.ABCD, temp)
		s.SetCoil(0, running)
		s.SetFloat32(modbus.Holding, 2, modbus.ABCD, setpoint)
	}
	press(sims[0], 1200, 215, true, 50)
	press(sims[1], 800, -35, false, 40)
	sims[2].SetHolding(0, 7)

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tags"), 0o755); err != nil {
		t.Fatal(err)
	}
	tagMap := filepath.Join(dir, "tags", "press.yaml")
	if err := os.WriteFile(tagMap, []byte(pressTags), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf(`node: {group_id: plant, edge_node_id: edge1, templates: true}
mqtt: {servers: [%s], keepalive: 2s, reconnect_min: 100ms, reconnect_max: 100ms}
state_dir: %s
devices:
  - {id: press-1, driver: modbus, url: %s, poll: 50ms, tag_map: tags/press.yaml}
  - {id: press-2, driver: modbus, url: %s, poll: 50ms, tag_map: tags/press.yaml}
  - id: mixer
    driver: modbus
    url: %s
    poll: 50ms
    tags: [{name: level, table: holding, address: 0, type: uint16}]
`, broker.URL(), filepath.Join(dir, "state"), sims[0].URL(), sims[1].URL(), sims[2].URL())
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	a, stop := runAgentFile(t, file, testLogger(t), nil)
	defer stop()

	nb := obs.WaitFor(0, 10*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
	db1 := obs.WaitFor(nb, 10*time.Second, "DBIRTH press-1", testutil.Is(sparkplug.DBIRTH, "press-1"))
	db2 := obs.WaitFor(nb, 10*time.Second, "DBIRTH press-2", testutil.Is(sparkplug.DBIRTH, "press-2"))
	dbm := obs.WaitFor(nb, 10*time.Second, "DBIRTH mixer", testutil.Is(sparkplug.DBIRTH, "mixer"))
	msgs := obs.Msgs()

	// The definition: every member, its type and unit, no values.
	def, ok := nodeMetricOf(msgs[nb].Payload, msgs[nb].Payload, "press")
	if !ok || !def.HasAlias {
		t.Fatalf("NBIRTH has no aliased metric \"press\": %+v", msgs[nb].Payload.Metrics)
	}
	dt := templateOf(t, def)
	if !dt.IsDefinition || dt.Ref != "" {
		t.Errorf("definition: is_definition %v, template_ref %q", dt.IsDefinition, dt.Ref)
	}
	wantTypes := map[string]sparkplug.DataType{"speed": sparkplug.TypeUInt16, "temp": sparkplug.TypeDouble, "running": sparkplug.TypeBoolean, "setpoint": sparkplug.TypeFloat}
	var names []string
	for _, m := range dt.Metrics {
		names = append(names, m.Name)
		if m.Type != wantTypes[m.Name] {
			t.Errorf("definition member %s is %s, want %s", m.Name, m.Type, wantTypes[m.Name])
		}
		if m.Name == "temp" && !slices.ContainsFunc(m.Properties, func(p sparkplug.Property) bool { return p.Key == "engUnit" && p.Str == "°C" }) {
			t.Errorf("definition member temp has no engUnit °C: %+v", m.Properties)
		}
	}
	if strings.Join(names, ",") != "speed,temp,running,setpoint" {
		t.Errorf("definition members %v", names)
	}

	// The instances: one metric each, every member with the simulator's value.
	instance := func(idx int, want map[string]string) sparkplug.Metric {
		t.Helper()
		p := msgs[idx].Payload
		if len(p.Metrics) != 1 || p.Metrics[0].Name != "press" || !p.Metrics[0].HasAlias {
			t.Fatalf("%s: want one aliased metric \"press\", got %+v", msgs[idx].Raw, p.Metrics)
		}
		tp := templateOf(t, p.Metrics[0])
		if tp.IsDefinition || tp.Ref != "press" {
			t.Errorf("%s: is_definition %v, template_ref %q", msgs[idx].Raw, tp.IsDefinition, tp.Ref)
		}
		if got := members(tp); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s members %v, want %v", msgs[idx].Raw, got, want)
		}
		return p.Metrics[0]
	}
	inst1 := instance(db1, map[string]string{"speed": "1200", "temp": "21.5", "running": "true", "setpoint": "50"})
	inst2 := instance(db2, map[string]string{"speed": "800", "temp": "-3.5", "running": "false", "setpoint": "40"})
	if inst1.Alias == inst2.Alias || inst1.Alias == def.Alias {
		t.Errorf("aliases: definition %d, press-1 %d, press-2 %d", def.Alias, inst1.Alias, inst2.Alias)
	}
	if m := metricsByName(msgs[dbm].Payload)["level"]; m.Type != sparkplug.TypeUInt16 || m.Int != 7 {
		t.Errorf("mixer (inline tags) DBIRTH level = %+v, want a plain UInt16 7", m)
	}

	// A change: DDATA with only the changed member.
	sims[1].SetHolding(0, 900)
	dd := obs.WaitFor(db2, 10*time.Second, "DDATA press-2", testutil.Is(sparkplug.DDATA, "press-2"))
	msgs = obs.Msgs()
	if p := msgs[dd].Payload; len(p.Metrics) != 1 || !p.Metrics[0].HasAlias || p.Metrics[0].Alias != inst2.Alias {
		t.Fatalf("DDATA press-2: want one metric by press-2's instance alias %d, got %+v", inst2.Alias, p.Metrics)
	}
	if got := members(templateOf(t, msgs[dd].Payload.Metrics[0])); fmt.Sprint(got) != "map[speed:900]" {
		t.Errorf("DDATA press-2 members %v, want only speed 900", got)
	}

	// The same payloads through Tahu's JavaScript decoder.
	tahuTemplates(t, []tahuCase{
		{msgs[nb].Bytes, nil, "press", map[string]string{"speed": "null", "temp": "null", "running": "null", "setpoint": "null"}},
		{msgs[db1].Bytes, nil, "press", map[string]string{"speed": "1200", "temp": "21.5", "running": "true", "setpoint": "50"}},
		{msgs[dd].Bytes, msgs[db2].Bytes, "", map[string]string{"speed": "900"}},
	})

	// A host writes a member: the DCMD carries an instance with it.
	cmd := sparkplug.Template{Ref: "press", Metrics: []sparkplug.Metric{{Name: "setpoint", Type: sparkplug.TypeFloat, Float: 55.5}}}
	dcmd := sparkplug.Topic{Group: "plant", Type: sparkplug.DCMD, Node: "edge1", Device: "press-1"}.String()
	scPublish(t, obs.Client(), dcmd, 0, false, sparkplug.AppendCommand(nil, scNowMs(), []sparkplug.Metric{
		{Alias: inst1.Alias, HasAlias: true, Type: sparkplug.TypeTemplate, Bytes: sparkplug.AppendTemplate(nil, &cmd)}}))
	select {
	case w := <-sims[0].Writes():
		if w.Table != modbus.Holding || w.Addr != 2 || len(w.Regs) != 2 || math.Float32frombits(uint32(w.Regs[0])<<16|uint32(w.Regs[1])) != 55.5 {
			t.Errorf("the DCMD wrote %+v, want setpoint 55.5 at holding 2", w)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the DCMD to press-1's setpoint never reached the PLC")
	}

	// A reload that changes the shared tag map: the definition changes,
	// so the node is re-born (same bdSeq) with it.
	bd := bdSeqOf(t, msgs[nb].Payload)
	from := obs.Len()
	if err := os.WriteFile(tagMap, []byte(pressTags+"  - {name: pressure, table: holding, address: 4, type: uint16, unit: bar}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	nb2 := obs.WaitFor(from, 10*time.Second, "NBIRTH after the tag map changed", testutil.Is(sparkplug.NBIRTH, ""))
	msgs = obs.Msgs()
	if got := bdSeqOf(t, msgs[nb2].Payload); got != bd {
		t.Errorf("NBIRTH after the reload: bdSeq %d, want %d (a node rebirth, not a new session)", got, bd)
	}
	def2, _ := nodeMetricOf(msgs[nb2].Payload, msgs[nb2].Payload, "press")
	if n := len(templateOf(t, def2).Metrics); n != 5 {
		t.Errorf("definition after the reload has %d members, want 5", n)
	}
	for _, dev := range []string{"press-1", "press-2"} {
		db := obs.WaitFor(nb2, 10*time.Second, "DBIRTH "+dev+" after the reload", testutil.Is(sparkplug.DBIRTH, dev))
		if got := members(templateOf(t, obs.Msgs()[db].Payload.Metrics[0])); got["pressure"] != "0" {
			t.Errorf("%s after the reload: members %v, want pressure 0", dev, got)
		}
	}
	stop()
	checkSeq(t, obs.Msgs())
}

// tahuCase is a payload for Tahu's decoder: birth, if set, gives DATA
// its datatypes; metric names the template metric ("" for the first).
type tahuCase struct {
	payload, birth []byte
	metric         string
	members        map[string]string
}

// tahuTemplates decodes payloads with npm sparkplug-payload and checks
// the members of their template metric.
func tahuTemplates(t *testing.T, cases []tahuCase) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH; make test installs it (scripts/install-test-deps.sh)")
	}
	script := filepath.Join("..", "scripts", "sparkplug-crosscheck")
	if _, err := os.Stat(filepath.Join(script, "node_modules", "sparkplug-payload")); err != nil {
		t.Fatalf("%s/node_modules/sparkplug-payload is missing; run make test, which installs it", script)
	}
	dir := t.TempDir()
	var args []string
	for i, c := range cases {
		p := filepath.Join(dir, fmt.Sprintf("p%d.bin", i))
		if err := os.WriteFile(p, c.payload, 0o600); err != nil {
			t.Fatal(err)
		}
		if c.birth != nil {
			b := filepath.Join(dir, fmt.Sprintf("b%d.bin", i))
			if err := os.WriteFile(b, c.birth, 0o600); err != nil {
				t.Fatal(err)
			}
			p += "=" + b
		}
		args = append(args, p)
	}
	out, err := exec.Command(node, append([]string{filepath.Join(script, "check.js")}, args...)...).Output()
	if err != nil {
		t.Fatalf("check.js: %v\n%s", err, out)
	}
	var res []struct {
		Payload struct {
			Metrics []struct {
				Name  string
				Type  string
				Value json.RawMessage
			}
		}
		Error string
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("check.js output: %v\n%s", err, out)
	}
	for i, c := range cases {
		r := res[i]
		if r.Error != "" {
			t.Errorf("case %d: tahu: %s", i, r.Error)
			continue
		}
		found := false
		for _, m := range r.Payload.Metrics {
			if c.metric != "" && m.Name != c.metric || m.Type != "Template" {
				continue
			}
			found = true
			var tv struct {
				IsDefinition bool
				TemplateRef  string
				Metrics      []struct {
					Name  string
					Value any
				}
			}
			if err := json.Unmarshal(m.Value, &tv); err != nil {
				t.Errorf("case %d: tahu's template value %s: %v", i, m.Value, err)
				break
			}
			got := map[string]string{}
			for _, mm := range tv.Metrics {
				v := fmt.Sprint(mm.Value)
				if mm.Value == nil {
					v = "null"
				}
				got[mm.Name] = v
			}
			if fmt.Sprint(got) != fmt.Sprint(c.members) {
				t.Errorf("case %d: tahu decodes members %v, want %v", i, got, c.members)
			}
			break
		}
		if !found {
			t.Errorf("case %d: tahu found no Template metric %q in %s", i, c.metric, out)
		}
	}
}
