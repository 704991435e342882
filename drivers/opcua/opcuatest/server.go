// Package opcuatest is an OPC UA server simulator for tests and demos, in
// the manner of net/http/httptest. It runs github.com/gopcua/opcua/server,
// the server side of the library the driver uses as client, with one
// namespace of its own (NamespaceURI, index 2) whose variables have string
// node ids equal to their names: NodeID("Counter") is "ns=2;s=Counter".
//
// Variables, all read-only unless noted, browsable under the Objects folder:
//
//	Types/  Bool, SByte, Byte, Int16, UInt16, Int32, UInt32, Int64, UInt64,
//	        Float, Double, String, DateTime, ByteString, LocalizedText,
//	        QualifiedName, Guid, NodeId: one scalar of each builtin type,
//	        DataType the type of the same name;
//	        Int32Array, DoubleArray, BooleanArray, StringArray: ValueRank 1;
//	        Enum: DataType ServerState (i=852, an enumeration), value Int32;
//	        Base: DataType BaseDataType (i=24), value Double (Set takes any scalar);
//	        Struct: DataType Range (i=884), value an ExtensionObject, which the
//	        agent does not support on purpose.
//	Press/  Counter (UInt32), Sine (Double), Toggle (Bool): moved by Animate;
//	        Setpoint (Int32) and SetpointDouble (Double): writable by clients.
//	Load/   the UInt32 counters made by AddCounters, moved by Bump.
//
// Tests set values with Set (which notifies subscribers), degrade them
// with SetStatus, watch client writes on Writes, count Read and Write
// requests with Requests, and cut the device off with Stop and Start: the
// port stays the same, Stop drops every connection, and Start brings up a
// fresh server with no sessions or subscriptions, like a PLC that
// rebooted. Values and statuses survive Stop, like a PLC's retained memory.
//
// With Options.Secure the server also offers Basic256Sha256,
// Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss endpoints (Sign and
// SignAndEncrypt) with a self-signed certificate written to CertFile and
// KeyFile. It trusts every client certificate, and with Options.Users it
// accepts every user name with ANY password: gopcua's server checks no
// identity, so tests of rejected credentials or untrusted certificates
// need another server.
//
// The simulator serves Read, Write, CreateSubscription, DeleteSubscriptions
// and the monitored item services itself or guarded, since gopcua's own
// serve clients without a session, accept items of unknown nodes (they get
// Bad_NodeIdUnknown here) and crash on unknown ids. Limits of gopcua's
// server v0.9.1 that remain:
//   - BadServiceUnsupported for TranslateBrowsePathsToNodeIds, Call,
//     ModifySubscription, SetPublishingMode, Republish,
//     TransferSubscriptions, ModifyMonitoredItems, SetTriggering and the
//     history services; RegisterNodes echoes the ids back.
//   - No operation limits: MaxNodesPerRead is published as 32, but larger
//     requests of any service are served.
//   - Monitored items sample at the publishing interval with a queue of
//     one, ignore deadband filters, and report every Set, even of an equal
//     value; subscription ids are reused (len+1), so a client that deletes
//     a subscription while keeping a later one may get a clashing id.
//   - IndexRange, DataEncoding and MaxAge of reads are ignored.
//   - gopcua logs its node set import and each start with the log package.
package opcuatest

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/ua"
)

// namespaceURI names the simulator's namespace in the server's NamespaceArray.
const namespaceURI = "urn:edgeagent:opcuatest"

// applicationURI is the server's ApplicationUri, also in its certificate's SAN.
const applicationURI = "urn:edgeagent:opcuatest:server"

// writeBuffer is how many writes Writes holds before further ones are dropped.
const writeBuffer = 1024

// sinePeriod is how many Animate ticks one period of Sine takes.
const sinePeriod = 60

// Options configures NewServer.
type Options struct {
	// Addr is host:port; "127.0.0.1:0" (the default) picks a free port,
	// kept for the server's life so Start listens on it again. A demo
	// reachable from other machines listens on ":4840".
	Addr string
	// Secure also offers Basic256Sha256, Aes128_Sha256_RsaOaep and
	// Aes256_Sha256_RsaPss with Sign and SignAndEncrypt, besides None.
	// The server's self-signed certificate (its application URI in the SAN)
	// is made once per Server and written to CertFile and KeyFile in Dir.
	Secure bool
	// Dir is where the certificate files go (tests pass t.TempDir());
	// required when Secure.
	Dir string
	// Users accepts user name and password identity tokens besides
	// anonymous, on the secure endpoints only (so it needs Secure).
	// gopcua's server accepts ANY user name and password.
	Users bool
}

// Write is one write of a variable's value that a client made.
type Write struct {
	Name  string // the variable's name
	Value any    // the value written, in the Go type Set takes
}

// Server is a running simulator.
type Server struct {
	listen   string   // host:port bound, fixed for the server's life
	addr     string   // host:port clients dial: listen, or 127.0.0.1 for all interfaces
	hosts    []string // the host names and addresses the endpoints advertise
	opts     Options
	cert     []byte          // DER; nil unless Secure
	key      *rsa.PrivateKey // nil unless Secure
	requests atomic.Uint64
	writes   chan Write

	mu       sync.RWMutex // guards the address space below
	vars     map[string]*variable
	children map[string][]string // folder name → its variables, in creation order

	runMu  sync.Mutex // serializes Start, Stop and Close
	run    atomic.Pointer[run]
	first  net.Listener // the listener NewServer bound, handed to the first run
	closed bool
}

// NewServer starts a simulator with every variable at its initial value.
func NewServer(opts Options) (*Server, error) {
	switch {
	case opts.Secure && opts.Dir == "":
		return nil, errors.New("opcuatest: Options.Secure needs Options.Dir for the certificate files")
	case opts.Users && !opts.Secure:
		return nil, errors.New("opcuatest: Options.Users needs Options.Secure: gopcua offers user name tokens on secure endpoints only")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("opcuatest: listening on %s: %w", opts.Addr, err)
	}
	bound := l.Addr().(*net.TCPAddr)
	s := &Server{
		listen: bound.String(),
		hosts:  advertisedHosts(bound.IP),
		opts:   opts,
		writes: make(chan Write, writeBuffer),
		first:  l,
	}
	// Listening on all interfaces, clients on this machine dial 127.0.0.1.
	s.addr = net.JoinHostPort(s.hosts[0], strconv.Itoa(bound.Port))
	s.initVariables()
	if opts.Secure {
		if s.cert, s.key, err = newCertificate(s.hosts); err != nil {
			l.Close()
			return nil, err
		}
		if err := writeCertificate(s.CertFile(), s.KeyFile(), s.cert, s.key); err != nil {
			l.Close()
			return nil, err
		}
	}
	if err := s.Start(); err != nil {
		l.Close()
		return nil, err
	}
	return s, nil
}

// advertisedHosts lists the hosts the endpoints carry: the listening
// address, plus localhost for loopback, plus the machine's names when
// listening on all interfaces.
func advertisedHosts(ip net.IP) []string {
	if ip.IsUnspecified() {
		hosts := []string{"127.0.0.1", "localhost"}
		if h, err := os.Hostname(); err == nil && h != "localhost" {
			hosts = append(hosts, h)
		}
		return hosts
	}
	hosts := []string{ip.String()}
	if ip.IsLoopback() {
		hosts = append(hosts, "localhost")
	}
	return hosts
}

// URL is the endpoint URL clients dial: opc.tcp://127.0.0.1:PORT. The
// endpoints carry it (and the same with localhost, and for a server on
// all interfaces the machine's name), and gopcua's server answers
// GetEndpoints and CreateSession only for the URL the client dialed.
func (s *Server) URL() string { return "opc.tcp://" + s.addr }

// Addr is the host:port clients dial.
func (s *Server) Addr() string { return s.addr }

// NamespaceURI is the URI of the simulator's namespace.
func (s *Server) NamespaceURI() string { return namespaceURI }

// Namespace is the index of the simulator's namespace: always 2, after
// the OPC UA namespace and the server's own.
func (s *Server) Namespace() uint16 { return nsIndex }

// NodeID is the node id of a variable: "ns=2;s=<name>".
func (s *Server) NodeID(name string) string { return fmt.Sprintf("ns=%d;s=%s", nsIndex, name) }

// CertFile is the PEM file holding the server's certificate when Secure,
// for clients that pin it.
func (s *Server) CertFile() string {
	if !s.opts.Secure {
		return ""
	}
	return filepath.Join(s.opts.Dir, "opcuatest-server-cert.pem")
}

// KeyFile is the PEM file holding the server's RSA private key when Secure.
func (s *Server) KeyFile() string {
	if !s.opts.Secure {
		return ""
	}
	return filepath.Join(s.opts.Dir, "opcuatest-server-key.pem")
}

// Requests is the number of Read and Write service requests served so
// far; gopcua offers no hook to count the other services.
func (s *Server) Requests() uint64 { return s.requests.Load() }

// Writes delivers each value a client wrote, in order. It buffers 1024;
// later writes are dropped if nobody reads them. It is never closed.
func (s *Server) Writes() <-chan Write { return s.writes }

// Set gives a variable a new value and notifies its subscribers. v must
// be of the variable's type: bool, int8, uint8, int16, uint16, int32,
// uint32, int64, uint64, float32, float64, string, time.Time, []byte,
// ua.LocalizedText, ua.QualifiedName, ua.GUID (or pointers to these three),
// *ua.NodeID, *ua.ExtensionObject, or []int32, []float64, []bool, []string
// for the arrays. Set works while the server is stopped. The status stays
// as SetStatus left it.
func (s *Server) Set(name string, v any) error {
	val, t, array, err := toVariant(v)
	if err != nil {
		return fmt.Errorf("opcuatest: setting %q: %w", name, err)
	}
	s.mu.Lock()
	vr := s.vars[name]
	switch {
	case vr == nil:
		s.mu.Unlock()
		return fmt.Errorf("opcuatest: setting %q: no such variable", name)
	case !vr.accepts(t, array):
		s.mu.Unlock()
		return fmt.Errorf("opcuatest: setting %q: %T does not fit its data type %s", name, v, vr.typeName())
	}
	vr.value, vr.stamp = val, time.Now()
	s.mu.Unlock()
	s.notify(name)
	return nil
}

// SetStatus makes the variable's next reads and notifications carry
// status, e.g. ua.StatusBadSensorFailure; ua.StatusOK restores it. Values
// come with Good and Uncertain statuses and are left out of Bad ones, as
// OPC UA requires. It panics on an unknown name.
func (s *Server) SetStatus(name string, status ua.StatusCode) {
	s.mu.Lock()
	vr := s.vars[name]
	if vr == nil {
		s.mu.Unlock()
		panic(fmt.Sprintf("opcuatest: SetStatus of unknown variable %q", name))
	}
	vr.status, vr.stamp = status, time.Now()
	s.mu.Unlock()
	s.notify(name)
}

// Get returns a variable's value in the Go type Set takes, or nil for an
// unknown name.
func (s *Server) Get(name string) any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vr := s.vars[name]
	if vr == nil {
		return nil
	}
	return fromVariant(vr.value)
}

// Animate moves Counter (+1), Sine (one period per 60 ticks) and Toggle
// every tick and notifies their subscribers. It blocks until ctx ends:
// go srv.Animate(ctx, time.Second).
func (s *Server) Animate(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		s.mu.Lock()
		for _, vr := range []*variable{s.vars["Counter"], s.vars["Sine"], s.vars["Toggle"]} {
			switch v := vr.value.(type) {
			case uint32:
				vr.value = v + 1
			case float64:
				vr.value = math.Sin(2 * math.Pi * float64(n%sinePeriod) / sinePeriod)
			case bool:
				vr.value = !v
			}
			vr.stamp = now
		}
		s.mu.Unlock()
		s.notify("Counter", "Sine", "Toggle")
	}
}

// AddCounters adds n UInt32 variables named prefix0000, prefix0001, ...
// under the Load folder, for load tests, and returns their names. It
// panics if a name is taken.
func (s *Server) AddCounters(prefix string, n int) []string {
	names := make([]string, n)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range names {
		names[i] = fmt.Sprintf("%s%04d", prefix, i)
		if _, taken := s.vars[names[i]]; taken || isFolder(names[i]) {
			panic(fmt.Sprintf("opcuatest: AddCounters: %q exists", names[i]))
		}
	}
	for _, name := range names {
		s.addLocked(&variable{name: name, folder: "Load", typeID: ua.TypeIDUint32, value: uint32(0), stamp: now})
	}
	return names
}

// Bump increments the UInt32 variables named and notifies their
// subscribers, all in one go: 10,000 names take milliseconds. It panics
// on an unknown name or one that is not a UInt32.
func (s *Server) Bump(names []string) {
	now := time.Now()
	s.mu.Lock()
	for _, name := range names {
		vr := s.vars[name]
		if vr == nil {
			s.mu.Unlock()
			panic(fmt.Sprintf("opcuatest: Bump of unknown variable %q", name))
		}
		v, ok := vr.value.(uint32)
		if !ok {
			s.mu.Unlock()
			panic(fmt.Sprintf("opcuatest: Bump of %q, a %s", name, vr.typeName()))
		}
		vr.value, vr.stamp = v+1, now
	}
	s.mu.Unlock()
	s.notify(names...)
}

// Start brings the server up again on the same port after Stop, as a
// fresh gopcua server: sessions and subscriptions of the previous run are
// gone, as after a PLC reboot. It does nothing if the server is running.
func (s *Server) Start() error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	switch {
	case s.closed:
		return errors.New("opcuatest: Start after Close")
	case s.run.Load() != nil:
		return nil
	}
	l := s.first
	s.first = nil
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", s.listen); err != nil {
			return fmt.Errorf("opcuatest: listening on %s: %w", s.listen, err)
		}
	}
	r, err := s.startRun(l)
	if err != nil {
		l.Close()
		return err
	}
	s.run.Store(r)
	return nil
}

// Stop closes the listener and every client connection, like a PLC losing
// power: clients see their connection end at once and new connections are
// refused until Start. Sessions and subscriptions die with the server.
func (s *Server) Stop() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if r := s.run.Swap(nil); r != nil {
		r.stop()
	}
}

// Close stops the server for good.
func (s *Server) Close() error {
	s.Stop()
	s.runMu.Lock()
	defer s.runMu.Unlock()
	s.closed = true
	if s.first != nil {
		s.first.Close()
		s.first = nil
	}
	return nil
}

// notify tells the running server's subscribers that the variables
// changed; the notifier goroutine delivers it, so the caller never waits
// on a client.
func (s *Server) notify(names ...string) {
	if r := s.run.Load(); r != nil {
		r.mark(names)
	}
}

// record reports a client's write on Writes without ever blocking the
// server.
func (s *Server) record(w Write) {
	select {
	case s.writes <- w:
	default:
	}
}
