package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// Load reads, decodes and validates a configuration file and the tag-map
// files it names, and builds each device's driver (which decodes and
// checks the device's own keys and tags; no I/O). When anything is wrong
// it returns Errors: every mistake found, each at its file:line:col.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, Errors{{File: file, Msg: readError(err)}}
	}
	return LoadBytes(file, data)
}

// LoadBytes is Load for a configuration already in memory; name is used
// in error messages and to resolve relative tag_map paths.
func LoadBytes(name string, data []byte) (*Config, error) {
	l := &loader{maps: map[string]*tagMap{}}
	cfg := l.load(name, data)
	if len(l.errs) > 0 {
		l.errs.sort()
		return nil, l.errs
	}
	return cfg, nil
}

func readError(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied (is it readable by the service user?)"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// loader holds what one Load found: its errors and the tag-map files it
// parsed (devices sharing a file share one parse).
type loader struct {
	errs Errors
	maps map[string]*tagMap
}

// tagMap is a parsed tag-map file.
type tagMap struct {
	d    *decoder
	tags *yaml.Node // nil if the file could not be used (errors recorded)
	sum  [32]byte   // fingerprint of its tags
}

// fileShape is the configuration file as the first decoding step sees it:
// the agent's sections decoded, devices kept raw.
type fileShape struct {
	Node     NodeConfig   `yaml:"node"`
	MQTT     MQTTConfig   `yaml:"mqtt"`
	Buffer   BufferConfig `yaml:"buffer"`
	Log      LogConfig    `yaml:"log"`
	Health   HealthConfig `yaml:"health"`
	StateDir string       `yaml:"state_dir"`
	Devices  *yaml.Node   `yaml:"devices"`
}

// deviceKeys are the device keys the agent owns; the rest belong to the
// driver.
type deviceKeys struct {
	ID      string     `yaml:"id"`
	Driver  string     `yaml:"driver"`
	Poll    Duration   `yaml:"poll"`
	Timeout Duration   `yaml:"timeout"`
	TagMap  string     `yaml:"tag_map"`
	Tags    *yaml.Node `yaml:"tags"`
}

// tagMapShape is a tag-map file.
type tagMapShape struct {
	Tags *yaml.Node `yaml:"tags"`
}

// parse parses one YAML file holding a single document.
func (l *loader) parse(file string, data []byte) *yaml.Node {
	var doc yaml.Node
	if len(bytes.TrimSpace(data)) == 0 {
		l.errs = append(l.errs, &Error{File: file, Msg: "the file is empty"})
		return nil
	}
	if err := yaml.Load(data, &doc); err != nil {
		l.errs = append(l.errs, yamlError(file, err))
		return nil
	}
	root := resolve(&doc)
	if root == nil || isNull(root) {
		l.errs = append(l.errs, &Error{File: file, Msg: "the file is empty"})
		return nil
	}
	return root
}

// yamlError turns the YAML library's syntax error into an Error at the
// place it names.
func yamlError(file string, err error) *Error {
	var le *yaml.LoadError
	if errors.As(err, &le) {
		e := &Error{File: file, Line: le.Mark.Line, Col: le.Mark.Column, Msg: le.Message}
		if le.ContextMsg != "" && le.ContextMark.Line > 0 {
			e.Msg += fmt.Sprintf(" (%s that starts at line %d)", le.ContextMsg, le.ContextMark.Line)
		}
		return e
	}
	return &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

func (l *loader) load(name string, data []byte) *Config {
	root := l.parse(name, data)
	if root == nil {
		return nil
	}
	d := &decoder{file: name, errs: &l.errs}
	if root.Kind != yaml.MappingNode {
		d.errAt(root, "", "the top level must be a mapping of node, mqtt, buffer, devices, ...")
		return nil
	}
	var f fileShape
	d.decode("", root, &f)
	cfg := &Config{File: name, Node: f.Node, MQTT: f.MQTT, Buffer: f.Buffer, Log: f.Log, Health: f.Health, StateDir: f.StateDir}
	cfg.applyDefaults()
	v := &validator{d: d, root: root}
	v.config(cfg)
	l.devices(d, cfg, f.Devices, root)
	return cfg
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

func (l *loader) devices(d *decoder, cfg *Config, node, root *yaml.Node) {
	node = resolve(node)
	if node == nil || node.Kind != yaml.SequenceNode || len(node.Content) == 0 {
		at := lookup(root, "devices")
		if at == nil {
			at = root
		} else if node != nil && node.Kind != yaml.SequenceNode && !isNull(node) {
			d.errAt(node, "devices", "want a list of devices, got %s", what(node))
			return
		}
		d.errAt(at, "devices", "at least one device is required")
		return
	}
	seen := map[string]int{}
	for i, dn := range node.Content {
		if dev, ok := l.device(d, cfg, i, resolve(dn), seen); ok {
			cfg.Devices = append(cfg.Devices, dev)
		}
	}
}

// device decodes, checks and builds one device. It reports whether the
// device is usable (no error was found in it).
func (l *loader) device(d *decoder, cfg *Config, i int, dn *yaml.Node, seen map[string]int) (Device, bool) {
	before := len(l.errs)
	key := fmt.Sprintf("devices[%d]", i)
	if dn.Kind != yaml.MappingNode {
		d.errAt(dn, key, "a device must be a mapping with id, driver, tags, ...")
		return Device{}, false
	}
	// Name the device in every message about it, from the start.
	if id := resolve(lookup(dn, "id")); id != nil && id.Kind == yaml.ScalarNode && id.Value != "" {
		key = fmt.Sprintf("devices[%d] (%s)", i, id.Value)
	}
	var k deviceKeys
	var rest []pair
	d.structure(key, dn, reflect.ValueOf(&k).Elem(), &rest)
	dev := Device{ID: k.ID, Driver: k.Driver, Poll: k.Poll.D(), Timeout: k.Timeout.D()}
	if dev.Poll == 0 {
		dev.Poll = DefaultPoll
	}
	if dev.Timeout == 0 {
		dev.Timeout = DefaultTimeout
	}
	switch {
	case k.ID == "":
		d.errAt(dn, key+".id", "is required")
	default:
		if err := sparkplug.CheckID("device id", k.ID); err != nil {
			d.errAt(lookup(dn, "id"), key+".id", "%v", err)
		} else if j, dup := seen[strings.ToLower(k.ID)]; dup {
			d.errAt(lookup(dn, "id"), key+".id", "is also the id of devices[%d] (ids must differ even ignoring case)", j)
		}
		seen[strings.ToLower(k.ID)] = i
	}
	if dev.Poll < 10*time.Millisecond {
		d.errAt(lookup(dn, "poll"), key+".poll", "must be at least 10ms")
	}
	var factory drivers.Factory
	if k.Driver == "" {
		d.errAt(dn, key+".driver", "is required (one of %s)", strings.Join(drivers.Names(), ", "))
	} else {
		f, err := drivers.Lookup(k.Driver)
		if err != nil {
			d.errAt(lookup(dn, "driver"), key+".driver", "%q is not a driver (one of %s)", k.Driver, strings.Join(drivers.Names(), ", "))
		}
		factory = f
	}

	tags := l.tagSource(d, key, dn, &k, cfg)
	if factory == nil || tags == nil || len(l.errs) > before {
		return Device{}, false
	}
	if k.TagMap != "" {
		dev.TagMap = tags.d.file
	}
	restNode := &yaml.Node{Kind: yaml.MappingNode, Line: dn.Line, Column: dn.Column}
	for _, p := range rest {
		restNode.Content = append(restNode.Content, p.k, p.v)
	}
	dc := drivers.Config{
		ID:     k.ID,
		Logger: slog.New(slog.DiscardHandler),
		Decode: func(v any) error {
			n := len(l.errs)
			if d.decode(key, restNode, v) {
				return nil
			}
			return &recorded{l.errs[n:]}
		},
		Tags:     tags,
		Timeout:  dev.Timeout,
		StateDir: cfg.StateDir,
	}
	drv, err := factory(dc)
	if err != nil {
		placeDriverError(d, key, dn, restNode, err)
		return Device{}, false
	}
	if len(l.errs) > before {
		return Device{}, false
	}
	dev.Instance = drv
	dev.Fingerprint = fingerprint(&dev, restNode, tags)
	return dev, true
}

// tagSource finds a device's tag list: inline or in its tag-map file.
func (l *loader) tagSource(d *decoder, key string, dn *yaml.Node, k *deviceKeys, cfg *Config) *nodeTags {
	switch {
	case k.TagMap != "" && k.Tags != nil:
		d.errAt(lookup(dn, "tag_map"), key+".tag_map", "give either tags or tag_map, not both")
		return nil
	case k.TagMap != "":
		path := k.TagMap
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(cfg.File), path)
		}
		tm := l.tagMap(path, func(msg string) { d.errAt(lookup(dn, "tag_map"), key+".tag_map", "%s: %s", k.TagMap, msg) })
		if tm == nil || tm.tags == nil {
			return nil
		}
		return &nodeTags{d: tm.d, key: "tags", seq: tm.tags, sum: &tm.sum}
	case k.Tags == nil:
		d.errAt(dn, key+".tags", "is required (or tag_map)")
		return nil
	}
	seq := resolve(k.Tags)
	if seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 {
		d.errAt(seq, key+".tags", "must be a non-empty list of tags")
		return nil
	}
	return &nodeTags{d: d, key: key + ".tags", seq: seq}
}

// tagMap parses a tag-map file once per load. bad reports a file that
// cannot be read at the tag_map key that names it.
func (l *loader) tagMap(path string, bad func(msg string)) *tagMap {
	if tm, ok := l.maps[path]; ok {
		return tm
	}
	tm := &tagMap{d: &decoder{file: path, errs: &l.errs}}
	l.maps[path] = tm
	data, err := os.ReadFile(path)
	if err != nil {
		bad(readError(err))
		return tm
	}
	root := l.parse(path, data)
	if root == nil {
		return tm
	}
	var f tagMapShape
	ok := tm.d.decode("", root, &f)
	seq := resolve(f.Tags)
	if seq == nil || seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 {
		at := seq
		if at == nil {
			at = root
		}
		tm.d.errAt(at, "tags", "must be a non-empty list of tags")
		return tm
	}
	if !ok {
		return tm
	}
	tm.tags = seq
	tm.sum = sumNode(seq)
	return tm
}

// lookup finds the value at a mapping key, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// recorded is what Decode and Tags.Each give a driver when they found
// errors: those are in the loader's list already.
type recorded struct{ errs Errors }

func (r *recorded) Error() string {
	if len(r.errs) == 0 {
		return "configuration errors"
	}
	return r.errs.Error()
}

func isRecorded(err error) bool {
	var r *recorded
	return errors.As(err, &r)
}

// placeDriverError records an error a driver returned about its device:
// at the key it names if it names one, else at the device.
func placeDriverError(d *decoder, key string, dn, rest *yaml.Node, err error) {
	for _, e := range flatten(err) {
		if isRecorded(e) {
			continue
		}
		var ke *drivers.KeyError
		if errors.As(e, &ke) {
			at := lookup(rest, strings.SplitN(ke.Key, ".", 2)[0])
			if at == nil {
				at = dn
			}
			d.errAt(at, join(key, ke.Key), "%v", ke.Err)
			continue
		}
		d.errAt(dn, key, "%v", e)
	}
}

// flatten lists the errors joined in err.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// nodeTags walks a tag list held as YAML nodes.
type nodeTags struct {
	d   *decoder // of the file the list is in
	key string   // key path of the list, e.g. devices[0] (press-02).tags
	seq *yaml.Node
	sum *[32]byte // fingerprint of the list when it comes from a shared tag map
}

func (t *nodeTags) Len() int { return len(t.seq.Content) }

func (t *nodeTags) Each(fn func(i int, decode func(v any) error) error) error {
	before := len(*t.d.errs)
	failed := false
	for i, item := range t.seq.Content {
		item = resolve(item)
		key := fmt.Sprintf("%s[%d]", t.key, i)
		if n := resolve(lookup(item, "name")); n != nil && n.Kind == yaml.ScalarNode && n.Value != "" {
			key += fmt.Sprintf(" %q", n.Value)
		}
		decode := func(v any) error {
			n := len(*t.d.errs)
			if t.d.decode(key, item, v) {
				return nil
			}
			return &recorded{(*t.d.errs)[n:]}
		}
		err := fn(i, decode)
		if err == nil {
			continue
		}
		failed = true
		for _, e := range flatten(err) {
			if isRecorded(e) {
				continue
			}
			var ke *drivers.KeyError
			if errors.As(e, &ke) {
				at := lookup(item, strings.SplitN(ke.Key, ".", 2)[0])
				if at == nil {
					at = item
				}
				t.d.errAt(at, join(key, ke.Key), "%v", ke.Err)
				continue
			}
			t.d.errAt(item, key, "%v", e)
		}
	}
	if failed {
		return &recorded{(*t.d.errs)[before:]}
	}
	return nil
}
