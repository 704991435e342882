//go:build demo

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer the demo's goroutines may write while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	ansi         = regexp.MustCompile("\033\\[[0-9;]*m")
	nbirthRE     = regexp.MustCompile(`(?m)^\S+\s+NBIRTH\s+\S+\s+seq=0\s+bdSeq=(\d+)`)
	bufferedRE   = regexp.MustCompile(`demo: WAN down .*the buffer holds (\d+) records`)
	historicalRE = regexp.MustCompile(`demo: history replayed: the SCADA host received (\d+) historical metrics`)
)

// TestDemo runs the whole demo script (it binds the demo's fixed ports,
// so not beside a running `make demo`) and checks that store-and-forward
// shows: the WAN cut, a growing buffer, a new session with the next
// bdSeq, and at least as much history as the buffer held.
func TestDemo(t *testing.T) {
	// The demo configuration, with its state (bdSeq, buffer) in a fresh
	// directory: bdSeq starts at 0 and cannot wrap during the run.
	src, err := os.ReadFile("../../configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yaml := strings.Replace(string(src), "state_dir: .demo", "state_dir: "+filepath.Join(dir, "state"), 1)
	if yaml == string(src) {
		t.Fatal("configs/demo.yaml has no `state_dir: .demo` line to redirect")
	}
	file := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	var out syncBuffer
	start := time.Now()
	if err := cmdDemo(context.Background(), []string{"-c", file, "-for", "48s"}, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	t.Logf("demo ran for %s", time.Since(start).Round(time.Second))
	text := ansi.ReplaceAllString(out.String(), "")
	fail := func(format string, a ...any) {
		t.Helper()
		t.Fatalf(format+"\n--- demo output ---\n%s", append(a, text)...)
	}

	var bdSeqs []uint64
	for _, m := range nbirthRE.FindAllStringSubmatch(text, -1) {
		bdSeqs = append(bdSeqs, atou(t, m[1]))
	}
	if len(bdSeqs) == 0 {
		fail("no NBIRTH")
	}
	if !regexp.MustCompile(`DBIRTH\s+demo-plant/edge-01/oven-1 .*Zone1/temperature=`).MatchString(text) {
		fail("no DBIRTH of the OPC UA device oven-1")
	}
	if !regexp.MustCompile(`DDATA\s+demo-plant/edge-01/oven-1 .*setpoint=185`).MatchString(text) {
		fail("the setpoint written to oven-1 did not come back as data")
	}
	if !strings.Contains(text, "demo: WAN cut: the broker is unreachable") {
		fail("no WAN-cut line")
	}
	var buffered uint64
	for _, m := range bufferedRE.FindAllStringSubmatch(text, -1) {
		buffered = max(buffered, atou(t, m[1]))
	}
	if buffered == 0 {
		fail("the buffer never held a record during the WAN cut")
	}
	if !slices.ContainsFunc(bdSeqs[1:], func(b uint64) bool { return b > bdSeqs[0] }) {
		fail("no NBIRTH with a bdSeq above the first one's (%d); NBIRTH bdSeqs: %v", bdSeqs[0], bdSeqs)
	}
	m := historicalRE.FindStringSubmatch(text)
	if m == nil {
		fail("no history-replayed line")
	}
	// Each buffered record is one scan with at least one sample.
	if h := atou(t, m[1]); h == 0 || h < buffered {
		fail("%d historical metrics received, want > 0 and >= the %d records buffered", h, buffered)
	}
	if !strings.Contains(text, "demo: script done") {
		fail("the script did not finish within -for")
	}
}

func atou(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
