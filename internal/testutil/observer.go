package testutil

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeagent/edgeagent/sparkplug"
)

// Msg is one message the observer received.
type Msg struct {
	Topic    sparkplug.Topic
	Raw      string // topic as received
	Payload  *sparkplug.Payload
	Bytes    []byte
	QoS      byte
	Retained bool
	At       time.Time
	Err      error // decoding error, if any
}

// Observer is a Sparkplug host's view of a broker: it subscribes to
// spBv1.0/# and records every message in arrival order, decoded.
type Observer struct {
	t      testing.TB
	client mqtt.Client

	mu       sync.Mutex
	msgs     []Msg
	losses   int
	connects int
	cond     *sync.Cond
}

// Observe connects an observer to the broker at url.
func Observe(t testing.TB, url string) *Observer {
	t.Helper()
	o := &Observer{t: t}
	o.cond = sync.NewCond(&o.mu)
	ready := make(chan struct{}, 1)
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("observer-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).SetOrderMatters(true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			o.mu.Lock()
			o.losses++
			o.mu.Unlock()
			t.Logf("observer lost its connection: %v", err)
		}).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.Subscribe("spBv1.0/#", 1, o.handle).Wait()
			o.mu.Lock()
			o.connects++
			o.cond.Broadcast()
			o.mu.Unlock()
			select {
			case ready <- struct{}{}:
			default:
			}
		})
	o.client = mqtt.NewClient(opts)
	if tok := o.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("observer connecting to %s: %v", url, tok.Error())
	}
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("observer did not subscribe")
	}
	t.Cleanup(func() { o.client.Disconnect(0) })
	return o
}

// Client is the observer's MQTT client, for publishing commands as a host.
func (o *Observer) Client() mqtt.Client { return o.client }

func (o *Observer) handle(_ mqtt.Client, m mqtt.Message) {
	msg := Msg{Raw: m.Topic(), QoS: m.Qos(), Retained: m.Retained(), At: time.Now(), Bytes: append([]byte(nil), m.Payload()...)}
	tp, err := sparkplug.ParseTopic(m.Topic())
	msg.Topic, msg.Err = tp, err
	if err == nil && tp.Type != sparkplug.STATE {
		msg.Payload, msg.Err = sparkplug.Decode(m.Payload())
	}
	o.mu.Lock()
	o.msgs = append(o.msgs, msg)
	o.cond.Broadcast()
	o.mu.Unlock()
}

// Msgs returns a copy of everything received so far.
func (o *Observer) Msgs() []Msg {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Msg(nil), o.msgs...)
}

// Losses counts how often the observer's own connection dropped; what was
// published meanwhile it never saw.
func (o *Observer) Losses() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.losses
}

// Connects counts the observer's (re)connections, each subscribed.
func (o *Observer) Connects() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.connects
}

// WaitConnects waits until the observer has connected and subscribed n
// times in all.
func (o *Observer) WaitConnects(n int, timeout time.Duration) {
	o.t.Helper()
	deadline := time.Now().Add(timeout)
	for o.Connects() < n {
		if time.Now().After(deadline) {
			o.t.Fatalf("observer did not reconnect within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Len is the number of messages received so far.
func (o *Observer) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.msgs)
}

// WaitFor waits until some message from index `from` on satisfies ok and
// returns its index; it fails the test after timeout.
func (o *Observer) WaitFor(from int, timeout time.Duration, what string, ok func(Msg) bool) int {
	o.t.Helper()
	if i := o.find(from, timeout, ok); i >= 0 {
		return i
	}
	o.t.Fatalf("timed out after %v waiting for %s; got:\n%s", timeout, what, o.Dump(from))
	return -1
}

func (o *Observer) find(from int, timeout time.Duration, ok func(Msg) bool) int {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { o.mu.Lock(); o.cond.Broadcast(); o.mu.Unlock() })
	defer timer.Stop()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := from; ; {
		for ; i < len(o.msgs); i++ {
			if ok(o.msgs[i]) {
				return i
			}
		}
		if time.Now().After(deadline) {
			return -1
		}
		o.cond.Wait()
	}
}

// Dump formats messages from index from, for failure output.
func (o *Observer) Dump(from int) string {
	var b strings.Builder
	for i, m := range o.Msgs() {
		if i < from {
			continue
		}
		fmt.Fprintf(&b, "  %3d %s %s", i, m.At.Format("15:04:05.000"), m.Raw)
		if m.Payload != nil {
			if m.Payload.HasSeq {
				fmt.Fprintf(&b, " seq=%d", m.Payload.Seq)
			}
			fmt.Fprintf(&b, " metrics=%d", len(m.Payload.Metrics))
		}
		if m.Err != nil {
			fmt.Fprintf(&b, " err=%v", m.Err)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Is matches a message type, and for device messages the device.
func Is(t sparkplug.MessageType, device string) func(Msg) bool {
	return func(m Msg) bool { return m.Topic.Type == t && (device == "" || m.Topic.Device == device) }
}
