// Package opcua is the OPC UA driver: it reads a server's variables by
// subscription (pushing changes) or by polling, writes them, and keeps
// its session alive across server restarts, network cuts and stalls. It
// registers itself as driver "opcua".
//
// Configuration (a device's keys; all but endpoint and tags optional):
//
//   - id: oven-1
//     driver: opcua
//     endpoint: opc.tcp://10.0.0.9:4840   # dialled as written, whatever host name the server advertises
//     mode: subscribe                     # or poll (a batched Read of every tag each poll)
//     poll: 1s                            # subscribe: the publishing interval (publishing_interval overrides)
//     sampling_interval: 500ms            # default: the publishing interval; per tag too
//     queue_size: 10                      # changes the server keeps per item between publishes; per tag too
//     keepalive: 5s                       # a subscription silent for 2 keep-alives counts as dead
//     session_timeout: 2m                 # how long the server keeps the session over a cut
//     register_nodes: true                # poll: RegisterNodes where the server supports it
//     application_uri: urn:edgeagent:gw1  # only when the client certificate is made
//     security:
//     policy: Basic256Sha256            # None, Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss
//     mode: SignAndEncrypt              # None, Sign, SignAndEncrypt
//     cert_file: ...                    # the client certificate and key; absent: made once in
//     key_file: ...                     #   state_dir/opcua/client-{cert,key}.pem (edgeagent opcua-cert)
//     trust_dir: /etc/edgeagent/pki/trusted   # server certificates (or their CAs) trusted, or
//     server_cert: /etc/edgeagent/pki/plc.pem # the one server certificate, or
//     trust_any_server_certificate: true      # no verification; warns at every connect
//     auth:                               # absent: anonymous
//     username: operator
//     password_file: /etc/edgeagent/secrets/oven-1   # read at every connect
//     # or cert_file / key_file: a user certificate
//     limits:                             # caps below what the server advertises
//     max_nodes_per_read: 100
//     tags:
//   - {name: Oven/Temp, node: "nsu=urn:plc:oven;s=Zone1.Temp", deadband: 0.5}
//   - {name: Oven/Setpoint, node: "ns=3;i=1042", type: float32, writable: true}
//   - {name: Oven/Level, node: "ns=3;s=Level", deadband_percent: 2}
//
// Node ids take every standard form: ns=<index>;i=|s=|g=|b=…, nsu=<URI>;…
// (resolved against the server's namespace array at every connect, since a
// restarted server may renumber its namespaces), and i=… in namespace 0.
//
// Types: a tag without type: takes its node's, read at every connect:
// each builtin scalar to its Sparkplug type (ByteString to Bytes,
// LocalizedText, QualifiedName, Guid, NodeId and XmlElement to String,
// StatusCode to UInt32), one-dimensional arrays to the Sparkplug arrays,
// enumerations to Int32, vendor types through their supertypes; a node
// declared BaseDataType, Number or of any rank takes the type of its
// value. A structure, a multi-dimensional array or a node the server does
// not know is an error at connect naming the tag and node (a tag given a
// type reads bad instead). A type that changed (a server restart) re-births
// the device; a value of another type is never published as the tag's.
//
// Quality: Good statuses are good; Uncertain values are kept and published
// as stale (Sparkplug's 500), never as good; Bad ones are bad (no value).
// Timestamps are the server's source timestamp, else its server timestamp.
//
// Deadbands: deadband (absolute, engineering units) is both applied by the
// agent and asked of the server as a data change filter (in raw units);
// deadband_percent asks the server for a percent deadband (of the node's
// EURange; a server that cannot is logged and the item monitored without).
//
// Operation limits: MaxNodesPerRead, MaxNodesPerRegisterNodes,
// MaxNodesPerBrowse, MaxMonitoredItemsPerCall, MaxMonitoredItemsPerSubscription
// and MaxSubscriptionsPerSession are read at connect; calls are split to
// fit, and halved when a server refuses one as too many or too large
// without advertising why. Items spread over as many subscriptions as
// needed.
//
// Recovery: the driver never uses gopcua's reconnect or subscriptions. It
// runs its own publish loop, so keep-alives are seen: a subscription
// silent for two keep-alive periods (a stalled link with TCP up, a
// subscription the server dropped) ends Subscribe with ErrNotConnected,
// and the scanner reconnects with backoff (the device gets its DDEATH, then
// its DBIRTH). On reconnect the session a broken link left is reactivated
// when the server still has it: its subscriptions live on, the changes the
// server queued meanwhile arrive marked Late (the scanner stores those
// older than the value read on reconnect as history), and messages lost in
// transit are fetched with Republish; what the server no longer holds is
// replaced by the current values, read at once. Otherwise a new session
// and new subscriptions are made.
//
// Security: the server's certificate must be trusted (trust_dir or
// server_cert) before anything is sent; an untrusted one is refused with
// its thumbprint and how to trust it. The client certificate is made once
// and kept; a server that refuses it is reported with its thumbprint.
// A password never travels over security None in clear text.
package opcua
