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
	l := &loader{files: map[string]*file{}, stream: streaming}
	cfg := l.load(name, data)
	if len(l.errs) > 0 && l.streamed {
		// Report mistakes exactly as a parse of the whole files finds
		// them (a syntax error inside a tag list that was never walked,
		// say): a file with mistakes is not loaded, so its memory does
		// not matter.
		l = &loader{files: map[string]*file{}}
		cfg = l.load(name, data)
	}
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

// loader holds what one Load found: its errors and the files it read
// (devices sharing a tag-map file share one read).
type loader struct {
	errs     Errors
	files    map[string]*file
	stream   bool // decode tag lists in batches where the files allow it
	streamed bool // some were
}

// file is one YAML file of the configuration. Its tag lists are decoded
// in batches when the file allows it (stream.go): root is then its
// skeleton, and whole, the tree with the tag lists, is parsed only if a
// batch cannot be decoded on its own.
type file struct {
	d      *decoder
	data   []byte
	root   *yaml.Node // the skeleton, or the whole tree
	stream *streamed  // nil when root is the whole tree
	whole  *yaml.Node // parsed on demand when stream is set
	bad    bool       // unreadable or unparsable (errors recorded)
}

// read reads and parses a file once per load.
func (l *loader) read(path string, data []byte, readErr func(msg string)) *file {
	if f, ok := l.files[path]; ok {
		return f
	}
	f := &file{d: newDecoder(path, &l.errs)}
	l.files[path] = f
	if data == nil {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			readErr(readError(err))
			f.bad = true
			return f
		}
	}
	f.data = data
	if l.stream {
		if s, root := parseStreamed(data); s != nil {
			f.stream, f.root = s, root
			l.streamed = true
			return f
		}
	}
	if f.root = l.parse(path, data); f.root == nil {
		f.bad = true
	}
	return f
}

// wholeTree is the file's tree with its tag lists, parsed on first use.
func (f *file) wholeTree() *yaml.Node {
	if f.stream == nil {
		return f.root
	}
	if f.whole == nil {
		var doc yaml.Node
		if err := yaml.Load(f.data, &doc); err != nil {
			return nil // the skeleton parsed; this cannot happen
		}
		f.whole = resolve(&doc)
	}
	return f.whole
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
	if len(bytes.TrimSpace(data)) == 0 {
		l.errs = append(l.errs, &Error{File: name, Msg: "the file is empty"})
		return nil
	}
	f := l.read(name, data, nil)
	if f.bad {
		return nil
	}
	root, d := f.root, f.d
	if root.Kind != yaml.MappingNode {
		d.errAt(root, "", "the top level must be a mapping of node, mqtt, buffer, devices, ...")
		return nil
	}
	var fs fileShape
	d.decode("", root, &fs)
	cfg := &Config{File: name, Node: fs.Node, MQTT: fs.MQTT, Buffer: fs.Buffer, Log: fs.Log, Health: fs.Health, StateDir: fs.StateDir}
	cfg.applyDefaults()
	v := &validator{d: d, root: root}
	v.config(cfg)
	l.devices(f, cfg, fs.Devices, root)
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

func (l *loader) devices(f *file, cfg *Config, node, root *yaml.Node) {
	d := f.d
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
	templates := map[string]string{} // template name → its tag-map file
	for i, dn := range node.Content {
		dev, ok := l.device(f, cfg, i, resolve(dn), seen)
		if !ok {
			continue
		}
		if cfg.Node.Templates && dev.TagMap != "" {
			// Devices that share a tag-map file are instances of one
			// template, named after the file.
			dev.Template = TemplateName(dev.TagMap)
			if other, dup := templates[dev.Template]; dup && other != dev.TagMap {
				d.errAt(lookup(resolve(dn), "tag_map"), fmt.Sprintf("devices[%d].tag_map", i),
					"with node.templates, %s and %s would both define template %q (named after the file): rename one", other, dev.TagMap, dev.Template)
				continue
			}
			templates[dev.Template] = dev.TagMap
		}
		cfg.Devices = append(cfg.Devices, dev)
	}
}

// TemplateName is the name of the Sparkplug Template of the devices that
// share a tag-map file: the file's name without its extension.
func TemplateName(tagMap string) string {
	base := filepath.Base(tagMap)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// device decodes, checks and builds one device. It reports whether the
// device is usable (no error was found in it).
func (l *loader) device(f *file, cfg *Config, i int, dn *yaml.Node, seen map[string]int) (Device, bool) {
	d := f.d
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

	tags := l.tagSource(f, i, key, dn, &k, cfg)
	if factory == nil || tags == nil || len(l.errs) > before {
		return Device{}, false
	}
	if k.TagMap != "" {
		dev.TagMap = tags.file.d.file
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
		Tags:     tags.src,
		Timeout:  dev.Timeout,
		Poll:     dev.Poll,
		StateDir: cfg.StateDir,
	}
	drv, err := factory(dc)
	if errors.Is(err, errUnstreamable) {
		// A batch would not decode on its own: decode this list from its
		// file's whole tree, forgetting what the batches reported.
		l.errs = l.errs[:before]
		if dc.Tags = tags.whole(); dc.Tags == nil {
			d.errAt(dn, key+".tags", "cannot be read")
			return Device{}, false
		}
		drv, err = factory(dc)
	}
	if err != nil {
		placeDriverError(d, key, dn, restNode, err)
		return Device{}, false
	}
	if len(l.errs) > before {
		return Device{}, false
	}
	dev.Instance = drv
	dev.Fingerprint = fingerprint(&dev, restNode, dc.Tags.(digester).digest())
	return dev, true
}

// deviceTags is where a device's tags are: a run decoded in batches, or a
// list in a tree.
type deviceTags struct {
	file  *file
	src   drivers.TagSource // *runTags or *nodeTags
	whole func() drivers.TagSource
}

// digester is a TagSource that digests the tags it walked.
type digester interface{ digest() [32]byte }

// tagSource finds a device's tag list: inline or in its tag-map file.
func (l *loader) tagSource(f *file, i int, key string, dn *yaml.Node, k *deviceKeys, cfg *Config) *deviceTags {
	tagsKey, tagsVal := lookupMerged(dn, "tags", 0)
	switch {
	case k.TagMap != "" && tagsKey != nil:
		d := f.d
		d.errAt(lookup(dn, "tag_map"), key+".tag_map", "give either tags or tag_map, not both")
		return nil
	case k.TagMap != "":
		path := k.TagMap
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(cfg.File), path)
		}
		tm := l.read(path, nil, func(msg string) { f.d.errAt(lookup(dn, "tag_map"), key+".tag_map", "%s: %s", k.TagMap, msg) })
		return l.mapTags(tm)
	case tagsKey == nil:
		f.d.errAt(dn, key+".tags", "is required (or tag_map)")
		return nil
	}
	whole := func() drivers.TagSource {
		root := f.wholeTree()
		devs := resolve(lookup(root, "devices"))
		if devs == nil || devs.Kind != yaml.SequenceNode || i >= len(devs.Content) {
			return nil
		}
		seq := resolve(lookup(resolve(devs.Content[i]), "tags"))
		if seq == nil || seq.Kind != yaml.SequenceNode {
			return nil
		}
		return &nodeTags{d: f.d, key: key + ".tags", seq: seq}
	}
	if r := f.stream.runAt(tagsKey, tagsVal); r != nil {
		return &deviceTags{file: f, src: &runTags{d: f.d, key: key + ".tags", data: f.data, r: r}, whole: whole}
	}
	seq := resolve(tagsVal)
	if seq == nil || seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 {
		at := seq
		if at == nil {
			at = tagsKey
		}
		f.d.errAt(at, key+".tags", "must be a non-empty list of tags")
		return nil
	}
	return &deviceTags{file: f, src: &nodeTags{d: f.d, key: key + ".tags", seq: seq}, whole: whole}
}

// mapTags finds the tag list of a tag-map file, checking the file's shape
// once (the first device that names it reports its mistakes).
func (l *loader) mapTags(tm *file) *deviceTags {
	if tm.bad {
		return nil
	}
	root := tm.root
	var shape tagMapShape
	before := len(l.errs)
	ok := tm.d.decode("", root, &shape)
	tagsKey, tagsVal := lookupKey(root, "tags")
	whole := func() drivers.TagSource {
		seq := resolve(lookup(tm.wholeTree(), "tags"))
		if seq == nil || seq.Kind != yaml.SequenceNode {
			return nil
		}
		return &nodeTags{d: tm.d, key: "tags", seq: seq}
	}
	r := tm.stream.runAt(tagsKey, tagsVal)
	seq := resolve(shape.Tags)
	if r == nil && (seq == nil || seq.Kind != yaml.SequenceNode || len(seq.Content) == 0) {
		at := seq
		if at == nil {
			at = root
		}
		tm.d.errAt(at, "tags", "must be a non-empty list of tags")
	}
	if !ok || len(l.errs) > before {
		tm.bad = true // reported once: later devices naming it add nothing
		return nil
	}
	if r != nil {
		return &deviceTags{file: tm, src: &runTags{d: tm.d, key: "tags", data: tm.data, r: r}, whole: whole}
	}
	return &deviceTags{file: tm, src: &nodeTags{d: tm.d, key: "tags", seq: seq}, whole: whole}
}

// lookup finds the value at a mapping key, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	_, v := lookupKey(m, key)
	return v
}

// lookupKey finds a mapping key's key and value nodes, or nils.
func lookupKey(m *yaml.Node, key string) (k, v *yaml.Node) {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// lookupMerged is lookupKey with YAML merge keys (<<) followed, as the
// decoder applies them: an explicit key first, then merged mappings in
// order. It reports nothing; the decoder reports bad merges.
func lookupMerged(m *yaml.Node, key string, depth int) (k, v *yaml.Node) {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode || depth > 16 {
		return nil, nil
	}
	if k, v = lookupKey(m, key); k != nil {
		return k, v
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "<<" || m.Content[i].ShortTag() != "!!merge" {
			continue
		}
		src := resolve(m.Content[i+1])
		from := []*yaml.Node{src}
		if src != nil && src.Kind == yaml.SequenceNode {
			from = src.Content
		}
		for _, f := range from {
			if k, v = lookupMerged(f, key, depth+1); k != nil {
				return k, v
			}
		}
	}
	return nil, nil
}

// firstKey is the first key of a dotted key path.
func firstKey(path string) string {
	k, _, _ := strings.Cut(path, ".")
	return k
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
			at := lookup(rest, firstKey(ke.Key))
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
	sum [32]byte // digest of the tags, set by Each
}

func (t *nodeTags) Len() int { return len(t.seq.Content) }

func (t *nodeTags) Each(fn func(i int, decode func(v any) error) error) error {
	w := newTagWalk(t.d, t.key)
	for i, item := range t.seq.Content {
		w.item(t.d, i, item, fn)
	}
	t.sum = w.finish()
	return w.result()
}

func (t *nodeTags) digest() [32]byte { return t.sum }

func (t *runTags) digest() [32]byte { return t.sum }
