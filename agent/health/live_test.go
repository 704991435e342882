package health

import (
	"slices"
	"testing"
	"time"
)

func TestMonitor(t *testing.T) {
	now := time.Unix(1000, 0)
	m := NewMonitor()
	m.now = func() time.Time { return now }
	a, b := m.Add("a"), m.Add("b")
	if st := m.Stalled(time.Second); len(st) != 0 {
		t.Fatalf("stalled at start: %v", st)
	}
	now = now.Add(2 * time.Second)
	a.Beat()
	if st := m.Stalled(time.Second); !slices.Equal(st, []string{"b"}) {
		t.Fatalf("stalled = %v, want [b]", st)
	}
	// A declared bounded call keeps a loop alive until the bound plus
	// the limit.
	b.Busy(5 * time.Second)
	now = now.Add(5 * time.Second)
	a.Beat()
	if st := m.Stalled(time.Second); len(st) != 0 {
		t.Fatalf("stalled during a declared call: %v", st)
	}
	now = now.Add(2 * time.Second)
	a.Beat()
	if st := m.Stalled(time.Second); !slices.Equal(st, []string{"b"}) {
		t.Fatalf("stalled = %v, want [b] past its bound", st)
	}
	m.Remove(b)
	if st := m.Stalled(time.Second); len(st) != 0 {
		t.Fatalf("a removed loop still counts: %v", st)
	}
}
