// Package testutil holds helpers for tests that run real components: a
// Mosquitto broker, a Sparkplug observer subscribed to it, and a TCP proxy
// that cuts and restores links. Everything is cleaned up with t.Cleanup.
package testutil

import (
	"net"
	"testing"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
