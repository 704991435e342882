package uplink

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// dialBroker opens the connection to a broker URL for paho, as paho would
// (tcp and mqtt, or with TLS ssl, tls and mqtts, through the SOCKS5 proxy
// in ALL_PROXY if one is set; ws and wss), and wraps it in a batchConn.
func dialBroker(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	var conn net.Conn
	var err error
	switch uri.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
		conn, err = dialTCP(uri, o)
	case "ws", "wss":
		u := *uri
		u.User = nil // the websocket dialer refuses URLs with credentials
		var tc *tls.Config
		if uri.Scheme == "wss" {
			tc = o.TLSConfig
		}
		conn, err = mqtt.NewWebsocket(u.String(), tc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	default:
		return nil, fmt.Errorf("broker URL %s: unsupported scheme %q", uri.Redacted(), uri.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return newBatchConn(conn), nil
}

// dialTCP connects, negotiates with the proxy and does the TLS handshake
// all within connect_timeout. paho's own dialer gives the connect 30 s and
// the rest no limit, which would hold up the walk to the next server.
func dialTCP(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	ctx := context.Background()
	if o.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.ConnectTimeout)
		defer cancel()
	}
	raw, err := proxy.Dial(ctx, "tcp", uri.Host)
	if err != nil || uri.Scheme == "tcp" || uri.Scheme == "mqtt" {
		return raw, err
	}
	tc := o.TLSConfig.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName = uri.Hostname()
	}
	c := tls.Client(raw, tc)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// batchConn gathers the writes paho makes, one per packet, and writes
// what has gathered in one system call from its own goroutine: while one
// batch is on its way to the socket, the next collects. An idle
// connection writes at once, so nothing waits for a batch to fill.
//
// Order is the order of Write calls, which is all the receipt proof needs.
// A write error is returned by every later Write and closes the
// connection, so paho's reader fails too and the session ends. Close
// writes what is pending first (a DISCONNECT, an NDEATH), for at most
// closeFlushFor.
type batchConn struct {
	net.Conn

	mu      sync.Mutex
	cond    sync.Cond
	pending []byte
	err     error
	closing bool
	done    chan struct{} // closed when the writer has stopped
	once    sync.Once
}

const (
	// maxBatch bounds the bytes gathered: Write blocks beyond it until
	// the socket takes them, as a plain connection's Write would.
	maxBatch = 256 << 10
	// closeFlushFor bounds how long Close waits for pending bytes. They
	// are in the kernel at once unless its send buffer is full, which
	// happens on a dead link, where waiting longer gains nothing.
	closeFlushFor = time.Second
)

// errConnClosed is what paho takes for a connection it closed itself.
var errConnClosed = net.ErrClosed

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{Conn: c, done: make(chan struct{})}
	b.cond.L = &b.mu
	go b.writer()
	return b
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.err == nil && !b.closing && len(b.pending) > 0 && len(b.pending)+len(p) > maxBatch {
		b.cond.Wait()
	}
	switch {
	case b.err != nil:
		return 0, b.err
	case b.closing:
		return 0, errConnClosed
	}
	b.pending = append(b.pending, p...)
	b.cond.Broadcast()
	return len(p), nil
}

// Read returns the error of the failed socket write that closed the
// connection, if one did: paho's reader ignores "use of closed network
// connection", taking it for its own Close, and would otherwise learn of
// the failure only at its next write.
// SetWriteDeadline ignores the deadline paho sets around each Write
// (it does with a WriteTimeout): Write only gathers, and the writer's
// system calls run on their own goroutine, where a deadline set from
// another would race (a websocket's is a plain field) and time the wrong
// write. What bounds a publish is paho's wait to hand it over, and a dead
// link is found by the keepalive.
func (b *batchConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline only, for SetWriteDeadline's reason.
func (b *batchConn) SetDeadline(t time.Time) error { return b.Conn.SetReadDeadline(t) }

func (b *batchConn) Read(p []byte) (int, error) {
	n, err := b.Conn.Read(p)
	if err != nil {
		b.mu.Lock()
		if b.err != nil {
			err = b.err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *batchConn) writer() {
	defer close(b.done)
	var out []byte
	for {
		b.mu.Lock()
		for len(b.pending) == 0 && !b.closing && b.err == nil {
			b.cond.Wait()
		}
		if len(b.pending) == 0 || b.err != nil {
			b.mu.Unlock()
			return
		}
		out, b.pending = b.pending, out[:0]
		b.cond.Broadcast() // room for blocked writers
		b.mu.Unlock()

		_, err := b.Conn.Write(out)
		if cap(out) > maxBatch {
			out = nil
		}
		if err != nil {
			b.mu.Lock()
			b.err = err
			b.cond.Broadcast()
			b.mu.Unlock()
			b.Conn.Close()
			return
		}
	}
}

// Close writes what is pending, then closes the connection.
func (b *batchConn) Close() error {
	var err error
	b.once.Do(func() {
		b.mu.Lock()
		b.closing = true
		b.cond.Broadcast()
		b.mu.Unlock()
		t := time.NewTimer(closeFlushFor)
		defer t.Stop()
		select {
		case <-b.done:
		case <-t.C:
			// A blackholed link: give up on the pending bytes.
		}
		err = b.Conn.Close()
		<-b.done
	})
	return err
}
