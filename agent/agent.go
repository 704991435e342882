// Package agent runs edgeagent: it loads and validates configuration,
// starts one scanner per device and the uplink to the central broker, and
// stops them in order.
//
// Data flows one way: device scanners read PLCs through drivers, scale
// and filter by exception, and store every event in the buffer (the
// store); the uplink, the only goroutine that publishes, reads the buffer
// in order, publishes Sparkplug B, and deletes records once the broker
// has provably received them. Commands (rebirth, writes) come back
// through the uplink to the scanner that owns the device.
//
// Lifecycle: New (builds drivers and opens the buffer; no network I/O)
// → Run (until its context ends) → stop: scanners stop first, the uplink
// publishes what they stored, then DDEATHs, the NDEATH and DISCONNECT;
// anything not yet proven delivered stays in the buffer for next time.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/edgeagent/edgeagent/buffer"
)

// Agent is a configured edge node.
type Agent struct {
	cfg   *Config
	log   *slog.Logger
	buf   *buffer.Buffer
	store *store
	devs  []*device
	up    *uplink
}

// New builds an agent from a validated configuration. It opens the buffer
// but connects to nothing.
func New(cfg *Config, log *slog.Logger) (*Agent, error) {
	for _, dir := range []string{cfg.StateDir, filepath.Dir(cfg.Buffer.Path)} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("creating state directory: %w", err)
		}
	}
	mode := buffer.WriteAhead
	if cfg.Buffer.Mode == "outage" {
		mode = buffer.Outage
	}
	buf, err := buffer.Open(buffer.Options{Path: cfg.Buffer.Path, MaxBytes: int64(cfg.Buffer.MaxBytes), Mode: mode, Logger: log.With("component", "buffer")})
	if err != nil {
		return nil, fmt.Errorf("opening buffer: %w", err)
	}
	a := &Agent{cfg: cfg, log: log, buf: buf, store: newStore(buf)}
	for i, dc := range cfg.Devices {
		d, err := newDevice(i, dc, log, a.store)
		if err != nil {
			buf.Close()
			return nil, err
		}
		a.devs = append(a.devs, d)
	}
	// Keep the configuration without the devices' YAML syntax trees:
	// with large tag maps they outweigh everything else the agent holds.
	c := *cfg
	c.Devices = slices.Clone(cfg.Devices)
	for i := range c.Devices {
		c.Devices[i].decode, c.Devices[i].decodeTags = nil, nil
	}
	a.cfg, cfg = &c, &c
	a.up = newUplink(cfg, log.With("component", "uplink", "group", cfg.Node.GroupID, "edge_node", cfg.Node.EdgeNodeID), a.store, a.devs)
	return a, nil
}

// Run runs until ctx ends, then stops in order and closes the buffer.
func (a *Agent) Run(ctx context.Context) error {
	defer a.buf.Close()
	scanCtx, stopScans := context.WithCancel(context.Background())
	defer stopScans()
	upCtx, stopUplink := context.WithCancel(context.Background())
	defer stopUplink()

	var scans errgroup.Group
	for _, d := range a.devs {
		scans.Go(func() error { return d.run(scanCtx) })
	}
	upDone := make(chan error, 1)
	go func() { upDone <- a.up.run(upCtx) }()
	if addr := a.cfg.Health.Listen; addr != "" {
		hctx, stopHealth := context.WithCancel(context.Background())
		defer stopHealth()
		go func() {
			if err := a.serveHealth(hctx, addr); err != nil {
				a.log.Error("health endpoint failed", "listen", addr, "err", err)
			}
		}()
	}

	a.log.Info("edgeagent running", "devices", len(a.devs), "servers", a.cfg.MQTT.Servers, "buffer", a.cfg.Buffer.Path, "mode", a.cfg.Buffer.Mode)
	select {
	case <-ctx.Done():
	case err := <-upDone:
		stopScans()
		scans.Wait()
		return err
	}
	a.log.Info("stopping: scanners first")
	stopScans()
	scans.Wait()
	// Give the uplink a moment to publish what the scanners stored last.
	a.up.drainBy.Store(time.Now().Add(3 * time.Second).UnixNano())
	stopUplink()
	err := <-upDone
	a.log.Info("stopped", "buffered_records", a.buf.Stats().Records)
	return err
}

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
	Buffer             buffer.Stats
}

// Stats returns the agent's counters.
func (a *Agent) Stats() Stats {
	s := &a.up.stats
	return Stats{
		Connected: s.connected.Load(), Published: s.published.Load(), Samples: s.samples.Load(),
		HistoricalSamples: s.historical.Load(), DroppedUnknown: s.droppedUnknown.Load(), DroppedCorrupt: s.droppedCorrupt.Load(),
		StoreFailed: a.store.failed.Load(), Connects: s.connects.Load(), Rebirths: s.rebirths.Load(),
		CommandsRefused: s.commandsRefused.Load(), Buffer: a.buf.Stats(),
	}
}
