package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "github.com/edgeagent/edgeagent/drivers/modbus"
	_ "github.com/edgeagent/edgeagent/drivers/opcua"
)

var update = flag.Bool("update", false, "rewrite the want.txt of every error case from what Load says")

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
	if n := len(cfg.Devices[0].Instance.Tags()); n != 2 {
		t.Errorf("%d tags, want 2", n)
	}
}

// Every directory under testdata/errors is a configuration with mistakes
// (config.yaml, and any tag-map files it names) and want.txt, the messages
// Load must give, every one of them, in order. go test -update rewrites
// want.txt; read the diff before committing it.
func TestLoadErrorCases(t *testing.T) {
	dirs, err := filepath.Glob("testdata/errors/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	goType := regexp.MustCompile(`\b(u?int(8|16|32|64)?|float(32|64)|string|bool|map\[|\[\]|interface|struct|\*[a-z]+\.[A-Z])`)
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			_, err := Load(filepath.Join(dir, "config.yaml"))
			if err == nil {
				t.Fatal("loaded without an error")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is not Errors: %v", err)
			}
			var lines []string
			for _, e := range es {
				lines = append(lines, strings.ReplaceAll(e.Error(), dir+string(filepath.Separator), ""))
				// Types the user writes (type: uint16) may appear; the
				// Go types of the model never do.
				if m := goType.FindString(strings.ReplaceAll(e.Msg, "type: ", "")); m != "" && !strings.Contains(e.Msg, "type") {
					t.Errorf("%s: message names a Go type (%q)", e, m)
				}
				if e.Line == 0 && e.Msg != "the file is empty" && e.Msg != "no such file" {
					t.Errorf("%s: no line", e)
				}
			}
			got := strings.Join(lines, "\n") + "\n"
			want := filepath.Join(dir, "want.txt")
			if *update {
				if err := os.WriteFile(want, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			w, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(w) {
				t.Errorf("messages\n%s\nwant\n%s", got, w)
			}
		})
	}
}

// Valid YAML is accepted however it is written.
func TestYAMLForms(t *testing.T) {
	for name, src := range map[string]string{
		"flow mapping with flow list of URLs": `node: {group_id: g1, edge_node_id: e1}
mqtt: {servers: [tcp://central:1883, "ssl://backup:8883"], keepalive: 5s}
devices: [{id: plc1, driver: modbus, url: "tcp://127.0.0.1:502", tags: [{name: a, table: holding, address: 0, type: uint16}]}]
`,
		"block scalars, quotes and comments": `# the plant's edge node
node:
  group_id: 'g1'   # quoted
  edge_node_id: "e1"
mqtt:
  servers: [tcp://central:1883]
devices:
  - id: plc1
    driver: modbus
    url: tcp://127.0.0.1:502
    tags:
    - name: a
      table: holding
      address: 0x10
      type: uint16
      description: >
        folded text
        over two lines
`,
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := LoadBytes("forms.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Devices) != 1 || len(cfg.Devices[0].Instance.Tags()) < 1 {
				t.Fatalf("devices = %+v", cfg.Devices)
			}
		})
	}
}

// Anchors may live anywhere the model allows a value, and merge keys
// combine them with explicit keys.
func TestMergeKeys(t *testing.T) {
	src := `node: {group_id: g1, edge_node_id: e1}
mqtt: {servers: [tcp://central:1883]}
devices:
  - &plc
    id: plc1
    driver: modbus
    poll: 500ms
    url: tcp://127.0.0.1:502
    tags:
      - &reg {name: a, table: holding, address: 0, type: uint16, unit: bar}
      - {<<: *reg, name: b, address: 1, type: int16}
  - <<: *plc
    id: plc2
    url: tcp://127.0.0.1:503
`
	cfg, err := LoadBytes("merge.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Devices) != 2 {
		t.Fatalf("%d devices", len(cfg.Devices))
	}
	d2 := cfg.Devices[1]
	if d2.ID != "plc2" || d2.Poll.String() != "500ms" {
		t.Errorf("plc2 = %+v", d2)
	}
	tags := d2.Instance.Tags()
	if len(tags) != 2 || tags[1].Name != "b" || tags[1].Unit() != "bar" || tags[1].Type.String() != "int16" {
		t.Errorf("plc2 tags = %+v", tags)
	}
}

func TestFingerprint(t *testing.T) {
	load := func(src string) [32]byte {
		t.Helper()
		cfg, err := LoadBytes("f.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Devices[0].Fingerprint
	}
	base := load(goodConfig)
	same := map[string]string{
		"comment":       strings.Replace(goodConfig, "    driver: modbus", "    # the press\n    driver: modbus", 1),
		"key order":     strings.Replace(goodConfig, "{name: a, table: holding, address: 0, type: uint16}", "{type: uint16, address: 0, name: a, table: holding}", 1),
		"block style":   strings.Replace(goodConfig, "      - {name: a, table: holding, address: 0, type: uint16}", "      - name: a\n        table: holding\n        address: 0\n        type: uint16", 1),
		"other section": strings.Replace(goodConfig, "servers: [tcp://127.0.0.1:1883]", "servers: [tcp://10.0.0.1:1883]", 1),
	}
	for name, src := range same {
		if load(src) != base {
			t.Errorf("%s changed the fingerprint", name)
		}
	}
	differ := map[string]string{
		"tag added":    goodConfig + "      - {name: c, table: holding, address: 5, type: uint16}\n",
		"tag type":     strings.Replace(goodConfig, "type: uint16", "type: int16", 1),
		"device key":   strings.Replace(goodConfig, "url: tcp://127.0.0.1:502", "url: tcp://127.0.0.1:503", 1),
		"poll":         strings.Replace(goodConfig, "driver: modbus", "driver: modbus\n    poll: 2s", 1),
		"writable off": strings.Replace(goodConfig, ", writable: true", "", 1),
	}
	for name, src := range differ {
		if load(src) == base {
			t.Errorf("%s kept the fingerprint", name)
		}
	}
}

func TestTagMapFingerprint(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgFile, []byte(strings.Split(goodConfig, "    tags:")[0]+"    tag_map: tags.yaml\n"), 0o644)
	write := func(tags string) [32]byte {
		os.WriteFile(filepath.Join(dir, "tags.yaml"), []byte("tags:\n"+tags), 0o644)
		cfg, err := Load(cfgFile)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Devices[0].Fingerprint
	}
	a := write("  - {name: a, table: holding, address: 0, type: uint16}\n")
	b := write("  - {name: a, table: holding, address: 0, type: uint16}   # same\n")
	c := write("  - {name: a, table: holding, address: 1, type: uint16}\n")
	if a != b || a == c {
		t.Errorf("tag map fingerprints: comment changed it %v, address kept it %v", a != b, a == c)
	}
}

// Every configuration shipped in configs/ and packaging/ must load.
func TestShippedConfigsValidate(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	files = append(files, "../../packaging/config.yaml")
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatal(err)
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
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("devices: [{<<: [{id: x}, {id: y}], driver: modbus}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := LoadBytes("fuzz.yaml", data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not a list of placed errors: %v", err)
			}
			return
		}
		if cfg.Node.GroupID == "" || len(cfg.Devices) == 0 || len(cfg.MQTT.Servers) == 0 {
			t.Fatalf("accepted an incomplete config: %+v", cfg)
		}
	})
}

// With node.templates, the devices that share a tag-map file are instances
// of the template named after it; two files of the same name are refused
// where the second is named.
func TestTemplateNames(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
		os.WriteFile(filepath.Join(dir, d, "press.yaml"), []byte("tags:\n  - {name: speed, table: holding, address: 0, type: uint16}\n"), 0o644)
	}
	load := func(second string) (*Config, error) {
		file := filepath.Join(dir, "config.yaml")
		os.WriteFile(file, []byte(`node: {group_id: plant, edge_node_id: edge1, templates: true}
mqtt: {servers: [tcp://localhost:1883]}
devices:
  - {id: p1, driver: modbus, url: tcp://127.0.0.1:502, tag_map: a/press.yaml}
  - {id: p2, driver: modbus, url: tcp://127.0.0.1:503, tag_map: `+second+`}
  - {id: m1, driver: modbus, url: tcp://127.0.0.1:504, tags: [{name: level, table: holding, address: 0, type: uint16}]}
`), 0o644)
		return Load(file)
	}
	cfg, err := load("a/press.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{cfg.Devices[0].Template, cfg.Devices[1].Template, cfg.Devices[2].Template}; got[0] != "press" || got[1] != "press" || got[2] != "" {
		t.Errorf("templates %q, want press, press and none", got)
	}
	_, err = load("b/press.yaml")
	if err == nil || !strings.Contains(err.Error(), "config.yaml:5:") || !strings.Contains(err.Error(), "devices[1].tag_map") || !strings.Contains(err.Error(), `both define template "press"`) {
		t.Errorf("two tag maps named press.yaml: %v", err)
	}
	t.Log(err)
}
