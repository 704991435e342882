// Package modbustest is a Modbus TCP device simulator for tests and demos,
// in the manner of net/http/httptest. It serves all four tables (65536
// holding registers, input registers, coils and discrete inputs, all zero at
// start) on the server side of github.com/simonvetter/modbus, the library
// the driver uses as client, and answers every unit id.
//
// Tests set data with SetHolding, SetFloat32 and friends (safe while the
// driver reads), inject faults with FailRange (exception replies), SetDelay
// (timeouts) and Stop/Start (a PLC outage on the same port), and observe the
// traffic with Requests and Writes.
package modbustest

import (
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/modbus"
)

// Write is one write request the simulator served.
type Write struct {
	UnitID uint8
	Table  modbus.Table // modbus.Holding or modbus.Coil
	Addr   uint16
	Regs   []uint16 // for Holding
	Coils  []bool   // for Coil
}

// Server is a running simulator.
type Server struct {
	addr     string // host:port, fixed for the server's life so Start reuses it
	requests atomic.Uint64
	writes   chan Write

	mu       sync.Mutex // guards the tables and the fault settings
	holding  [65536]uint16
	input    [65536]uint16
	coils    [65536]bool
	discrete [65536]bool
	fails    []failRange
	delay    time.Duration
	clients  map[string]struct{} // client addresses (ip:port) that made a request

	runMu  sync.Mutex
	srv    *mb.ModbusServer // nil while stopped
	closed bool
}

type failRange struct {
	table      modbus.Table
	start, end uint16 // inclusive
}

// writeBuffer is how many writes Writes holds before further ones are dropped.
const writeBuffer = 1024

// NewServer starts a simulator listening on addr ("127.0.0.1:0" picks a
// free port).
func NewServer(addr string) (*Server, error) {
	// The library cannot report the port it bound, nor take a listener, so
	// pick the port here and hand it over. Go listeners set SO_REUSEADDR,
	// so Start can bind it again after Stop.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{addr: l.Addr().String(), writes: make(chan Write, writeBuffer)}
	if err := l.Close(); err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// URL is the url the driver dials: tcp://127.0.0.1:port.
func (s *Server) URL() string { return "tcp://" + s.addr }

// Addr is the host:port the simulator listens on.
func (s *Server) Addr() string { return s.addr }

// Start listens again on the same port after Stop. It does nothing if the
// server is running.
func (s *Server) Start() error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	switch {
	case s.closed:
		return fmt.Errorf("modbustest: Start after Close")
	case s.srv != nil:
		return nil
	}
	// A new library server per start, so nothing of the previous run (its
	// client list, its accept goroutine) carries over.
	srv, err := mb.NewServer(&mb.ServerConfiguration{
		URL:        "tcp://" + s.addr,
		MaxClients: 256,
		// The library drops connections idle for 2 minutes by default;
		// a paused test or demo should not see surprise disconnects.
		Timeout: time.Hour,
		Logger:  log.New(io.Discard, "", 0), // else it prints to stdout
	}, handler{s})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("modbustest: listening on %s: %w", s.addr, err)
	}
	s.srv = srv
	return nil
}

// Stop closes the listener and every accepted connection, like a PLC
// losing power: clients see EOF or a reset, and new connections are
// refused until Start.
func (s *Server) Stop() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.srv != nil {
		_ = s.srv.Stop() // closes the listener and all client sockets
		s.srv = nil
	}
}

// Close stops the server for good.
func (s *Server) Close() error {
	s.Stop()
	s.runMu.Lock()
	s.closed = true
	s.runMu.Unlock()
	return nil
}

// Connections counts the client connections that made a request: each
// has its own source port, so a client that reconnects counts again.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// Requests is the number of requests served so far, exceptions included.
func (s *Server) Requests() uint64 { return s.requests.Load() }

// Writes delivers each write request served, in order. It buffers 1024;
// later writes are dropped if nobody reads them. It is never closed.
func (s *Server) Writes() <-chan Write { return s.writes }

// FailRange makes every request touching addresses start..end (inclusive)
// of table answer with an illegal data address exception.
func (s *Server) FailRange(table modbus.Table, start, end uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, failRange{table, start, end})
}

// ClearFailures undoes every FailRange.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = nil
}

// SetDelay makes every later request wait d before it is answered, to make
// clients time out.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetHolding sets holding registers from addr on.
func (s *Server) SetHolding(addr uint16, vals ...uint16) { s.setRegs(modbus.Holding, addr, vals) }

// SetInput sets input registers from addr on.
func (s *Server) SetInput(addr uint16, vals ...uint16) { s.setRegs(modbus.Input, addr, vals) }

// SetCoil sets coils from addr on.
func (s *Server) SetCoil(addr uint16, vals ...bool) { s.setBits(modbus.Coil, addr, vals) }

// SetDiscrete sets discrete inputs from addr on.
func (s *Server) SetDiscrete(addr uint16, vals ...bool) { s.setBits(modbus.Discrete, addr, vals) }

// Holding returns n holding registers from addr.
func (s *Server) Holding(addr uint16, n int) []uint16 { return s.regs(modbus.Holding, addr, n) }

// Input returns n input registers from addr.
func (s *Server) Input(addr uint16, n int) []uint16 { return s.regs(modbus.Input, addr, n) }

// Coil returns n coils from addr.
func (s *Server) Coil(addr uint16, n int) []bool { return s.bits(modbus.Coil, addr, n) }

// Discrete returns n discrete inputs from addr.
func (s *Server) Discrete(addr uint16, n int) []bool { return s.bits(modbus.Discrete, addr, n) }

// SetValue stores v laid out as f at addr of a register table, with the
// driver's own encoding. A Bool sets one bit (f.Bit) of its register; in a
// bit table it sets the coil or discrete input.
func (s *Server) SetValue(table modbus.Table, addr uint16, f modbus.Format, v drivers.Value) error {
	if table.IsBits() {
		if v.Type() != drivers.Bool {
			return fmt.Errorf("modbustest: %v value for table %s", v.Type(), table)
		}
		s.setBits(table, addr, []bool{v.Bool()})
		return nil
	}
	n := f.Registers()
	if n == 0 || int(addr)+n > 65536 {
		return fmt.Errorf("modbustest: %v at %d does not fit table %s", f.Type, addr, table)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.regTable(table)
	regs := make([]uint16, n)
	copy(regs, t[addr:]) // so a Bool keeps the register's other bits
	if err := modbus.EncodeRegisters(regs, v, f); err != nil {
		return fmt.Errorf("modbustest: %w", err)
	}
	copy(t[addr:], regs)
	return nil
}

// Value reads a value laid out as f at addr of a table.
func (s *Server) Value(table modbus.Table, addr uint16, f modbus.Format) (drivers.Value, error) {
	if table.IsBits() {
		return drivers.BoolValue(s.bits(table, addr, 1)[0]), nil
	}
	n := f.Registers()
	if n == 0 || int(addr)+n > 65536 {
		return drivers.Value{}, fmt.Errorf("modbustest: %v at %d does not fit table %s", f.Type, addr, table)
	}
	return modbus.DecodeRegisters(s.regs(table, addr, n), f)
}

func (s *Server) mustSet(table modbus.Table, addr uint16, f modbus.Format, v drivers.Value) {
	if err := s.SetValue(table, addr, f, v); err != nil {
		panic(err)
	}
}

// SetInt16 stores v at addr of a register table; it panics on misuse.
func (s *Server) SetInt16(table modbus.Table, addr uint16, order modbus.ByteOrder, v int16) {
	s.mustSet(table, addr, modbus.Format{Type: drivers.Int16, Order: order}, drivers.IntValue(drivers.Int16, int64(v)))
}

// SetUint16 stores v at addr of a register table; it panics on misuse.
func (s *Server) SetUint16(table modbus.Table, addr uint16, order modbus.ByteOrder, v uint16) {
	s.mustSet(table, addr, modbus.Format{Type: drivers.Uint16, Order: order}, drivers.UintValue(drivers.Uint16, uint64(v)))
}

// SetInt32 stores v at addr of a register table; it panics on misuse.
func (s *Server) SetInt32(table modbus.Table, addr uint16, order modbus.ByteOrder, v int32) {
	s.mustSet(table, addr, modbus.Format{Type: drivers.Int32, Order: order}, drivers.IntValue(drivers.Int32, int64(v)))
}

// SetUint32 stores v at addr of a register table; it panics on misuse.
func (s *Server) SetUint32(table modbus.Table, addr uint16, order modbus.ByteOrder, v uint32) {
	s.mustSet(table, addr, modbus.Format{Type: drivers.Uint32, Order: order}, drivers.UintValue(drivers.Uint32, uint64(v)))
}

// SetInt64 stores v at addr of a register table; it panics on misuse.
func (s *Server) SetInt64(table modbus.Table, addr uint16, order modbus.ByteOrder, v int64) {
	s.mustSet(table, addr, modbus.Format{Type: drivers.Int64, Order: order}, drivers.IntValue(drivers.Int64, v))
}

// SetUint64 stores v at addr of a register table; it panics on misuse.
func (s *Server) SetUint64(table modbus.Table, addr uint16, order modbus.ByteOrder, v uint64) {
	s.mustSet(table, addr, modbus.Format{Type: drivers.Uint64, Order: order}, drivers.UintValue(drivers.Uint64, v))
}

// SetFloat32 stores v at addr of a register table; it panics on misuse.
func (s *Server) SetFloat32(table modbus.Table, addr uint16, order modbus.ByteOrder, v float32) {
	s.mustSet(table, addr, modbus.Format{Type: drivers.Float32, Order: order}, drivers.FloatValue(drivers.Float32, float64(v)))
}

// SetFloat64 stores v at addr of a register table; it panics on misuse.
func (s *Server) SetFloat64(table modbus.Table, addr uint16, order modbus.ByteOrder, v float64) {
	s.mustSet(table, addr, modbus.Format{Type: drivers.Float64, Order: order}, drivers.FloatValue(drivers.Float64, v))
}

// SetString stores v in length registers at addr of a register table,
// NUL-padded; it panics on misuse.
func (s *Server) SetString(table modbus.Table, addr uint16, order modbus.ByteOrder, length uint16, v string) {
	s.mustSet(table, addr, modbus.Format{Type: drivers.String, Order: order, Length: length}, drivers.StringValue(v))
}

// SetBit sets or clears one bit (0 = least significant) of a register.
func (s *Server) SetBit(table modbus.Table, addr uint16, bit uint8, v bool) {
	s.mustSet(table, addr, modbus.Format{Type: drivers.Bool, Bit: bit}, drivers.BoolValue(v))
}

func (s *Server) regTable(t modbus.Table) *[65536]uint16 {
	switch t {
	case modbus.Holding:
		return &s.holding
	case modbus.Input:
		return &s.input
	}
	panic(fmt.Sprintf("modbustest: %q is not a register table", t))
}

func (s *Server) bitTable(t modbus.Table) *[65536]bool {
	switch t {
	case modbus.Coil:
		return &s.coils
	case modbus.Discrete:
		return &s.discrete
	}
	panic(fmt.Sprintf("modbustest: %q is not a bit table", t))
}

func (s *Server) setRegs(t modbus.Table, addr uint16, vals []uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if copy(s.regTable(t)[addr:], vals) < len(vals) {
		panic("modbustest: registers past 65535")
	}
}

func (s *Server) setBits(t modbus.Table, addr uint16, vals []bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if copy(s.bitTable(t)[addr:], vals) < len(vals) {
		panic("modbustest: bits past 65535")
	}
}

func (s *Server) regs(t modbus.Table, addr uint16, n int) []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint16(nil), s.regTable(t)[addr:int(addr)+n]...)
}

func (s *Server) bits(t modbus.Table, addr uint16, n int) []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.bitTable(t)[addr:int(addr)+n]...)
}

// handler serves the library's callbacks; a separate type keeps them out
// of Server's API.
type handler struct{ s *Server }

// begin counts a request, applies the delay and reports whether the
// request touches a failing range.
func (s *Server) begin(client string, t modbus.Table, addr, qty uint16) error {
	s.requests.Add(1)
	s.mu.Lock()
	if s.clients == nil {
		s.clients = map[string]struct{}{}
	}
	s.clients[client] = struct{}{}
	delay := s.delay
	fail := false
	last := int(addr) + int(qty) - 1
	for _, f := range s.fails {
		if f.table == t && int(f.start) <= last && int(addr) <= int(f.end) {
			fail = true
		}
	}
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if fail {
		return mb.ErrIllegalDataAddress
	}
	return nil
}

func (s *Server) record(w Write) {
	select {
	case s.writes <- w:
	default: // nobody listening; never block the device
	}
}

func (h handler) HandleCoils(req *mb.CoilsRequest) ([]bool, error) {
	s := h.s
	if err := s.begin(req.ClientAddr, modbus.Coil, req.Addr, req.Quantity); err != nil {
		return nil, err
	}
	if req.IsWrite {
		s.setBits(modbus.Coil, req.Addr, req.Args)
		s.record(Write{UnitID: req.UnitId, Table: modbus.Coil, Addr: req.Addr, Coils: append([]bool(nil), req.Args...)})
		return nil, nil
	}
	return s.bits(modbus.Coil, req.Addr, int(req.Quantity)), nil
}

func (h handler) HandleDiscreteInputs(req *mb.DiscreteInputsRequest) ([]bool, error) {
	if err := h.s.begin(req.ClientAddr, modbus.Discrete, req.Addr, req.Quantity); err != nil {
		return nil, err
	}
	return h.s.bits(modbus.Discrete, req.Addr, int(req.Quantity)), nil
}

func (h handler) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	s := h.s
	if err := s.begin(req.ClientAddr, modbus.Holding, req.Addr, req.Quantity); err != nil {
		return nil, err
	}
	if req.IsWrite {
		s.setRegs(modbus.Holding, req.Addr, req.Args)
		s.record(Write{UnitID: req.UnitId, Table: modbus.Holding, Addr: req.Addr, Regs: append([]uint16(nil), req.Args...)})
		return nil, nil
	}
	return s.regs(modbus.Holding, req.Addr, int(req.Quantity)), nil
}

func (h handler) HandleInputRegisters(req *mb.InputRegistersRequest) ([]uint16, error) {
	if err := h.s.begin(req.ClientAddr, modbus.Input, req.Addr, req.Quantity); err != nil {
		return nil, err
	}
	return h.s.regs(modbus.Input, req.Addr, int(req.Quantity)), nil
}
