package opcuatest

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
)

// sendPatience is how long a notification waits on a subscription's full
// queue before the notifier checks that the subscription still lives.
const sendPatience = 100 * time.Millisecond

// dialTimeout bounds the relay's connection to gopcua's server.
const dialTimeout = 5 * time.Second

// run is one life of the simulator between Start and Stop.
//
// gopcua's Server.Close stops accepting but leaves accepted connections,
// and the sessions on them, alive, so clients would never notice a Stop.
// The run therefore owns the public port and relays each connection to a
// fresh gopcua server on an internal port; stop closes both ends of every
// relayed connection, then closes that server.
type run struct {
	s      *Server
	srv    *server.Server
	ns     *namespace
	cancel context.CancelFunc
	ln     net.Listener // the public port
	target string       // host:port of gopcua's server

	mu       sync.Mutex // guards the fields below
	conns    map[net.Conn]struct{}
	stopping bool
	dirty    map[string]struct{} // variables changed since the notifier last ran
	first    []target            // new monitored items that want their first value

	kick chan struct{} // wakes the notifier; buffered 1
	done chan struct{} // closed by stop
	wg   sync.WaitGroup
}

// startRun starts gopcua's server on a free internal port and relays the
// public listener l to it.
func (s *Server) startRun(l net.Listener) (*run, error) {
	var err error
	// The internal port is picked, freed and handed to gopcua, which
	// cannot report the port it bound; retry if another process took it.
	for range 3 {
		var r *run
		if r, err = s.tryRun(l); err == nil {
			return r, nil
		}
	}
	return nil, err
}

func (s *Server) tryRun(l net.Listener) (*run, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &run{
		s:      s,
		ln:     l,
		target: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		conns:  map[net.Conn]struct{}{},
		dirty:  map[string]struct{}{},
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	if r.srv, r.ns, err = s.newGopcua(port); err != nil {
		return nil, err
	}
	r.register()
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.srv.Start(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("opcuatest: starting gopcua's server on %s: %w", r.target, err)
	}
	r.cancel = cancel
	r.wg.Add(2)
	go r.accept()
	go r.notifier()
	return r, nil
}

// freePort finds a free port on the loopback interface.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("opcuatest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// newGopcua builds a gopcua server listening on 127.0.0.1:port with the
// endpoints, security and address space the Server's options ask for.
func (s *Server) newGopcua(port int) (*server.Server, *namespace, error) {
	_, p, err := net.SplitHostPort(s.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("opcuatest: parsing %q: %w", s.addr, err)
	}
	public, err := strconv.Atoi(p)
	if err != nil {
		return nil, nil, fmt.Errorf("opcuatest: parsing port of %q: %w", s.addr, err)
	}
	opts := []server.Option{
		server.ServerName("opcuatest"),
		server.ManufacturerName("edgeagent"),
		server.ProductName("edgeagent OPC UA simulator"),
		// gopcua listens on its first endpoint. GetEndpoints and
		// CreateSession answer only with endpoints whose URL is the one
		// the client dialed, so clients never learn this internal one.
		server.EndPoint("127.0.0.1", port),
		server.EnableSecurity("None", ua.MessageSecurityModeNone),
		server.EnableAuthMode(ua.UserTokenTypeAnonymous),
	}
	for _, h := range s.hosts {
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		opts = append(opts, server.EndPoint(h, public))
	}
	if s.opts.Secure {
		opts = append(opts, server.Certificate(s.cert), server.PrivateKey(s.key))
		for _, policy := range []string{"Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"} {
			opts = append(opts,
				server.EnableSecurity(policy, ua.MessageSecurityModeSign),
				server.EnableSecurity(policy, ua.MessageSecurityModeSignAndEncrypt))
		}
	}
	if s.opts.Users {
		opts = append(opts, server.EnableAuthMode(ua.UserTokenTypeUserName))
	}
	srv := server.New(opts...)

	// Namespace 1 is by convention the server's own, so ours is 2, as on
	// most PLCs, and clients that hard-code an index get it wrong.
	server.NewNodeNameSpace(srv, applicationURI)
	ns := newNamespace(s)
	if i := srv.AddNamespace(ns); i != nsIndex {
		return nil, nil, fmt.Errorf("opcuatest: namespace index %d, want %d", i, nsIndex)
	}
	ns0, err := srv.Namespace(0)
	if err != nil {
		return nil, nil, fmt.Errorf("opcuatest: namespace 0: %w", err)
	}
	objects := ns0.Objects()
	for _, f := range folders() {
		objects.AddRef(ns.folders[f.name], id.Organizes, true)
	}
	return srv, ns, nil
}

// accept relays every connection made to the public port.
func (r *run) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return // closed by stop
		}
		r.wg.Add(1)
		go r.relay(c)
	}
}

// relay copies bytes between a client and gopcua's server until either
// side or stop closes the connection.
func (r *run) relay(c net.Conn) {
	defer r.wg.Done()
	d, err := net.DialTimeout("tcp", r.target, dialTimeout)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		c.Close()
		d.Close()
		return
	}
	r.conns[c], r.conns[d] = struct{}{}, struct{}{}
	r.mu.Unlock()

	done := make(chan struct{}, 2)
	go func() { io.Copy(d, c); done <- struct{}{} }()
	go func() { io.Copy(c, d); done <- struct{}{} }()
	<-done
	c.Close()
	d.Close()
	<-done

	r.mu.Lock()
	delete(r.conns, c)
	delete(r.conns, d)
	r.mu.Unlock()
}

// stop drops every connection and shuts gopcua's server down.
func (r *run) stop() {
	close(r.done)
	r.ln.Close()
	r.mu.Lock()
	r.stopping = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()

	// Subscriptions run in goroutines that would otherwise outlive the
	// server until their lifetime count runs out.
	if ss := r.srv.SubscriptionService; ss != nil {
		ss.Mu.Lock()
		ids := make([]uint32, 0, len(ss.Subs))
		for id := range ss.Subs {
			ids = append(ids, id)
		}
		ss.Mu.Unlock()
		for _, id := range ids {
			ss.DeleteSubscription(id)
		}
	}
	r.srv.Close() // closes its listener; its channels are already cut
	r.cancel()
}

// mark queues change notifications for the named variables.
func (r *run) mark(names []string) {
	r.mu.Lock()
	for _, n := range names {
		r.dirty[n] = struct{}{}
	}
	r.mu.Unlock()
	r.wake()
}

// queue asks the notifier to send monitored items their first value.
func (r *run) queue(first []target) {
	if len(first) == 0 {
		return
	}
	r.mu.Lock()
	r.first = append(r.first, first...)
	r.mu.Unlock()
	r.wake()
}

func (r *run) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// notifier delivers notifications to subscriptions. It replaces gopcua's
// ChangeNotification, which sends into a subscription's queue while
// holding the monitored items' lock: when that subscription's goroutine
// has exited, the send blocks forever, and so does the whole server.
func (r *run) notifier() {
	defer r.wg.Done()
	for {
		select {
		case <-r.done:
			return
		case <-r.kick:
		}
		r.mu.Lock()
		dirty, first := r.dirty, r.first
		r.dirty, r.first = map[string]struct{}{}, nil
		r.mu.Unlock()
		if !r.send(first) || !r.send(r.watchers(dirty)) {
			return
		}
	}
}

// target is one monitored item to notify.
type target struct {
	node   *ua.NodeID
	attr   ua.AttributeID
	handle uint32
	sub    *server.Subscription
}

func targetOf(it *server.MonitoredItem) target {
	return target{it.Req.ItemToMonitor.NodeID, it.Req.ItemToMonitor.AttributeID, it.Req.RequestedParameters.ClientHandle, it.Sub}
}

// watchers lists the reporting monitored items of the named variables.
func (r *run) watchers(names map[string]struct{}) []target {
	mis := r.srv.MonitoredItemService
	if mis == nil || len(names) == 0 {
		return nil
	}
	var targets []target
	mis.Mu.Lock()
	defer mis.Mu.Unlock()
	for name := range names {
		for _, it := range mis.Nodes[ua.NewStringNodeID(nsIndex, name).String()] {
			if it == nil || it.Sub == nil || it.Req == nil || it.Req.ItemToMonitor == nil || it.Req.RequestedParameters == nil {
				continue // not made by createMonitoredItems
			}
			if it.Mode == ua.MonitoringModeReporting {
				targets = append(targets, targetOf(it))
			}
		}
	}
	return targets
}

// send queues the targets' current values on their subscriptions; it
// reports false if the run stopped meanwhile.
func (r *run) send(targets []target) bool {
	for _, t := range targets {
		n := &ua.MonitoredItemNotification{ClientHandle: t.handle, Value: r.attribute(t.node, t.attr)}
		if !r.sendOne(t.sub, n) {
			return false
		}
	}
	return true
}

// sendOne queues n on a subscription, waiting while the subscription
// lives; it reports false if the run stopped meanwhile.
func (r *run) sendOne(sub *server.Subscription, n *ua.MonitoredItemNotification) bool {
	select {
	case sub.NotifyChannel <- n:
		return true
	default:
	}
	t := time.NewTimer(sendPatience)
	defer t.Stop()
	for {
		select {
		case sub.NotifyChannel <- n:
			return true
		case <-r.done:
			return false
		case <-t.C:
			if r.subscription(sub.ID) != sub {
				return true // gone: drop n
			}
			t.Reset(sendPatience)
		}
	}
}
