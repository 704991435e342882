package agent

import (
	"context"
	"fmt"
	"math"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// onMessage handles NCMD, DCMD and STATE. Bad commands are refused and
// logged with what and why; they never stop the session. It returns an
// error only to end the session (primary host offline).
func (u *uplink) onMessage(msg mqtt.Message) error {
	t, err := sparkplug.ParseTopic(msg.Topic())
	if err != nil {
		u.refuse("unparseable topic", "topic", msg.Topic(), "err", err)
		return nil
	}
	switch t.Type {
	case sparkplug.STATE:
		return u.onState(msg.Payload())
	case sparkplug.NCMD:
		p, err := sparkplug.Decode(msg.Payload())
		if err != nil {
			u.refuse("undecodable NCMD", "err", err)
			return nil
		}
		for k := range p.Metrics {
			m := &p.Metrics[k]
			if m.Name == sparkplug.MetricRebirth {
				if m.Type != sparkplug.TypeUnknown && m.Type != sparkplug.TypeBoolean {
					u.refuse("rebirth with a non-boolean datatype", "datatype", m.Type)
					continue
				}
				if m.Int != 0 {
					u.rebirth()
				}
				continue
			}
			u.refuse("unknown node command", "metric", m.Name, "alias", m.Alias)
		}
	case sparkplug.DCMD:
		i, ok := u.byID[t.Device]
		if !ok {
			u.refuse("DCMD for an unknown device", "device", t.Device)
			return nil
		}
		p, err := sparkplug.Decode(msg.Payload())
		if err != nil {
			u.refuse("undecodable DCMD", "device", t.Device, "err", err)
			return nil
		}
		for k := range p.Metrics {
			u.command(i, &p.Metrics[k])
		}
	default:
		u.refuse("unexpected message type", "topic", msg.Topic())
	}
	return nil
}

func (u *uplink) refuse(msg string, args ...any) {
	u.stats.commandsRefused.Add(1)
	u.log.Warn("command refused: "+msg, args...)
}

// rebirth answers an NCMD Rebirth: no data in between (this goroutine is
// the only publisher), same bdSeq, seq from 0, births from the state as
// of the last record published live.
func (u *uplink) rebirth() {
	u.stats.rebirths.Add(1)
	u.log.Info("rebirth requested by host")
	u.births()
}

// command applies one DCMD metric to device i.
func (u *uplink) command(i int, m *sparkplug.Metric) {
	d := u.devs[i]
	j := -1
	if m.Name != "" {
		if k, ok := d.tagByName([]byte(m.Name)); ok {
			j = k
		}
	} else if m.HasAlias && m.Alias >= u.aliasBase[i] && m.Alias < u.aliasBase[i]+uint64(len(d.tags)) {
		j = int(m.Alias - u.aliasBase[i])
	}
	if j < 0 {
		u.refuse("DCMD names no metric of the device", "device", d.cfg.ID, "metric", m.Name, "alias", m.Alias)
		return
	}
	tag := &d.tags[j]
	if !tag.Writable {
		u.refuse("tag is not writable", "device", d.cfg.ID, "tag", tag.Name)
		return
	}
	if m.Type == sparkplug.TypeUnknown {
		if err := m.Resolve(spType(d.types[j])); err != nil {
			u.refuse("DCMD value does not fit the tag", "device", d.cfg.ID, "tag", tag.Name, "err", err)
			return
		}
	}
	v, err := fromMetric(m)
	if err != nil {
		u.refuse("DCMD value", "device", d.cfg.ID, "tag", tag.Name, "err", err)
		return
	}
	if _, err := toRaw(tag, v); err != nil {
		u.refuse("DCMD value does not fit the tag", "device", d.cfg.ID, "tag", tag.Name, "value", v, "err", err)
		return
	}
	if err := d.queueWrite(j, v); err != nil {
		u.refuse("DCMD write", "device", d.cfg.ID, "tag", tag.Name, "err", err)
	}
}

// onState follows Sparkplug 3.0's STATE rules for the primary host.
func (u *uplink) onState(b []byte) error {
	s, err := sparkplug.ParseState(b)
	if err != nil {
		u.log.Warn("ignoring unreadable STATE of the primary host", "host", u.cfg.MQTT.PrimaryHostID, "err", err)
		return nil
	}
	// The host has a session, and so a STATE timestamp, per server:
	// compare only with what this server said before.
	if last := u.hostTS[u.server]; s.Timestamp < last {
		u.log.Debug("ignoring STATE older than the last one", "timestamp", s.Timestamp, "last", last, "server", u.server)
		return nil
	}
	u.hostTS[u.server] = s.Timestamp
	was := u.hostUp
	u.hostUp = s.Online
	if was && !s.Online {
		u.log.Warn("primary host offline; buffering until it returns", "host", u.cfg.MQTT.PrimaryHostID)
		return errHostOffline
	}
	return nil
}

// waitHost blocks until the primary host's STATE says online, or gives
// the server up after primary_host_timeout so the next one is tried.
func (u *uplink) waitHost(ctx context.Context, gen uint64) error {
	u.log.Info("waiting for primary host", "host", u.cfg.MQTT.PrimaryHostID)
	giveUp := time.NewTimer(u.cfg.MQTT.PrimaryHostTimeout.D())
	defer giveUp.Stop()
	for !u.hostUp {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case g := <-u.lost:
			if g == gen {
				return fmt.Errorf("connection lost while waiting for primary host")
			}
		case msg := <-u.msgs:
			t, err := sparkplug.ParseTopic(msg.Topic())
			if err == nil && t.Type == sparkplug.STATE {
				u.onState(msg.Payload())
				continue
			}
			// Commands before births refer to nothing yet.
			u.log.Debug("ignoring message before births", "topic", msg.Topic())
		case <-giveUp.C:
			return fmt.Errorf("primary host %q not online on this server within %v", u.cfg.MQTT.PrimaryHostID, u.cfg.MQTT.PrimaryHostTimeout.D())
		}
	}
	return nil
}

// spType maps a tag's engineering type to its Sparkplug datatype.
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
	}
	return sparkplug.TypeUnknown
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
	}
	return drivers.Value{}, fmt.Errorf("datatype %v cannot be written to a PLC tag", m.Type)
}
