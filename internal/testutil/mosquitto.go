package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Broker is a real Mosquitto process on a loopback port.
type Broker struct {
	t       testing.TB
	port    int
	tlsPort int // 0 without a TLS listener
	conf    string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// MosquittoPath finds the mosquitto binary (Debian puts it in /usr/sbin).
func MosquittoPath() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", nil
	}
	return "", fmt.Errorf("mosquitto not found: run `make test`, which installs it (apt-get install mosquitto)")
}

// Mosquitto starts a broker for the test. A missing mosquitto is a test
// failure, not a skip: `make test` installs it.
func Mosquitto(t testing.TB) *Broker {
	t.Helper()
	return startMosquitto(t, nil)
}

// MosquittoTLS is Mosquitto with a second listener, on TLSURL, that
// speaks TLS with f's server certificate and admits only clients with a
// certificate signed by f's CA.
func MosquittoTLS(t testing.TB, f TLSFiles) *Broker {
	t.Helper()
	return startMosquitto(t, &f)
}

func startMosquitto(t testing.TB, f *TLSFiles) *Broker {
	t.Helper()
	if _, err := MosquittoPath(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := &Broker{t: t, port: FreePort(t), conf: filepath.Join(dir, "mosquitto.conf")}
	// Queues large enough that the observer never loses a message to the
	// broker's own limits: the tests count every sample.
	// Run as root, Mosquitto would drop to user mosquitto, who cannot
	// read the test's private temporary directories; as anyone else the
	// setting has no effect.
	conf := "user root\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\n"
	if f != nil {
		// Before the plain listener, which Start waits for: Mosquitto
		// opens them in order.
		b.tlsPort = FreePort(t)
		conf += fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n", b.tlsPort, f.CA, f.ServerCert, f.ServerKey)
	}
	conf += fmt.Sprintf("listener %d 127.0.0.1\n", b.port)
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Start()
	t.Cleanup(b.Kill)
	return b
}

// URL is the broker's tcp:// address.
func (b *Broker) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.port) }

// TLSURL is the ssl:// address of the TLS listener of MosquittoTLS.
func (b *Broker) TLSURL() string { return fmt.Sprintf("ssl://127.0.0.1:%d", b.tlsPort) }

// Addr is host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// Start (re)starts the broker on its port and waits until it accepts.
func (b *Broker) Start() {
	b.t.Helper()
	path, _ := MosquittoPath()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmd := exec.Command(path, "-c", b.conf)
		cmd.Stderr = os.Stderr
		// Dies with the test process, even when a test panics.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			b.t.Fatalf("starting mosquitto: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				goto retry // port still in TIME_WAIT or similar
			default:
			}
			if c, err := net.DialTimeout("tcp", b.Addr(), 100*time.Millisecond); err == nil {
				c.Close()
				b.cmd = cmd
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Kill()
		b.t.Fatalf("mosquitto did not listen on %s", b.Addr())
	retry:
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto kept exiting on %s", b.Addr())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill stops the broker with SIGKILL: no clean shutdown, no wills sent
// by a graceful close.
func (b *Broker) Kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGKILL)
	b.cmd.Process.Wait()
	b.cmd = nil
}
