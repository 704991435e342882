// Package agent is edgeagent's lifecycle: it builds the parts from a
// configuration, runs them, reloads them, and stops them in order. It owns
// the buffer and the uplink for the life of the process and the set of
// device scanners, which a reload changes.
//
// The parts, one job each:
//
//	config   the YAML model, loading and validation (every error, at file:line:col)
//	scan     one Scanner per device: read, scale, report by exception, store events
//	record   the format of the events in the buffer
//	uplink   the one MQTT session: births, seq, publish, receipts, commands, STATE
//	health   loop liveness (the systemd watchdog), /healthz, /readyz, /metrics
//
// Data flows one way: scanners store events in the buffer (through a
// scan.Store); the uplink reads the buffer in order, publishes, and deletes
// what the broker provably received. The uplink sees devices only through
// uplink.Device, a read-only view plus Write, the one way back (commands
// to the scanner that owns the device).
//
// Lifecycle: New (opens the buffer; no network I/O) → Run (until its
// context ends; Reload any number of times meanwhile) → stop: scanners stop
// first, the uplink publishes what they stored, then DDEATHs, the NDEATH
// and DISCONNECT; anything not proven delivered stays in the buffer for
// next time.
package agent
