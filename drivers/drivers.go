// Package drivers defines how edgeagent talks to PLCs: the Driver interface,
// the typed values and samples drivers produce, and the registry drivers add
// themselves to from init().
//
// Lifecycle of a driver, owned by the agent:
//
//	New (via the registered Factory: decode and validate config, no I/O)
//	→ Connect → Read … Read → Close → Connect → …
//
// Drivers never retry on their own. When a Read or Write fails because the
// link is gone they return an error wrapping ErrNotConnected; the agent
// closes the driver, backs off and calls Connect again. A Read that reaches
// the PLC but gets an error for some tags (a Modbus exception, a bad OPC UA
// status) returns those tags' samples with QualityBad and a nil error.
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

// Driver reads one device (one PLC connection).
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
	// Close releases the link. It is safe to call more than once.
	Close() error
}

// Writer is a Driver that can write a tag (Sparkplug DCMD). The agent only
// calls it for tags with Writable set.
type Writer interface {
	Write(ctx context.Context, tag int, v Value) error
}

// Config is what the agent hands a Factory for one configured device.
type Config struct {
	// ID is the device id (the Sparkplug device_id).
	ID string
	// Logger is already scoped with the device id and driver name.
	Logger *slog.Logger
	// Decode strictly decodes the device's driver-specific keys (every key
	// but id, driver, poll, timeout, tags and tag_map) into v. Unknown keys
	// are errors; errors name file:line.
	Decode func(v any) error
	// DecodeTags strictly decodes the device's tag list (inline `tags:` or
	// the `tag_map` file) into v, a pointer to a slice. Errors name file:line.
	DecodeTags func(v any) error
	// Timeout bounds one request to the PLC.
	Timeout time.Duration
}

// Factory builds a Driver from its configuration without doing I/O.
// Validation errors must name the offending tag and key.
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
