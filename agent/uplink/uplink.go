package uplink

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/agent/health"
	"github.com/edgeagent/edgeagent/agent/record"
	"github.com/edgeagent/edgeagent/buffer"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/internal/backoff"
)

// Device is how the uplink sees one device: read-only, plus Write, the way
// commands go back to the scanner that owns it.
type Device interface {
	ID() string
	// Tags are the device's tags in configuration order. Names and order
	// never change; use Schema for the types.
	Tags() []drivers.Tag
	// TagIndex finds a tag by name.
	TagIndex(name []byte) (int, bool)
	// TagIndexHint finds a stored sample's tag from its name and the index
	// it was stored with.
	TagIndexHint(name []byte, hint uint64) (int, bool)
	// Snapshot copies the last stored value of every tag; ok is false while
	// the device is offline. Call it only within Store.Mark.
	Snapshot(dst []record.Point) (pts []record.Point, ok bool)
	// Write queues a write without blocking; ctx ends with the session,
	// topic is the command's, for the audit log.
	Write(ctx context.Context, tag int, v drivers.Value, topic string) error
	// Schema is the id of the schema the device's records are stored with
	// now, and the type each tag is published as. Both change when the
	// PLC taught the driver other types; always together, and only while
	// the device is offline (before the Online record that uses them).
	Schema() (id uint64, types []drivers.Type)
	// Template names the Sparkplug Template the device is an instance of
	// when node.templates is on; "" for plain metrics. It never changes.
	Template() string
}

// Store is where the devices' events are stored.
type Store interface {
	// Mark runs snapshot while no event is being stored and returns the seq
	// of the newest stored record.
	Mark(snapshot func()) uint64
	// Notify delivers a value after new events were stored.
	Notify() <-chan struct{}
	// Signal wakes Notify.
	Signal()
	// Schema finds the schema a record refers to; its Names may be nil.
	Schema(id uint64) (*record.Schema, bool)
	// SchemaNames is Schema with the tag names.
	SchemaNames(id uint64) (*record.Schema, bool)
	// Types is Schema's types, for decoding (record.Schemas).
	Types(id uint64) ([]drivers.Type, bool)
}

// Uplink bridges the buffer to the central broker. Create it with New and
// run it with Run; Update, Stats and DrainBy may be called from any
// goroutine.
type Uplink struct {
	log   *slog.Logger
	buf   *buffer.Buffer
	store Store
	mon   *health.Monitor
	now   func() time.Time

	mu      sync.Mutex
	next    *config.Config // newest configuration handed over, nil once taken
	changes []change       // device set changes not yet taken by Run
	wake    chan struct{}  // Update → Run

	// Owned by Run.
	cfg    *config.Config // the settings in force
	devs   []Device       // the newest device set taken
	bd     bdSeqStore
	heart  *health.Heart
	hostTS map[string]uint64 // newest STATE timestamp seen, per server
	acks   *acker
	reader *buffer.Reader // live records; published before the next read
	// histReader reads history; a session keeps part of what it read
	// across pumps, so live reads must not reuse its memory.
	histReader *buffer.Reader
	rec        record.Record
	payloads   payloadRing
	gen        uint64

	info func() NodeInfo // the agent's part of the node metrics

	stats stats
	// drainBy (Unix ns) is set before shutdown: publish what is stored
	// and wait for its receipt until then.
	drainBy atomic.Int64
}

// change switches the device set after the record at seq at.
type change struct {
	at   uint64
	devs []Device
}

type stats struct {
	published       atomic.Uint64 // messages
	samples         atomic.Uint64
	historical      atomic.Uint64 // samples
	droppedUnknown  atomic.Uint64 // samples of tags or devices no longer configured
	droppedCorrupt  atomic.Uint64 // records that failed to decode
	connects        atomic.Uint64
	rebirths        atomic.Uint64
	commandsRefused atomic.Uint64
	connected       atomic.Bool
}

// Stats are the uplink's counters.
type Stats struct {
	Connected         bool
	Published         uint64
	Samples           uint64
	HistoricalSamples uint64
	DroppedUnknown    uint64
	DroppedCorrupt    uint64
	Connects          uint64
	Rebirths          uint64
	CommandsRefused   uint64
}

const maxPendingReceipts = 32

// lingerFor is how long the uplink waits after new data before publishing,
// to gather the records of scans that finish together.
const lingerFor = 10 * time.Millisecond

var (
	// errHostOffline ends a session when the primary host goes offline.
	errHostOffline = errors.New("primary host went offline")
	// errReconfigured ends a session whose node or broker settings a
	// reload changed.
	errReconfigured = errors.New("the node or broker settings changed")
	// errNextServer ends a session whose host asked the node to move to
	// the next server (Node Control/Next Server).
	errNextServer = errors.New("the host asked for the next server")
)

// New prepares the uplink. It connects to nothing.
func New(cfg *config.Config, buf *buffer.Buffer, store Store, devs []Device, mon *health.Monitor, log *slog.Logger) *Uplink {
	return &Uplink{
		log: log, buf: buf, store: store, mon: mon, now: time.Now,
		cfg: cfg, devs: devs,
		bd:     bdSeqStore{path: filepath.Join(cfg.StateDir, "bdseq")},
		hostTS: map[string]uint64{}, reader: buf.NewReader(), histReader: buf.NewReader(), wake: make(chan struct{}, 1),
	}
}

// Update hands the uplink a reloaded configuration and device set. at is
// the seq of the newest record stored under the old set: later records
// belong to the new one, so Update must return before any device of the
// new set stores an event. A change of node or broker settings ends the
// session (NDEATH) and starts one with the new settings.
func (u *Uplink) Update(cfg *config.Config, devs []Device, at uint64) {
	u.mu.Lock()
	u.next = cfg
	u.changes = append(u.changes, change{at: at, devs: devs})
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// take returns the configuration and device changes handed over since
// the last call.
func (u *Uplink) take() (*config.Config, []change) {
	u.mu.Lock()
	defer u.mu.Unlock()
	cfg, ch := u.next, u.changes
	u.next, u.changes = nil, nil
	return cfg, ch
}

// SetNodeInfo gives the uplink what the node metrics report of the rest
// of the agent. Call it before Run.
func (u *Uplink) SetNodeInfo(f func() NodeInfo) { u.info = f }

// DrainBy asks a stopping uplink to publish what is stored and wait for
// its receipt until t.
func (u *Uplink) DrainBy(t time.Time) { u.drainBy.Store(t.UnixNano()) }

// Stats returns the uplink's counters.
func (u *Uplink) Stats() Stats {
	s := &u.stats
	return Stats{
		Connected: s.connected.Load(), Published: s.published.Load(), Samples: s.samples.Load(),
		HistoricalSamples: s.historical.Load(), DroppedUnknown: s.droppedUnknown.Load(), DroppedCorrupt: s.droppedCorrupt.Load(),
		Connects: s.connects.Load(), Rebirths: s.rebirths.Load(), CommandsRefused: s.commandsRefused.Load(),
	}
}

// Run connects, walks the server list on failure, and serves sessions
// until ctx ends; then it sends DDEATHs and the NDEATH and disconnects.
func (u *Uplink) Run(ctx context.Context) error {
	u.heart = u.mon.Add("uplink")
	defer u.mon.Remove(u.heart)
	u.acks = startAcker(u.buf, u.log)
	defer u.acks.stop()
	if u.cfg.MQTT.DataQoS == 1 {
		u.log.Warn("mqtt.data_qos is 1: DATA goes at QoS 1, which Sparkplug B 3.0 forbids (tck-id-topics-ndata-mqtt, -ddata-mqtt); use it only with a host known to accept it")
	}
	bo := backoff.Backoff{Min: u.cfg.MQTT.ReconnectMin.D(), Max: u.cfg.MQTT.ReconnectMax.D()}
	for i := 0; ctx.Err() == nil; i++ {
		u.takeSettings(nil)
		server := u.cfg.MQTT.Servers[i%len(u.cfg.MQTT.Servers)]
		established, err := u.session(ctx, server)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errReconfigured) {
			u.log.Info("reconnecting with the new node or broker settings")
			bo = backoff.Backoff{Min: u.cfg.MQTT.ReconnectMin.D(), Max: u.cfg.MQTT.ReconnectMax.D()}
			i = -1
			continue
		}
		if errors.Is(err, errNextServer) {
			u.log.Info("moving to the next server, as the host asked", "from", server)
			bo.Reset()
			continue
		}
		if established {
			bo.Reset()
		}
		wait := bo.Next()
		if errors.Is(err, errHostOffline) {
			wait = min(wait, 2*time.Second)
		}
		u.log.Warn("broker session ended", "server", server, "err", err, "retry_in", wait.Round(time.Millisecond))
		if u.sleep(ctx, wait) {
			// New settings: try them at once, from the first server.
			bo = backoff.Backoff{Min: u.cfg.MQTT.ReconnectMin.D(), Max: u.cfg.MQTT.ReconnectMax.D()}
			i = -1
		}
	}
	return nil
}

// sleep waits out a backoff, beating. It returns early, true, when a
// reload changed the node or broker settings.
func (u *Uplink) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(health.BeatEvery)
	defer tick.Stop()
	for {
		u.heart.Beat()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return false
		case <-tick.C:
		case <-u.wake:
			u.mu.Lock()
			cfg := u.next
			u.mu.Unlock()
			if cfg != nil && !config.SessionEqual(cfg, u.cfg) {
				return true
			}
		}
	}
}

// takeSettings applies a reloaded configuration's settings. Device set
// changes taken with it are passed to apply, or, with apply nil, applied
// to u.devs at once (between sessions every change is due). It reports
// whether the node or broker settings changed.
func (u *Uplink) takeSettings(apply func([]change)) (sessionChanged bool) {
	cfg, changes := u.take()
	if cfg != nil {
		sessionChanged = !config.SessionEqual(cfg, u.cfg)
		u.cfg = cfg
	}
	if apply != nil {
		apply(changes)
	} else if n := len(changes); n > 0 {
		u.devs = changes[n-1].devs
	}
	return sessionChanged
}
