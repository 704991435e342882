// Package modbus is the edgeagent driver for Modbus devices, over TCP
// (also TLS and UDP) and serial RTU (also RTU framed over TCP or UDP),
// built on github.com/simonvetter/modbus. It registers itself as "modbus".
//
// # Lifecycle
//
//	New        decode and validate the device and its tags, plan the scan; no I/O
//	Connect    open the TCP connection or serial port
//	Read ...   run the plan: one Modbus request per planned range
//	Write      on DCMD, for tags with writable: true
//	Close      close the link; safe to call twice
//
// The driver never reconnects by itself, and neither does the library: when
// a request fails on the link (timeout, EOF, reset, refused) Read and Write
// close the link and return an error wrapping drivers.ErrNotConnected that
// names the request, e.g.
//
//	reading holding registers 20..35 on "press-02": request timed out
//
// and the agent backs off and calls Connect. A device that answers with a
// Modbus exception (illegal address, device busy, …) is still connected: the
// tags of that request get QualityBad and the scan goes on.
//
// # Device keys
//
//	url            required. tcp://host[:502], tcp+tls://host[:802], udp://host[:502],
//	               rtuovertcp://host:port, rtuoverudp://host:port (a serial line behind
//	               a gateway, optional ?baud=), or rtu:///dev/ttyUSB0 with optional
//	               ?baud=19200&parity=N|E|O&data_bits=8&stop_bits=1|2
//	unit_id        slave/unit id, 0..255 (0 only on TCP), default 1
//	max_gap        unconfigured registers (or bits) a request may read across to
//	               merge two tags into one request, default 0. Raise it to cut
//	               requests, but only if the device answers for the gap addresses.
//	max_registers  registers per read request, 1..125, default 125
//	max_bits       coils or discrete inputs per read request, 1..2000, default 2000
//	tls            for tcp+tls only: {cert_file, key_file, ca_file}, read at Connect
//
// The device's timeout (Config.Timeout) bounds each request; zero means the
// library's default, 1 s (300 ms on serial lines). A timeout counts as a
// lost link, since a late reply would otherwise be taken for the next one's
// on serial lines.
//
// # Tag keys
//
// Besides the keys all drivers share (name, type, scale, offset, unit,
// deadband, writable, min, max, description):
//
//	table       holding, input, coil or discrete (required)
//	address     0-based protocol address, 0..65535 (required); register 40001
//	            in 1-based "Modicon" notation is holding address 0
//	type        bool, int16, uint16, int32, uint32, int64, uint64, float32, float64
//	            or string; coils and discrete inputs are bool
//	byte_order  ABCD (default), BADC, CDAB or DCBA; see ByteOrder
//	bit         for a bool in a holding or input register: 0..15, 0 the least
//	            significant, default 0
//	length      for a string: its size in registers (two ISO 8859-1 characters
//	            each); it ends at the first NUL
//
// Coils and holding registers may be writable; input registers and discrete
// inputs may not.
//
// Read allocates nothing per tag (the library allocates a few small buffers
// per request), except a new string when a string tag's registers change.
//
// The simulator in package modbustest serves the same protocol for tests.
package modbus
