package agent

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/internal/testutil"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// transportConfig is one Modbus device with the counter tag, talking to
// server with the given extra lines under mqtt:.
func transportConfig(server, stateDir, plc, mqttExtra string) string {
	return fmt.Sprintf(`node: {group_id: plant, edge_node_id: edge1}
mqtt:
  servers: [%s]
  keepalive: 2s
  reconnect_min: 100ms
  reconnect_max: 500ms
%sstate_dir: %s
devices:
  - id: plc1
    driver: modbus
    url: %s
    poll: 50ms
    timeout: 500ms
    tags:
%s`, server, mqttExtra, stateDir, plc, scCounterTag)
}

// Every broker transport besides plain TCP carries the whole session:
// births, data, receipts that empty the buffer, and on stop the explicit
// NDEATH and a DISCONNECT (so the broker does not also send the Will).
func TestTransports(t *testing.T) {
	pki := testutil.NewTLSFiles(t)
	broker := testutil.MosquittoTLS(t, pki)
	for _, tc := range []struct{ name, server, mqtt string }{
		{"mutual TLS", broker.TLSURL(), fmt.Sprintf("  tls:\n    ca_file: %s\n    cert_file: %s\n    key_file: %s\n", pki.CA, pki.ClientCert, pki.ClientKey)},
		{"websocket", wsBridge(t, broker.Addr()), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := testutil.Observe(t, broker.URL())
			sim := scSim(t)
			sim.SetUint32(modbus.Holding, 0, modbus.ABCD, 7)
			a, stop := runAgent(t, transportConfig(tc.server, t.TempDir(), sim.URL(), tc.mqtt))
			nb := obs.WaitFor(0, 10*time.Second, "NBIRTH", testutil.Is(sparkplug.NBIRTH, ""))
			db := obs.WaitFor(nb, 5*time.Second, "DBIRTH", testutil.Is(sparkplug.DBIRTH, "plc1"))
			alias := scAliasOf(t, obs.Msgs()[db], "count")
			sim.SetUint32(modbus.Holding, 0, modbus.ABCD, 8)
			obs.WaitFor(db, 5*time.Second, "DDATA of the new value", scHasValue(8, alias, false))
			scWaitStat(t, a, 10*time.Second, "receipts to empty the buffer", func(s Stats) bool {
				return s.Buffer.Acked >= 2 && s.Buffer.Records == 0
			})
			bd := bdSeqOf(t, obs.Msgs()[nb].Payload)

			before := obs.Len()
			stop()
			nd := obs.WaitFor(before, 5*time.Second, "NDEATH on stop", testutil.Is(sparkplug.NDEATH, ""))
			if m := obs.Msgs()[nd]; m.QoS != 0 || bdSeqOf(t, m.Payload) != bd {
				t.Errorf("NDEATH on stop: QoS %d, bdSeq %d; want the explicit one (QoS 0, not the QoS 1 Will) with bdSeq %d", m.QoS, bdSeqOf(t, m.Payload), bd)
			}
			scQuiet(t, obs, nd+1, time.Second, "a second NDEATH (the Will: DISCONNECT was lost)", testutil.Is(sparkplug.NDEATH, ""))
		})
	}
}

// A broker whose certificate the configured CA did not sign is refused:
// the agent says why, keeps retrying, and publishes nothing.
func TestTLSUntrustedBroker(t *testing.T) {
	broker := testutil.MosquittoTLS(t, testutil.NewTLSFiles(t))
	other := testutil.NewTLSFiles(t)
	obs := testutil.Observe(t, broker.URL())
	sim := scSim(t)
	a, stop, log := scRun(t, transportConfig(broker.TLSURL(), t.TempDir(), sim.URL(),
		fmt.Sprintf("  tls:\n    ca_file: %s\n    cert_file: %s\n    key_file: %s\n", other.CA, other.ClientCert, other.ClientKey)))
	defer stop()
	log.waitFor(10*time.Second, 2, "WARN", "broker session ended", "certificate")
	if s := a.Stats(); s.Connects != 0 {
		t.Errorf("%d connects to an untrusted broker", s.Connects)
	}
	scQuiet(t, obs, 0, 0, "anything from the agent", scFromEdge)
}

// wsBridge serves MQTT over websocket at the returned ws:// URL and
// carries each connection to the broker's TCP address, as a websocket
// listener of a broker would.
func wsBridge(t *testing.T, addr string) string {
	t.Helper()
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		tcp, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer tcp.Close()
		go func() {
			defer ws.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := tcp.Read(buf)
				if n > 0 && ws.WriteMessage(websocket.BinaryMessage, buf[:n]) != nil {
					return
				}
				if err != nil {
					return
				}
			}
		}()
		for {
			_, p, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if _, err := tcp.Write(p); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws://" + strings.TrimPrefix(srv.URL, "http://") + "/mqtt"
}

// With ALL_PROXY set, the agent reaches the broker through that SOCKS5
// proxy, over plain TCP and over TLS. The agent runs as its own process:
// the proxy package reads the environment once per process.
func TestSOCKSProxyFromEnvironment(t *testing.T) {
	pki := testutil.NewTLSFiles(t)
	broker := testutil.MosquittoTLS(t, pki)
	for _, tc := range []struct{ name, server, mqtt string }{
		{"tcp", broker.URL(), ""},
		{"TLS", broker.TLSURL(), fmt.Sprintf("  tls:\n    ca_file: %s\n    cert_file: %s\n    key_file: %s\n", pki.CA, pki.ClientCert, pki.ClientKey)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			socks := startSOCKS5(t)
			obs := testutil.Observe(t, broker.URL())
			sim := scSim(t)
			file := filepath.Join(t.TempDir(), "agent.yaml")
			if err := os.WriteFile(file, []byte(transportConfig(tc.server, t.TempDir(), sim.URL(), tc.mqtt)), 0o644); err != nil {
				t.Fatal(err)
			}
			child := startChildAgent(t, file, "ALL_PROXY=socks5://"+socks.addr)
			obs.WaitFor(0, 10*time.Second, "NBIRTH through the proxy", testutil.Is(sparkplug.NBIRTH, ""))
			child.stop(t)
			want := strings.TrimPrefix(strings.TrimPrefix(tc.server, "tcp://"), "ssl://")
			if got := socks.targets(); len(got) == 0 || got[0] != want {
				t.Fatalf("proxy was asked to connect to %v, want %s", got, want)
			}
		})
	}
}

// socks5 is a SOCKS5 proxy (no authentication, CONNECT only) that
// records the addresses it was asked to connect to.
type socks5 struct {
	addr string
	mu   sync.Mutex
	to   []string
}

func (s *socks5) targets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.to)
}

func startSOCKS5(t *testing.T) *socks5 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &socks5{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *socks5) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	// Greeting: VER NMETHODS METHODS...; choose "no authentication".
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(r, hdr); err != nil || hdr[0] != 5 {
		return
	}
	if _, err := io.ReadFull(r, make([]byte, hdr[1])); err != nil {
		return
	}
	c.Write([]byte{5, 0})
	// Request: VER CMD RSV ATYP ADDR PORT, with an IPv4 address or a name.
	req := make([]byte, 4)
	if _, err := io.ReadFull(r, req); err != nil || req[1] != 1 {
		return
	}
	var host string
	switch req[3] {
	case 1:
		ip := make([]byte, 4)
		if _, err := io.ReadFull(r, ip); err != nil {
			return
		}
		host = net.IP(ip).String()
	case 3:
		n, err := r.ReadByte()
		if err != nil {
			return
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(r, name); err != nil {
			return
		}
		host = string(name)
	default:
		return
	}
	port := make([]byte, 2)
	if _, err := io.ReadFull(r, port); err != nil {
		return
	}
	target := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port))))
	s.mu.Lock()
	s.to = append(s.to, target)
	s.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	defer up.Close()
	c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	go func() { io.Copy(up, r); up.Close() }()
	io.Copy(c, up)
}
