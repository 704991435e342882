package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/edgeagent/edgeagent/sparkplug"
)

// validator checks the agent's sections once decoded, recording every
// mistake at the key it is about.
type validator struct {
	d    *decoder
	root *yaml.Node
}

// at finds the node of a key path, or the deepest one present (a missing
// key is reported at the mapping that lacks it).
func (v *validator) at(path ...string) *yaml.Node {
	n := v.root
	for _, p := range path {
		next := lookup(n, p)
		if next == nil {
			return n
		}
		n = resolve(next)
	}
	return n
}

// fail records a mistake in the value at path, unless decoding it
// failed already.
func (v *validator) fail(path []string, format string, args ...any) {
	key := strings.Join(path, ".")
	if v.d.failed[key] {
		return
	}
	v.d.errAt(v.at(path...), key, format, args...)
}

// id checks a Sparkplug id.
func (v *validator) id(path []string, what, id string) {
	if id == "" {
		v.fail(path, "is required")
		return
	}
	if err := sparkplug.CheckID(what, id); err != nil {
		v.fail(path, "%v", err)
	}
}

func (v *validator) config(c *Config) {
	v.id([]string{"node", "group_id"}, "group_id", c.Node.GroupID)
	v.id([]string{"node", "edge_node_id"}, "edge_node_id", c.Node.EdgeNodeID)
	v.mqtt(&c.MQTT)
	b := c.Buffer
	if b.Mode != "write_ahead" && b.Mode != "outage" {
		v.fail([]string{"buffer", "mode"}, "%q is not one of write_ahead, outage", b.Mode)
	}
	if b.MaxBytes < 1<<20 {
		v.fail([]string{"buffer", "max_bytes"}, "must be at least 1MiB")
	}
	if b.ReplayRate < 0 {
		v.fail([]string{"buffer", "replay_rate"}, "must not be negative")
	}
	if b.MaxMetrics < 1 {
		v.fail([]string{"buffer", "max_metrics_per_message"}, "must be at least 1")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.fail([]string{"log", "level"}, "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		v.fail([]string{"log", "format"}, "%q is not one of text, json", c.Log.Format)
	}
}

func (v *validator) mqtt(m *MQTTConfig) {
	if len(m.Servers) == 0 && !v.d.failed["mqtt.servers"] {
		v.fail([]string{"mqtt", "servers"}, "at least one server is required, e.g. [tcp://broker:1883]")
	}
	servers := v.at("mqtt", "servers")
	for i, s := range m.Servers {
		n := servers
		if servers.Kind == yaml.SequenceNode && i < len(servers.Content) {
			n = servers.Content[i]
		}
		key := fmt.Sprintf("mqtt.servers[%d]", i)
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			v.d.errAt(n, key, "%q is not a broker URL like tcp://host:1883", s)
			continue
		}
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		default:
			v.d.errAt(n, key, "scheme %q is not one of tcp, ssl, ws, wss", u.Scheme)
		}
	}
	switch m.PrimaryHostVersion {
	case "", "3.0", "2.2":
	default:
		v.fail([]string{"mqtt", "primary_host_version"}, "must be 3.0 or 2.2 (the Sparkplug version of the host's STATE), got %q", m.PrimaryHostVersion)
	}
	if m.PrimaryHostID != "" {
		v.id([]string{"mqtt", "primary_host_id"}, "primary_host_id", m.PrimaryHostID)
	}
	if m.DataQoS != 0 && m.DataQoS != 1 {
		v.fail([]string{"mqtt", "data_qos"}, "must be 0 or 1, got %d", m.DataQoS)
	}
	// A receipt topic made from the node's ids is checked with them.
	if lookup(lookup(v.root, "mqtt"), "receipt_topic") != nil && (strings.ContainsAny(m.ReceiptTopic, "+#") || strings.HasPrefix(m.ReceiptTopic, "spBv1.0/")) {
		v.fail([]string{"mqtt", "receipt_topic"}, "%q must be a plain topic outside the spBv1.0 namespace", m.ReceiptTopic)
	}
	if m.ReconnectMin > m.ReconnectMax {
		v.fail([]string{"mqtt", "reconnect_min"}, "is larger than reconnect_max")
	}
	if m.Keepalive < Duration(time.Second) {
		v.fail([]string{"mqtt", "keepalive"}, "must be at least 1s")
	}
	if (m.TLS.CertFile == "") != (m.TLS.KeyFile == "") {
		v.fail([]string{"mqtt", "tls"}, "cert_file and key_file go together")
	}
}
