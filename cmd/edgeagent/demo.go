//go:build demo

// The demo is built only with -tags demo (make demo): the binary shipped to
// gateways carries no MQTT broker and no PLC simulator, which keeps it
// smaller and its resident memory lower.

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/edgeagent/edgeagent/agent"
	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/drivers/modbus/modbustest"
	"github.com/edgeagent/edgeagent/drivers/opcua/opcuatest"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// The demo's simulators and broker listen where configs/demo.yaml says.
// The agent reaches the broker through demoWAN, a link the demo can cut;
// the watcher and the SCADA host sit beside the broker.
const (
	demoBroker = "127.0.0.1:18831"
	demoWAN    = "127.0.0.1:18832"
	demoPress  = "127.0.0.1:15021"
	demoMixer  = "127.0.0.1:15022"
	demoOven   = "127.0.0.1:14840"
)

// wanCutFor is how long the scripted WAN outage lasts.
const wanCutFor = 10 * time.Second

func cmdDemo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	file := fs.String("c", "configs/demo.yaml", "demo configuration")
	dur := fs.Duration("for", 0, "stop after this long (0: until Ctrl-C)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	out = &lockedWriter{w: out}
	say := func(format string, a ...any) {
		fmt.Fprintf(out, "%s  \033[1mdemo: %s\033[0m\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}

	broker := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	_ = broker.AddHook(new(auth.AllowHook), nil)
	if err := broker.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: demoBroker})); err != nil {
		return fmt.Errorf("embedded broker on %s: %w", demoBroker, err)
	}
	go broker.Serve()
	defer broker.Close()
	wan, err := newWANLink(demoWAN, demoBroker)
	if err != nil {
		return err
	}
	defer wan.cut()

	press, err := modbustest.NewServer(demoPress)
	if err != nil {
		return fmt.Errorf("simulated PLC press-02: %w", err)
	}
	defer press.Close()
	mixer, err := modbustest.NewServer(demoMixer)
	if err != nil {
		return fmt.Errorf("simulated PLC mixer-3: %w", err)
	}
	defer mixer.Close()
	go animate(ctx, press, mixer)
	// gopcua's server reports loading its node set through the log
	// package; the demo's output is the traffic.
	stdlog.SetOutput(io.Discard)
	oven, err := opcuatest.NewServer(opcuatest.Options{Addr: demoOven})
	if err != nil {
		return fmt.Errorf("simulated OPC UA server oven-1: %w", err)
	}
	defer oven.Close()
	go oven.Animate(ctx, time.Second)

	say("embedded MQTT broker on %s, simulated Modbus PLCs press-02 on %s and mixer-3 on %s, OPC UA server oven-1 on %s", demoBroker, demoPress, demoMixer, oven.URL())
	say("the agent reaches the broker through a WAN link on %s, which the demo cuts for %s after the DCMD", demoWAN, wanCutFor)
	say("decoded Sparkplug B traffic follows (topic, seq, metrics); Ctrl-C stops")
	// The watcher outlives the agent so its DDEATH and NDEATH show.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	defer func() { stopWatch(); <-watched }()
	go func() { defer close(watched); _ = watch(watchCtx, "tcp://"+demoBroker, "spBv1.0/#", out) }()

	// The SCADA host subscribes before the agent starts, so it counts
	// from the first NBIRTH.
	g, e := cfg.Node.GroupID, cfg.Node.EdgeNodeID
	scada := new(scadaHost)
	host := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + demoBroker).SetClientID("demo-scada"))
	if t := host.Connect(); t.WaitTimeout(5*time.Second) && t.Error() == nil {
		defer host.Disconnect(100)
		// Every message type of the node and of its devices.
		filter := sparkplug.Topic{Group: g, Type: "+", Node: e}.String() + "/#"
		host.Subscribe(filter, 0, func(_ mqtt.Client, m mqtt.Message) { scada.receive(m.Topic(), m.Payload()) }).WaitTimeout(5 * time.Second)
	}
	time.Sleep(300 * time.Millisecond) // let the watcher subscribe before the births

	log := agent.NewLogger(os.Stderr, cfg.Log)
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	now := func() uint64 { return uint64(time.Now().UnixMilli()) }
	steps := []struct {
		after time.Duration
		do    func()
	}{
		{6 * time.Second, func() {
			say("SCADA writes setpoint = 42.5 to press-02 (DCMD); the new value comes back in DDATA")
			topic := sparkplug.Topic{Group: g, Type: sparkplug.DCMD, Node: e, Device: "press-02"}.String()
			m := []sparkplug.Metric{{Name: "setpoint", Type: sparkplug.TypeFloat, Float: 42.5, Timestamp: now()}}
			host.Publish(topic, 0, false, sparkplug.AppendCommand(nil, now(), m))
			say("SCADA writes setpoint = 185 to oven-1 (DCMD): written to the OPC UA node, back through the subscription")
			topic = sparkplug.Topic{Group: g, Type: sparkplug.DCMD, Node: e, Device: "oven-1"}.String()
			m = []sparkplug.Metric{{Name: "setpoint", Type: sparkplug.TypeDouble, Float: 185, Timestamp: now()}}
			host.Publish(topic, 0, false, sparkplug.AppendCommand(nil, now(), m))
		}},
		{4 * time.Second, func() { cutWAN(ctx, say, wan, a, scada) }},
		{5 * time.Second, func() { say("mixer-3 stops answering (PLC outage): expect its DDEATH"); mixer.Stop() }},
		{5 * time.Second, func() { say("mixer-3 is back: expect a fresh DBIRTH"); mixer.Start() }},
		{5 * time.Second, func() {
			say("SCADA asks for a rebirth (NCMD Node Control/Rebirth): NBIRTH seq 0, same bdSeq, then DBIRTHs")
			topic := sparkplug.Topic{Group: g, Type: sparkplug.NCMD, Node: e}.String()
			m := []sparkplug.Metric{{Name: sparkplug.MetricRebirth, Type: sparkplug.TypeBoolean, Int: 1}}
			host.Publish(topic, 0, false, sparkplug.AppendCommand(nil, now(), m))
		}},
		{4 * time.Second, func() { say("script done; live traffic goes on until Ctrl-C") }},
	}
steps:
	for _, st := range steps {
		select {
		case <-ctx.Done():
			break steps
		case <-time.After(st.after):
			st.do()
		}
	}
	err = <-done
	time.Sleep(200 * time.Millisecond)
	stopWatch()
	<-watched
	say("stopped; %d messages published", a.Stats().Published)
	return err
}

// cutWAN cuts the agent's link to the broker for wanCutFor, reporting
// the buffer meanwhile, then restores it and reports the reconnect and
// the history the SCADA host received.
func cutWAN(ctx context.Context, say func(string, ...any), wan *wanLink, a *agent.Agent, scada *scadaHost) {
	before := scada.restart()
	wan.cut()
	cutAt := time.Now()
	say("WAN cut: the broker is unreachable (the link on %s dropped its connections and refuses new ones)", demoWAN)
	say("expect the agent's Will, an NDEATH, from the broker; the agent keeps polling, and each scan that changed " +
		"something becomes a record in its bbolt buffer")
	var most int
	for time.Since(cutAt) < wanCutFor-time.Second {
		if !pause(ctx, 2*time.Second) {
			return
		}
		st := a.Stats()
		most = max(most, st.Buffer.Records)
		say("WAN down %2ds: agent connected=%t, the buffer holds %d records (%.1f KiB), the oldest %s old",
			int(time.Since(cutAt).Round(time.Second).Seconds()), st.Connected, st.Buffer.Records,
			float64(st.Buffer.Bytes)/1024, st.Buffer.OldestAge.Round(100*time.Millisecond))
	}
	if !pause(ctx, wanCutFor-time.Since(cutAt)) {
		return
	}
	if err := wan.restore(); err != nil {
		say("cannot restore the WAN link: %v", err)
		return
	}
	restoredAt := time.Now()
	say("WAN restored after %s: expect NBIRTH with the next bdSeq, the DBIRTHs, then the buffered scans as history", wanCutFor)

	var now tally
	for now = scada.tally(); len(now.bdSeqs) == len(before.bdSeqs); now = scada.tally() {
		if time.Since(restoredAt) > 10*time.Second || !pause(ctx, 100*time.Millisecond) {
			say("no NBIRTH within 10s of the WAN coming back")
			return
		}
	}
	prev := "none"
	if n := len(before.bdSeqs); n > 0 {
		prev = fmt.Sprint(before.bdSeqs[n-1])
	}
	say("reconnected: NBIRTH bdSeq=%d (the session the cut ended had bdSeq=%s; the NDEATH above closed it)", now.bdSeqs[len(now.bdSeqs)-1], prev)

	// History goes out at once (replay_rate messages/s): done when no
	// historical metric has arrived for a second.
	quiet := time.Now()
	for last := now.hist; (last == 0 || time.Since(quiet) < time.Second) && time.Since(restoredAt) < 15*time.Second; {
		if !pause(ctx, 100*time.Millisecond) {
			return
		}
		if now = scada.tally(); now.hist != last {
			last, quiet = now.hist, time.Now()
		}
	}
	if now.hist == 0 {
		say("history replayed: 0 historical metrics received; the buffer held up to %d records", most)
		return
	}
	say("history replayed: the SCADA host received %d historical metrics in %d DDATA, timestamped %s to %s "+
		"(cut at %s, reconnected at %s); the buffer held up to %d records and holds %d now",
		now.hist, now.histMsgs, clockMs(now.histFrom), clockMs(now.histTo), cutAt.Format("15:04:05.000"),
		now.bornAt.Format("15:04:05.000"), most, a.Stats().Buffer.Records)
}

// pause sleeps for d; false if ctx ended first.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// tally is what the SCADA host has received.
type tally struct {
	bdSeqs           []uint64  // of every NBIRTH since the start, in arrival order
	bornAt           time.Time // when the last NBIRTH arrived
	hist, histMsgs   int       // historical metrics since the last restart, and the messages that carried them
	histFrom, histTo uint64    // the oldest and newest of their timestamps (ms)
}

// scadaHost counts the Sparkplug messages of the demo's edge node,
// decoded with package sparkplug, as a host application would see them.
type scadaHost struct {
	mu sync.Mutex
	t  tally
}

func (h *scadaHost) receive(topic string, payload []byte) {
	t, err := sparkplug.ParseTopic(topic)
	if err != nil || (t.Type != sparkplug.NBIRTH && t.Type != sparkplug.NDATA && t.Type != sparkplug.DDATA) {
		return
	}
	p, err := sparkplug.Decode(payload)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for i := range p.Metrics {
		m := &p.Metrics[i]
		if t.Type == sparkplug.NBIRTH && m.Name == sparkplug.MetricBdSeq {
			h.t.bdSeqs, h.t.bornAt = append(h.t.bdSeqs, m.Int), time.Now()
		}
		if !m.Historical {
			continue
		}
		n++
		if h.t.histFrom == 0 || m.Timestamp < h.t.histFrom {
			h.t.histFrom = m.Timestamp
		}
		h.t.histTo = max(h.t.histTo, m.Timestamp)
	}
	if n > 0 {
		h.t.hist += n
		h.t.histMsgs++
	}
}

func (h *scadaHost) tally() tally {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.t
	t.bdSeqs = append([]uint64(nil), t.bdSeqs...)
	return t
}

// restart returns the tally and counts history from zero.
func (h *scadaHost) restart() tally {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.t
	t.bdSeqs = append([]uint64(nil), t.bdSeqs...)
	h.t.hist, h.t.histMsgs, h.t.histFrom, h.t.histTo = 0, 0, 0, 0
	return t
}

// wanLink forwards TCP connections to the broker as the site's WAN does.
// cut closes every connection and the port, so the agent's reconnects are
// refused (and, with no CONNECT sent, use no bdSeq) until restore.
type wanLink struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener // nil while cut
	conns map[net.Conn]struct{}
}

func newWANLink(addr, target string) (*wanLink, error) {
	w := &wanLink{addr: addr, target: target, conns: map[net.Conn]struct{}{}}
	return w, w.restore()
}

func (w *wanLink) restore() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", w.addr)
	if err != nil {
		return fmt.Errorf("WAN link on %s: %w", w.addr, err)
	}
	w.ln = ln
	go w.serve(ln)
	return nil
}

func (w *wanLink) cut() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ln != nil {
		w.ln.Close()
		w.ln = nil
	}
	for c := range w.conns {
		c.Close()
	}
	clear(w.conns)
}

func (w *wanLink) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go w.forward(ln, c)
	}
}

func (w *wanLink) forward(ln net.Listener, c net.Conn) {
	u, err := net.Dial("tcp", w.target)
	if err != nil {
		c.Close()
		return
	}
	w.mu.Lock()
	if w.ln != ln { // cut meanwhile
		w.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	w.conns[c], w.conns[u] = struct{}{}, struct{}{}
	w.mu.Unlock()
	go w.pipe(u, c)
	w.pipe(c, u)
}

func (w *wanLink) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	w.mu.Lock()
	delete(w.conns, dst)
	delete(w.conns, src)
	w.mu.Unlock()
}

// lockedWriter serialises the demo's lines and the watcher's.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// animate moves the simulated process values.
func animate(ctx context.Context, press, mixer *modbustest.Server) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	start := time.Now()
	var strokes uint32
	var batch uint64 = 7000
	press.SetCoil(0, true)
	press.SetFloat32(modbus.Holding, 10, modbus.ABCD, 40)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := time.Since(start).Seconds()
		sp := float64(math.Float32frombits(uint32(press.Holding(10, 1)[0])<<16 | uint32(press.Holding(11, 1)[0])))
		press.SetFloat32(modbus.Holding, 0, modbus.ABCD, float32(sp+3*math.Sin(s/3)))
		press.SetInt16(modbus.Input, 0, modbus.ABCD, int16(450+20*math.Sin(s/10)))
		if press.Coil(0, 1)[0] {
			strokes++
		}
		press.SetUint32(modbus.Holding, 2, modbus.CDAB, strokes)
		mixer.SetHolding(0, uint16(1200+300*math.Sin(s/4)))
		mixer.SetInt16(modbus.Holding, 1, modbus.ABCD, int16(5000+800*math.Cos(s/4)))
		if int(s)%8 == 0 {
			batch++
		}
		mixer.SetUint64(modbus.Holding, 2, modbus.ABCD, batch)
		mixer.SetDiscrete(0, int(s)%30 > 27)
	}
}
