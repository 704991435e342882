package health

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// BeatEvery is how often a loop beats at least, also when idle.
const BeatEvery = time.Second

// Heart is one loop's heartbeat. Its methods are safe for concurrent use
// and allocate nothing.
type Heart struct {
	name      string
	last      atomic.Int64 // Unix ns of the last beat
	busyUntil atomic.Int64 // Unix ns until which a declared call may block
	now       func() time.Time
}

// Name names the loop.
func (h *Heart) Name() string { return h.name }

// Beat says the loop is turning.
func (h *Heart) Beat() { h.last.Store(h.now().UnixNano()) }

// Busy says the loop is about to block in a call bounded by d (plus the
// monitor's limit): it counts as alive until then.
func (h *Heart) Busy(d time.Duration) {
	t := h.now().Add(d).UnixNano()
	h.busyUntil.Store(t)
	h.last.Store(h.now().UnixNano())
}

// Monitor holds the hearts of the loops that must stay alive.
type Monitor struct {
	mu     sync.Mutex
	hearts map[*Heart]struct{}
	now    func() time.Time
}

// NewMonitor returns an empty monitor.
func NewMonitor() *Monitor {
	return &Monitor{hearts: map[*Heart]struct{}{}, now: time.Now}
}

// Add registers a loop; it counts as alive from now.
func (m *Monitor) Add(name string) *Heart {
	h := &Heart{name: name, now: m.now}
	h.Beat()
	m.mu.Lock()
	m.hearts[h] = struct{}{}
	m.mu.Unlock()
	return h
}

// Remove forgets a loop that ended.
func (m *Monitor) Remove(h *Heart) {
	m.mu.Lock()
	delete(m.hearts, h)
	m.mu.Unlock()
}

// Stalled names the loops that have not beaten within limit, sorted.
func (m *Monitor) Stalled(limit time.Duration) []string {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for h := range m.hearts {
		if now-h.last.Load() > int64(limit) && now-h.busyUntil.Load() > int64(limit) {
			out = append(out, h.name)
		}
	}
	slices.Sort(out)
	return out
}
