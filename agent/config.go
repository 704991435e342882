package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// Config is a loaded, validated configuration. Every key is documented in
// configs/example.yaml.
type Config struct {
	// File is the path the configuration was loaded from.
	File string `yaml:"-"`

	Node    NodeConfig     `yaml:"node"`
	MQTT    MQTTConfig     `yaml:"mqtt"`
	Buffer  BufferConfig   `yaml:"buffer"`
	Log     LogConfig      `yaml:"log"`
	Health  HealthConfig   `yaml:"health"`
	Devices []DeviceConfig `yaml:"-"`

	// StateDir keeps bdSeq across restarts.
	StateDir string `yaml:"state_dir"`
}

// NodeConfig names the Sparkplug edge node.
type NodeConfig struct {
	GroupID    string `yaml:"group_id"`
	EdgeNodeID string `yaml:"edge_node_id"`
	// Aliases sends metric aliases in births and only aliases in data.
	Aliases *bool `yaml:"aliases"`
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
	// PrimaryHostID enables Sparkplug 3.0 STATE awareness.
	PrimaryHostID string `yaml:"primary_host_id"`
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

// HealthConfig serves /healthz and /metrics.
type HealthConfig struct {
	Listen string `yaml:"listen"`
}

// DeviceConfig is one PLC connection. Driver-specific keys are decoded by
// the driver itself from the raw YAML kept here.
type DeviceConfig struct {
	ID      string
	Driver  string
	Poll    time.Duration
	Timeout time.Duration
	TagMap  string

	decode     func(v any) error
	decodeTags func(v any) error
}

// DriverConfig returns what the device's driver factory needs.
func (d *DeviceConfig) DriverConfig() drivers.Config {
	return drivers.Config{ID: d.ID, Decode: d.decode, DecodeTags: d.decodeTags, Timeout: d.Timeout, Logger: slog.New(slog.DiscardHandler)}
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

// Error is a configuration error at a place in a file.
type Error struct {
	File      string
	Line, Col int
	Key       string // dotted path, e.g. devices[0].tags[3].address
	Msg       string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// source is one parsed YAML file, for decoding and locating errors.
type source struct {
	file string
	root ast.Node
}

func parseFile(file string) (*source, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return parseBytes(file, data)
}

func parseBytes(file string, data []byte) (*source, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(file, "", nil, err)
	}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		return nil, &Error{File: file, Msg: "want exactly one YAML document with a mapping at the top"}
	}
	return &source{file: file, root: f.Docs[0].Body}, nil
}

// yamlError turns a decode error into an *Error with the best position
// available: the library's own, else the node being decoded.
func yamlError(file, key string, at ast.Node, err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		if ce.File == "" {
			ce.File = file
		}
		if ce.Key == "" {
			ce.Key = key
		}
		return ce
	}
	e := &Error{File: file, Key: key, Msg: err.Error()}
	var ye yaml.Error
	if errors.As(err, &ye) {
		e.Msg = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil {
			e.Line, e.Col = tk.Position.Line, tk.Position.Column
		}
	} else if at != nil {
		e.Line, e.Col = nodePos(at)
	}
	return e
}

func nodePos(n ast.Node) (int, int) {
	if n == nil || n.GetToken() == nil {
		return 0, 0
	}
	p := n.GetToken().Position
	return p.Line, p.Column
}

// decode strictly decodes node into v. A slice target is decoded element
// by element so that errors without a position of their own point at the
// element they came from.
func (s *source) decode(key string, node ast.Node, v any) error {
	if seq, ok := node.(*ast.SequenceNode); ok {
		rv := reflect.ValueOf(v)
		if rv.Kind() == reflect.Pointer && rv.Elem().Kind() == reflect.Slice {
			sl := reflect.MakeSlice(rv.Elem().Type(), len(seq.Values), len(seq.Values))
			for i, el := range seq.Values {
				if err := s.decode(fmt.Sprintf("%s[%d]", key, i), el, sl.Index(i).Addr().Interface()); err != nil {
					return err
				}
			}
			rv.Elem().Set(sl)
			return nil
		}
	}
	if err := yaml.NodeToValue(node, v, yaml.DisallowUnknownField()); err != nil {
		return yamlError(s.file, key, node, err)
	}
	return nil
}

// errAt builds an *Error at node.
func (s *source) errAt(node ast.Node, key, format string, args ...any) *Error {
	l, c := nodePos(node)
	return &Error{File: s.file, Line: l, Col: c, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// lookup finds the value node at a mapping key, or nil.
func lookup(m *ast.MappingNode, key string) ast.Node {
	if m == nil {
		return nil
	}
	for _, kv := range m.Values {
		if kv.Key.String() == key {
			return kv.Value
		}
	}
	return nil
}

// top is the file's shape for the first decoding step: sections decoded
// by the agent, devices kept raw for their drivers.
type top struct {
	Node     NodeConfig   `yaml:"node"`
	MQTT     MQTTConfig   `yaml:"mqtt"`
	Buffer   BufferConfig `yaml:"buffer"`
	Log      LogConfig    `yaml:"log"`
	Health   HealthConfig `yaml:"health"`
	StateDir string       `yaml:"state_dir"`
	Devices  ast.Node     `yaml:"devices"`
}

// deviceCommon holds the device keys the agent owns.
type deviceCommon struct {
	ID      string   `yaml:"id"`
	Driver  string   `yaml:"driver"`
	Poll    Duration `yaml:"poll"`
	Timeout Duration `yaml:"timeout"`
	TagMap  string   `yaml:"tag_map"`
	Tags    ast.Node `yaml:"tags"`
}

var commonKeys = map[string]bool{"id": true, "driver": true, "poll": true, "timeout": true, "tag_map": true, "tags": true}

// tagMapFile is the shape of a separate tag-map file.
type tagMapFile struct {
	Tags ast.Node `yaml:"tags"`
}

// tagMap is a parsed tag-map file. Devices that share a file share one
// syntax tree: a large map parsed once per device would multiply the
// start-up peak by the number of devices.
type tagMap struct {
	src  *source
	tags ast.Node
}

// Load reads, decodes and validates a configuration file, including any
// tag-map files it names and each device's driver configuration. It does
// no network I/O.
func Load(file string) (*Config, error) {
	src, err := parseFile(file)
	if err != nil {
		return nil, err
	}
	return load(src)
}

// LoadBytes is Load for configuration already in memory; name is used in
// error messages and to resolve relative tag_map paths.
func LoadBytes(name string, data []byte) (*Config, error) {
	src, err := parseBytes(name, data)
	if err != nil {
		return nil, err
	}
	return load(src)
}

func load(src *source) (*Config, error) {
	var t top
	if _, ok := src.root.(*ast.MappingNode); !ok {
		return nil, src.errAt(src.root, "", "the top level must be a mapping of node, mqtt, buffer, devices, ...")
	}
	if err := src.decode("", src.root, &t); err != nil {
		return nil, err
	}
	cfg := &Config{File: src.file, Node: t.Node, MQTT: t.MQTT, Buffer: t.Buffer, Log: t.Log, Health: t.Health, StateDir: t.StateDir}
	cfg.applyDefaults()
	root := src.root.(*ast.MappingNode)
	if err := cfg.validate(src, root); err != nil {
		return nil, err
	}
	if err := cfg.loadDevices(src, t.Devices, lookup(root, "devices"), map[string]*tagMap{}); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) applyDefaults() {
	m := &c.MQTT
	if m.Keepalive == 0 {
		m.Keepalive = Duration(DefaultKeepalive)
	}
	if m.ConnectTimeout == 0 {
		m.ConnectTimeout = Duration(DefaultConnectTimeout)
	}
	if m.ReconnectMin == 0 {
		m.ReconnectMin = Duration(DefaultReconnectMin)
	}
	if m.ReconnectMax == 0 {
		m.ReconnectMax = Duration(DefaultReconnectMax)
	}
	if m.PrimaryHostTimeout == 0 {
		m.PrimaryHostTimeout = Duration(DefaultHostTimeout)
	}
	if m.ClientID == "" {
		m.ClientID = "edgeagent-" + c.Node.GroupID + "-" + c.Node.EdgeNodeID
	}
	if m.ReceiptTopic == "" {
		m.ReceiptTopic = "edgeagent/receipt/" + c.Node.GroupID + "/" + c.Node.EdgeNodeID
	}
	b := &c.Buffer
	if b.MaxBytes == 0 {
		b.MaxBytes = DefaultMaxBytes
	}
	if b.Mode == "" {
		b.Mode = "write_ahead"
	}
	if b.ReplayRate == 0 {
		b.ReplayRate = DefaultReplayRate
	}
	if b.MaxMetrics == 0 {
		b.MaxMetrics = DefaultMaxMetrics
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if b.Path == "" {
		b.Path = filepath.Join(c.StateDir, "buffer.db")
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

func (c *Config) validate(src *source, root *ast.MappingNode) error {
	at := func(path ...string) ast.Node {
		var n ast.Node = root
		for _, p := range path {
			m, _ := n.(*ast.MappingNode)
			next := lookup(m, p)
			if next == nil {
				return n
			}
			n = next
		}
		return n
	}
	if err := sparkplug.CheckID("group_id", c.Node.GroupID); err != nil {
		return src.errAt(at("node", "group_id"), "node.group_id", "%v", err)
	}
	if err := sparkplug.CheckID("edge_node_id", c.Node.EdgeNodeID); err != nil {
		return src.errAt(at("node", "edge_node_id"), "node.edge_node_id", "%v", err)
	}
	m := c.MQTT
	if len(m.Servers) == 0 {
		return src.errAt(at("mqtt", "servers"), "mqtt.servers", "at least one server is required, e.g. [tcp://broker:1883]")
	}
	serversNode, _ := at("mqtt", "servers").(*ast.SequenceNode)
	for i, s := range m.Servers {
		var n ast.Node = at("mqtt", "servers")
		if serversNode != nil && i < len(serversNode.Values) {
			n = serversNode.Values[i]
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return src.errAt(n, fmt.Sprintf("mqtt.servers[%d]", i), "%q is not a broker URL like tcp://host:1883", s)
		}
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		default:
			return src.errAt(n, fmt.Sprintf("mqtt.servers[%d]", i), "scheme %q is not one of tcp, ssl, ws, wss", u.Scheme)
		}
	}
	if m.PrimaryHostID != "" {
		if err := sparkplug.CheckID("primary_host_id", m.PrimaryHostID); err != nil {
			return src.errAt(at("mqtt", "primary_host_id"), "mqtt.primary_host_id", "%v", err)
		}
	}
	if m.DataQoS != 0 && m.DataQoS != 1 {
		return src.errAt(at("mqtt", "data_qos"), "mqtt.data_qos", "must be 0 or 1, got %d", m.DataQoS)
	}
	if strings.ContainsAny(m.ReceiptTopic, "+#") || strings.HasPrefix(m.ReceiptTopic, "spBv1.0/") {
		return src.errAt(at("mqtt", "receipt_topic"), "mqtt.receipt_topic", "%q must be a plain topic outside the spBv1.0 namespace", m.ReceiptTopic)
	}
	if m.ReconnectMin > m.ReconnectMax {
		return src.errAt(at("mqtt", "reconnect_min"), "mqtt.reconnect_min", "is larger than reconnect_max")
	}
	if m.Keepalive < Duration(time.Second) {
		return src.errAt(at("mqtt", "keepalive"), "mqtt.keepalive", "must be at least 1s")
	}
	if (m.TLS.CertFile == "") != (m.TLS.KeyFile == "") {
		return src.errAt(at("mqtt", "tls"), "mqtt.tls", "cert_file and key_file go together")
	}
	b := c.Buffer
	if b.Mode != "write_ahead" && b.Mode != "outage" {
		return src.errAt(at("buffer", "mode"), "buffer.mode", "%q is not one of write_ahead, outage", b.Mode)
	}
	if b.MaxBytes < 1<<20 {
		return src.errAt(at("buffer", "max_bytes"), "buffer.max_bytes", "must be at least 1MiB")
	}
	if b.ReplayRate < 0 {
		return src.errAt(at("buffer", "replay_rate"), "buffer.replay_rate", "must not be negative")
	}
	if b.MaxMetrics < 1 {
		return src.errAt(at("buffer", "max_metrics_per_message"), "buffer.max_metrics_per_message", "must be at least 1")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return src.errAt(at("log", "level"), "log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return src.errAt(at("log", "format"), "log.format", "%q is not one of text, json", c.Log.Format)
	}
	return nil
}

func (c *Config) loadDevices(src *source, node, keyNode ast.Node, maps map[string]*tagMap) error {
	seq, ok := node.(*ast.SequenceNode)
	if !ok || len(seq.Values) == 0 {
		return src.errAt(orNode(keyNode, src.root), "devices", "at least one device is required")
	}
	seen := map[string]int{}
	for i, dn := range seq.Values {
		key := fmt.Sprintf("devices[%d]", i)
		mn, ok := dn.(*ast.MappingNode)
		if !ok {
			return src.errAt(dn, key, "a device must be a mapping with id, driver, tags, ...")
		}
		var common deviceCommon
		own := &ast.MappingNode{BaseNode: mn.BaseNode, Start: mn.Start, End: mn.End, IsFlowStyle: mn.IsFlowStyle}
		rest := &ast.MappingNode{BaseNode: mn.BaseNode, Start: mn.Start, End: mn.End, IsFlowStyle: mn.IsFlowStyle}
		for _, kv := range mn.Values {
			if commonKeys[kv.Key.String()] {
				own.Values = append(own.Values, kv)
			} else {
				rest.Values = append(rest.Values, kv)
			}
		}
		if err := src.decode(key, own, &common); err != nil {
			return err
		}
		if common.ID == "" {
			return src.errAt(dn, key+".id", "is required")
		}
		key = fmt.Sprintf("devices[%d] (%s)", i, common.ID)
		if err := sparkplug.CheckID("device id", common.ID); err != nil {
			return src.errAt(lookup(mn, "id"), key+".id", "%v", err)
		}
		if j, dup := seen[strings.ToLower(common.ID)]; dup {
			return src.errAt(lookup(mn, "id"), key+".id", "duplicates devices[%d] (ids must differ even ignoring case)", j)
		}
		seen[strings.ToLower(common.ID)] = i
		if common.Driver == "" {
			return src.errAt(dn, key+".driver", "is required (one of %s)", strings.Join(drivers.Names(), ", "))
		}
		factory, err := drivers.Lookup(common.Driver)
		if err != nil {
			return src.errAt(lookup(mn, "driver"), key+".driver", "%v", err)
		}
		d := DeviceConfig{ID: common.ID, Driver: common.Driver, Poll: time.Duration(common.Poll), Timeout: time.Duration(common.Timeout), TagMap: common.TagMap}
		if d.Poll == 0 {
			d.Poll = DefaultPoll
		}
		if d.Timeout == 0 {
			d.Timeout = DefaultTimeout
		}
		if d.Poll < 10*time.Millisecond {
			return src.errAt(lookup(mn, "poll"), key+".poll", "must be at least 10ms")
		}
		if d.Timeout <= 0 {
			return src.errAt(lookup(mn, "timeout"), key+".timeout", "must be positive")
		}
		tagSrc, tagNode, tagKey := src, common.Tags, key+".tags"
		switch {
		case common.TagMap != "" && common.Tags != nil:
			return src.errAt(lookup(mn, "tag_map"), key+".tag_map", "give either tags or tag_map, not both")
		case common.TagMap != "":
			path := common.TagMap
			if !filepath.IsAbs(path) {
				path = filepath.Join(filepath.Dir(src.file), path)
			}
			d.TagMap = path
			tm, ok := maps[path]
			if !ok {
				ts, err := parseFile(path)
				if err != nil {
					return src.errAt(lookup(mn, "tag_map"), key+".tag_map", "%v", err)
				}
				var f tagMapFile
				if err := ts.decode("", ts.root, &f); err != nil {
					return err
				}
				tm = &tagMap{src: ts, tags: f.Tags}
				maps[path] = tm
			}
			tagSrc, tagNode, tagKey = tm.src, tm.tags, "tags"
		case common.Tags == nil:
			return src.errAt(dn, key+".tags", "is required (or tag_map)")
		}
		if s, ok := tagNode.(*ast.SequenceNode); !ok || len(s.Values) == 0 {
			return tagSrc.errAt(orNode(tagNode, tagSrc.root), tagKey, "must be a non-empty list of tags")
		}
		d.decode = func(v any) error { return src.decode(key, rest, v) }
		d.decodeTags = func(v any) error { return tagSrc.decode(tagKey, tagNode, v) }
		// Build the driver once now, so that `validate` and start-up
		// catch every driver-level error; the agent builds it again.
		if _, err := factory(d.DriverConfig()); err != nil {
			return driverError(src, key, dn, tagSrc, tagKey, tagNode, err)
		}
		c.Devices = append(c.Devices, d)
	}
	return nil
}

// driverError places a driver's validation error: at the tag it names
// (in the tag-map file if there is one), else at the device.
func driverError(src *source, key string, dev ast.Node, tagSrc *source, tagKey string, tags ast.Node, err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	var te *drivers.TagError
	if seq, ok := tags.(*ast.SequenceNode); ok && errors.As(err, &te) && te.Index >= 0 && te.Index < len(seq.Values) {
		k := fmt.Sprintf("%s[%d]", tagKey, te.Index)
		if te.Name != "" {
			k += fmt.Sprintf(" %q", te.Name)
		}
		return tagSrc.errAt(seq.Values[te.Index], k, "%v", te.Err)
	}
	return src.errAt(dev, key, "%v", err)
}

func orNode(n, fallback ast.Node) ast.Node {
	if n != nil {
		return n
	}
	return fallback
}

// Duration is a time.Duration written as "500ms", "2s", "1m".
type Duration time.Duration

// UnmarshalYAML parses a duration and reports errors at its position.
func (d *Duration) UnmarshalYAML(n ast.Node) error {
	s := strings.TrimSpace(n.String())
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		l, c := nodePos(n)
		return &Error{Line: l, Col: c, Msg: fmt.Sprintf("%q is not a duration like 500ms, 2s or 1m", s)}
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ByteSize is a size written as 512MiB, 64KiB, 1GiB, 1GB or plain bytes.
type ByteSize int64

// UnmarshalYAML parses a size and reports errors at its position.
func (b *ByteSize) UnmarshalYAML(n ast.Node) error {
	s := strings.TrimSpace(n.String())
	v, err := parseByteSize(s)
	if err != nil {
		l, c := nodePos(n)
		return &Error{Line: l, Col: c, Msg: err.Error()}
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

// TagCount builds the device's driver (no I/O) and counts its tags.
func TagCount(d DeviceConfig) (int, error) {
	f, err := drivers.Lookup(d.Driver)
	if err != nil {
		return 0, err
	}
	drv, err := f(d.DriverConfig())
	if err != nil {
		return 0, err
	}
	return len(drv.Tags()), nil
}
