package opcua_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/opcua"
	"github.com/edgeagent/edgeagent/internal/testutil"
)

// These tests run against node-opcua (scripts/opcua-testserver), which
// enforces what gopcua's server does not: passwords, certificate trust,
// operation limits, queued notifications and Republish.

func nodeDriver(t *testing.T, state, src string) drivers.Driver {
	t.Helper()
	cfg, err := config.DriverConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir, cfg.Timeout = state, 5*time.Second
	d, err := opcua.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

func counterTags(s *testutil.NodeOPCUA, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  - {name: c%04d, node: \"nsu=%s;s=Counter%04d\"}\n", i, s.NamespaceURI(), i)
	}
	return b.String()
}

// Basic256Sha256 SignAndEncrypt with a user name and password works; a
// wrong password is an error that names the user; a server that does not
// trust our certificate says so, with our thumbprint; once the server
// trusts it (the same certificate: it is made once), the session opens.
func TestNodeOPCUASecurity(t *testing.T) {
	state := t.TempDir()
	// The client certificate exists before the server starts, so that the
	// server can trust it from the start in the second half.
	cert, err := opcua.LoadClientCert(state, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	s := testutil.StartNodeOPCUA(t, testutil.NodeOPCUAOptions{Users: map[string]string{"operator": "s3cret"}, RejectUnknownCerts: true})
	dir := t.TempDir()
	right, wrong := filepath.Join(dir, "right"), filepath.Join(dir, "wrong")
	os.WriteFile(right, []byte("s3cret\n"), 0o600)
	os.WriteFile(wrong, []byte("guess\n"), 0o600)
	src := func(pw string) string {
		return fmt.Sprintf("endpoint: %s\nmode: poll\nsecurity: {policy: Basic256Sha256, mode: SignAndEncrypt, server_cert: %s}\nauth: {username: operator, password_file: %s}\ntags:\n%s",
			s.URL(), s.CertificateFile(), pw, counterTags(s, 1))
	}
	err = nodeDriver(t, state, src(right)).Connect(context.Background())
	if err == nil {
		t.Fatal("a server that rejects unknown certificates accepted ours")
	}
	for _, want := range []string{"refused", cert.Thumbprint()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("rejected certificate: %q does not say %q", err, want)
		}
	}
	t.Log(err)

	s2 := testutil.StartNodeOPCUA(t, testutil.NodeOPCUAOptions{Users: map[string]string{"operator": "s3cret"}, RejectUnknownCerts: true, Trust: []string{cert.CertFile}})
	src = func(pw string) string {
		return fmt.Sprintf("endpoint: %s\nmode: poll\nsecurity: {policy: Basic256Sha256, mode: SignAndEncrypt, server_cert: %s}\nauth: {username: operator, password_file: %s}\ntags:\n%s",
			s2.URL(), s2.CertificateFile(), pw, counterTags(s2, 1))
	}
	err = nodeDriver(t, state, src(wrong)).Connect(context.Background())
	if err == nil || !strings.Contains(err.Error(), `user "operator"`) || !strings.Contains(err.Error(), "password") {
		t.Errorf("wrong password: %v", err)
	}
	d := nodeDriver(t, state, src(right))
	s2.Set("Counter0000", "5")
	connect(t, d)
	if got := read(t, d); got[0].Value.Uint() != 5 {
		t.Errorf("read %v, want 5", got[0].Value)
	}
}

// A server that takes at most 7 nodes per read and register call, 5
// monitored items per call and 9 per subscription still gets all 40 tags
// read and monitored.
func TestNodeOPCUASmallLimits(t *testing.T) {
	s := testutil.StartNodeOPCUA(t, testutil.NodeOPCUAOptions{Counters: 40, Limits: map[string]int{
		"maxNodesPerRead": 7, "maxNodesPerRegisterNodes": 7, "maxMonitoredItemsPerCall": 5, "maxMonitoredItemsPerSubscription": 9,
	}})
	for i := range 40 {
		s.Set(fmt.Sprintf("Counter%04d", i), fmt.Sprint(100+i))
	}
	for _, mode := range []string{"poll", "subscribe"} {
		t.Run(mode, func(t *testing.T) {
			d := nodeDriver(t, t.TempDir(), fmt.Sprintf("endpoint: %s\nmode: %s\npublishing_interval: 100ms\ntags:\n%s", s.URL(), mode, counterTags(s, 40)))
			connect(t, d)
			for i, smp := range read(t, d) {
				if smp.Quality != drivers.QualityGood || smp.Value.Uint() != uint64(100+i) {
					t.Errorf("c%04d = %v (%v), want %d", i, smp.Value, smp.Quality, 100+i)
				}
			}
			sub, ok := d.(drivers.Subscriber)
			if !ok {
				return
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan []drivers.Sample, 64)
			done := make(chan error, 1)
			exited := make(chan struct{})
			go func() { done <- sub.Subscribe(ctx, out); close(exited) }()
			t.Cleanup(func() { cancel(); <-exited }) // before the driver's cleanup closes it
			s.Bump()
			seen := map[int32]bool{}
			deadline := time.After(15 * time.Second)
			for len(seen) < 40 {
				select {
				case b := <-out:
					for _, smp := range b {
						if smp.Value.Uint() == uint64(101+smp.Tag) {
							seen[smp.Tag] = true
						}
					}
				case err := <-done:
					t.Fatalf("Subscribe ended: %v", err)
				case <-deadline:
					t.Fatalf("%d of 40 bumped counters delivered", len(seen))
				}
			}
		})
	}
}

// subscribeRun runs Subscribe on its own goroutine, collecting samples.
type subscribeRun struct {
	out    chan []drivers.Sample
	done   chan error
	cancel context.CancelFunc
}

func startSubscribe(t *testing.T, d drivers.Driver) *subscribeRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &subscribeRun{out: make(chan []drivers.Sample, 1024), done: make(chan error, 1), cancel: cancel}
	exited := make(chan struct{})
	go func() {
		r.done <- d.(drivers.Subscriber).Subscribe(ctx, r.out)
		close(exited)
	}()
	// Cleanups run last first: Subscribe has returned before the
	// driver's cleanup closes it.
	t.Cleanup(func() { cancel(); <-exited })
	return r
}

// A 3 s cut: the session outlives it, the driver reactivates it, and the
// changes the server queued meanwhile arrive marked Late with their own
// timestamps, with none missing between the last one before the cut and
// the first after.
func TestNodeOPCUALinkCutKeepsSession(t *testing.T) {
	s := testutil.StartNodeOPCUA(t, testutil.NodeOPCUAOptions{Counters: 1, TickMillis: 200})
	proxy := testutil.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", s.Port()))
	d := nodeDriver(t, t.TempDir(), fmt.Sprintf("endpoint: %s\npublishing_interval: 100ms\nqueue_size: 100\ntags:\n  - {name: c, node: \"nsu=%s;s=Counter0000\", sampling_interval: 50ms}\n",
		strings.Replace(proxy.URL(), "tcp://", "opc.tcp://", 1), s.NamespaceURI()))
	connect(t, d)
	read(t, d)
	run := startSubscribe(t, d)
	values := map[uint64]drivers.Sample{}
	collect := func(b []drivers.Sample) {
		for _, smp := range b {
			values[smp.Value.Uint()] = smp
		}
	}
	time.Sleep(time.Second)
	proxy.Cut()
	var err error
	select {
	case err = <-run.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe did not notice the cut within 10s")
	}
	for len(run.out) > 0 {
		collect(<-run.out)
	}
	if !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("Subscribe ended with %v", err)
	}
	d.Close(context.Background())
	var before uint64 // the last value delivered before the cut
	for v := range values {
		before = max(before, v)
	}
	time.Sleep(3 * time.Second)
	proxy.Restore()
	connect(t, d)
	cur := read(t, d)[0]
	run = startSubscribe(t, d)
	defer run.cancel()
	time.Sleep(2 * time.Second)
	for len(run.out) > 0 {
		collect(<-run.out)
	}
	var lo, hi uint64 = 1 << 62, 0
	late := 0
	for v, smp := range values {
		lo, hi = min(lo, v), max(hi, v)
		if v > cur.Value.Uint() && smp.Late && smp.Time > cur.Time+200 {
			t.Errorf("sample %d at %d, a change after the reconnect (read %d at %d), is marked late", v, smp.Time, cur.Value.Uint(), cur.Time)
		}
		if v < cur.Value.Uint() && v > before && !smp.Late {
			t.Errorf("sample %d, a change during the cut, is not marked late", v)
		}
		if smp.Late {
			late++
		}
	}
	for v := lo; v <= hi; v++ {
		if _, ok := values[v]; !ok && v != cur.Value.Uint() {
			t.Errorf("counter value %d never delivered (%d..%d)", v, lo, hi)
		}
	}
	if late < 10 {
		t.Errorf("%d late samples after a 3s cut of a counter ticking every 200ms, want about 15 (before the cut: %d values)", late, before)
	}
}

// A stall (the link stays up, nothing gets through): the driver notices
// within its keep-alive window, not when TCP would give up.
func TestNodeOPCUAStall(t *testing.T) {
	s := testutil.StartNodeOPCUA(t, testutil.NodeOPCUAOptions{Counters: 1, TickMillis: 500})
	proxy := testutil.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", s.Port()))
	d := nodeDriver(t, t.TempDir(), fmt.Sprintf("endpoint: %s\npublishing_interval: 200ms\nkeepalive: 1s\ntags:\n  - {name: c, node: \"nsu=%s;s=Counter0000\"}\n",
		strings.Replace(proxy.URL(), "tcp://", "opc.tcp://", 1), s.NamespaceURI()))
	connect(t, d)
	read(t, d)
	run := startSubscribe(t, d)
	time.Sleep(time.Second)
	proxy.Blackhole()
	start := time.Now()
	select {
	case err := <-run.done:
		if !errors.Is(err, drivers.ErrNotConnected) {
			t.Fatalf("Subscribe ended with %v", err)
		}
		t.Logf("stall noticed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(15 * time.Second):
		t.Fatal("Subscribe did not notice the stall within 15s")
	}
}

// The server applies the tags' deadbands (gopcua's server ignores them):
// an absolute one in raw units (the tag's scale undone) and a percent one
// of the node's EURange (Temperature: -50..150, so 5 % is 10).
func TestNodeOPCUADeadbands(t *testing.T) {
	s := testutil.StartNodeOPCUA(t, testutil.NodeOPCUAOptions{Counters: 1, Limits: map[string]int{"minSupportedSampleRate": 0}})
	for _, c := range []struct{ name, keys string }{
		{"absolute", "deadband: 5, scale: 0.5"}, // 5 engineering units = 10 raw
		{"percent", "deadband_percent: 5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s.Set("Temperature", "20")
			d := nodeDriver(t, t.TempDir(), fmt.Sprintf("endpoint: %s\npublishing_interval: 50ms\ntags:\n  - {name: temp, node: \"nsu=%s;s=Temperature\", sampling_interval: 0s, %s}\n", s.URL(), s.NamespaceURI(), c.keys))
			connect(t, d)
			read(t, d)
			run := startSubscribe(t, d)
			defer run.cancel()
			var got []float64
			select { // the value at subscribe time
			case b := <-run.out:
				for _, smp := range b {
					got = append(got, smp.Value.Float())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no initial notification")
			}
			for _, v := range []string{"24", "27", "29.5", "31", "33"} { // 4, 7, 9.5 under 10; 11 over; then 2 from 31
				s.Set("Temperature", v)
				time.Sleep(150 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond)
			for len(run.out) > 0 {
				for _, smp := range <-run.out {
					got = append(got, smp.Value.Float())
				}
			}
			// The first notification is the value at subscribe time.
			if len(got) != 2 || got[0] != 20 || got[1] != 31 {
				t.Errorf("%s deadband delivered %v, want the initial 20 and then 31 alone", c.name, got)
			}
		})
	}
}

// Browse honours a small MaxNodesPerBrowse and still finds every node.
func TestNodeOPCUABrowseLimits(t *testing.T) {
	s := testutil.StartNodeOPCUA(t, testutil.NodeOPCUAOptions{Counters: 25, Limits: map[string]int{"maxNodesPerBrowse": 2, "maxNodesPerRead": 5}})
	d := nodeDriver(t, t.TempDir(), fmt.Sprintf("endpoint: %s\ntags:\n  - {name: x, node: \"nsu=%s;s=Counter0000\"}\n", s.URL(), s.NamespaceURI()))
	b, err := opcua.Browse(context.Background(), d, opcua.BrowseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range b.Variables {
		if strings.Contains(v.Node, ";s=Counter") {
			n++
		}
	}
	if n != 25 {
		t.Errorf("browsed %d of the 25 counters (%d variables in all)", n, len(b.Variables))
	}
}

// logMessages is a slog handler that keeps the messages logged.
type logMessages struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newLogMessages() logMessages { return logMessages{mu: new(sync.Mutex), msgs: new([]string)} }

func (l logMessages) Enabled(context.Context, slog.Level) bool { return true }
func (l logMessages) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	*l.msgs = append(*l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l logMessages) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logMessages) WithGroup(string) slog.Handler      { return l }

// count is how many times msg was logged.
func (l logMessages) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range *l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// A cut longer than the session timeout (10 s, the shortest the driver
// takes; node-opcua honours any from 100 ms): the server closes the
// session. On reconnect the driver finds it gone, opens a new session
// with new subscriptions, and data resumes: the current value first, then
// new changes in order, none marked Late; the changes made during the
// cut, which the server no longer holds, are neither delivered nor
// invented.
func TestNodeOPCUASessionTimeout(t *testing.T) {
	s := testutil.StartNodeOPCUA(t, testutil.NodeOPCUAOptions{Counters: 1, TickMillis: 200})
	proxy := testutil.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", s.Port()))
	d := nodeDriver(t, t.TempDir(), fmt.Sprintf("endpoint: %s\npublishing_interval: 100ms\nkeepalive: 1s\nsession_timeout: 10s\ntags:\n  - {name: c, node: \"nsu=%s;s=Counter0000\"}\n",
		strings.Replace(proxy.URL(), "tcp://", "opc.tcp://", 1), s.NamespaceURI()))
	logs := newLogMessages()
	d.(drivers.Logging).SetLogger(slog.New(logs))
	connect(t, d)
	read(t, d)
	run := startSubscribe(t, d)
	var before []drivers.Sample // delivered before the cut
	time.Sleep(time.Second)
	created := s.Sessions().Created
	proxy.Cut()
	cut := time.Now()
	var err error
	select {
	case err = <-run.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe did not notice the cut within 10s")
	}
	for len(run.out) > 0 {
		before = append(before, <-run.out...)
	}
	if !errors.Is(err, drivers.ErrNotConnected) || len(before) == 0 {
		t.Fatalf("Subscribe ended with %v after %d samples", err, len(before))
	}
	d.Close(context.Background())
	last := before[len(before)-1].Value.Uint()

	// The scanner retries during the cut: the link is down.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = d.Connect(ctx)
	cancel()
	if !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("Connect during the cut: %v, want ErrNotConnected", err)
	}
	// node-opcua checks session timeouts once a second.
	deadline := time.Now().Add(30 * time.Second)
	for s.Sessions().TimedOut == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the server kept the session %v after the cut, past its 10s timeout", time.Since(cut).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the server closed the session %v after the cut", time.Since(cut).Round(100*time.Millisecond))

	proxy.Restore()
	restored := time.Now()
	connect(t, d)
	cur := read(t, d)[0]
	run = startSubscribe(t, d)
	defer run.cancel()
	var after []drivers.Sample
	var resumed time.Duration
	end := time.After(10 * time.Second)
	for len(after) == 0 || after[len(after)-1].Value.Uint() < cur.Value.Uint()+5 {
		select {
		case b := <-run.out:
			if len(after) == 0 {
				resumed = time.Since(restored)
			}
			after = append(after, b...)
		case err := <-run.done:
			t.Fatalf("Subscribe after the reconnect ended: %v", err)
		case <-end:
			t.Fatalf("data did not resume within 10s of the restore: %d samples", len(after))
		}
	}
	t.Logf("restore to the first sample: %v; last before the cut %d, read on reconnect %d, then %d..%d",
		resumed.Round(time.Millisecond), last, cur.Value.Uint(), after[0].Value.Uint(), after[len(after)-1].Value.Uint())

	if n := logs.count("the server no longer has the session; opening a new one"); n != 1 {
		t.Errorf("the driver logged %d times that the session was gone, want once", n)
	}
	if n := logs.count("subscribed"); n != 2 {
		t.Errorf("the driver made subscriptions %d times, want twice (at the start and after the new session)", n)
	}
	if n := s.Sessions(); n.Created != created+1 || n.Open != 1 {
		t.Errorf("the server counts %d sessions created since the first (want 1 more) and %d open (want 1)", n.Created-created, n.Open)
	}
	for i, smp := range after {
		v := smp.Value.Uint()
		if smp.Late {
			t.Errorf("sample %d after a new session is marked late", v)
		}
		if smp.Quality != drivers.QualityGood {
			t.Errorf("sample %d: quality %v", v, smp.Quality)
		}
		if v < cur.Value.Uint() {
			t.Errorf("sample %d after the reconnect is older than the value read then (%d): a change of the cut", v, cur.Value.Uint())
		}
		if i > 0 && v <= after[i-1].Value.Uint() {
			t.Errorf("after the reconnect %d follows %d", v, after[i-1].Value.Uint())
		}
	}
}
