package modbus

import (
	"os"
	"strings"
	"testing"

	mb "github.com/simonvetter/modbus"

	"github.com/edgeagent/edgeagent/drivers"
)

func TestExampleConfig(t *testing.T) {
	src, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(ConfigFromYAML(t, string(src)))
	if err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	if d.id != "press-02" || d.set.ep.url != "tcp://10.0.0.5:502" || d.set.unitID != 1 || d.set.lim.maxGap != 4 {
		t.Errorf("settings = %+v", d.set)
	}
	if got := len(d.Tags()); got != 9 {
		t.Errorf("%d tags, want 9", got)
	}
	// holding 20..31 merge with max_gap 4 (26..29 unread); 40..47 is 8 away.
	want := []string{"holding registers 20..31", "holding registers 40..47", "input registers 0..3", "coils 5..5", "discrete inputs 0..0"}
	var got []string
	for _, r := range d.Plan() {
		got = append(got, r.String())
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("plan\n got %q\nwant %q", got, want)
	}
	if s := d.specs[1]; s.f.Order != CDAB || s.f.Type != drivers.Float32 {
		t.Errorf("temperature spec = %+v", s)
	}
	if s := d.specs[5]; s.f.Bit != 3 || s.f.Type != drivers.Bool {
		t.Errorf("door_open spec = %+v", s)
	}
	if tg := d.Tags()[0]; !tg.Scaled() || tg.Unit() != "bar" || tg.Name != "hydraulics/pressure" {
		t.Errorf("common keys not decoded: %+v", tg)
	} else if sc, _ := tg.Scale(); sc != 0.1 {
		t.Errorf("scale = %v", sc)
	}
}

func TestRegistered(t *testing.T) {
	f, err := drivers.Lookup("modbus")
	if err != nil {
		t.Fatal(err)
	}
	d, err := f(ConfigFromYAML(t, "url: tcp://x\ntags: [{name: a, table: holding, address: 0, type: uint16}]"))
	if err != nil || d == nil {
		t.Fatalf("factory: %v, %v", d, err)
	}
	d, err = f(ConfigFromYAML(t, "tags: []"))
	if err == nil || d != nil {
		t.Fatalf("bad config: got %v (a typed nil?), %v", d, err)
	}
}

func TestURLs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want endpoint
		err  string
	}{
		{in: "tcp://10.0.0.5:502", want: endpoint{scheme: "tcp", url: "tcp://10.0.0.5:502"}},
		{in: "tcp://plc", want: endpoint{scheme: "tcp", url: "tcp://plc:502"}},
		{in: "tcp://[fe80::1]", want: endpoint{scheme: "tcp", url: "tcp://[fe80::1]:502"}},
		{in: "udp://plc:1502", want: endpoint{scheme: "udp", url: "udp://plc:1502"}},
		{in: "tcp+tls://plc", want: endpoint{scheme: "tcp+tls", url: "tcp+tls://plc:802"}},
		{in: "rtuovertcp://gw:4001?baud=9600", want: endpoint{scheme: "rtuovertcp", url: "rtuovertcp://gw:4001", speed: 9600}},
		{in: "rtuoverudp://gw:4001", want: endpoint{scheme: "rtuoverudp", url: "rtuoverudp://gw:4001"}},
		{in: "rtu:///dev/ttyUSB0", want: endpoint{scheme: "rtu", url: "rtu:///dev/ttyUSB0"}},
		{in: "rtu:///dev/ttyUSB0?baud=19200&parity=E&data_bits=8&stop_bits=1",
			want: endpoint{scheme: "rtu", url: "rtu:///dev/ttyUSB0", speed: 19200, parity: mb.PARITY_EVEN, data: 8, stop: 1}},
		{in: "rtu://COM3?parity=odd", want: endpoint{scheme: "rtu", url: "rtu://COM3", parity: mb.PARITY_ODD}},
		{in: "http://plc:502", err: `scheme "http" is not one of tcp, tcp+tls`},
		{in: "10.0.0.5:502", err: `"10.0.0.5:502"`},
		{in: "plc", err: "scheme is missing"},
		{in: "tcp://:502", err: "host is missing"},
		{in: "tcp://plc:0", err: `port "0" is not in 1..65535`},
		{in: "tcp://plc:502/x", err: `unexpected path "/x"`},
		{in: "tcp://plc:502?baud=9600", err: "unexpected query"},
		{in: "rtuovertcp://gw", err: "missing port"},
		{in: "rtuovertcp://gw:4001?parity=E", err: `unknown setting "parity" (want baud)`},
		{in: "rtu://", err: "serial device is missing"},
		{in: "rtu:///dev/ttyS0?baud=fast", err: `baud "fast"`},
		{in: "rtu:///dev/ttyS0?parity=X", err: `parity "X" is not one of N, E, O`},
		{in: "rtu:///dev/ttyS0?stop_bits=3", err: `stop_bits "3" is not 1 or 2`},
		{in: "rtu:///dev/ttyS0?data_bits=9", err: `data_bits "9" is not in 5..8`},
		{in: "rtu:///dev/ttyS0?speed=9600", err: `unknown setting "speed"`},
	} {
		got, err := parseURL(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parseURL(%q) error = %v, want %q", c.in, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("parseURL(%q): %v", c.in, err)
		case c.err == "" && got != c.want:
			t.Errorf("parseURL(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestDeviceDefaults(t *testing.T) {
	d, err := New(ConfigFromYAML(t, "url: tcp://plc\ntags: [{name: a, table: holding, address: 0, type: uint16}]"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (limits{maxGap: 0, maxRegisters: 125, maxBits: 2000}); d.set.lim != want || d.set.unitID != 1 {
		t.Errorf("defaults = %+v unit %d", d.set.lim, d.set.unitID)
	}
	d, err = New(ConfigFromYAML(t, "url: tcp://plc\nunit_id: 0\ntags: [{name: a, table: holding, address: 0, type: uint16}]"))
	if err != nil || d.set.unitID != 0 {
		t.Fatalf("unit_id 0 on tcp: %v", err)
	}
}

// TestConfigErrors checks that each mistake is caught and named.
func TestConfigErrors(t *testing.T) {
	const ok = "{name: ok, table: holding, address: 0, type: uint16}"
	for _, c := range []struct {
		name, device, tags, err string
	}{
		{"no url", "", ok, "url: is required"},
		{"unknown key", "url: tcp://plc\nurl2: x", ok, "url2"},
		{"bad scheme", "url: modbus://plc", ok, `scheme "modbus" is not one of`},
		{"unit range", "url: tcp://plc\nunit_id: 256", ok, "unit_id: 256 is not in 0..255"},
		{"unit negative", "url: tcp://plc\nunit_id: -1", ok, "unit_id: -1 is not in 0..255"},
		{"unit 0 serial", "url: rtu:///dev/ttyS0\nunit_id: 0", ok, "unit_id: 0 is the broadcast address"},
		{"gap", "url: tcp://plc\nmax_gap: -1", ok, "max_gap: -1 is negative"},
		{"regs high", "url: tcp://plc\nmax_registers: 126", ok, "max_registers: 126 is not in 1..125"},
		{"regs zero", "url: tcp://plc\nmax_registers: 0", ok, "max_registers: 0 is not in 1..125"},
		{"bits", "url: tcp://plc\nmax_bits: 2001", ok, "max_bits: 2001 is not in 1..2000"},
		{"tls missing", "url: tcp+tls://plc", ok, "tls: cert_file, key_file and ca_file are required"},
		{"tls on tcp", "url: tcp://plc\ntls: {cert_file: a, key_file: b, ca_file: c}", ok, "tls: is only for tcp+tls"},
		{"no tags", "url: tcp://plc", "", "tags: no tags configured"},

		{"unknown tag key", "url: tcp://plc", "{name: a, table: holding, address: 0, type: uint16, adress: 1}", "adress"},
		{"bad table", "url: tcp://plc", "{name: pressure, table: holdin, address: 0, type: float32}",
			`tags[0] "pressure".table: "holdin" is not one of holding, input, coil, discrete`},
		{"no table", "url: tcp://plc", "{name: a, address: 0, type: uint16}", `tags[0] "a".table: is required`},
		{"no address", "url: tcp://plc", "{name: a, table: holding, type: uint16}", `tags[0] "a".address: is required`},
		{"address range", "url: tcp://plc", "{name: a, table: holding, address: 65536, type: uint16}", `tags[0] "a".address: 65536 is not in 0..65535`},
		{"address negative", "url: tcp://plc", "{name: a, table: holding, address: -1, type: uint16}", `tags[0] "a".address: -1 is not in 0..65535`},
		{"overflow", "url: tcp://plc", "{name: a, table: holding, address: 65534, type: float64}", `tags[0] "a".address: 65534 with 4 registers runs past 65535`},
		{"no type", "url: tcp://plc", "{name: a, table: holding, address: 0}", `tags[0] "a".type: is required`},
		{"bad type", "url: tcp://plc", "{name: a, table: holding, address: 0, type: float16}", `float16`},
		{"unsupported type", "url: tcp://plc", "{name: a, table: holding, address: 0, type: int8}", `tags[0] "a".type: int8 is not supported by modbus`},
		{"coil float", "url: tcp://plc", "{name: a, table: coil, address: 0, type: float32}", `tags[0] "a".type: float32 is not possible in table coil`},
		{"discrete int", "url: tcp://plc", "{name: a, table: discrete, address: 0, type: uint16}", `tags[0] "a".type: uint16 is not possible in table discrete`},
		{"writable input", "url: tcp://plc", "{name: a, table: input, address: 0, type: uint16, writable: true}", `tags[0] "a".writable: is not possible for table input`},
		{"writable discrete", "url: tcp://plc", "{name: a, table: discrete, address: 0, type: bool, writable: true}", `tags[0] "a".writable: is not possible for table discrete`},
		{"byte order", "url: tcp://plc", "{name: a, table: holding, address: 0, type: float32, byte_order: ABDC}", `tags[0] "a".byte_order: "ABDC" is not one of ABCD, BADC, CDAB, DCBA`},
		{"bit on int", "url: tcp://plc", "{name: a, table: holding, address: 0, type: uint16, bit: 1}", `tags[0] "a".bit: is only for bool tags in holding or input registers`},
		{"bit on coil", "url: tcp://plc", "{name: a, table: coil, address: 0, type: bool, bit: 1}", `tags[0] "a".bit: is only for bool`},
		{"bit range", "url: tcp://plc", "{name: a, table: holding, address: 0, type: bool, bit: 16}", `tags[0] "a".bit: 16 is not in 0..15`},
		{"string no length", "url: tcp://plc", "{name: a, table: holding, address: 0, type: string}", `tags[0] "a".length: (in registers, 2 characters each) is required`},
		{"length on int", "url: tcp://plc", "{name: a, table: holding, address: 0, type: uint16, length: 2}", `tags[0] "a".length: is only for type string`},
		{"length big", "url: tcp://plc", "{name: a, table: holding, address: 0, type: string, length: 126}", `tags[0] "a".length: 126 is not in 1..125`},
		{"length negative", "url: tcp://plc", "{name: a, table: holding, address: 0, type: string, length: -2}", `tags[0] "a".length: -2 is not in 1..125`},
		{"min read-only", "url: tcp://plc", "{name: sp, table: holding, address: 0, type: uint16, min: 0, max: 100}", `tags[0] "sp".min: is only for writable tags`},
		{"max on a coil", "url: tcp://plc", "{name: run, table: coil, address: 0, type: bool, writable: true, max: 1}", `tags[0] "run".max: applies to numbers, not bool`},
		{"min above max", "url: tcp://plc", "{name: sp, table: holding, address: 0, type: int16, scale: 0.1, writable: true, min: 120, max: 100}", `tags[0] "sp".min: 120 is above max 100`},
		{"writable string big", "url: tcp://plc", "{name: a, table: holding, address: 0, type: string, length: 124, writable: true}", `tags[0] "a".length: 124 of a writable string exceeds 123`},
		{"wider than max_registers", "url: tcp://plc\nmax_registers: 2", "{name: a, table: holding, address: 0, type: float64}", `tags[0] "a".type: float64 needs 4 registers, more than max_registers 2`},
		{"empty name", "url: tcp://plc", "{table: holding, address: 0, type: uint16}", "tags[0].name: tag name is empty"},
		{"reserved name", "url: tcp://plc", "{name: bdSeq, table: holding, address: 0, type: uint16}", "tags[0] \"bdSeq\".name: tag name \"bdSeq\" is reserved"},
		{"duplicate", "url: tcp://plc", ok + ", " + ok, `tags[1] "ok".name: "ok" is also the name of tags[0]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := c.device
			if c.tags != "" {
				src += "\ntags: [" + c.tags + "]"
			}
			_, err := New(ConfigFromYAML(t, src))
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("error = %v\nwant it to contain %q", err, c.err)
			}
		})
	}
}

// TestConfigErrorsAll checks that every bad tag is reported, not just the first.
func TestConfigErrorsAll(t *testing.T) {
	_, err := New(ConfigFromYAML(t, `url: tcp://plc
tags:
  - {name: a, table: holdin, address: 0, type: uint16}
  - {name: b, table: holding, address: 0, type: uint16}
  - {name: c, table: coil, address: 0, type: int32}`))
	if err == nil || !strings.Contains(err.Error(), `tags[0] "a"`) || !strings.Contains(err.Error(), `tags[2] "c"`) || strings.Contains(err.Error(), `tags[1] "b"`) {
		t.Errorf("error = %v", err)
	}
}

// A writable tag's min and max reach the Tag, in engineering units.
func TestTagLimits(t *testing.T) {
	d, err := New(ConfigFromYAML(t, "url: tcp://plc\ntags: [{name: sp, table: holding, address: 0, type: int16, scale: 0.1, writable: true, min: -10, max: 85.5}]"))
	if err != nil {
		t.Fatal(err)
	}
	tag := d.Tags()[0]
	lo, okLo := tag.Min()
	hi, okHi := tag.Max()
	if !okLo || !okHi || lo != -10 || hi != 85.5 {
		t.Errorf("limits = %v %v, %v %v; want -10 and 85.5", lo, okLo, hi, okHi)
	}
}
