package buffer

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The child side of TestCrashKill9 runs in a re-executed test binary.
const (
	crashEnvPath = "EDGEAGENT_BUFFER_CRASH_PATH"
	crashEnvMode = "EDGEAGENT_BUFFER_CRASH_MODE"
)

// crashRecord is the data of record k of append i by worker w.
func crashRecord(w, i, k int) []byte {
	return payload(w*1_000_000+i*10+k, 200+(i*37+k*11)%1400)
}

// TestMain runs crashChild instead of the tests when TestCrashKill9 starts
// this binary as its child.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnvPath); path != "" {
		crashChild(path)
	}
	os.Exit(m.Run())
}

// crashChild appends from several goroutines until killed, printing
// "<first> <last> <worker> <i>" after each Append returned nil.
func crashChild(path string) {
	mode := WriteAhead
	if os.Getenv(crashEnvMode) == "outage" {
		mode = Outage // link down: to disk, durable
	}
	b, err := Open(Options{Path: path, Mode: mode, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(20 * time.Second) // never outlive a lost parent
	for w := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				n := 1 + i%3
				var data [][]byte
				for k := range n {
					data = append(data, crashRecord(w, i, k))
				}
				first, last, err := b.Append(data...)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "%d %d %d %d\n", first, last, w, i) // one write(2), unbuffered
				out.Unlock()
				// Ack now and then, as the uplink would. The intent is
				// printed first: the kill may land after the Ack committed
				// but before anything more is printed.
				if w == 0 && i%50 == 49 {
					out.Lock()
					fmt.Fprintf(os.Stdout, "ack %d\n", last-100)
					out.Unlock()
					if err := b.Ack(last - 100); err != nil {
						fmt.Fprintln(os.Stderr, "ack:", err)
						os.Exit(2)
					}
				}
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

func TestCrashKill9(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	path := filepath.Join(t.TempDir(), "buffer.db")
	var maxSeen uint64
	for iter := range 6 {
		mode := []string{"writeahead", "outage"}[iter%2]
		reported, acked, err := runChild(t, path, mode, time.Duration(rng.IntN(300))*time.Millisecond)
		if errors.Is(err, syscall.ENOEXEC) && os.Getenv("CI") == "" {
			t.Skipf("cannot re-exec the test binary (emulated with qemu-user, no binfmt_misc): %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		logs := &logCapture{}
		b, err := Open(Options{Path: path, Logger: slog.New(logs)})
		if err != nil {
			t.Fatalf("iteration %d: reopen after kill -9: %v", iter, err)
		}
		if len(logs.find(slog.LevelError, "buffer file corrupt, moved aside; starting empty")) > 0 {
			t.Fatalf("iteration %d: file corrupt after kill -9", iter)
		}
		stored := map[uint64][]byte{}
		for _, r := range all(t, b, 0) {
			stored[r.Seq] = r.Data
		}
		checked := 0
		for _, a := range reported {
			maxSeen = max(maxSeen, a.last)
			for k, q := 0, a.first; q <= a.last; k, q = k+1, q+1 {
				if q <= acked {
					continue
				}
				got, ok := stored[q]
				if !ok {
					t.Fatalf("iteration %d (%s): seq %d reported durable but missing after kill -9", iter, mode, q)
				}
				if want := crashRecord(a.w, a.i, k); string(got) != string(want) {
					t.Fatalf("iteration %d: seq %d holds wrong data", iter, q)
				}
				checked++
			}
		}
		first, _, err := b.Append([]byte("probe"))
		if err != nil || first <= maxSeen {
			t.Fatalf("iteration %d: next seq %d after %d (%v)", iter, first, maxSeen, err)
		}
		maxSeen = first
		t.Logf("iteration %d (%s): %d appends reported, %d records verified, %d stored, file checked: %v",
			iter, mode, len(reported), checked, len(stored), len(logs.find(slog.LevelInfo, "buffer file checked")) == 1)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

type reportedAppend struct {
	first, last uint64
	w, i        int
}

// runChild starts the child, kills it with SIGKILL delay after its first
// report, and returns what it reported durable and the highest seq it acked.
func runChild(t *testing.T, path, mode string, delay time.Duration) ([]reportedAppend, uint64, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$") // TestMain runs crashChild
	cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvMode+"="+mode)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	var reported []reportedAppend
	var acked uint64
	firstLine := make(chan struct{})
	readDone := make(chan error)
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			once.Do(func() { close(firstLine) })
			line := sc.Text()
			var a reportedAppend
			var ack uint64
			if _, err := fmt.Sscanf(line, "ack %d", &ack); err == nil {
				acked = max(acked, ack)
				continue
			}
			if _, err := fmt.Sscanf(line, "%d %d %d %d", &a.first, &a.last, &a.w, &a.i); err != nil {
				continue // a line cut by the kill, or test framework output
			}
			reported = append(reported, a)
		}
		readDone <- sc.Err()
	}()
	select {
	case <-firstLine:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, 0, fmt.Errorf("child never reported an append; stderr: %s", stderr.String())
	}
	time.Sleep(delay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return nil, 0, err
	}
	err = <-readDone
	_ = cmd.Wait()
	if s := stderr.String(); s != "" {
		return nil, 0, fmt.Errorf("child failed: %s", s)
	}
	return reported, acked, err
}
