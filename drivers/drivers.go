// Package drivers defines how edgeagent talks to PLCs: the Driver interface,
// the optional abilities a driver may have (Writer, Subscriber), the typed
// values and samples drivers produce, and the registry drivers add
// themselves to from init().
//
// Lifecycle of a driver, owned by a scanner:
//
//	New (via the registered Factory: decode and validate config, no I/O)
//	→ Connect → Read … Read → Close → Connect → …          (polling)
//	→ Connect → Read → Subscribe (until the link fails) → Close → …   (pushing)
//
// A driver is polled unless it implements Subscriber, in which case the
// scanner reads every tag once after Connect (the device's birth state) and
// then lets the driver push changed samples until Subscribe returns.
//
// Drivers never retry on their own. When a Read, Write or Subscribe fails
// because the link is gone they return an error wrapping ErrNotConnected;
// the scanner closes the driver, backs off and calls Connect again. A Read
// that reaches the PLC but gets an error for some tags (a Modbus exception,
// a bad OPC UA status) returns those tags' samples with QualityBad and a
// nil error.
//
// Drivers know nothing about MQTT or Sparkplug.
package drivers

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Driver reads one device (one PLC connection). One goroutine, the
// device's scanner, calls Connect, Read, Write and Close; only a
// Subscriber's Subscribe runs beside it, on a goroutine of its own.
type Driver interface {
	// Tags returns the device's tags in configuration order. Sample.Tag
	// indexes this slice. It does not change after New, and callers must
	// not modify it.
	Tags() []Tag
	// Connect opens the link to the PLC.
	Connect(ctx context.Context) error
	// Read reads every tag once and appends one Sample per tag to dst, in
	// tag order, returning the extended slice. Reusing dst across scans
	// keeps the scan path free of allocations.
	Read(ctx context.Context, dst []Sample) ([]Sample, error)
	// Close releases the link, waiting at most until ctx ends for the
	// peer to see it go. It is safe to call more than once, and on a
	// driver that never connected.
	Close(ctx context.Context) error
}

// Writer is a Driver that can write a tag (Sparkplug DCMD). The scanner only
// calls it for tags with Writable set, with a value of the tag's Type.
type Writer interface {
	Write(ctx context.Context, tag int, v Value) error
}

// Subscriber is a Driver that pushes changed samples as they arrive
// (OPC UA subscriptions) instead of being polled.
//
// Subscribe runs after Connect and an initial Read. It sends batches of
// samples to out as the PLC reports changes: each batch is owned by the
// receiver once sent, samples carry the PLC's source timestamp (Unix ms)
// and quality, and one tag may appear more than once in a batch, oldest
// first. Subscribe blocks until ctx ends (returning ctx.Err()) or the
// link fails (returning an error wrapping ErrNotConnected); it must never
// return while the link is silently dead, so a driver watches its own
// keep-alives. A Write may run concurrently with Subscribe.
type Subscriber interface {
	Subscribe(ctx context.Context, out chan<- []Sample) error
}

// Recycler is a Subscriber that reuses its batches' memory. The receiver
// of a batch may hand it back with Recycle once it keeps nothing of the
// slice (the samples' values may live on); the driver then fills it
// again instead of allocating the next batch. Recycle never blocks.
type Recycler interface {
	Recycle(batch []Sample)
}

// Logging is a Driver that logs what only it sees (a certificate close to
// expiry, a server that revised a setting). The scanner hands it its own
// logger, scoped with the device, before the first Connect.
type Logging interface {
	SetLogger(*slog.Logger)
}

// Config is what the agent hands a Factory for one configured device.
type Config struct {
	// ID is the device id (the Sparkplug device_id).
	ID string
	// Logger logs while the driver is built; configuration is loaded
	// before the agent's logging is set up, so it may discard (see
	// Logging).
	Logger *slog.Logger
	// Decode strictly decodes the device's driver-specific keys (every key
	// but id, driver, poll, timeout, tags and tag_map) into v, a pointer to
	// a struct with yaml field tags. Unknown keys and badly typed values
	// are errors that name file:line:col.
	Decode func(v any) error
	// Tags walks the device's tag list (inline `tags:` or the `tag_map`
	// file) one tag at a time, so a large list is never held twice.
	Tags TagSource
	// Timeout bounds one request to the PLC.
	Timeout time.Duration
	// Poll is the device's scan interval (a pushing driver's publishing
	// interval).
	Poll time.Duration
	// StateDir is where a driver keeps what must survive restarts (an
	// OPC UA client certificate).
	StateDir string
}

// TagSource yields a device's configured tags in order.
type TagSource interface {
	// Len is the number of tags, or -1 if it is not known before the walk
	// (a hint for allocation only).
	Len() int
	// Each calls fn once per tag, in order. decode strictly decodes that
	// tag into v (as Config.Decode does). An error fn returns is reported
	// against that tag (a *KeyError against the key it names, relative to
	// the tag); the walk goes on, so every bad tag is reported. Each
	// returns a non-nil error if any tag failed.
	Each(fn func(i int, decode func(v any) error) error) error
}

// Factory builds a Driver from its configuration without doing I/O.
// Validation errors should name the key they are about (KeyError).
type Factory func(cfg Config) (Driver, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a driver available under name. It panics on an empty
// name, a nil factory or a duplicate, since those are programming errors.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	switch {
	case name == "":
		panic("drivers: Register with empty name")
	case f == nil:
		panic("drivers: Register " + name + " with nil factory")
	}
	if _, dup := registry[name]; dup {
		panic("drivers: Register called twice for " + name)
	}
	registry[name] = f
}

// Lookup returns the factory registered under name.
func Lookup(name string) (Factory, error) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown driver %q (known: %v)", name, namesLocked())
	}
	return f, nil
}

// Names lists the registered drivers, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	n := make([]string, 0, len(registry))
	for k := range registry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
