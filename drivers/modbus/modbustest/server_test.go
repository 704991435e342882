package modbustest

import (
	"errors"
	"io"
	"log"
	"net"
	"slices"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/modbus"
)

func newServer(t *testing.T) *Server {
	t.Helper()
	s, err := NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// client is a bare library client, to test the simulator on its own.
func client(t *testing.T, s *Server) *mb.ModbusClient {
	t.Helper()
	c, err := mb.NewClient(&mb.ClientConfiguration{URL: s.URL(), Timeout: time.Second, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTables(t *testing.T) {
	s := newServer(t)
	c := client(t, s)
	s.SetHolding(10, 1, 2, 3)
	s.SetInput(65534, 7, 8)
	s.SetCoil(3, true, false, true)
	s.SetDiscrete(0, true)

	if got, err := c.ReadRegisters(10, 3, mb.HOLDING_REGISTER); err != nil || !slices.Equal(got, []uint16{1, 2, 3}) {
		t.Errorf("holding = %v, %v", got, err)
	}
	if got, err := c.ReadRegisters(65534, 2, mb.INPUT_REGISTER); err != nil || !slices.Equal(got, []uint16{7, 8}) {
		t.Errorf("input = %v, %v", got, err)
	}
	if got, err := c.ReadCoils(3, 3); err != nil || !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("coils = %v, %v", got, err)
	}
	if got, err := c.ReadDiscreteInputs(0, 2); err != nil || !slices.Equal(got, []bool{true, false}) {
		t.Errorf("discrete = %v, %v", got, err)
	}
	if got := s.Requests(); got != 4 {
		t.Errorf("Requests = %d, want 4", got)
	}
	if got := s.Holding(10, 4); !slices.Equal(got, []uint16{1, 2, 3, 0}) {
		t.Errorf("Holding = %v", got)
	}
	if got := s.Coil(3, 2); !slices.Equal(got, []bool{true, false}) {
		t.Errorf("Coil = %v", got)
	}
}

func TestTypedHelpers(t *testing.T) {
	s := newServer(t)
	c := client(t, s)
	s.SetFloat32(modbus.Holding, 0, modbus.ABCD, 1.5)
	s.SetFloat32(modbus.Holding, 2, modbus.CDAB, 1.5)
	s.SetInt32(modbus.Input, 0, modbus.DCBA, -2)
	s.SetUint32(modbus.Holding, 4, modbus.BADC, 0xA1B2C3D4)
	s.SetFloat64(modbus.Holding, 6, modbus.ABCD, -1)
	s.SetInt64(modbus.Holding, 10, modbus.CDAB, 1)
	s.SetString(modbus.Holding, 20, modbus.ABCD, 2, "OK")
	s.SetBit(modbus.Holding, 30, 4, true)
	if got := s.Holding(0, 14); !slices.Equal(got, []uint16{0x3FC0, 0, 0, 0x3FC0, 0xB2A1, 0xD4C3, 0xBFF0, 0, 0, 0, 1, 0, 0, 0}) {
		t.Errorf("holding = %04X", got)
	}
	if got := s.Input(0, 2); !slices.Equal(got, []uint16{0xFEFF, 0xFFFF}) {
		t.Errorf("input = %04X", got)
	}
	if got := s.Holding(20, 2); !slices.Equal(got, []uint16{0x4F4B, 0}) {
		t.Errorf("string = %04X", got)
	}
	if got, _ := c.ReadRegister(30, mb.HOLDING_REGISTER); got != 1<<4 {
		t.Errorf("bit = %04X", got)
	}
	v, err := s.Value(modbus.Holding, 2, modbus.Format{Type: drivers.Float32, Order: modbus.CDAB})
	if err != nil || v.Float() != 1.5 {
		t.Errorf("Value = %v, %v", v, err)
	}
	if err := s.SetValue(modbus.Coil, 1, modbus.Format{}, drivers.BoolValue(true)); err != nil || !s.Coil(1, 1)[0] {
		t.Errorf("SetValue coil: %v", err)
	}
	if err := s.SetValue(modbus.Holding, 65535, modbus.Format{Type: drivers.Float32}, drivers.FloatValue(drivers.Float32, 1)); err == nil {
		t.Error("SetValue past 65535 accepted")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("SetFloat32 on coils did not panic")
			}
		}()
		s.SetFloat32(modbus.Coil, 0, modbus.ABCD, 1)
	}()
}

func TestFailRange(t *testing.T) {
	s := newServer(t)
	c := client(t, s)
	s.FailRange(modbus.Holding, 100, 109)
	for _, r := range []struct {
		addr, n uint16
		fail    bool
	}{{90, 10, false}, {90, 11, true}, {109, 1, true}, {110, 5, false}, {50, 100, true}} {
		_, err := c.ReadRegisters(r.addr, r.n, mb.HOLDING_REGISTER)
		if r.fail != errors.Is(err, mb.ErrIllegalDataAddress) {
			t.Errorf("read %d+%d: err = %v, want failure %v", r.addr, r.n, err, r.fail)
		}
	}
	if _, err := c.ReadRegisters(100, 1, mb.INPUT_REGISTER); err != nil {
		t.Errorf("other table failed: %v", err)
	}
	if err := c.WriteRegister(105, 1); !errors.Is(err, mb.ErrIllegalDataAddress) {
		t.Errorf("write into failing range: %v", err)
	}
	s.ClearFailures()
	if _, err := c.ReadRegisters(100, 10, mb.HOLDING_REGISTER); err != nil {
		t.Errorf("after ClearFailures: %v", err)
	}
}

func TestWrites(t *testing.T) {
	s := newServer(t)
	c := client(t, s)
	if err := c.WriteRegisters(5, []uint16{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteCoil(9, true); err != nil {
		t.Fatal(err)
	}
	w := <-s.Writes()
	if w.Table != modbus.Holding || w.Addr != 5 || !slices.Equal(w.Regs, []uint16{1, 2}) || w.UnitID != 1 {
		t.Errorf("write = %+v", w)
	}
	w = <-s.Writes()
	if w.Table != modbus.Coil || w.Addr != 9 || !slices.Equal(w.Coils, []bool{true}) {
		t.Errorf("write = %+v", w)
	}
	if !slices.Equal(s.Holding(5, 2), []uint16{1, 2}) || !s.Coil(9, 1)[0] {
		t.Error("writes not stored")
	}
}

// TestStopDropsConnections checks what the outage tests rely on: Stop
// closes connections already accepted (the library's Stop does this), new
// ones are refused, and Start listens on the same port again.
func TestStopDropsConnections(t *testing.T) {
	s := newServer(t)
	c := client(t, s)
	if _, err := c.ReadRegister(0, mb.HOLDING_REGISTER); err != nil {
		t.Fatal(err)
	}
	// A raw connection that never sends a request, to see it closed from
	// the server side rather than by a failing request.
	raw, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	time.Sleep(20 * time.Millisecond) // let the server accept it

	s.Stop()
	raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("idle connection survived Stop: %v", err)
	}
	if _, err := c.ReadRegister(0, mb.HOLDING_REGISTER); err == nil {
		t.Fatal("request on an old connection succeeded after Stop")
	}
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatal("connection accepted while stopped")
	}
	s.Stop() // twice is fine

	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	c.Close()
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadRegister(0, mb.HOLDING_REGISTER); err != nil {
		t.Fatalf("after Start on %s: %v", s.Addr(), err)
	}
	s.Close()
	if err := s.Start(); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}

// TestStopStartLoop churns outages under -race.
func TestStopStartLoop(t *testing.T) {
	s := newServer(t)
	for range 20 {
		c := client(t, s)
		if _, err := c.ReadRegister(0, mb.HOLDING_REGISTER); err != nil {
			t.Fatal(err)
		}
		s.Stop()
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDelay(t *testing.T) {
	s := newServer(t)
	c, err := mb.NewClient(&mb.ClientConfiguration{URL: s.URL(), Timeout: 50 * time.Millisecond, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s.SetDelay(200 * time.Millisecond)
	if _, err := c.ReadRegister(0, mb.HOLDING_REGISTER); !errors.Is(err, mb.ErrRequestTimedOut) {
		t.Fatalf("err = %v, want timeout", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
