// Package health tells whether edgeagent is alive and how it is doing.
//
// Liveness: every long-running loop (the uplink, each scanner) holds a
// Heart from the Monitor and beats it on every turn, at least once a
// second, also while it waits for a broker, a primary host or a PLC: those
// are healthy states. Before a call that may block for a bounded time (a
// connect, a PLC request) the loop declares it with Busy. Stalled lists
// the loops that did neither within the limit: a deadlocked or hung loop.
// systemd's watchdog is fed only while Stalled is empty, so such a process
// is restarted; a dead WAN or PLC never stops the pings.
//
// HTTP, when health.listen is set, read at request time so the data path
// pays nothing for it:
//
//	/healthz  200 while every loop is alive, else 503 naming the stalled ones
//	/readyz   200 while the MQTT session is up (births sent), else 503
//	/metrics  Prometheus: the agent's counters, the Go runtime and the process
//
// Both JSON endpoints return the same status document.
package health
