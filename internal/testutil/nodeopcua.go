package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nodeOPCUADir is the npm project with the node-opcua test server,
// relative to the repository root.
const nodeOPCUADir = "scripts/opcua-testserver"

// nodeOPCUAReadyTimeout bounds a start: loading node-opcua and its
// standard nodeset takes about 3 s on a small machine, more under -race
// with other packages' tests running alongside.
const nodeOPCUAReadyTimeout = 90 * time.Second

// nodeOPCUACommandTimeout bounds one stdin command (set, bump, status).
const nodeOPCUACommandTimeout = 20 * time.Second

// NodeOPCUAOptions configures StartNodeOPCUA. The zero value is an
// anonymous server with 10 counters, node-opcua's default limits, and
// client certificates trusted on first use.
type NodeOPCUAOptions struct {
	// Users are user name → password. When set, anonymous sessions are
	// refused and a wrong password is rejected.
	Users map[string]string
	// Counters is the number of UInt32 variables Counter0000.. (default 10).
	Counters int
	// TickMillis, when positive, increments every counter that often.
	TickMillis int
	// Limits are operation limits and capabilities by their node-opcua
	// names, advertised under Server/ServerCapabilities and enforced.
	// Operation limits (BadTooManyOperations): maxNodesPerRead,
	// maxNodesPerWrite, maxNodesPerBrowse, maxNodesPerRegisterNodes,
	// maxMonitoredItemsPerCall, maxNodesPerTranslateBrowsePathsToNodeIds,
	// maxNodesPerMethodCall, maxNodesPerHistoryReadData,
	// maxNodesPerHistoryReadEvents. Capabilities:
	// maxMonitoredItemsPerSubscription and maxMonitoredItems
	// (BadTooManyMonitoredItems per item), maxSubscriptionsPerSession and
	// maxSubscriptions (BadTooManySubscriptions), maxSessions
	// (BadTooManySessions), maxBrowseContinuationPoints,
	// maxMonitoredItemsQueueSize (revised queue size; default and at most
	// 5000), minSupportedSampleRate (ms; 0: an item asking for sampling
	// interval 0 gets every change, else at most one per 50 ms).
	Limits map[string]int
	// RejectUnknownCerts makes the server refuse client certificates it
	// does not trust (default: any is trusted on first use). Refused
	// certificates land in PKIDir/server/rejected.
	RejectUnknownCerts bool
	// Trust lists client certificate files (PEM or DER) the server trusts
	// from the start, for RejectUnknownCerts.
	Trust []string
	// TrustUserCerts lists X509 user certificate files (PEM or DER) the
	// server trusts as user identities. With any (or RejectUnknownCerts),
	// a user certificate it does not trust is refused with
	// BadIdentityTokenRejected; the default trusts any on first use. The
	// token's signature is verified either way.
	TrustUserCerts []string
	// PKIDir holds the server's certificate and key
	// (PKIDir/server/own/certs/certificate.pem) and its trust lists. Empty:
	// a temporary directory. Kept across Stop and Start, so a restarted
	// server has the same certificate.
	PKIDir string
	// ExtraArgs are further server.js flags, such as
	// --strict-anonymous-transfer (node scripts/opcua-testserver/server.js
	// --help lists them).
	ExtraArgs []string
}

// NodeOPCUA is a node-opcua server process (scripts/opcua-testserver) on a
// loopback port. Its variables live in its own namespace, with string node
// ids equal to their names: Counter0000.. (UInt32), Temperature (Double,
// an AnalogItem with EURange -50..150), Setpoint (Int32, writable) and
// Status (Int32). It offers security None and Basic256Sha256 Sign and
// SignAndEncrypt.
type NodeOPCUA struct {
	t       testing.TB
	node    string
	script  string
	args    []string // all but --port
	pkiDir  string
	port    int
	url     string
	nsURI   string
	nsIndex int

	mu     sync.Mutex // serialises Start, Stop and commands
	proc   *nodeOPCUAProc
	stderr *tailBuffer // of the latest run
}

// nodeOPCUAProc is one run of the server.
type nodeOPCUAProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string   // stdout lines after READY
	done   chan struct{} // closed when the process has exited
	stderr *tailBuffer
}

// repoRoot finds the repository root: the nearest directory, from the
// test's working directory up, holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// nodeOPCUAScript returns node and the path of server.js, or an error
// that names what is missing and how to install it.
func nodeOPCUAScript() (node, script string, err error) {
	const how = "run `make test`, which installs it (scripts/install-test-deps.sh: apt-get install nodejs npm; cd " + nodeOPCUADir + " && npm ci)"
	node, err = exec.LookPath("node")
	if err != nil {
		return "", "", fmt.Errorf("node-opcua test server: node (Node.js >= 20) is not on PATH; %s", how)
	}
	root, err := repoRoot()
	if err != nil {
		return "", "", fmt.Errorf("node-opcua test server: finding the repository root: %v", err)
	}
	dir := filepath.Join(root, nodeOPCUADir)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-opcua", "package.json")); err != nil {
		return "", "", fmt.Errorf("node-opcua test server: %s/node_modules/node-opcua is missing; %s", nodeOPCUADir, how)
	}
	return node, filepath.Join(dir, "server.js"), nil
}

// StartNodeOPCUA starts a node-opcua server for the test and stops it at
// t.Cleanup. Without node or the npm modules the test fails: `make test`
// installs them (scripts/install-test-deps.sh).
func StartNodeOPCUA(t testing.TB, o NodeOPCUAOptions) *NodeOPCUA {
	t.Helper()
	node, script, err := nodeOPCUAScript()
	if err != nil {
		t.Fatal(err)
	}
	s := &NodeOPCUA{t: t, node: node, script: script, pkiDir: o.PKIDir}
	if s.pkiDir == "" {
		s.pkiDir = t.TempDir()
	}
	s.args = append(s.args, "--pki", s.pkiDir)
	users := make([]string, 0, len(o.Users))
	for u := range o.Users {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		s.args = append(s.args, "--user", u+":"+o.Users[u])
	}
	if o.Counters > 0 {
		s.args = append(s.args, "--counters", strconv.Itoa(o.Counters))
	}
	if o.TickMillis > 0 {
		s.args = append(s.args, "--tick", strconv.Itoa(o.TickMillis))
	}
	limits := make([]string, 0, len(o.Limits))
	for k := range o.Limits {
		limits = append(limits, k)
	}
	sort.Strings(limits)
	for _, k := range limits {
		s.args = append(s.args, "--limit", fmt.Sprintf("%s=%d", k, o.Limits[k]))
	}
	if o.RejectUnknownCerts {
		s.args = append(s.args, "--reject-unknown-certs")
	}
	for _, f := range o.Trust {
		s.args = append(s.args, "--trust", f)
	}
	for _, f := range o.TrustUserCerts {
		s.args = append(s.args, "--trust-user-cert", f)
	}
	s.args = append(s.args, o.ExtraArgs...)
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() && s.stderr != nil {
			t.Logf("node-opcua test server stderr:\n%s", s.stderr)
		}
	})
	s.Start()
	return s
}

// URL is the server's endpoint URL, opc.tcp://127.0.0.1:PORT.
func (s *NodeOPCUA) URL() string { return s.url }

// Port is the server's TCP port, the same across Stop and Start.
func (s *NodeOPCUA) Port() int { return s.port }

// NamespaceURI is the URI of the namespace holding the test variables.
func (s *NodeOPCUA) NamespaceURI() string { return s.nsURI }

// NamespaceIndex is that namespace's index on the server (1).
func (s *NodeOPCUA) NamespaceIndex() uint16 { return uint16(s.nsIndex) }

// PKIDir is the server's PKI directory.
func (s *NodeOPCUA) PKIDir() string { return s.pkiDir }

// CertificateFile is the server's own certificate (PEM).
func (s *NodeOPCUA) CertificateFile() string {
	return filepath.Join(s.pkiDir, "server", "own", "certs", "certificate.pem")
}

// Start (re)starts the server, on the port of its first start, and waits
// until it listens. A restarted server has none of the old sessions or
// subscriptions; its variables start over from their initial values.
func (s *NodeOPCUA) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return
	}
	deadline := time.Now().Add(nodeOPCUAReadyTimeout)
	for {
		p, ready, err := s.spawn()
		if err != nil {
			s.t.Fatalf("starting the node-opcua test server: %v", err)
		}
		select {
		case line := <-ready:
			f := strings.Fields(line)
			idx, err := strconv.Atoi(f[len(f)-1])
			if len(f) != 4 || err != nil || !strings.HasPrefix(f[1], "opc.tcp://127.0.0.1:") {
				p.kill()
				s.t.Fatalf("node-opcua test server: unexpected ready line %q", line)
			}
			port, err := strconv.Atoi(strings.TrimPrefix(f[1], "opc.tcp://127.0.0.1:"))
			if err != nil || (s.port != 0 && port != s.port) {
				p.kill()
				s.t.Fatalf("node-opcua test server: ready on %s, want port %d", f[1], s.port)
			}
			s.port, s.url, s.nsURI, s.nsIndex = port, f[1], f[2], idx
			s.proc, s.stderr = p, p.stderr
			return
		case <-p.done:
			// The port of a server just killed can be busy a moment.
			if s.port != 0 && strings.Contains(p.stderr.String(), "EADDRINUSE") && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			s.t.Fatalf("node-opcua test server exited before it was ready (%v):\n%s", p.cmd.ProcessState, p.stderr)
		case <-time.After(time.Until(deadline)):
			p.kill()
			s.t.Fatalf("node-opcua test server not ready within %v:\n%s", nodeOPCUAReadyTimeout, p.stderr)
		}
	}
}

func (s *NodeOPCUA) spawn() (*nodeOPCUAProc, <-chan string, error) {
	args := append([]string{s.script, "--port", strconv.Itoa(s.port)}, s.args...)
	cmd := exec.Command(s.node, args...)
	cmd.Dir = filepath.Dir(s.script)
	// Dies with the test process, even when a test panics; the server also
	// exits when its stdin closes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &nodeOPCUAProc{cmd: cmd, lines: make(chan string, 16), done: make(chan struct{}), stderr: &tailBuffer{max: 64 << 10}}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case !seen && strings.HasPrefix(line, "READY "):
				seen = true
				ready <- line
			case seen && (line == "ok" || strings.HasPrefix(line, "ok ") || strings.HasPrefix(line, "error ")):
				p.lines <- line
			default:
				// Not the protocol (the server sends its logs to stderr).
				fmt.Fprintf(p.stderr, "stdout: %s\n", line)
			}
		}
		cmd.Wait()
		close(p.done)
	}()
	return p, ready, nil
}

func (p *nodeOPCUAProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop kills the server (SIGKILL: its sessions and subscriptions die with
// it, and clients see their connections drop). Start brings it back.
func (s *NodeOPCUA) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.kill()
	s.proc = nil
}

// Set gives a variable a value (its status becomes Good): a number for
// the counters, Temperature, Setpoint and Status.
func (s *NodeOPCUA) Set(name string, value string) {
	s.t.Helper()
	s.command("set " + name + " " + value)
}

// Bump increments every counter by one.
func (s *NodeOPCUA) Bump() {
	s.t.Helper()
	s.command("bump")
}

// Status gives a variable a status code, by its name in the OPC UA
// specification (BadSensorFailure, UncertainLastUsableValue, Good, ...),
// keeping its value.
func (s *NodeOPCUA) Status(name, code string) {
	s.t.Helper()
	s.command("status " + name + " " + code)
}

// Get returns a variable's value as the server holds it, formatted by
// JavaScript, and the name of its status code: what a client wrote to
// Setpoint, for instance.
func (s *NodeOPCUA) Get(name string) (value, status string) {
	s.t.Helper()
	f := strings.Fields(s.command("get " + name))
	if len(f) != 3 {
		s.t.Fatalf("node-opcua test server: get %s answered %q", name, strings.Join(f, " "))
	}
	return f[1], f[2]
}

// NodeOPCUASessions counts the server's sessions since it started.
type NodeOPCUASessions struct {
	Open     int // open now (a session whose link broke is still open)
	Created  int // created since the start
	TimedOut int // closed by the server because their timeout ran out
}

// Sessions returns the server's session counts.
func (s *NodeOPCUA) Sessions() NodeOPCUASessions {
	s.t.Helper()
	answer := s.command("sessions")
	var n NodeOPCUASessions
	if _, err := fmt.Sscanf(answer, "ok %d %d %d", &n.Open, &n.Created, &n.TimedOut); err != nil {
		s.t.Fatalf("node-opcua test server: sessions answered %q: %v", answer, err)
	}
	return n
}

// command sends one line to the server and returns its "ok" answer. Like
// t.Fatal, call it from the test's goroutine.
func (s *NodeOPCUA) command(line string) string {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		s.t.Fatalf("node-opcua test server: %q while it is stopped", line)
	}
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		s.t.Fatalf("node-opcua test server: sending %q: %v\n%s", line, err, p.stderr)
	}
	select {
	case answer := <-p.lines:
		if strings.HasPrefix(answer, "error ") {
			s.t.Fatalf("node-opcua test server: %q: %s", line, answer)
		}
		return answer
	case <-p.done:
		s.t.Fatalf("node-opcua test server exited during %q:\n%s", line, p.stderr)
	case <-time.After(nodeOPCUACommandTimeout):
		s.t.Fatalf("node-opcua test server: no answer to %q within %v", line, nodeOPCUACommandTimeout)
	}
	return ""
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if len(b.b) > b.max {
		b.b = append(b.b[:0], b.b[len(b.b)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}
