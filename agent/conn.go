package agent

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// dialBroker opens the connection to a broker URL for paho, as paho would
// (tcp and mqtt through any proxy in the environment; ssl, tls, mqtts
// with o.TLSConfig; ws and wss), and wraps it in a batchConn.
func dialBroker(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	// Not paho's default dialer: its 30 s timeout would outlast
	// connect_timeout and hold up the walk to the next server.
	d := &net.Dialer{Timeout: o.ConnectTimeout}
	var conn net.Conn
	var err error
	switch uri.Scheme {
	case "tcp", "mqtt":
		conn, err = proxy.FromEnvironmentUsing(d).Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts":
		conn, err = dialTLS(d, uri.Host, o.TLSConfig)
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

func dialTLS(d *net.Dialer, host string, tc *tls.Config) (net.Conn, error) {
	if os.Getenv("all_proxy") == "" && os.Getenv("ALL_PROXY") == "" {
		return tls.DialWithDialer(d, "tcp", host, tc)
	}
	raw, err := proxy.FromEnvironmentUsing(d).Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	if tc = tc.Clone(); tc == nil {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(host)
	}
	c := tls.Client(raw, tc)
	if err := c.Handshake(); err != nil {
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

var errConnClosed = errors.New("connection closed")

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
