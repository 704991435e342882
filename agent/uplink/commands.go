package uplink

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/agent/health"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// inbox holds a session's inbound messages in arrival order. paho calls
// put from its reader, one message at a time (order matters is on), so put
// must never block: a flood beyond inboxMax is dropped, counted and
// logged, which a real host never causes.
type inbox struct {
	mu      sync.Mutex
	msgs    []mqtt.Message
	dropped int
	ready   chan struct{}
}

const inboxMax = 4096

func newInbox() *inbox { return &inbox{ready: make(chan struct{}, 1)} }

func (b *inbox) put(m mqtt.Message) {
	b.mu.Lock()
	if len(b.msgs) >= inboxMax {
		b.dropped++
		b.mu.Unlock()
		return
	}
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// take returns the messages in arrival order and how many were dropped.
func (b *inbox) take() ([]mqtt.Message, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, d := b.msgs, b.dropped
	b.msgs, b.dropped = nil, 0
	return m, d
}

func (s *session) clientOptions() (*mqtt.ClientOptions, error) {
	m := s.cfg.MQTT
	death := sparkplug.AppendNodeDeath(nil, uint64(s.u.now().UnixMilli()), s.bdSeq)
	lost := s.lost
	o := mqtt.NewClientOptions().AddBroker(s.server).SetClientID(m.ClientID).
		// 3.1.1 only: paho would otherwise retry a refused CONNECT as
		// MQTT 3.1, a second CONNECT with the same bdSeq.
		SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(m.Keepalive.D()).SetPingTimeout(max(time.Second, m.Keepalive.D()/2)).
		SetConnectTimeout(m.ConnectTimeout.D()).
		// A publish waits for paho's writer; when the connection dies
		// under it, nothing takes it any more, and paho's own bound is
		// 30 s, during which the session would see nothing, not even
		// the loss. A keepalive is as long as a dead link may go
		// unnoticed anyway.
		SetWriteTimeout(m.Keepalive.D()).
		// In order, on paho's reader: the inbox keeps the order and
		// never blocks it.
		SetOrderMatters(true).
		SetCustomOpenConnectionFn(dialBroker).
		SetBinaryWill(s.topics.death, death, 1, false).
		SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) { s.inbox.put(msg) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.u.log.Warn("broker connection lost", "err", err)
			select {
			case lost <- struct{}{}:
			default:
			}
		})
	if m.Username != "" {
		o.SetUsername(m.Username)
	}
	if m.PasswordFile != "" {
		b, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.password_file: %w", err)
		}
		o.SetPassword(strings.TrimRight(string(b), "\r\n"))
	}
	if strings.HasPrefix(s.server, "ssl") || strings.HasPrefix(s.server, "tls") || strings.HasPrefix(s.server, "mqtts") || strings.HasPrefix(s.server, "wss") || m.TLS.CAFile != "" {
		tc, err := tlsConfig(m.TLS)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	return o, nil
}

func tlsConfig(t config.TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.tls.ca_file %s: no PEM certificates found", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// handleInbox handles the messages that arrived, in order. It returns an
// error only to end the session (primary host offline).
func (s *session) handleInbox() error {
	msgs, dropped := s.inbox.take()
	if dropped > 0 {
		s.u.stats.commandsRefused.Add(uint64(dropped))
		s.u.log.Error("inbound messages dropped: more arrived than the node could take", "dropped", dropped)
	}
	for i, m := range msgs {
		if err := s.onMessage(m); err != nil {
			if n := len(msgs) - i - 1; n > 0 {
				s.u.log.Debug("messages left unhandled as the session ends", "count", n)
			}
			return err
		}
	}
	return nil
}

// onMessage handles NCMD, DCMD and STATE. Bad commands are refused and
// logged with what and why; they never stop the session. It returns an
// error only to end the session (primary host offline).
func (s *session) onMessage(msg mqtt.Message) error {
	if msg.Topic() == s.topics.state {
		return s.onState(msg.Payload())
	}
	t, err := sparkplug.ParseTopic(msg.Topic())
	if err != nil {
		s.refuse("unparseable topic", "topic", msg.Topic(), "err", err)
		return nil
	}
	switch t.Type {
	case sparkplug.NCMD:
		p, err := sparkplug.Decode(msg.Payload())
		if err != nil {
			s.refuse("undecodable NCMD", "err", err)
			return nil
		}
		for k := range p.Metrics {
			m := &p.Metrics[k]
			switch {
			case m.Name == sparkplug.MetricRebirth:
				if m.Type != sparkplug.TypeUnknown && m.Type != sparkplug.TypeBoolean {
					s.refuse("rebirth with a non-boolean datatype", "datatype", m.Type)
					continue
				}
				if m.Int != 0 {
					s.rebirth()
				}
			case m.Name == MetricNextServer || m.Name == "" && m.HasAlias && m.Alias == firstNodeAlias && s.cfg.Node.UseAliases():
				if m.Type != sparkplug.TypeUnknown && m.Type != sparkplug.TypeBoolean {
					s.refuse("next server with a non-boolean datatype", "datatype", m.Type)
					continue
				}
				if m.Int != 0 {
					s.u.log.Info("the host asks the node to move to the next server", "server", s.server)
					return errNextServer
				}
			default:
				s.refuse("unknown node command", "metric", m.Name, "alias", m.Alias)
			}
		}
	case sparkplug.DCMD:
		ds, ok := s.devs[t.Device]
		if !ok {
			s.refuse("DCMD for an unknown device", "device", t.Device)
			return nil
		}
		if !ds.born {
			// Its metrics and their types are those of a birth.
			s.refuse("DCMD for a device that has no birth (offline)", "device", t.Device)
			return nil
		}
		p, err := sparkplug.Decode(msg.Payload())
		if err != nil {
			s.refuse("undecodable DCMD", "device", t.Device, "err", err)
			return nil
		}
		for k := range p.Metrics {
			s.command(ds, &p.Metrics[k], msg.Topic())
		}
	default:
		s.refuse("unexpected message type", "topic", msg.Topic())
	}
	return nil
}

func (s *session) refuse(msg string, args ...any) {
	s.u.stats.commandsRefused.Add(1)
	s.u.log.Warn("command refused: "+msg, args...)
}

// rebirthHold is how soon after a rebirth another request is taken as
// part of the same burst.
const rebirthHold = time.Second

// rebirth answers an NCMD Rebirth: no data in between (this goroutine is
// the only publisher), same bdSeq, seq from 0, births from the devices'
// state now (a new mark). Stored records not yet published are older than
// what the births carry: they follow as history.
func (s *session) rebirth() {
	now := s.u.now()
	if now.Sub(s.rebirthAt) < rebirthHold {
		// A burst (a host asking again before it saw the births it
		// asked for, or several hosts at once): the births just sent
		// answer it.
		s.u.log.Debug("rebirth request answered by the births just sent")
		return
	}
	s.rebirthAt = now
	s.u.stats.rebirths.Add(1)
	s.u.log.Info("rebirth requested by host")
	s.nodeRebirth()
}

// nodeRebirth publishes the NBIRTH and DBIRTHs again, same bdSeq, from
// the devices' state now; what is stored and not yet published follows
// as history.
func (s *session) nodeRebirth() {
	s.flushAll()
	w := s.mark()
	s.behind = max(s.behind, w)
	s.births()
	if s.histDone {
		for _, ds := range s.order {
			ds.table = nil
		}
	}
}

// command applies one DCMD metric, which came on topic, to a device.
func (s *session) command(ds *devState, m *sparkplug.Metric, topic string) {
	d := ds.dev
	tags := d.Tags()
	if ds.tmpl != nil && (m.Name == ds.tmpl.name || m.Name == "" && m.HasAlias && m.Alias == ds.alias) {
		// A write to members of the device's template instance: each
		// member is a tag, by name.
		if m.Type != sparkplug.TypeTemplate && m.Type != sparkplug.TypeUnknown {
			s.refuse("DCMD to a template instance with a datatype other than Template", "device", d.ID(), "metric", ds.tmpl.name, "datatype", m.Type)
			return
		}
		t, err := sparkplug.DecodeTemplate(m.Bytes)
		if err != nil {
			s.refuse("undecodable template in DCMD", "device", d.ID(), "metric", ds.tmpl.name, "err", err)
			return
		}
		for k := range t.Metrics {
			mm := &t.Metrics[k]
			if mm.Name == "" {
				s.refuse("DCMD template member without a name", "device", d.ID(), "metric", ds.tmpl.name)
				continue
			}
			mm.HasAlias = false
			s.command(ds, mm, topic)
		}
		return
	}
	j := -1
	if m.Name != "" {
		if k, ok := d.TagIndex([]byte(m.Name)); ok {
			j = k
		}
	} else if m.HasAlias && m.Alias >= ds.alias && m.Alias < ds.alias+uint64(len(tags)) {
		j = int(m.Alias - ds.alias)
	}
	if j < 0 {
		s.refuse("DCMD names no metric of the device", "device", d.ID(), "metric", m.Name, "alias", m.Alias)
		return
	}
	tag := &tags[j]
	if !tag.Writable {
		s.refuse("tag is not writable", "device", d.ID(), "tag", tag.Name)
		return
	}
	if m.Type == sparkplug.TypeUnknown {
		if err := m.Resolve(spType(ds.types[j])); err != nil {
			s.refuse("DCMD value does not fit the tag", "device", d.ID(), "tag", tag.Name, "err", err)
			return
		}
	}
	v, err := fromMetric(m)
	if err != nil {
		s.refuse("DCMD value", "device", d.ID(), "tag", tag.Name, "err", err)
		return
	}
	if err := d.Write(s.ctx, j, v, topic); err != nil {
		s.refuse("DCMD write", "device", d.ID(), "tag", tag.Name, "value", v.String(), "err", err)
	}
}

// onState follows the STATE rules for the primary host: Sparkplug 3.0's
// JSON with a timestamp, or 2.2's plain ONLINE and OFFLINE.
func (s *session) onState(b []byte) error {
	u := s.u
	if s.cfg.MQTT.PrimaryHostVersion == "2.2" {
		// No timestamp: the retained message and the broker's order are
		// all there is to go by.
		switch string(bytes.TrimSpace(b)) {
		case "ONLINE":
			return s.hostState(true)
		case "OFFLINE":
			return s.hostState(false)
		}
		u.log.Warn("ignoring unreadable STATE of the primary host: want ONLINE or OFFLINE (Sparkplug 2.2)", "host", s.cfg.MQTT.PrimaryHostID, "payload", printable(b))
		return nil
	}
	st, err := sparkplug.ParseState(b)
	if errors.Is(err, sparkplug.ErrLegacyState) {
		u.log.Warn("ignoring a Sparkplug 2.2 STATE on the 3.0 topic; a 2.2 host publishes on STATE/<host_id>: set mqtt.primary_host_version: \"2.2\" for one", "host", s.cfg.MQTT.PrimaryHostID, "err", err)
		return nil
	}
	if err != nil {
		u.log.Warn("ignoring unreadable STATE of the primary host", "host", s.cfg.MQTT.PrimaryHostID, "err", err)
		return nil
	}
	// The host has a session, and so a STATE timestamp, per server:
	// compare only with what this server said before.
	if last := u.hostTS[s.server]; st.Timestamp < last {
		u.log.Debug("ignoring STATE older than the last one", "timestamp", st.Timestamp, "last", last, "server", s.server)
		return nil
	}
	u.hostTS[s.server] = st.Timestamp
	return s.hostState(st.Online)
}

// hostState takes the primary host's new state. Going offline ends the
// session.
func (s *session) hostState(online bool) error {
	was := s.hostUp
	s.hostUp = online
	if was && !online {
		u := s.u
		u.log.Warn("primary host offline; buffering until it returns", "host", s.cfg.MQTT.PrimaryHostID)
		return errHostOffline
	}
	return nil
}

// waitHost blocks until the primary host's STATE says online, or gives
// the server up after primary_host_timeout so the next one is tried.
func (s *session) waitHost(ctx context.Context) error {
	u := s.u
	u.log.Info("waiting for primary host", "host", s.cfg.MQTT.PrimaryHostID)
	giveUp := time.NewTimer(s.cfg.MQTT.PrimaryHostTimeout.D())
	defer giveUp.Stop()
	tick := time.NewTicker(health.BeatEvery)
	defer tick.Stop()
	for !s.hostUp {
		u.heart.Beat()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.lost:
			return fmt.Errorf("waiting for primary host: %w", errConnLost)
		case <-tick.C:
		case <-s.inbox.ready:
			msgs, _ := s.inbox.take()
			for _, msg := range msgs {
				if msg.Topic() == s.topics.state {
					s.onState(msg.Payload())
					continue
				}
				// Commands before births refer to nothing yet.
				u.log.Debug("ignoring message before births", "topic", msg.Topic())
			}
		case <-giveUp.C:
			return fmt.Errorf("primary host %q not online on this server within %v", s.cfg.MQTT.PrimaryHostID, s.cfg.MQTT.PrimaryHostTimeout.D())
		}
	}
	return nil
}

// printable quotes at most 64 bytes of b for a log line.
func printable(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "…"
	}
	return strconv.Quote(string(b))
}

// spType maps a tag's published type to its Sparkplug datatype.
func spType(t drivers.Type) sparkplug.DataType {
	switch t {
	case drivers.Bool:
		return sparkplug.TypeBoolean
	case drivers.Int8:
		return sparkplug.TypeInt8
	case drivers.Int16:
		return sparkplug.TypeInt16
	case drivers.Int32:
		return sparkplug.TypeInt32
	case drivers.Int64:
		return sparkplug.TypeInt64
	case drivers.Uint8:
		return sparkplug.TypeUInt8
	case drivers.Uint16:
		return sparkplug.TypeUInt16
	case drivers.Uint32:
		return sparkplug.TypeUInt32
	case drivers.Uint64:
		return sparkplug.TypeUInt64
	case drivers.Float32:
		return sparkplug.TypeFloat
	case drivers.Float64:
		return sparkplug.TypeDouble
	case drivers.String:
		return sparkplug.TypeString
	case drivers.DateTime:
		return sparkplug.TypeDateTime
	case drivers.Bytes:
		return sparkplug.TypeBytes
	}
	if t.IsArray() {
		switch e := t.Elem(); {
		case e >= drivers.Int8 && e <= drivers.Float64: // the same order in both
			return sparkplug.TypeInt8Array + sparkplug.DataType(e-drivers.Int8)
		case e == drivers.Bool:
			return sparkplug.TypeBooleanArray
		case e == drivers.String:
			return sparkplug.TypeStringArray
		case e == drivers.DateTime:
			return sparkplug.TypeDateTimeArray
		}
	}
	return sparkplug.TypeUnknown
}

// fromSpType is spType's inverse, for the types a tag can have.
func fromSpType(t sparkplug.DataType) drivers.Type {
	for dt := drivers.Bool; dt <= drivers.Bytes; dt++ {
		if spType(dt) == t {
			return dt
		}
		if at := drivers.ArrayOf(dt); at != drivers.TypeInvalid && spType(at) == t {
			return at
		}
	}
	return drivers.TypeInvalid
}

// setValue puts v into m's value fields.
func setValue(m *sparkplug.Metric, v drivers.Value) {
	switch t := v.Type(); {
	case t == drivers.TypeInvalid:
		m.Null = true
	case t.IsFloat():
		m.Float = v.Float()
	case t == drivers.String:
		m.Str = v.Str()
	case t == drivers.Bytes || t.IsArray():
		m.Bytes = v.Data()
	default:
		m.Int = v.Uint()
	}
}

// fromMetric converts a command metric to a typed value.
func fromMetric(m *sparkplug.Metric) (drivers.Value, error) {
	if m.Null {
		return drivers.Value{}, fmt.Errorf("null value")
	}
	switch m.Type {
	case sparkplug.TypeBoolean:
		return drivers.BoolValue(m.Int != 0), nil
	case sparkplug.TypeInt8, sparkplug.TypeInt16, sparkplug.TypeInt32, sparkplug.TypeInt64:
		return drivers.IntValue(drivers.Int64, int64(m.Int)), nil
	case sparkplug.TypeUInt8, sparkplug.TypeUInt16, sparkplug.TypeUInt32, sparkplug.TypeUInt64:
		return drivers.UintValue(drivers.Uint64, m.Int), nil
	case sparkplug.TypeFloat, sparkplug.TypeDouble:
		if math.IsNaN(m.Float) || math.IsInf(m.Float, 0) {
			return drivers.Value{}, fmt.Errorf("%v cannot be written", m.Float)
		}
		return drivers.FloatValue(drivers.Float64, m.Float), nil
	case sparkplug.TypeString, sparkplug.TypeText:
		return drivers.StringValue(m.Str), nil
	case sparkplug.TypeDateTime:
		return drivers.TimeValueMs(int64(m.Int)), nil
	case sparkplug.TypeBytes:
		return drivers.BytesValue(bytes.Clone(m.Bytes)), nil
	}
	if t := fromSpType(m.Type); t.IsArray() {
		return drivers.PackedArray(t, bytes.Clone(m.Bytes))
	}
	return drivers.Value{}, fmt.Errorf("datatype %v cannot be written to a PLC tag", m.Type)
}
