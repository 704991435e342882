package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// loadBoth loads a configuration with tag lists decoded in batches (of
// two tags, so batches have neighbours) and from the whole tree, and
// fails if the two differ in anything: tags, fingerprints, errors.
func loadBoth(t testing.TB, dir, src string) (*Config, error) {
	t.Helper()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	defer func(b int) { batchItems, streaming = b, true }(batchItems)
	batchItems = 2
	a, errA := Load(file)
	streaming = false
	b, errB := Load(file)
	if fmt.Sprint(errA) != fmt.Sprint(errB) {
		t.Fatalf("errors differ\nbatches: %v\nwhole:   %v\ninput:\n%s", errA, errB, src)
	}
	if (a == nil) != (b == nil) {
		t.Fatalf("one way loaded, the other did not")
	}
	if a == nil {
		return nil, errA
	}
	for i := range a.Devices {
		da, db := a.Devices[i], b.Devices[i]
		if da.Fingerprint != db.Fingerprint {
			t.Errorf("device %s: fingerprints differ", da.ID)
		}
		if !reflect.DeepEqual(da.Instance.Tags(), db.Instance.Tags()) {
			t.Errorf("device %s: tags differ\nbatches: %+v\nwhole:   %+v", da.ID, da.Instance.Tags(), db.Instance.Tags())
		}
	}
	return a, nil
}

const streamHead = "node: {group_id: g, edge_node_id: e}\nmqtt: {servers: [tcp://127.0.0.1:1883]}\ndevices:\n"

// Tag lists written every way YAML allows decode the same in batches as
// from the whole tree; where batches cannot be cut (an alias to an
// anchor in another batch, a quoted name running over lines less
// indented than its item) the loader falls back to the tree.
func TestStreamedEqualsWhole(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"flow items": `  - id: p
    driver: modbus
    url: tcp://127.0.0.1:502
    tags:
      - {name: a, table: holding, address: 0, type: uint16}
      - {name: b, table: holding, address: 1, type: uint16}
      - {name: c, table: coil, address: 2, type: bool}
`,
		"block items, comments, blank lines, CRLF": strings.ReplaceAll(`  - id: p
    driver: modbus
    url: tcp://127.0.0.1:502
    tags:   # the press
    # first
    - name: a
      table: holding

      address: 0 # zero
      type: uint16
    - name: b
      # inside
      table: holding
      address: 1
      type: uint16
      description: |
        two lines
        - not an item
    - name: c
      table: holding
      address: 2
      type: uint16
`, "\n", "\r\n"),
		"anchors within and across batches": `  - id: p
    driver: modbus
    url: tcp://127.0.0.1:502
    tags:
      - &reg {name: a, table: holding, address: 0, type: uint16, unit: bar}
      - {<<: *reg, name: b, address: 1}
      - {<<: *reg, name: c, address: 2}
`,
		"a quoted name over lines": `  - id: p
    driver: modbus
    url: tcp://127.0.0.1:502
    tags:
      - {name: "a
  - b", table: holding, address: 0, type: uint16}
      - {name: c, table: holding, address: 2, type: uint16}
`,
		"two devices and a second list in the first item": `  - tags:
      - {name: a, table: holding, address: 0, type: uint16}
      - {name: b, table: holding, address: 1, type: uint16}
    id: p
    driver: modbus
    url: tcp://127.0.0.1:502
  - id: q
    driver: modbus
    url: tcp://127.0.0.1:503
    tags:
    - {name: a, table: holding, address: 0, type: uint16}
`,
		"mistakes in several batches": `  - id: p
    driver: modbus
    url: tcp://127.0.0.1:502
    tags:
      - {name: a, table: holding, address: 0, type: uint16}
      - {name: b, table: holdin, address: 1, type: uint16}
      - {name: c, table: holding, adress: 2, type: uint16}
      - {name: d, table: holding, address: 3, type: uint17}
      - {name: a, table: holding, address: 4, type: uint16}
`,
	}
	for name, devs := range cases {
		t.Run(name, func(t *testing.T) { loadBoth(t, dir, streamHead+devs) })
	}
}

// Tag-map files decode in batches too.
func TestStreamedTagMap(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("tags:\n")
	for i := range 9 {
		fmt.Fprintf(&b, "  - {name: t%d, table: holding, address: %d, type: uint16}\n", i, i)
	}
	b.WriteString("  - {name: t9, table: holding, address: 70000, type: uint16}\n")
	os.WriteFile(filepath.Join(dir, "tags.yaml"), []byte(b.String()), 0o600)
	_, err := loadBoth(t, dir, streamHead+"  - {id: p, driver: modbus, url: tcp://127.0.0.1:502, tag_map: tags.yaml}\n  - {id: q, driver: modbus, url: tcp://127.0.0.1:503, tag_map: tags.yaml}\n")
	if err == nil || !strings.Contains(err.Error(), "tags.yaml:11:41: tags[9] \"t9\".address: 70000 is not in 0..65535") {
		t.Fatalf("err = %v", err)
	}
}

// Any input: batches and the whole tree agree.
func FuzzStreamedEqualsWhole(f *testing.F) {
	f.Add("    tags:\n      - {name: a, table: holding, address: 0, type: uint16}\n      - {name: b, table: holding, address: 1, type: uint16}\n")
	f.Add("    tags:\n    - name: a\n      table: holding\n      address: 0\n      type: uint16\n    -   name: b\n        table: coil\n        address: 1\n        type: bool\n")
	f.Add("    tags: # x\n      - &a {name: a, table: holding, address: 0, type: uint16}\n      - *a\n")
	f.Add("    tags:\n      - {name: 'x\n  y', table: holding, address: 0, type: uint16}\n      -\n        name: z\n")
	f.Fuzz(func(t *testing.T, tags string) {
		if strings.ContainsAny(tags, "\t") || len(tags) > 4000 {
			return
		}
		loadBoth(t, t.TempDir(), streamHead+"  - id: p\n    driver: modbus\n    url: tcp://127.0.0.1:502\n"+tags)
	})
}
