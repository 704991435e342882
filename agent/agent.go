package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/agent/health"
	"github.com/edgeagent/edgeagent/agent/scan"
	"github.com/edgeagent/edgeagent/agent/uplink"
	"github.com/edgeagent/edgeagent/buffer"
)

// Agent is a configured edge node.
type Agent struct {
	log   *slog.Logger
	buf   *buffer.Buffer
	store *scan.Store
	up    *uplink.Uplink
	mon   *health.Monitor

	// mu serializes Run's start and stop with Reload, and guards what
	// they change.
	mu      sync.Mutex
	cfg     *config.Config
	devs    []*device // running, in configuration order
	scanCtx context.Context
	running bool
	scans   sync.WaitGroup
	health  *healthServer

	reloads [3]atomic.Uint64 // by health.ReloadResults
}

// device is one running scanner.
type device struct {
	cfg  config.Device
	scan *scan.Scanner
	view *deviceView // what the uplink sees; replaced only when its template changes
	stop context.CancelFunc
	done chan struct{}
}

// New builds an agent from a loaded configuration. It opens the buffer but
// connects to nothing. Loggers made by NewLogger follow the log section
// across reloads.
func New(cfg *config.Config, log *slog.Logger) (*Agent, error) {
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
	a := &Agent{cfg: cfg, log: log, buf: buf, store: scan.NewStore(buf), mon: health.NewMonitor()}
	for _, dc := range cfg.Devices {
		a.devs = append(a.devs, a.newDevice(dc))
	}
	a.up = uplink.New(cfg, buf, a.store, a.views(), a.mon, a.uplinkLog(cfg))
	a.up.SetNodeInfo(func() uplink.NodeInfo {
		info := uplink.NodeInfo{SamplesLost: a.store.Failed()}
		a.mu.Lock()
		for _, d := range a.devs {
			info.WritesFailed += d.scan.WritesFailed()
		}
		a.mu.Unlock()
		return info
	})
	return a, nil
}

func (a *Agent) newDevice(dc config.Device) *device {
	s := scan.New(dc, a.store, a.mon, a.log)
	return &device{cfg: dc, scan: s, view: &deviceView{s, dc.Template}}
}

// deviceView is a device as the uplink sees it: its scanner, and the
// template it is published as an instance of.
type deviceView struct {
	*scan.Scanner
	template string
}

func (v *deviceView) Template() string { return v.template }

func (a *Agent) uplinkLog(cfg *config.Config) *slog.Logger {
	return a.log.With("component", "uplink", "group", cfg.Node.GroupID, "edge_node", cfg.Node.EdgeNodeID)
}

// views lists the running devices as the uplink sees them.
func (a *Agent) views() []uplink.Device {
	out := make([]uplink.Device, len(a.devs))
	for i, d := range a.devs {
		out[i] = d.view
	}
	return out
}

// start runs a device's scanner. Called with mu held.
func (a *Agent) start(d *device) {
	ctx, cancel := context.WithCancel(a.scanCtx)
	d.stop, d.done = cancel, make(chan struct{})
	a.scans.Add(1)
	go func() {
		defer a.scans.Done()
		defer close(d.done)
		d.scan.Run(ctx)
	}()
}

// Run runs until ctx ends, then stops in order and closes the buffer. It
// returns early with an error only if the uplink fails for good.
func (a *Agent) Run(ctx context.Context) error {
	defer a.buf.Close()
	scanCtx, stopScans := context.WithCancel(context.Background())
	defer stopScans()
	upCtx, stopUplink := context.WithCancel(context.Background())
	defer stopUplink()

	a.mu.Lock()
	a.scanCtx, a.running = scanCtx, true
	for _, d := range a.devs {
		a.start(d)
	}
	a.startHealth(a.cfg.Health.Listen)
	cfg := a.cfg
	a.mu.Unlock()

	upDone := make(chan error, 1)
	go func() { upDone <- a.up.Run(upCtx) }()
	go a.pruneSchemas(scanCtx)
	a.log.Info("edgeagent running", "devices", len(cfg.Devices), "servers", cfg.MQTT.Servers, "buffer", cfg.Buffer.Path, "mode", cfg.Buffer.Mode)

	var err error
	select {
	case <-ctx.Done():
	case err = <-upDone:
	}
	a.mu.Lock()
	a.running = false
	a.stopHealth()
	a.mu.Unlock()
	a.log.Info("stopping: scanners first")
	stopScans()
	a.scans.Wait()
	if err != nil {
		return err
	}
	// Give the uplink a moment to publish what the scanners stored last.
	a.up.DrainBy(time.Now().Add(3 * time.Second))
	stopUplink()
	err = <-upDone
	a.log.Info("stopped", "buffered_records", a.buf.Stats().Records)
	return err
}

// pruneSchemas deletes, now and then, the record schemas no buffered
// record and no running device needs (a configuration changed).
func (a *Agent) pruneSchemas(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.store.Prune(); err != nil {
				a.log.Debug("pruning record schemas", "err", err)
			}
		}
	}
}

// Stalled names the loops that stopped turning within limit (see
// health.Monitor): while it is empty the agent is alive.
func (a *Agent) Stalled(limit time.Duration) []string { return a.mon.Stalled(limit) }

// errNotRunning refuses a reload before Run started or after it stopped.
var errNotRunning = errors.New("the agent is not running")
