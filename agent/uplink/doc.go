// Package uplink is edgeagent's one MQTT session to the central broker:
// dial (TCP, TLS, websockets, a SOCKS5 proxy), the Sparkplug B lifecycle
// (Will NDEATH, NBIRTH, DBIRTHs, DDEATHs), seq and bdSeq, publishing the
// buffered records live and as history, proof of receipt, commands and
// the primary host's STATE.
//
// One goroutine (Run) owns the connection and publishes everything, so seq
// has no gaps and a rebirth stops data at once. Everything that belongs
// to one connection (client, bdSeq, seq, what was born, aliases, the
// replay position, receipts in flight, commands not yet handled) lives in
// one session value, made new for every CONNECT and dropped whole with it.
//
// # A session
//
//	bdSeq+1 persisted → CONNECT, Will NDEATH(bdSeq) → subscribe NCMD, DCMD,
//	STATE (QoS 1) → wait for the primary host, if one is configured →
//	NBIRTH (seq 0) → DBIRTH per online device → live data and history,
//	history marked is_historical → … → NDEATH → DISCONNECT
//
// Every intentional disconnect publishes the NDEATH first, whatever the
// reason (stop, reload, primary host offline, an error reading the
// buffer): a clean DISCONNECT discards the Will, and the host would never
// learn the node went away. Only a lost connection relies on the Will.
//
// # Proof of receipt
//
// Records are deleted from the buffer only after a receipt: a QoS 1
// publish on the receipt topic after the data (or, with data_qos 1, the
// last data message itself). The broker acknowledges it only after it has
// read everything sent before it on the same connection, and paho writes
// publishes of both QoS in order (gathered by a batchConn, which keeps
// it). A receipt whose connection dropped in between proves nothing and is
// ignored.
//
// # Devices
//
// The uplink sees devices through the Device interface: read-only, plus
// Write for commands. The device set may change while running (a reload):
// Update hands over the new set together with the seq of the newest record
// stored under the old one, and the session switches sets exactly there in
// the record stream, so an event is always published against the set it
// was stored under. A device left unchanged keeps its birth and its
// aliases; a removed one gets its DDEATH; a changed or added one is born
// when its scanner reports it online. Aliases are given per device in
// blocks: a device keeps its block for the whole session (until an NBIRTH,
// which lets hosts forget every alias, renumbers them), and a device that
// is re-born with other tags gets a fresh block, so no alias ever names two
// metrics within one birth sequence. No reload needs a node rebirth,
// except one that changes a template definition (node.templates), which
// lives only in the NBIRTH: the node is re-born, same bdSeq (templates.go).
//
// # The node's own metrics
//
// The NBIRTH carries bdSeq, Node Control/Rebirth (never aliased), Node
// Control/Next Server, the agent's state (node.go: version, buffer,
// reconnects, refused commands, failed writes, devices online) and the
// template definitions; every metric but Rebirth has name and alias.
// The state's changes go out as NDATA at most every nodeDataEvery, after
// the pump, so never ahead of the data they describe; they describe the
// present and are never buffered.
//
// # Commands
//
// paho delivers inbound messages in arrival order into the session's
// inbox, never blocking its reader; Run handles them in that order. STATE
// (Sparkplug 3.0, or 2.2's STATE/<host_id> ONLINE/OFFLINE with
// mqtt.primary_host_version) and NCMD are handled at once; rebirth
// requests within rebirthHold of births are answered by them; a DCMD's writes are queued to the scanner
// that owns the device (Device.Write never blocks), each device applying
// its own writes in order, so node messages never wait behind a slow PLC
// and one device's writes never wait behind another's. A command that
// arrived on an earlier connection is never acted on in a later one.
package uplink
