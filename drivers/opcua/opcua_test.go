package opcua_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/opcua"
	"github.com/edgeagent/edgeagent/drivers/opcua/opcuatest"
)

// newDriver builds a driver from a device written in YAML, as the agent
// would (id dev, state dir a temp dir).
func newDriver(t *testing.T, src string) drivers.Driver {
	t.Helper()
	cfg, err := config.DriverConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir = t.TempDir()
	cfg.Timeout = 5 * time.Second
	d, err := opcua.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

func sim(t *testing.T, opts opcuatest.Options) *opcuatest.Server {
	t.Helper()
	if opts.Secure && opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := opcuatest.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func connect(t *testing.T, d drivers.Driver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, d drivers.Driver) []drivers.Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := d.Read(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every builtin type a tag can take from its node: the type learned at
// connect and the value read, with tags written both with a namespace
// index and with the namespace URI.
func TestLearnedTypesAndValues(t *testing.T) {
	s := sim(t, opcuatest.Options{})
	cases := []struct {
		name, want string
		typ        drivers.Type
	}{
		{"Bool", "true", drivers.Bool},
		{"SByte", "-8", drivers.Int8},
		{"Byte", "200", drivers.Uint8},
		{"Int16", "-1600", drivers.Int16},
		{"UInt16", "16000", drivers.Uint16},
		{"Int32", "-320000", drivers.Int32},
		{"UInt32", "3200000", drivers.Uint32},
		{"Int64", "-64000000000", drivers.Int64},
		{"UInt64", "18000000000000000000", drivers.Uint64},
		{"Float", "3.25", drivers.Float32},
		{"Double", "2.718281828459045", drivers.Float64},
		{"String", `"hello, press 1"`, drivers.String},
		{"DateTime", "2024-01-02T03:04:05Z", drivers.DateTime},
		{"ByteString", "0xdeadbeef", drivers.Bytes},
		{"LocalizedText", `"Press 1"`, drivers.String},
		{"QualifiedName", `"2:Quality"`, drivers.String},
		{"Guid", `"72962B91-FA75-4AE6-8D28-B404DC7DAF63"`, drivers.String},
		{"NodeId", `"i=2253"`, drivers.String},
		{"Int32Array", "[1 -2 3]", drivers.ArrayOf(drivers.Int32)},
		{"DoubleArray", "[0.5 1.5 -2.5]", drivers.ArrayOf(drivers.Float64)},
		{"BooleanArray", "[true false true]", drivers.ArrayOf(drivers.Bool)},
		{"StringArray", `["a" "b" "c"]`, drivers.ArrayOf(drivers.String)},
		{"Enum", "0", drivers.Int32},
		{"Base", "1.5", drivers.Float64},
	}
	var tags strings.Builder
	for i, c := range cases {
		node := s.NodeID(c.name)
		if i%2 == 1 {
			node = fmt.Sprintf("nsu=%s;s=%s", s.NamespaceURI(), c.name)
		}
		fmt.Fprintf(&tags, "  - {name: %s, node: %q}\n", c.name, node)
	}
	d := newDriver(t, fmt.Sprintf("endpoint: %s\nmode: poll\ntags:\n%s", s.URL(), tags.String()))
	for _, tg := range d.Tags() {
		if tg.Type != drivers.TypeInvalid {
			t.Fatalf("tag %s typed %s before connecting", tg.Name, tg.Type)
		}
	}
	connect(t, d)
	got := read(t, d)
	for i, c := range cases {
		if tt := d.Tags()[i].Type; tt != c.typ {
			t.Errorf("%s: learned %s, want %s", c.name, tt, c.typ)
		}
		smp := got[i]
		if smp.Quality != drivers.QualityGood || smp.Value.String() != c.want || smp.Value.Type() != c.typ {
			t.Errorf("%s: read %v (%s, %v), want %s", c.name, smp.Value, smp.Value.Type(), smp.Quality, c.want)
		}
		if smp.Time == 0 || math.Abs(float64(time.Now().UnixMilli()-smp.Time)) > 3.6e6 {
			t.Errorf("%s: source time %d", c.name, smp.Time)
		}
	}
}

// A structure, which Sparkplug cannot carry, is refused at connect with
// the device's tag and node named; given a type, a missing node reads bad.
func TestUnsupportedAndMissingNodes(t *testing.T) {
	s := sim(t, opcuatest.Options{})
	d := newDriver(t, fmt.Sprintf("endpoint: %s\nmode: poll\ntags:\n  - {name: ok, node: %q}\n  - {name: recipe, node: %q}\n  - {name: gone, node: \"ns=2;s=NoSuchNode\"}\n",
		s.URL(), s.NodeID("Counter"), s.NodeID("Struct")))
	err := d.Connect(context.Background())
	if err == nil {
		t.Fatal("connected with a structure tag and an untyped missing node")
	}
	for _, want := range []string{`tag "recipe" (node ns=2;s=Struct)`, "structure", `tag "gone" (node ns=2;s=NoSuchNode)`, "give the tag a type"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	d = newDriver(t, fmt.Sprintf("endpoint: %s\nmode: poll\ntags:\n  - {name: ok, node: %q}\n  - {name: gone, node: \"ns=2;s=NoSuchNode\", type: int32}\n  - {name: elsewhere, node: \"nsu=urn:nowhere;s=x\", type: bool}\n",
		s.URL(), s.NodeID("Counter")))
	connect(t, d)
	got := read(t, d)
	if got[0].Quality != drivers.QualityGood || got[1].Quality != drivers.QualityBad || got[2].Quality != drivers.QualityBad {
		t.Errorf("qualities %v %v %v, want good bad bad", got[0].Quality, got[1].Quality, got[2].Quality)
	}
}

// Subscribe delivers each change with the server's source timestamp; a
// status maps to the quality (Uncertain to stale, Bad to bad).
func TestSubscribeDeliversChanges(t *testing.T) {
	s := sim(t, opcuatest.Options{})
	d := newDriver(t, fmt.Sprintf("endpoint: %s\npublishing_interval: 50ms\ntags:\n  - {name: counter, node: %q}\n  - {name: sine, node: %q}\n",
		s.URL(), s.NodeID("Counter"), s.NodeID("Sine")))
	connect(t, d)
	read(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan []drivers.Sample, 16)
	done := make(chan error, 1)
	go func() { done <- d.(drivers.Subscriber).Subscribe(ctx, out) }()
	defer func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Subscribe ended with %v", err)
		}
	}()
	wait := func(what string, ok func(drivers.Sample) bool) drivers.Sample {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case b := <-out:
				for _, smp := range b {
					if ok(smp) {
						return smp
					}
				}
				// Hand it back as the scanner does: the driver fills it
				// again.
				d.(drivers.Recycler).Recycle(b)
			case err := <-done:
				t.Fatalf("Subscribe ended: %v", err)
			case <-deadline:
				t.Fatalf("no %s within 10s", what)
			}
		}
	}
	for v := uint32(1); v <= 3; v++ {
		before := time.Now().Add(-time.Second).UnixMilli()
		if err := s.Set("Counter", v); err != nil {
			t.Fatal(err)
		}
		smp := wait(fmt.Sprintf("counter %d", v), func(smp drivers.Sample) bool { return smp.Tag == 0 && smp.Value.Uint() == uint64(v) })
		if smp.Quality != drivers.QualityGood || smp.Time < before {
			t.Errorf("counter %d: quality %v, time %d", v, smp.Quality, smp.Time)
		}
	}
	s.SetStatus("Sine", 0x40000000) // Uncertain
	wait("uncertain sine as stale", func(smp drivers.Sample) bool { return smp.Tag == 1 && smp.Quality == drivers.QualityStale })
	s.SetStatus("Sine", 0x80000000) // Bad
	wait("bad sine", func(smp drivers.Sample) bool { return smp.Tag == 1 && smp.Quality == drivers.QualityBad })
}

// A write goes out as the node's own type, whatever the tag's published
// type; a value the node cannot hold and a write to a read-only node are
// refused with the reason.
func TestWrites(t *testing.T) {
	s := sim(t, opcuatest.Options{})
	d := newDriver(t, fmt.Sprintf("endpoint: %s\nmode: poll\ntags:\n  - {name: sp, node: %q, writable: true}\n  - {name: spd, node: %q, type: float32, writable: true}\n  - {name: counter, node: %q, writable: true}\n",
		s.URL(), s.NodeID("Setpoint"), s.NodeID("SetpointDouble"), s.NodeID("Counter")))
	connect(t, d)
	w := d.(drivers.Writer)
	ctx := context.Background()
	if err := w.Write(ctx, 0, drivers.IntValue(drivers.Int32, -42)); err != nil {
		t.Fatal(err)
	}
	if got := s.Get("Setpoint"); got != int32(-42) {
		t.Errorf("Setpoint = %#v, want int32(-42)", got)
	}
	if err := w.Write(ctx, 1, drivers.FloatValue(drivers.Float32, 1.5)); err != nil {
		t.Fatal(err)
	}
	if got := s.Get("SetpointDouble"); got != 1.5 {
		t.Errorf("SetpointDouble = %#v, want float64(1.5)", got)
	}
	if err := w.Write(ctx, 0, drivers.IntValue(drivers.Int64, 1<<40)); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("2^40 into an Int32 node: %v", err)
	}
	if err := w.Write(ctx, 2, drivers.UintValue(drivers.Uint32, 5)); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("write to a read-only node: %v", err)
	}
}

// A server that restarts: reads and the subscription fail with
// ErrNotConnected, and the next Connect works with a new session.
func TestServerRestart(t *testing.T) {
	s := sim(t, opcuatest.Options{})
	d := newDriver(t, fmt.Sprintf("endpoint: %s\npublishing_interval: 50ms\ntags:\n  - {name: counter, node: %q}\n", s.URL(), s.NodeID("Counter")))
	connect(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan []drivers.Sample, 16)
	done := make(chan error, 1)
	go func() { done <- d.(drivers.Subscriber).Subscribe(ctx, out) }()
	time.Sleep(200 * time.Millisecond)
	s.Stop()
	select {
	case err := <-done:
		if !errors.Is(err, drivers.ErrNotConnected) {
			t.Fatalf("Subscribe ended with %v, want ErrNotConnected", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Subscribe still running 15s after the server stopped")
	}
	d.Close(context.Background())
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	s.Set("Counter", uint32(77))
	connect(t, d)
	if got := read(t, d); got[0].Value.Uint() != 77 {
		t.Errorf("after restart read %v, want 77", got[0].Value)
	}
	var running sync.WaitGroup
	running.Go(func() { done <- d.(drivers.Subscriber).Subscribe(ctx, out) })
	// Subscribe has returned before the cleanup closes the driver.
	defer func() { cancel(); running.Wait() }()
	s.Set("Counter", uint32(78))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b := <-out:
			for _, smp := range b {
				if smp.Value.Uint() == 78 {
					return
				}
			}
		case err := <-done:
			t.Fatalf("Subscribe ended: %v", err)
		case <-deadline:
			t.Fatal("no change delivered after the restart")
		}
	}
}

// Every policy and mode with a user name and password, the server's
// certificate pinned; the client certificate is made once in the state
// directory and is the same for the next driver (a restart).
func TestSecureEndpoints(t *testing.T) {
	s := sim(t, opcuatest.Options{Secure: true, Users: true})
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	var thumb string
	for _, policy := range []string{"Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"} {
		for _, mode := range []string{"Sign", "SignAndEncrypt"} {
			t.Run(policy+"/"+mode, func(t *testing.T) {
				cfg, err := config.DriverConfig(fmt.Sprintf(`endpoint: %s
mode: poll
security: {policy: %s, mode: %s, server_cert: %s}
auth: {username: operator, password_file: %s}
tags:
  - {name: counter, node: %q}
`, s.URL(), policy, mode, s.CertFile(), pw, s.NodeID("Counter")))
				if err != nil {
					t.Fatal(err)
				}
				cfg.StateDir, cfg.Timeout = state, 5*time.Second
				d, err := opcua.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close(context.Background())
				s.Set("Counter", uint32(9))
				connect(t, d)
				if got := read(t, d); got[0].Value.Uint() != 9 {
					t.Errorf("read %v", got[0].Value)
				}
				c, err := opcua.LoadClientCert(state, "", "", "")
				if err != nil {
					t.Fatal(err)
				}
				if thumb == "" {
					thumb = opcua.Thumbprint(c.Cert)
				} else if opcua.Thumbprint(c.Cert) != thumb {
					t.Errorf("the client certificate changed: %s, then %s", thumb, opcua.Thumbprint(c.Cert))
				}
			})
		}
	}
}

// A server certificate nobody trusted is refused, with its thumbprint and
// how to trust it; with trust_any_server_certificate it is accepted.
func TestUntrustedServer(t *testing.T) {
	s := sim(t, opcuatest.Options{Secure: true})
	other := sim(t, opcuatest.Options{Secure: true})
	src := func(trust string) string {
		return fmt.Sprintf("endpoint: %s\nmode: poll\nsecurity: {policy: Basic256Sha256, mode: SignAndEncrypt, %s}\ntags:\n  - {name: c, node: %q}\n", s.URL(), trust, s.NodeID("Counter"))
	}
	d := newDriver(t, src("server_cert: "+other.CertFile()))
	err := d.Connect(context.Background())
	if err == nil {
		t.Fatal("connected to a server whose certificate is not the pinned one")
	}
	c, err2 := opcua.LoadClientCert("", s.CertFile(), s.KeyFile(), "")
	if err2 != nil {
		t.Fatal(err2)
	}
	for _, want := range []string{"not trusted", opcua.Thumbprint(c.Cert), "trust_dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	t.Log(err)
	d = newDriver(t, src("trust_any_server_certificate: true"))
	connect(t, d)
}

// Browse walks the simulator: every variable of a supported type with its
// type and access, the structure skipped with the reason, names from the
// browse paths, nodes in the nsu= form; the tag map it writes is a valid
// device's tags. 10,000 variables under one folder take continuation
// points and seconds.
func TestBrowse(t *testing.T) {
	s := sim(t, opcuatest.Options{})
	s.AddCounters("c", 10000)
	d := newDriver(t, fmt.Sprintf("endpoint: %s\ntags:\n  - {name: x, node: %q}\n", s.URL(), s.NodeID("Counter")))
	b, err := opcua.Browse(context.Background(), d, opcua.BrowseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("browsed %d nodes, %d variables, %d skipped in %v", b.Nodes, len(b.Variables), len(b.Skipped), b.Took)
	byName := map[string]opcua.BrowsedVariable{}
	for _, v := range b.Variables {
		byName[v.Name] = v
	}
	want := map[string]struct {
		typ      drivers.Type
		writable bool
	}{
		"Press/Setpoint":      {drivers.Int32, true},
		"Press/Counter":       {drivers.Uint32, false},
		"Types/DoubleArray":   {drivers.ArrayOf(drivers.Float64), false},
		"Types/Base":          {drivers.Float64, false},
		"Types/Enum":          {drivers.Int32, false},
		"Load/c0000":          {drivers.Uint32, false},
		"Load/c9999":          {drivers.Uint32, false},
		"Types/LocalizedText": {drivers.String, false},
	}
	for name, w := range want {
		v, ok := byName[name]
		if !ok {
			t.Errorf("%s not browsed", name)
			continue
		}
		if v.Type != w.typ || v.Writable != w.writable {
			t.Errorf("%s: %s writable=%v, want %s writable=%v", name, v.Type, v.Writable, w.typ, w.writable)
		}
		if !strings.HasPrefix(v.Node, "nsu="+s.NamespaceURI()+";") {
			t.Errorf("%s: node %s, want the nsu= form", name, v.Node)
		}
	}
	if len(b.Variables) < 10000+25 {
		t.Errorf("%d variables, want every one of more than 10,025", len(b.Variables))
	}
	if len(b.Skipped) != 1 || !strings.Contains(b.Skipped[0].Why, "structure") {
		t.Errorf("skipped %+v, want the structure alone", b.Skipped)
	}

	// The tag map is a valid device's tags.
	var sb strings.Builder
	if err := b.WriteTagMap(&sb); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tags.yaml"), []byte(sb.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(fmt.Sprintf(`node: {group_id: g, edge_node_id: e}
mqtt: {servers: [tcp://127.0.0.1:1883]}
devices:
  - {id: press, driver: opcua, endpoint: %s, tag_map: tags.yaml}
`, s.URL())), 0o644)
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatalf("the browsed tag map does not load: %v", err)
	}
	if n := len(cfg.Devices[0].Instance.Tags()); n != len(b.Variables) {
		t.Errorf("the tag map loads %d tags, want %d", n, len(b.Variables))
	}
}
