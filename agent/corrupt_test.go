package agent

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/agent/record"
	"github.com/edgeagent/edgeagent/buffer"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// TestCorruptBufferFile: a buffer file that cannot be a buffer (garbage,
// or a real one truncated) does not stop the agent: it logs at error level
// that it moved the file aside to <path>.corrupt-*, starts with an empty
// buffer, births and publishes.
func TestCorruptBufferFile(t *testing.T) {
	// A real buffer file, written by an agent that never reached a broker.
	realFile := func(t *testing.T) []byte {
		dir := t.TempDir()
		sim := scSim(t)
		dead := fmt.Sprintf("tcp://127.0.0.1:%d", testutil.FreePort(t))
		a, stop, _ := scRun(t, scConfig(scOpts{servers: []string{dead}, stateDir: dir, plc: sim.URL()}))
		cnt := newSCCounter(t, sim, a)
		for range 20 {
			cnt.step()
		}
		if n := a.Stats().Buffer.Records; n < 20 {
			t.Fatalf("the first agent stored only %d records", n)
		}
		stop()
		b, err := os.ReadFile(filepath.Join(dir, "buffer.db"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// A large real buffer file (several MiB), closed cleanly.
	bigFile := func(t *testing.T) []byte {
		path := filepath.Join(t.TempDir(), "buffer.db")
		b, err := buffer.Open(buffer.Options{Path: path, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		rec := bytes.Repeat([]byte{0x5a}, 500)
		for range 50 {
			batch := make([][]byte, 100)
			for i := range batch {
				batch[i] = rec
			}
			if _, _, err := b.Append(batch...); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	cases := []struct {
		name    string
		content func(t *testing.T) []byte
	}{
		{"garbage", func(*testing.T) []byte {
			b := make([]byte, 256<<10)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		}},
		{"text", func(*testing.T) []byte { return bytes.Repeat([]byte("this is not a bbolt file\n"), 1000) }},
		{"truncated_after_meta", func(t *testing.T) []byte {
			b := realFile(t)
			return b[:2*4096+1234] // both meta pages, no data pages
		}},
		{"truncated_in_meta", func(t *testing.T) []byte {
			return realFile(t)[:100]
		}},
		{"garbage_record_pages", func(t *testing.T) []byte {
			// Meta pages, freelist and root page intact, every other
			// page garbage: the file still looks closed cleanly.
			b := bigFile(t)
			le := binary.LittleEndian
			ps := int(le.Uint32(b[16+8:]))
			root, freelist := le.Uint64(b[16+16:]), le.Uint64(b[16+32:])
			if m1 := b[ps+16:]; le.Uint64(m1[48:]) > le.Uint64(b[16+48:]) { // newer txid
				root, freelist = le.Uint64(m1[16:]), le.Uint64(m1[32:])
			}
			r := rand.New(rand.NewPCG(5, 6))
			for pg := 2; pg*ps < len(b); pg++ {
				if uint64(pg) == root || uint64(pg) == freelist {
					continue
				}
				for i := pg * ps; i < (pg+1)*ps; i++ {
					b[i] = byte(r.Uint32())
				}
			}
			return b
		}},
		{"truncated_half", func(t *testing.T) []byte {
			b := bigFile(t)
			return b[:len(b)/2]
		}},
		{"garbage_data_pages", func(t *testing.T) []byte {
			// Valid meta pages (and a clean-close flag) over garbage: bit
			// rot on an SD card.
			b := bigFile(t)
			r := rand.New(rand.NewPCG(3, 4))
			for i := 2 * 4096; i < len(b); i++ {
				b[i] = byte(r.Uint32())
			}
			return b
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			content := c.content(t)
			broker := testutil.Mosquitto(t)
			obs := testutil.Observe(t, broker.URL())
			sim := scSim(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "buffer.db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			a, stop, logs := scRun(t, scConfig(scOpts{servers: []string{broker.URL()}, stateDir: dir, plc: sim.URL()}))
			cnt := newSCCounter(t, sim, a)

			errs := logs.find("ERROR", "corrupt", "moved")
			if len(errs) != 1 {
				t.Errorf("want one error-level log line saying the file was moved aside, got %q", errs)
			}
			moved, _ := filepath.Glob(path + ".corrupt-*")
			if len(moved) != 1 {
				t.Fatalf("want one %s.corrupt-* file, got %v", path, moved)
			}
			if len(errs) == 1 && !bytes.Contains([]byte(errs[0]), []byte(moved[0])) {
				t.Errorf("the error log does not name %s: %s", moved[0], errs[0])
			}
			if got, err := os.ReadFile(moved[0]); err != nil || !bytes.Equal(got, content) {
				t.Errorf("%s does not hold the old file's bytes (err %v)", moved[0], err)
			}

			cnt.liveStart(obs, 5)
			scWaitStat(t, a, 20*time.Second, "an empty buffer", func(s Stats) bool { return s.Buffer.Records == 0 })
			stop()
			seen := scCounterSeen(t, obs.Msgs(), "count")
			for _, x := range cnt.vals {
				if len(seen[x.v]) == 0 {
					t.Errorf("value %d never arrived", x.v)
				}
			}
			checkSeq(t, obs.Msgs())
			if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
				t.Errorf("no fresh buffer at %s: %v", path, err)
			}
		})
	}
}

// scLockedBuffer collects a child's output.
type scLockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *scLockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *scLockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCorruptBufferPage: a buffer file closed cleanly whose bytes rotted on
// disk afterwards (one 4 KiB page in the middle of the records is garbage;
// meta pages, checksums and the clean-close flag intact). The agent must
// not crash on it: it moves the file aside with an error log, births and
// publishes. The agent runs in a child process so that a crash fails this
// test instead of killing the test binary.
func TestCorruptBufferPage(t *testing.T) {
	t.Run("whole_page", func(t *testing.T) { scCorruptPage(t, 0) })
	t.Run("page_body", func(t *testing.T) { scCorruptPage(t, 16) }) // the page header survives
	t.Run("page_data", func(t *testing.T) { scCorruptPage(t, -1) }) // header, element index and first key survive
}

// scCorruptPage damages the middle record page from byte skip on; -1
// means after the page's first key (keys and values of the rest).
func scCorruptPage(t *testing.T, skip int) {
	dir := t.TempDir()
	path := filepath.Join(dir, "buffer.db")
	b, err := buffer.Open(buffer.Options{Path: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tags := []drivers.Tag{{Name: "count", Type: drivers.Uint32}}
	at := time.Now().Add(-time.Hour).UnixMilli()
	for i := range 5000 {
		rec := record.AppendV2(nil, record.Data, "plc1", tags, at+int64(i), []record.Point{{Tag: 0, Value: drivers.UintValue(drivers.Uint32, uint64(1_000_000+i)), Time: at + int64(i)}})
		if _, _, err := b.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pg := scMiddleLeaf(t, data)
	ps := int(binary.LittleEndian.Uint32(data[16+8:]))
	if skip < 0 {
		el := data[pg*ps+16:]
		skip = 16 + int(binary.LittleEndian.Uint32(el[4:])) + 8
	}
	r := rand.New(rand.NewPCG(7, 8))
	for i := pg*ps + skip; i < (pg+1)*ps; i++ {
		data[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	broker := testutil.Mosquitto(t)
	obs := testutil.Observe(t, broker.URL())
	sim := scSim(t)
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(scConfig(scOpts{servers: []string{broker.URL()}, stateDir: dir, plc: sim.URL()})), 0o600); err != nil {
		t.Fatal(err)
	}
	// The agent runs in its own process, so a crash fails this test
	// instead of killing go test.
	cmd := exec.Command(testutil.AgentBinary(t), "run", "-c", cfgPath)
	var out scLockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var exitErr error
	running := true
	t.Cleanup(func() {
		if running {
			cmd.Process.Kill()
			<-exited
		}
	})
	tail := func() string {
		s := out.String()
		if len(s) > 6000 {
			s = "..." + s[len(s)-6000:]
		}
		return s
	}
	died := func() bool {
		if !running {
			return true
		}
		select {
		case exitErr = <-exited:
			running = false
			t.Errorf("the agent process died (%v) on a buffer file with one damaged page:\n%s", exitErr, tail())
			return true
		default:
			return false
		}
	}

	// Births, then values read now arrive live, and the history (what
	// the old file still held, if anything) is replayed to its end.
	deadline := time.Now().Add(30 * time.Second)
	live := func(m testutil.Msg) bool {
		if m.Topic.Type != sparkplug.DDATA || m.Payload == nil {
			return false
		}
		for _, x := range m.Payload.Metrics {
			if !x.Historical && x.Resolve(sparkplug.TypeUInt32) == nil && x.Int >= 1 && x.Int < 1_000_000 {
				return true
			}
		}
		return false
	}
	for v := uint32(1); !died(); v++ {
		if time.Now().After(deadline) {
			t.Fatalf("no live data within 30s; agent output:\n%s\nobserver:\n%s", tail(), obs.Dump(0))
		}
		sim.SetUint32(modbus.Holding, 0, modbus.ABCD, v)
		if slices.ContainsFunc(obs.Msgs(), live) && strings.Contains(out.String(), "history replay done") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if running {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case exitErr = <-exited:
			running = false
			if exitErr != nil {
				t.Errorf("the agent process failed on SIGTERM (%v):\n%s", exitErr, tail())
			}
		case <-time.After(15 * time.Second):
			t.Errorf("the agent process did not stop on SIGTERM:\n%s", tail())
		}
	}
	log := out.String()
	if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "corrupt") {
		t.Errorf("no error-level log line about the corrupt buffer file:\n%s", tail())
	}
	if moved, _ := filepath.Glob(path + ".corrupt-*"); len(moved) != 1 {
		t.Errorf("want one %s.corrupt-* file, got %v", path, moved)
	}
	checkSeq(t, obs.Msgs())
}

// scMiddleLeaf finds the bbolt leaf page holding the middle records (keys
// of 8 bytes) and returns its page number.
func scMiddleLeaf(t *testing.T, data []byte) int {
	t.Helper()
	le := binary.LittleEndian
	ps := int(le.Uint32(data[16+8:]))
	type leaf struct {
		pg    int
		first uint64
	}
	var leaves []leaf
	for pg := 2; (pg+1)*ps <= len(data); pg++ {
		h := data[pg*ps : (pg+1)*ps]
		if le.Uint64(h) != uint64(pg) || le.Uint16(h[8:]) != 0x02 || le.Uint16(h[10:]) == 0 {
			continue
		}
		el := h[16:]
		pos, ks := int(le.Uint32(el[4:])), int(le.Uint32(el[8:]))
		if ks != 8 || 16+pos+8 > len(h) {
			continue
		}
		leaves = append(leaves, leaf{pg, binary.BigEndian.Uint64(el[pos : pos+8])})
	}
	if len(leaves) < 3 {
		t.Fatalf("only %d record leaf pages", len(leaves))
	}
	slices.SortFunc(leaves, func(a, b leaf) int { return cmp.Compare(a.first, b.first) })
	return leaves[len(leaves)/2].pg
}
