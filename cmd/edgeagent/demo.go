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
	"log/slog"
	"math"
	"os"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/edgeagent/edgeagent/agent"
	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/drivers/modbus"
	"github.com/edgeagent/edgeagent/drivers/modbus/modbustest"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// The demo's simulators and broker listen where configs/demo.yaml says.
const (
	demoBroker = "127.0.0.1:18831"
	demoPress  = "127.0.0.1:15021"
	demoMixer  = "127.0.0.1:15022"
)

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

	say("embedded MQTT broker on %s, simulated PLCs press-02 on %s and mixer-3 on %s", demoBroker, demoPress, demoMixer)
	say("decoded Sparkplug B traffic follows (topic, seq, metrics); Ctrl-C stops")
	// The watcher outlives the agent so its DDEATH and NDEATH show.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go watch(watchCtx, "tcp://"+demoBroker, "spBv1.0/#", out)
	time.Sleep(300 * time.Millisecond) // let the watcher subscribe before the births

	log := agent.NewLogger(os.Stderr, cfg.Log)
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	host := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + demoBroker).SetClientID("demo-scada"))
	if t := host.Connect(); t.WaitTimeout(5*time.Second) && t.Error() == nil {
		defer host.Disconnect(100)
	}
	g, e := cfg.Node.GroupID, cfg.Node.EdgeNodeID
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
		}},
		{4 * time.Second, func() { say("mixer-3 stops answering (PLC outage): expect its DDEATH"); mixer.Stop() }},
		{5 * time.Second, func() { say("mixer-3 is back: expect a fresh DBIRTH"); mixer.Start() }},
		{5 * time.Second, func() {
			say("SCADA asks for a rebirth (NCMD Node Control/Rebirth): NBIRTH seq 0, same bdSeq, then DBIRTHs")
			topic := sparkplug.Topic{Group: g, Type: sparkplug.NCMD, Node: e}.String()
			m := []sparkplug.Metric{{Name: sparkplug.MetricRebirth, Type: sparkplug.TypeBoolean, Int: 1}}
			host.Publish(topic, 0, false, sparkplug.AppendCommand(nil, now(), m))
		}},
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
	say("stopped; %d messages published", a.Stats().Published)
	return err
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
