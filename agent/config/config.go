package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/edgeagent/edgeagent/drivers"
)

// Config is a loaded, validated configuration. Every key is documented in
// configs/example.yaml.
type Config struct {
	// File is the path the configuration was loaded from.
	File string

	Node    NodeConfig
	MQTT    MQTTConfig
	Buffer  BufferConfig
	Log     LogConfig
	Health  HealthConfig
	Devices []Device

	// StateDir keeps bdSeq, the default buffer and driver state across
	// restarts.
	StateDir string
}

// NodeConfig names the Sparkplug edge node.
type NodeConfig struct {
	GroupID    string `yaml:"group_id"`
	EdgeNodeID string `yaml:"edge_node_id"`
	// Aliases sends metric aliases in births and only aliases in data.
	Aliases *bool `yaml:"aliases"`
	// Templates publishes the devices that share a tag-map file as
	// instances of one Sparkplug Template, defined in the NBIRTH.
	Templates bool `yaml:"templates"`
}

// UseAliases reports whether metric aliases are on (the default).
func (n NodeConfig) UseAliases() bool { return n.Aliases == nil || *n.Aliases }

// MQTTConfig is the uplink to the central broker.
type MQTTConfig struct {
	Servers        []string  `yaml:"servers"`
	ClientID       string    `yaml:"client_id"`
	Username       string    `yaml:"username"`
	PasswordFile   string    `yaml:"password_file"`
	TLS            TLSConfig `yaml:"tls"`
	Keepalive      Duration  `yaml:"keepalive"`
	ConnectTimeout Duration  `yaml:"connect_timeout"`
	// ReconnectMin and ReconnectMax bound the jittered backoff between
	// connection attempts.
	ReconnectMin Duration `yaml:"reconnect_min"`
	ReconnectMax Duration `yaml:"reconnect_max"`
	// PrimaryHostID enables Primary Host STATE awareness.
	PrimaryHostID string `yaml:"primary_host_id"`
	// PrimaryHostVersion is the Sparkplug version the primary host's
	// STATE speaks: "3.0" (spBv1.0/STATE/<id>, JSON with a timestamp) or
	// "2.2" (STATE/<id>, the strings ONLINE and OFFLINE).
	PrimaryHostVersion string `yaml:"primary_host_version"`
	// PrimaryHostTimeout is how long to wait on a server for the primary
	// host's online STATE before trying the next server.
	PrimaryHostTimeout Duration `yaml:"primary_host_timeout"`
	// DataQoS is 0 (Sparkplug's rule; receipt proven by a QoS 1 marker on
	// ReceiptTopic) or 1 (a PUBACK per data message).
	DataQoS int `yaml:"data_qos"`
	// ReceiptTopic carries the QoS 1 receipt markers that prove the broker
	// read every QoS 0 publish before them. Outside the spBv1.0 namespace
	// so Sparkplug hosts never see it.
	ReceiptTopic string `yaml:"receipt_topic"`
}

// TLSConfig configures TLS for ssl:// and wss:// servers.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// BufferConfig is the store-and-forward queue.
type BufferConfig struct {
	Path     string   `yaml:"path"`
	MaxBytes ByteSize `yaml:"max_bytes"`
	// Mode is write_ahead (every batch durable before it is published) or
	// outage (memory while the link is healthy, disk when it drops).
	Mode string `yaml:"mode"`
	// ReplayRate caps history replay in messages per second.
	ReplayRate int `yaml:"replay_rate"`
	// MaxMetrics caps metrics per replayed message.
	MaxMetrics int `yaml:"max_metrics_per_message"`
	// InOrder holds live data back until history is flushed.
	InOrder bool `yaml:"in_order"`
}

// LogConfig sets the log output.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// HealthConfig serves /healthz, /readyz and /metrics.
type HealthConfig struct {
	Listen string `yaml:"listen"`
}

// Device is one PLC connection.
type Device struct {
	ID      string
	Driver  string // the driver's registered name
	Poll    time.Duration
	Timeout time.Duration
	TagMap  string // absolute path of the tag-map file, if the tags live in one
	// Template names the Sparkplug Template the device is published as an
	// instance of (node.templates, a device with a tag-map file); "" for
	// plain metrics.
	Template string

	// Instance is the device's driver, built (decoded and validated, no
	// I/O) while loading. Whoever runs the device connects and closes it.
	Instance drivers.Driver

	// Fingerprint digests everything that configures the device: its keys
	// and its tags, wherever they are written, but not comments, layout
	// or key order. Two loads with equal fingerprints configure the same
	// device.
	Fingerprint [32]byte
}

// SessionEqual reports whether two configurations give the same MQTT
// session: same node, same broker settings.
func SessionEqual(a, b *Config) bool {
	return reflect.DeepEqual(a.Node, b.Node) && reflect.DeepEqual(a.MQTT, b.MQTT)
}

// Defaults.
const (
	DefaultKeepalive      = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultReconnectMin   = 500 * time.Millisecond
	DefaultReconnectMax   = 30 * time.Second
	DefaultHostTimeout    = 30 * time.Second
	DefaultPoll           = time.Second
	DefaultTimeout        = 2 * time.Second
	DefaultMaxBytes       = 512 << 20
	DefaultReplayRate     = 2000
	DefaultMaxMetrics     = 1000
	DefaultStateDir       = "/var/lib/edgeagent"
)

// Duration is a time.Duration written as "500ms", "2s", "1m": the same
// type the drivers' keys use.
type Duration = drivers.Duration

// ByteSize is a size written as 512MiB, 64KiB, 1GiB, 1GB or plain bytes.
type ByteSize int64

// UnmarshalText parses a size.
func (b *ByteSize) UnmarshalText(t []byte) error {
	v, err := parseByteSize(strings.TrimSpace(string(t)))
	if err != nil {
		return err
	}
	*b = ByteSize(v)
	return nil
}

func parseByteSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size like 512MiB, 64KiB or 1GB", s)
	}
	return v * mult, nil
}
