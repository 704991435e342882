package agent

import (
	"context"
	"time"

	"github.com/edgeagent/edgeagent/agent/health"
	"github.com/edgeagent/edgeagent/buffer"
)

// Stats is a snapshot of the agent's counters.
type Stats struct {
	Connected          bool
	Published          uint64
	Samples            uint64
	HistoricalSamples  uint64
	DroppedUnknown     uint64
	DroppedCorrupt     uint64
	StoreFailed        uint64
	Connects, Rebirths uint64
	CommandsRefused    uint64
	WritesFailed       uint64
	DevicesOnline      int
	Reloads            map[string]uint64 // by result
	Buffer             buffer.Stats
}

// Stats returns the agent's counters.
func (a *Agent) Stats() Stats {
	u := a.up.Stats()
	s := Stats{
		Connected: u.Connected, Published: u.Published, Samples: u.Samples, HistoricalSamples: u.HistoricalSamples,
		DroppedUnknown: u.DroppedUnknown, DroppedCorrupt: u.DroppedCorrupt, StoreFailed: a.store.Failed(),
		Connects: u.Connects, Rebirths: u.Rebirths, CommandsRefused: u.CommandsRefused,
		Reloads: map[string]uint64{}, Buffer: a.buf.Stats(),
	}
	for i, r := range health.ReloadResults {
		s.Reloads[r] = a.reloads[i].Load()
	}
	a.mu.Lock()
	for _, d := range a.devs {
		s.WritesFailed += d.scan.WritesFailed()
		if d.scan.Online() {
			s.DevicesOnline++
		}
	}
	a.mu.Unlock()
	return s
}

// healthServer is the running health endpoint.
type healthServer struct {
	stop context.CancelFunc
	done chan struct{}
}

// startHealth serves the health endpoints on addr, if set. Called with
// mu held.
func (a *Agent) startHealth(addr string) {
	if addr == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &healthServer{stop: cancel, done: make(chan struct{})}
	a.health = h
	go func() {
		defer close(h.done)
		if err := health.Serve(ctx, addr, (*healthSource)(a), a.log); err != nil {
			a.log.Error("health endpoint failed", "listen", addr, "err", err)
		}
	}()
}

// stopHealth stops the health endpoints. Called with mu held.
func (a *Agent) stopHealth() {
	if a.health == nil {
		return
	}
	a.health.stop()
	<-a.health.done
	a.health = nil
}

// stallLimit is how long a loop may go without a beat before /healthz
// calls the agent stalled (the watchdog uses its own interval).
const stallLimit = 15 * time.Second

// healthSource is the agent as the health endpoints read it.
type healthSource Agent

func (h *healthSource) Stalled() []string { return (*Agent)(h).Stalled(stallLimit) }

func (h *healthSource) Status() health.Status {
	a := (*Agent)(h)
	s := a.Stats()
	st := health.Status{
		Connected: s.Connected, Published: s.Published, Samples: s.Samples, HistoricalSamples: s.HistoricalSamples,
		DroppedUnknown: s.DroppedUnknown, DroppedCorrupt: s.DroppedCorrupt, StoreFailed: s.StoreFailed,
		BufferCapDropped: s.Buffer.Dropped, Connects: s.Connects, Rebirths: s.Rebirths, CommandsRefused: s.CommandsRefused,
		WritesFailed: s.WritesFailed, Reloads: s.Reloads,
		BufferRecords: s.Buffer.Records, BufferBytes: s.Buffer.Bytes, BufferFileBytes: s.Buffer.FileBytes,
		BufferWrittenBytes: s.Buffer.WrittenBytes, BufferOldestAge: s.Buffer.OldestAge,
	}
	a.mu.Lock()
	for _, d := range a.devs {
		st.Devices = append(st.Devices, health.DeviceStatus{ID: d.cfg.ID, Online: d.scan.Online()})
	}
	a.mu.Unlock()
	return st
}
