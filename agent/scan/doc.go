// Package scan runs devices: one Scanner per configured PLC connects its
// driver, reads (by polling, or by letting a push driver deliver changes),
// turns raw values into engineering units (scale, offset), reports by
// exception with an optional deadband, and stores every event as one
// record in the buffer, through the Store, before anything may publish it.
// It knows nothing of MQTT or Sparkplug.
//
// # Events
//
// A scanner stores three kinds of record (package record): Online, with
// every tag's value, when the PLC answers after Connect; Data, the tags
// that changed in a scan or a push; Offline, when the link fails (and when
// the scanner is retired by a reload, so the host learns the device went
// away). A stopping agent stores no Offline: its NDEATH says it all.
//
// # What others may see
//
// A Scanner's exported methods are its read-only view, safe from any
// goroutine: its tags and their published types, the value last stored
// per tag (Snapshot) and whether the device is online. They change only
// when the Store has accepted an event, under the Store's lock, so Store.
// Mark sees every device exactly as of the newest stored record.
//
// Writes (Sparkplug DCMD) are the one way in: Write queues a write to the
// scanner's own goroutine without blocking, and the scanner applies its
// writes in the order they were queued, between scans. A write is refused
// at once when the value does not fit the tag (its type, its min and max,
// the raw type's range) and while the PLC is offline (it would reach the
// PLC minutes late), and dropped if the context it came with (the MQTT
// session) ended first. Each write the PLC accepts leaves one audit line
// (msg "write applied": topic, device, tag, old and new value); a polled
// device is then read back at once, off its poll schedule (which keeps its
// alignment), once for all the writes that were queued, so the new value
// is stored and published without waiting a poll. A push device's
// subscription reports the new value by itself.
//
// # Liveness
//
// Each scanner beats its health.Heart on every turn of its loop, also while
// it backs off from an unreachable PLC, and declares every bounded call
// to the driver with Busy: a driver that hangs past its own timeout stops
// the heart, and systemd's watchdog restarts the agent.
package scan
