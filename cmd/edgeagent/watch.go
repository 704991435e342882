package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeagent/edgeagent/sparkplug"
)

func cmdWatch(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	broker := fs.String("b", "tcp://localhost:1883", "broker URL")
	topic := fs.String("t", "spBv1.0/#", "topic filter")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return watch(ctx, *broker, *topic, out)
}

// watch prints decoded Sparkplug traffic until ctx ends.
func watch(ctx context.Context, broker, topic string, out io.Writer) error {
	p := newPrinter(out)
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("edgeagent-watch-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(true).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe(topic, 0, func(_ mqtt.Client, m mqtt.Message) { p.print(m.Topic(), m.Payload()) })
		})
	c := mqtt.NewClient(o)
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("connecting to %s: %v", broker, t.Error())
	}
	<-ctx.Done()
	c.Disconnect(100)
	return nil
}

// printer formats decoded messages, one line each, resolving aliases
// from the births it has seen.
type printer struct {
	mu      sync.Mutex
	out     io.Writer
	aliases map[string]map[uint64]string // edge node → alias → name
	types   map[string]map[uint64]sparkplug.DataType
}

func newPrinter(out io.Writer) *printer {
	return &printer{out: out, aliases: map[string]map[uint64]string{}, types: map[string]map[uint64]sparkplug.DataType{}}
}

func (p *printer) print(topic string, payload []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now().Format("15:04:05.000")
	t, err := sparkplug.ParseTopic(topic)
	if err != nil {
		fmt.Fprintf(p.out, "%s  %-7s %s  (%v)\n", now, "?", topic, err)
		return
	}
	if t.Type == sparkplug.STATE {
		fmt.Fprintf(p.out, "%s  %-7s %-34s %s\n", now, t.Type, t.Host, payload)
		return
	}
	where := t.Group + "/" + t.Node
	if t.Device != "" {
		where += "/" + t.Device
	}
	pl, err := sparkplug.Decode(payload)
	if err != nil {
		fmt.Fprintf(p.out, "%s  %-7s %-34s undecodable: %v\n", now, t.Type, where, err)
		return
	}
	node := t.Group + "/" + t.Node
	if t.Type == sparkplug.NBIRTH {
		p.aliases[node], p.types[node] = map[uint64]string{}, map[uint64]sparkplug.DataType{}
	}
	names := make([]string, len(pl.Metrics))
	seq := "      "
	if pl.HasSeq {
		seq = fmt.Sprintf("seq=%-3d", pl.Seq)
	}
	var b strings.Builder
	hist := 0
	var histFrom, histTo uint64
	for i := range pl.Metrics {
		m := &pl.Metrics[i]
		if m.HasAlias && (t.Type == sparkplug.NBIRTH || t.Type == sparkplug.DBIRTH) && p.aliases[node] != nil {
			p.aliases[node][m.Alias], p.types[node][m.Alias] = m.Name, m.Type
		}
		name := m.Name
		if name == "" && m.HasAlias {
			name = p.aliases[node][m.Alias]
			if m.Type == sparkplug.TypeUnknown {
				if dt, ok := p.types[node][m.Alias]; ok {
					_ = m.Resolve(dt)
				}
			}
			if name == "" {
				name = fmt.Sprintf("alias:%d", m.Alias)
			}
		}
		if m.Historical {
			hist++
			if histFrom == 0 || m.Timestamp < histFrom {
				histFrom = m.Timestamp
			}
			histTo = max(histTo, m.Timestamp)
		}
		names[i] = name
		if i < 6 {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(m.ValueString())
		}
	}
	if len(pl.Metrics) > 6 {
		fmt.Fprintf(&b, ", … +%d more", len(pl.Metrics)-6)
	}
	switch {
	case hist > 0 && hist == len(pl.Metrics):
		// A replay sends many samples per tag: count them instead.
		b.Reset()
		fmt.Fprintf(&b, "%d historical metrics (is_historical), timestamped %s to %s: %s",
			hist, clockMs(histFrom), clockMs(histTo), countNames(names))
	case hist > 0:
		fmt.Fprintf(&b, "  [%d historical, timestamped %s to %s]", hist, clockMs(histFrom), clockMs(histTo))
	}
	fmt.Fprintf(p.out, "%s  %-7s %-34s %s %s\n", now, t.Type, where, seq, b.String())
}

// clockMs formats a Sparkplug timestamp (UTC ms) in local time, as the
// lines are stamped.
func clockMs(ms uint64) string { return time.UnixMilli(int64(ms)).Format("15:04:05.000") }

// countNames lists names with how often each occurs, in first-seen order:
// "speed ×19, torque ×19".
func countNames(names []string) string {
	var order []string
	n := map[string]int{}
	for _, name := range names {
		if n[name] == 0 {
			order = append(order, name)
		}
		n[name]++
	}
	var b strings.Builder
	for i, name := range order {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s ×%d", name, n[name])
	}
	return b.String()
}
