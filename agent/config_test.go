package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/edgeagent/edgeagent/drivers/modbus"
)

const goodConfig = `
node: {group_id: g1, edge_node_id: e1}
mqtt:
  servers: [tcp://127.0.0.1:1883]
devices:
  - id: plc1
    driver: modbus
    url: tcp://127.0.0.1:502
    tags:
      - {name: a, table: holding, address: 0, type: uint16}
      - {name: b, table: coil, address: 1, type: bool, writable: true}
`

func TestLoadDefaults(t *testing.T) {
	cfg, err := LoadBytes("good.yaml", []byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.MQTT.Keepalive.D(); got != DefaultKeepalive {
		t.Errorf("keepalive = %v", got)
	}
	if cfg.Buffer.Mode != "write_ahead" || cfg.Buffer.MaxBytes != DefaultMaxBytes || cfg.Buffer.ReplayRate != DefaultReplayRate {
		t.Errorf("buffer defaults = %+v", cfg.Buffer)
	}
	if cfg.Buffer.Path != filepath.Join(DefaultStateDir, "buffer.db") {
		t.Errorf("buffer path = %q", cfg.Buffer.Path)
	}
	if cfg.MQTT.ClientID != "edgeagent-g1-e1" || cfg.MQTT.ReceiptTopic != "edgeagent/receipt/g1/e1" {
		t.Errorf("client id %q, receipt topic %q", cfg.MQTT.ClientID, cfg.MQTT.ReceiptTopic)
	}
	if len(cfg.Devices) != 1 || cfg.Devices[0].Poll != DefaultPoll || cfg.Devices[0].Timeout != DefaultTimeout {
		t.Errorf("devices = %+v", cfg.Devices)
	}
	if !cfg.Node.UseAliases() {
		t.Error("aliases should default to on")
	}
	if n, err := TagCount(cfg.Devices[0]); err != nil || n != 2 {
		t.Errorf("TagCount = %d, %v", n, err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown top key", "nodes: {}\n" + goodConfig, []string{"bad.yaml:1:1", `unknown field "nodes"`}},
		{"unknown mqtt key", strings.Replace(goodConfig, "servers:", "server: x\n  servers:", 1), []string{"bad.yaml:4:", `unknown field "server"`}},
		{"group id with slash", strings.Replace(goodConfig, "group_id: g1", "group_id: g/1", 1), []string{"bad.yaml:2:", "node.group_id", "g/1"}},
		{"edge id with plus", strings.Replace(goodConfig, "edge_node_id: e1", "edge_node_id: e+1", 1), []string{"node.edge_node_id"}},
		{"missing group", strings.Replace(goodConfig, "group_id: g1, ", "", 1), []string{"node.group_id"}},
		{"no servers", strings.Replace(goodConfig, "servers: [tcp://127.0.0.1:1883]", "servers: []", 1), []string{"bad.yaml:4:", "mqtt.servers"}},
		{"bad scheme", strings.Replace(goodConfig, "tcp://127.0.0.1:1883", "http://x:1", 1), []string{"mqtt.servers[0]", `"http"`}},
		{"bad duration", strings.Replace(goodConfig, "servers:", "keepalive: 5 parsecs\n  servers:", 1), []string{"bad.yaml:4:14", "5 parsecs", "not a duration"}},
		{"bad size", goodConfig + "buffer: {max_bytes: lots}\n", []string{"bad.yaml:12:21", "lots"}},
		{"bad qos", strings.Replace(goodConfig, "servers:", "data_qos: 2\n  servers:", 1), []string{"mqtt.data_qos", "0 or 1"}},
		{"bad mode", goodConfig + "buffer: {mode: yolo}\n", []string{"buffer.mode", "yolo"}},
		{"no devices", strings.Split(goodConfig, "devices:")[0], []string{"devices", "at least one device"}},
		{"device id with hash", strings.Replace(goodConfig, "id: plc1", "id: plc#1", 1), []string{"bad.yaml:6:", "plc#1"}},
		{"device without id", strings.Replace(goodConfig, "- id: plc1\n    driver", "- driver", 1), []string{"devices[0].id", "required"}},
		{"duplicate device", goodConfig + "  - {id: PLC1, driver: modbus, url: tcp://h:502, tags: [{name: x, table: coil, address: 0, type: bool}]}\n",
			[]string{"bad.yaml:12:", "duplicates devices[0]"}},
		{"unknown driver", strings.Replace(goodConfig, "driver: modbus", "driver: profibus", 1), []string{"bad.yaml:7:", "profibus", "modbus"}},
		{"unknown device key", strings.Replace(goodConfig, "url:", "ur1: x\n    url:", 1), []string{"bad.yaml:8:", `unknown field "ur1"`}},
		{"unknown tag key", strings.Replace(goodConfig, "address: 0,", "adress: 0,", 1), []string{"bad.yaml:10:", `unknown field "adress"`}},
		{"bad tag type", strings.Replace(goodConfig, "type: uint16", "type: uint17", 1), []string{"bad.yaml:10:", "uint17"}},
		{"address overflow", strings.Replace(goodConfig, "address: 0,", "address: 70000,", 1), []string{"bad.yaml:10:", "70000"}},
		{"duplicate tag", strings.Replace(goodConfig, "name: b,", "name: a,", 1), []string{`"a"`, "duplicate"}},
		{"tag name with hash", strings.Replace(goodConfig, "name: b,", "name: b#,", 1), []string{"b#"}},
		{"no tags", strings.Split(goodConfig, "    tags:")[0], []string{"devices[0] (plc1).tags", "required"}},
		{"poll too fast", strings.Replace(goodConfig, "driver: modbus", "driver: modbus\n    poll: 1ms", 1), []string{"poll", "10ms"}},
		{"tags and tag_map", strings.Replace(goodConfig, "driver: modbus", "driver: modbus\n    tag_map: x.yaml", 1), []string{"tag_map", "not both"}},
		{"missing tag map", strings.Replace(strings.Split(goodConfig, "    tags:")[0], "driver: modbus", "driver: modbus\n    tag_map: nothere.yaml", 1), []string{"bad.yaml:8:", "nothere.yaml"}},
		{"not yaml", "node: [\n", []string{"bad.yaml:"}},
		{"top is a list", "- a\n- b\n", []string{"bad.yaml:1:1", "mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadBytes("bad.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error for:\n%s", tt.yaml)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestTagMapErrorsNameTheTagMapFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tags.yaml"), []byte("tags:\n  - {name: a, table: holding, address: 0, type: uint16}\n  - {name: b, table: holding, adress: 1, type: uint16}\n"), 0o644)
	main := strings.Replace(strings.Split(goodConfig, "    tags:")[0], "driver: modbus", "driver: modbus\n    tag_map: tags.yaml", 1)
	os.WriteFile(filepath.Join(dir, "main.yaml"), []byte(main), 0o644)
	_, err := Load(filepath.Join(dir, "main.yaml"))
	if err == nil || !strings.Contains(err.Error(), "tags.yaml:3:") || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("err = %v, want it to name tags.yaml:3 and the bad key", err)
	}
}

// Every configuration shipped in configs/ and packaging/ must load.
func TestShippedConfigsValidate(t *testing.T) {
	files, _ := filepath.Glob("../configs/*.yaml")
	files = append(files, "../packaging/config.yaml")
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range cfg.Devices {
				if _, err := TagCount(d); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"512MiB": 512 << 20, "64KiB": 64 << 10, "1GB": 1e9, "100": 100, "2 GiB": 2 << 30} {
		got, err := parseByteSize(in)
		if err != nil || got != want {
			t.Errorf("%q = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1MiB", "1TiB", "x", "99999999999GiB"} {
		if _, err := parseByteSize(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("node: {group_id: a}\n"))
	f.Add([]byte("devices: [{id: x, driver: modbus, tags: [{}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := LoadBytes("fuzz.yaml", data)
		if err == nil && (cfg.Node.GroupID == "" || len(cfg.Devices) == 0 || len(cfg.MQTT.Servers) == 0) {
			t.Fatalf("accepted an incomplete config: %+v", cfg)
		}
	})
}
