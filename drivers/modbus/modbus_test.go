package modbus_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/drivers/modbus/modbustest"
)

func newSim(t testing.TB) *modbustest.Server {
	t.Helper()
	s, err := modbustest.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// open builds a driver for the simulator from YAML device keys (url is
// filled in) and connects it.
func open(t testing.TB, sim *modbustest.Server, src string) *modbus.Driver {
	t.Helper()
	d, err := modbus.New(modbus.ConfigFromYAML(t, "id: press-02\nurl: "+sim.URL()+"\n"+src))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

// TestReadEveryType reads each type in each byte order from holding and
// input registers through real TCP, plus coils, discrete inputs and bits.
func TestReadEveryType(t *testing.T) {
	sim := newSim(t)
	type want struct {
		table modbus.Table
		addr  uint16
		f     modbus.Format
		v     drivers.Value
	}
	values := []drivers.Value{
		drivers.IntValue(drivers.Int16, -12345),
		drivers.UintValue(drivers.Uint16, 54321),
		drivers.IntValue(drivers.Int32, -123456789),
		drivers.UintValue(drivers.Uint32, 0xDEADBEEF),
		drivers.FloatValue(drivers.Float32, float64(float32(3.14159))),
		drivers.IntValue(drivers.Int64, math.MinInt64+12345),
		drivers.UintValue(drivers.Uint64, 0xFEDCBA9876543210),
		drivers.FloatValue(drivers.Float64, -2.718281828459045),
		drivers.StringValue("Hello, PLC"),
	}
	var wants []want
	var yaml strings.Builder
	yaml.WriteString("tags:\n")
	addr := uint16(100)
	for _, table := range []modbus.Table{modbus.Holding, modbus.Input} {
		for _, o := range []modbus.ByteOrder{modbus.ABCD, modbus.BADC, modbus.CDAB, modbus.DCBA} {
			for _, v := range values {
				f := modbus.Format{Type: v.Type(), Order: o}
				extra := ""
				if v.Type() == drivers.String {
					f.Length = 6
					extra = ", length: 6"
				}
				fmt.Fprintf(&yaml, "  - {name: %s/%v/%v, table: %s, address: %d, type: %v, byte_order: %v%s}\n",
					table, o, v.Type(), table, addr, v.Type(), o, extra)
				if err := sim.SetValue(table, addr, f, v); err != nil {
					t.Fatal(err)
				}
				wants = append(wants, want{table, addr, f, v})
				addr += uint16(f.Registers())
			}
		}
	}
	for i, b := range []bool{true, false, true} {
		fmt.Fprintf(&yaml, "  - {name: coil%d, table: coil, address: %d, type: bool}\n", i, 7+i)
		fmt.Fprintf(&yaml, "  - {name: di%d, table: discrete, address: %d, type: bool}\n", i, 65533+i)
		sim.SetCoil(uint16(7+i), b)
		sim.SetDiscrete(uint16(65533+i), !b)
		wants = append(wants, want{modbus.Coil, 0, modbus.Format{}, drivers.BoolValue(b)},
			want{modbus.Discrete, 0, modbus.Format{}, drivers.BoolValue(!b)})
	}
	sim.SetHolding(10, 0b1000_0000_0000_0101)
	sim.SetInput(10, 0b0100_0000_0000_0000)
	for _, b := range []struct {
		table modbus.Table
		bit   int
		v     bool
	}{{modbus.Holding, 0, true}, {modbus.Holding, 1, false}, {modbus.Holding, 2, true}, {modbus.Holding, 15, true}, {modbus.Input, 14, true}, {modbus.Input, 15, false}} {
		fmt.Fprintf(&yaml, "  - {name: %s-bit%d, table: %s, address: 10, type: bool, bit: %d}\n", b.table, b.bit, b.table, b.bit)
		wants = append(wants, want{b.table, 10, modbus.Format{}, drivers.BoolValue(b.v)})
	}

	d := open(t, sim, yaml.String())
	before := sim.Requests()
	start := time.Now()
	got, err := d.Read(context.Background(), nil)
	end := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if n := sim.Requests() - before; n != uint64(len(d.Plan())) {
		t.Errorf("%d requests, plan has %d", n, len(d.Plan()))
	}
	if n := len(d.Plan()); n != 6 { // holding 10 and 100..203, input 10 and 204..307, coils, discrete
		t.Errorf("plan has %d requests, want 6: %v", n, d.Plan())
	}
	tags := d.Tags()
	if len(got) != len(wants) || len(tags) != len(wants) {
		t.Fatalf("%d samples, %d tags, want %d", len(got), len(tags), len(wants))
	}
	for i, s := range got {
		if int(s.Tag) != i || s.Quality != drivers.QualityGood || s.Time < start.UnixMilli() || s.Time > end.UnixMilli() {
			t.Errorf("sample %d = %+v", i, s)
		}
		if !s.Value.Equal(wants[i].v) {
			t.Errorf("%s = %v, want %v", tags[i].Name, s.Value, wants[i].v)
		}
	}
}

func TestReadAppendsAndCachesStrings(t *testing.T) {
	sim := newSim(t)
	sim.SetString(modbus.Holding, 0, modbus.ABCD, 4, "recipe-1")
	sim.SetHolding(4, 42)
	d := open(t, sim, `tags:
  - {name: s, table: holding, address: 0, type: string, length: 4}
  - {name: n, table: holding, address: 4, type: uint16}`)
	dst := []drivers.Sample{{Tag: 99}}
	dst, err := d.Read(context.Background(), dst)
	if err != nil || len(dst) != 3 || dst[0].Tag != 99 || dst[1].Value.Str() != "recipe-1" || dst[2].Value.Uint() != 42 || dst[2].Tag != 1 {
		t.Fatalf("Read = %+v, %v", dst, err)
	}
	sim.SetString(modbus.Holding, 0, modbus.ABCD, 4, "recipe-2")
	dst, err = d.Read(context.Background(), dst[:0])
	if err != nil || len(dst) != 2 || dst[0].Value.Str() != "recipe-2" {
		t.Fatalf("Read = %+v, %v", dst, err)
	}
}

// TestReadAllocs: a scan allocates per request (the library does), never
// per tag, and not for an unchanged string. The simulator runs in-process and
// its allocations count too, so compare two drivers making the same eight
// 125-register requests, one with 991 tags and one with 16.
func TestReadAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counting runs hundreds of scans; skipped under -short")
	}
	sim := newSim(t)
	sim.SetString(modbus.Holding, 0, modbus.ABCD, 10, "unchanging")
	scan := func(src string) (float64, int) {
		d := open(t, sim, src)
		dst := make([]drivers.Sample, 0, 1000)
		ctx := context.Background()
		allocs := testing.AllocsPerRun(50, func() {
			var err error
			if dst, err = d.Read(ctx, dst[:0]); err != nil {
				t.Fatal(err)
			}
		})
		return allocs, len(d.Plan())
	}
	var many, few strings.Builder
	many.WriteString("tags:\n  - {name: s, table: holding, address: 0, type: string, length: 10}\n")
	for i := 10; i < 1000; i++ {
		fmt.Fprintf(&many, "  - {name: r%d, table: holding, address: %d, type: uint16}\n", i, i)
	}
	few.WriteString("max_gap: 124\ntags:\n")
	for i := range 8 { // the first and last register of each request
		fmt.Fprintf(&few, "  - {name: a%d, table: holding, address: %d, type: uint16}\n", i, i*125)
		fmt.Fprintf(&few, "  - {name: b%d, table: holding, address: %d, type: uint16}\n", i, i*125+124)
	}
	a1000, r1000 := scan(many.String())
	a8, r8 := scan(few.String())
	t.Logf("allocs per scan, client and simulator: %.1f with 991 tags, %.1f with 16 tags (%d requests)", a1000, a8, r8)
	if r1000 != 8 || r8 != 8 {
		t.Fatalf("plans have %d and %d requests, want 8", r1000, r8)
	}
	if a1000 > a8+1 {
		t.Errorf("991 tags cost %.1f allocs more than 16 tags in the same requests", a1000-a8)
	}
}

func TestExceptionIsBadQuality(t *testing.T) {
	sim := newSim(t)
	sim.SetHolding(0, 1, 2)
	sim.SetHolding(10, 3)
	sim.SetCoil(0, true)
	d := open(t, sim, `tags:
  - {name: a, table: holding, address: 0, type: uint16}
  - {name: b, table: holding, address: 1, type: uint16}
  - {name: c, table: holding, address: 10, type: float32}
  - {name: d, table: coil, address: 0, type: bool}`)
	sim.FailRange(modbus.Holding, 0, 0)
	got, err := d.Read(context.Background(), nil)
	if err != nil {
		t.Fatalf("exception returned an error: %v", err)
	}
	wantQ := []drivers.Quality{drivers.QualityBad, drivers.QualityBad, drivers.QualityGood, drivers.QualityGood}
	for i, s := range got {
		if s.Quality != wantQ[i] || int(s.Tag) != i || s.Time == 0 {
			t.Errorf("sample %d = %+v, want quality %v", i, s, wantQ[i])
		}
	}
	if got[0].Value.Type() != drivers.Uint16 || got[2].Value.Type() != drivers.Float32 {
		t.Errorf("bad samples are not typed: %v %v", got[0].Value.Type(), got[2].Value.Type())
	}
	sim.ClearFailures()
	got, err = d.Read(context.Background(), got[:0])
	if err != nil || got[0].Quality != drivers.QualityGood || got[1].Value.Uint() != 2 {
		t.Fatalf("after recovery: %+v, %v", got, err)
	}
}

// TestOutage is the PLC losing power: Read fails with ErrNotConnected
// naming the request, keeps failing until the agent reconnects, and
// Close+Connect recovers once the PLC is back.
func TestOutage(t *testing.T) {
	sim := newSim(t)
	sim.SetHolding(20, 7)
	d := open(t, sim, "tags: [{name: p, table: holding, address: 20, type: uint16}]")
	ctx := context.Background()
	if _, err := d.Read(ctx, nil); err != nil {
		t.Fatal(err)
	}
	sim.Stop()
	dst := []drivers.Sample{{Tag: 5}}
	got, err := d.Read(ctx, dst)
	if !errors.Is(err, drivers.ErrNotConnected) || !strings.HasPrefix(err.Error(), `reading holding registers 20..20 on "press-02": `) {
		t.Fatalf("Read after Stop: %v", err)
	}
	if len(got) != 1 {
		t.Errorf("failed Read returned %d samples, want dst unchanged", len(got))
	}
	if _, err := d.Read(ctx, nil); !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("second Read: %v", err)
	}
	if err := d.Connect(ctx); !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("Connect while the PLC is down: %v", err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	d.Close(context.Background())
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	got, err = d.Read(ctx, nil)
	if err != nil || got[0].Value.Uint() != 7 {
		t.Fatalf("after recovery: %+v, %v", got, err)
	}
}

func TestTimeout(t *testing.T) {
	sim := newSim(t)
	d, err := modbus.New(modbus.ConfigFromYAML(t, "url: "+sim.URL()+"\ntimeout: 100ms\ntags: [{name: p, table: holding, address: 0, type: uint16, writable: true}]"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	sim.SetDelay(400 * time.Millisecond)
	start := time.Now()
	_, err = d.Read(ctx, nil)
	if !errors.Is(err, drivers.ErrNotConnected) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("Read = %v, want a timeout wrapping ErrNotConnected", err)
	}
	if el := time.Since(start); el > 350*time.Millisecond {
		t.Errorf("Read took %v with a 100ms timeout", el)
	}
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Write(ctx, 0, drivers.UintValue(drivers.Uint16, 1)); !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("Write = %v, want a timeout wrapping ErrNotConnected", err)
	}
	sim.SetDelay(0)
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(ctx, nil); err != nil {
		t.Fatalf("after the delay is gone: %v", err)
	}
}

func TestNotConnected(t *testing.T) {
	sim := newSim(t)
	d, err := modbus.New(modbus.ConfigFromYAML(t, "url: "+sim.URL()+"\ntags: [{name: p, table: coil, address: 0, type: bool, writable: true}]"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := d.Read(ctx, nil); !errors.Is(err, drivers.ErrNotConnected) {
		t.Errorf("Read before Connect: %v", err)
	}
	if err := d.Write(ctx, 0, drivers.BoolValue(true)); !errors.Is(err, drivers.ErrNotConnected) {
		t.Errorf("Write before Connect: %v", err)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Errorf("Close before Connect: %v", err)
	}
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(ctx); err != nil { // reconnect replaces the link
		t.Fatal(err)
	}
	d.Close(context.Background())
	d.Close(context.Background())
	if _, err := d.Read(ctx, nil); !errors.Is(err, drivers.ErrNotConnected) {
		t.Errorf("Read after Close: %v", err)
	}

	sim.Close()
	if err := d.Connect(ctx); !errors.Is(err, drivers.ErrNotConnected) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Connect to a closed port: %v", err)
	}
}

func TestContextCancel(t *testing.T) {
	sim := newSim(t)
	d := open(t, sim, "tags: [{name: p, table: holding, address: 0, type: uint16}]")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Read(ctx, nil); !errors.Is(err, context.Canceled) || errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("Read with cancelled ctx: %v", err)
	}
	if err := d.Connect(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect with cancelled ctx: %v", err)
	}
	// A cancelled Connect leaves the driver closed, not half-open.
	if _, err := d.Read(context.Background(), nil); !errors.Is(err, drivers.ErrNotConnected) {
		t.Fatalf("Read after a cancelled Connect: %v", err)
	}
}

func TestWrite(t *testing.T) {
	sim := newSim(t)
	d := open(t, sim, `unit_id: 7
tags:
  - {name: run, table: coil, address: 5, type: bool, writable: true}
  - {name: speed, table: holding, address: 10, type: int16, byte_order: BADC, writable: true}
  - {name: setpoint, table: holding, address: 20, type: float32, byte_order: CDAB, writable: true}
  - {name: total, table: holding, address: 30, type: float64, writable: true}
  - {name: flag, table: holding, address: 40, type: bool, bit: 3, writable: true}
  - {name: label, table: holding, address: 50, type: string, length: 3, writable: true}
  - {name: ro, table: holding, address: 60, type: uint16}
  - {name: count, table: holding, address: 70, type: uint32, byte_order: DCBA, writable: true}`)
	ctx := context.Background()
	drain := func() modbustest.Write {
		t.Helper()
		select {
		case w := <-sim.Writes():
			return w
		case <-time.After(time.Second):
			t.Fatal("no write arrived")
		}
		return modbustest.Write{}
	}
	for _, c := range []struct {
		tag  int
		v    drivers.Value
		want modbustest.Write
	}{
		{0, drivers.BoolValue(true), modbustest.Write{UnitID: 7, Table: modbus.Coil, Addr: 5, Coils: []bool{true}}},
		{1, drivers.IntValue(drivers.Int16, -2), modbustest.Write{UnitID: 7, Table: modbus.Holding, Addr: 10, Regs: []uint16{0xFEFF}}},
		{2, drivers.FloatValue(drivers.Float32, 1.5), modbustest.Write{UnitID: 7, Table: modbus.Holding, Addr: 20, Regs: []uint16{0, 0x3FC0}}},
		{3, drivers.FloatValue(drivers.Float64, -1), modbustest.Write{UnitID: 7, Table: modbus.Holding, Addr: 30, Regs: []uint16{0xBFF0, 0, 0, 0}}},
		{5, drivers.StringValue("ABC"), modbustest.Write{UnitID: 7, Table: modbus.Holding, Addr: 50, Regs: []uint16{0x4142, 0x4300, 0}}},
		{7, drivers.UintValue(drivers.Uint32, 0x11223344), modbustest.Write{UnitID: 7, Table: modbus.Holding, Addr: 70, Regs: []uint16{0x4433, 0x2211}}},
	} {
		if err := d.Write(ctx, c.tag, c.v); err != nil {
			t.Fatalf("Write %d: %v", c.tag, err)
		}
		if w := drain(); w.UnitID != c.want.UnitID || w.Table != c.want.Table || w.Addr != c.want.Addr ||
			!slices.Equal(w.Regs, c.want.Regs) || !slices.Equal(w.Coils, c.want.Coils) {
			t.Errorf("Write %v: got %+v, want %+v", c.v, w, c.want)
		}
	}
	// The driver reads back what it wrote.
	got, err := d.Read(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"true", "-2", "1.5", "-1"} {
		if got[i].Value.String() != want {
			t.Errorf("%s read back as %v, want %s", d.Tags()[i].Name, got[i].Value, want)
		}
	}

	// A bit is read-modify-write: the register's other bits survive.
	sim.SetHolding(40, 0xF0F0)
	if err := d.Write(ctx, 4, drivers.BoolValue(true)); err != nil {
		t.Fatal(err)
	}
	if w := drain(); !slices.Equal(w.Regs, []uint16{0xF0F8}) {
		t.Errorf("bit write sent %04X", w.Regs)
	}
	if err := d.Write(ctx, 4, drivers.BoolValue(false)); err != nil {
		t.Fatal(err)
	}
	if got := sim.Holding(40, 1)[0]; got != 0xF0F0 {
		t.Errorf("after clearing bit 3: %04X", got)
	}
	drain()

	if err := d.Write(ctx, 6, drivers.UintValue(drivers.Uint16, 1)); !errors.Is(err, drivers.ErrNotWritable) {
		t.Errorf("Write to a read-only tag: %v", err)
	}
	if err := d.Write(ctx, 2, drivers.IntValue(drivers.Int32, 1)); err == nil || !strings.Contains(err.Error(), "value of type int32 for a float32 tag") {
		t.Errorf("Write of the wrong type: %v", err)
	}
	if err := d.Write(ctx, 5, drivers.StringValue("too long")); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("Write of a long string: %v", err)
	}
	if err := d.Write(ctx, 99, drivers.BoolValue(true)); err == nil {
		t.Error("Write to tag 99 succeeded")
	}
	sim.FailRange(modbus.Holding, 20, 21)
	err = d.Write(ctx, 2, drivers.FloatValue(drivers.Float32, 2))
	if err == nil || errors.Is(err, drivers.ErrNotConnected) || !strings.Contains(err.Error(), `writing tag "setpoint" (holding registers 20..21) on "press-02": device refused: illegal data address`) {
		t.Errorf("Write refused by the device: %v", err)
	}
	if _, err := d.Read(ctx, nil); err != nil {
		t.Errorf("the link did not survive an exception: %v", err)
	}
	select {
	case w := <-sim.Writes():
		t.Errorf("unexpected write %+v", w)
	default:
	}
}

// TestConcurrentReadWrite: DCMD writes arrive while the scan runs.
func TestConcurrentReadWrite(t *testing.T) {
	sim := newSim(t)
	d := open(t, sim, `tags:
  - {name: a, table: holding, address: 0, type: uint32, writable: true}
  - {name: b, table: coil, address: 0, type: bool, writable: true}`)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		var dst []drivers.Sample
		for range 100 {
			var err error
			if dst, err = d.Read(ctx, dst[:0]); err != nil {
				t.Error(err)
				return
			}
			if v := dst[0].Value.Uint(); v>>16 != v&0xFFFF {
				t.Errorf("torn read %08X", v) // both halves are always written together
			}
		}
	})
	wg.Go(func() {
		for i := range 100 {
			if err := d.Write(ctx, 0, drivers.UintValue(drivers.Uint32, uint64(i)<<16|uint64(i))); err != nil {
				t.Error(err)
				return
			}
			if err := d.Write(ctx, 1, drivers.BoolValue(i%2 == 0)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
}

// BenchmarkRead scans 1000 contiguous holding registers over loopback TCP.
func BenchmarkRead(b *testing.B) {
	for _, c := range []struct {
		name string
		typ  string
		regs int
	}{{"uint16x1000", "uint16", 1}, {"float32x500", "float32", 2}} {
		b.Run(c.name, func(b *testing.B) {
			sim := newSim(b)
			var yaml strings.Builder
			yaml.WriteString("tags:\n")
			n := 1000 / c.regs
			for i := range n {
				fmt.Fprintf(&yaml, "  - {name: t%d, table: holding, address: %d, type: %s}\n", i, i*c.regs, c.typ)
			}
			d := open(b, sim, yaml.String())
			ctx := context.Background()
			dst := make([]drivers.Sample, 0, n)
			before := sim.Requests()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				var err error
				if dst, err = d.Read(ctx, dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(sim.Requests()-before)/float64(b.N), "requests/scan")
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tags/s")
		})
	}
}
