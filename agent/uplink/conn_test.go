package uplink

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// tcpPair returns a batchConn dialled over loopback TCP and the server's
// end of it.
func tcpPair(t *testing.T) (*batchConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	t.Cleanup(func() { peer.Close() })
	b := newBatchConn(c)
	t.Cleanup(func() { b.Close() })
	return b, peer
}

// Concurrent writers' frames arrive whole, each writer's in its order,
// and Close delivers everything still gathered before the connection
// ends.
func TestBatchConnKeepsOrderAndFlushesOnClose(t *testing.T) {
	b, peer := tcpPair(t)
	const writers, frames = 4, 3000
	type got struct {
		n   int
		err error
	}
	done := make(chan got, 1)
	go func() {
		r := bufio.NewReader(peer)
		next := make([]uint32, writers)
		n := 0
		hdr := make([]byte, 7)
		body := make([]byte, 1<<16)
		for {
			if _, err := io.ReadFull(r, hdr); err != nil {
				if err == io.EOF {
					err = nil
				}
				done <- got{n, err}
				return
			}
			w, seq, size := int(hdr[0]), binary.BigEndian.Uint32(hdr[1:5]), int(binary.BigEndian.Uint16(hdr[5:7]))
			if _, err := io.ReadFull(r, body[:size]); err != nil {
				done <- got{n, err}
				return
			}
			if w >= writers || seq != next[w] {
				done <- got{n, errors.New("frame out of order or from an unknown writer")}
				return
			}
			for _, c := range body[:size] {
				if c != byte(seq) {
					done <- got{n, errors.New("frame body interleaved with another")}
					return
				}
			}
			next[w]++
			n++
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for seq := range frames {
				size := (seq*131 + w*17) % 4000
				f := make([]byte, 7+size)
				f[0] = byte(w)
				binary.BigEndian.PutUint32(f[1:5], uint32(seq))
				binary.BigEndian.PutUint16(f[5:7], uint16(size))
				for i := range size {
					f[7+i] = byte(seq)
				}
				if n, err := b.Write(f); err != nil || n != len(f) {
					t.Errorf("writer %d frame %d: wrote %d of %d: %v", w, seq, n, len(f), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r := <-done
	if r.err != nil || r.n != writers*frames {
		t.Fatalf("peer read %d of %d frames: %v", r.n, writers*frames, r.err)
	}
	if _, err := b.Write([]byte("late")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// A peer that stops reading: what is gathered stays bounded, Write
// blocks as it would on a plain connection, and Close gives up on the
// pending bytes after closeFlushFor instead of hanging, failing the
// blocked Write.
func TestBatchConnPeerStopsReading(t *testing.T) {
	b, _ := tcpPair(t)
	chunk := make([]byte, 32<<10)
	var mu sync.Mutex
	written := 0
	wErr := make(chan error, 1)
	go func() {
		for {
			if _, err := b.Write(chunk); err != nil {
				wErr <- err
				return
			}
			mu.Lock()
			written += len(chunk)
			mu.Unlock()
		}
	}()
	// Wait until the kernel's buffers are full and Write has blocked.
	last := -1
	for {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		w := written
		mu.Unlock()
		if w == last {
			break
		}
		last = w
	}
	b.mu.Lock()
	pending := len(b.pending)
	b.mu.Unlock()
	if pending > maxBatch {
		t.Fatalf("%d bytes gathered while the peer is not reading, bound %d", pending, maxBatch)
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case <-closed:
	case <-time.After(closeFlushFor + 10*time.Second):
		t.Fatal("Close hung on a peer that does not read")
	}
	select {
	case err := <-wErr:
		if err == nil {
			t.Fatal("blocked Write returned no error after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Write stayed blocked after Close")
	}
}

// A failed socket write fails every later Write and closes the
// connection, so a reader blocked on it (paho's) learns of it too.
func TestBatchConnWriteErrorEndsConnection(t *testing.T) {
	b, _ := tcpPair(t)
	readErr := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 1))
		readErr <- err
	}()
	// On the socket under it: batchConn ignores paho's write deadlines.
	if err := b.Conn.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("x")); err != nil {
		t.Fatalf("first Write: %v (it only gathers)", err)
	}
	select {
	case err := <-readErr:
		// The write's error, not the close's, which paho would ignore.
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read returned %v, want the failed write's deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failed write did not end the connection")
	}
	if _, err := b.Write([]byte("y")); err == nil {
		t.Fatal("Write after a failed socket write succeeded")
	}
}

// A broker address that accepts the connection and then says nothing
// (a hung TLS terminator, a stalled proxy) fails the dial at
// connect_timeout instead of hanging paho's connect for ever.
func TestDialGivesUpAtConnectTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	o := mqtt.NewClientOptions().SetConnectTimeout(300 * time.Millisecond)
	u, _ := url.Parse("ssl://" + ln.Addr().String())
	done := make(chan error, 1)
	go func() {
		c, err := dialBroker(u, *o)
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("dial returned %v, want the connect timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dial to a silent TLS endpoint did not give up")
	}
}
