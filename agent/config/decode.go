package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v4"
)

// decoder turns YAML nodes into configuration values strictly: an unknown
// key, a list where a mapping belongs or a word where a number belongs is
// an error at the node's file:line:col, worded for the person who wrote
// the file (never a Go type). It records every error and goes on, so one
// pass reports all of them.
//
// Targets are structs with `yaml:"name"` field tags (",inline" embeds a
// struct's keys), pointers (nil when the key is absent or null), slices,
// strings, bools, integers, floats, *yaml.Node (kept raw) and any type
// implementing encoding.TextUnmarshaler (given the scalar's text; its
// error message is shown as the reason).
type decoder struct {
	file    string
	errs    *Errors
	failed  map[string]bool // key paths with an error, so checks that follow decoding skip them
	lineOff int             // added to node lines: the nodes were parsed from a later part of the file
}

func newDecoder(file string, errs *Errors) *decoder {
	return &decoder{file: file, errs: errs, failed: map[string]bool{}}
}

// errAt records an error at node n.
func (d *decoder) errAt(n *yaml.Node, key, format string, args ...any) {
	d.failed[key] = true
	e := &Error{File: d.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line+d.lineOff, n.Column
	}
	*d.errs = append(*d.errs, e)
}

// decode decodes n into v (a pointer) and reports whether it did so
// without an error.
func (d *decoder) decode(key string, n *yaml.Node, v any) bool {
	before := len(*d.errs)
	d.value(key, n, reflect.ValueOf(v).Elem())
	return len(*d.errs) == before
}

var (
	nodeType      = reflect.TypeFor[*yaml.Node]()
	textUnmarshal = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return resolve(n.Content[0])
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// what names a node's kind as the user sees it.
func what(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func (d *decoder) value(key string, n *yaml.Node, v reflect.Value) {
	n = resolve(n)
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(n))
		return
	}
	if isNull(n) {
		return // absent or empty: the zero value, defaults apply later
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(key, n, v.Elem())
		return
	}
	if reflect.PointerTo(v.Type()).Implements(textUnmarshal) {
		if n.Kind != yaml.ScalarNode {
			d.errAt(n, key, "want a single value, got %s", what(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.errAt(n, key, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(key, n, v, nil)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errAt(n, key, "want a list, got %s", what(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, el := range n.Content {
			d.value(fmt.Sprintf("%s[%d]", key, i), el, s.Index(i))
		}
		v.Set(s)
	default:
		if n.Kind != yaml.ScalarNode {
			d.errAt(n, key, "want a single value, got %s", what(n))
			return
		}
		d.scalar(key, n, v)
	}
}

func (d *decoder) scalar(key string, n *yaml.Node, v reflect.Value) {
	s := n.Value
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		switch strings.ToLower(s) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.errAt(n, key, "%q is not true or false", s)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.errAt(n, key, "%q is not a whole number", s)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || v.OverflowUint(u) {
			d.errAt(n, key, "%q is not a whole number of 0 or more", s)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := parseFloat(s)
		if err != nil {
			d.errAt(n, key, "%q is not a number", s)
			return
		}
		if v.Kind() == reflect.Float32 && math.Abs(f) > math.MaxFloat32 && !math.IsInf(f, 0) {
			d.errAt(n, key, "%q is too large", s)
			return
		}
		v.SetFloat(f)
	default:
		// A programming error: the model holds a kind this decoder
		// does not know.
		panic(fmt.Sprintf("config: cannot decode into %s", v.Type()))
	}
}

// parseFloat reads a YAML 1.2 float, .inf and .nan included.
func parseFloat(s string) (float64, error) {
	switch strings.ToLower(s) {
	case ".inf", "+.inf":
		return math.Inf(1), nil
	case "-.inf":
		return math.Inf(-1), nil
	case ".nan":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
}

// pair is one key and value of a mapping.
type pair struct{ k, v *yaml.Node }

// pairs returns a mapping's entries with YAML merge keys (<<) applied:
// explicit keys first, then merged keys not already present, earlier
// merged mappings winning. Keys given twice are reported.
func (d *decoder) pairs(key string, n *yaml.Node) []pair {
	out := make([]pair, 0, len(n.Content)/2)
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errAt(k, key, "a key must be a single word, got %s", what(k))
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.errAt(k, join(key, k.Value), "given twice (first at line %d)", prev.Line+d.lineOff)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k, v})
	}
	for _, m := range merges {
		m = resolve(m)
		var from []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			from = []*yaml.Node{m}
		case yaml.SequenceNode:
			for _, el := range m.Content {
				from = append(from, resolve(el))
			}
		}
		for _, src := range from {
			if src == nil || src.Kind != yaml.MappingNode {
				d.errAt(m, key, "<< must merge a mapping or a list of mappings")
				continue
			}
			for _, p := range d.pairs(key, src) {
				if _, ok := seen[p.k.Value]; !ok {
					seen[p.k.Value] = p.k
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// join appends a mapping key to a key path.
func join(key, name string) string {
	if key == "" {
		return name
	}
	return key + "." + name
}

// structure decodes a mapping into struct v. Keys the struct does not
// have are errors, unless rest is given: then they are collected there.
func (d *decoder) structure(key string, n *yaml.Node, v reflect.Value, rest *[]pair) {
	if n.Kind != yaml.MappingNode {
		d.errAt(n, key, "want a mapping (key: value), got %s", what(n))
		return
	}
	fields := fieldsOf(v.Type())
	for _, p := range d.pairs(key, n) {
		f, ok := fields.byName[p.k.Value]
		if !ok {
			if rest != nil {
				*rest = append(*rest, p)
				continue
			}
			d.errAt(p.k, key, "unknown key %q%s", p.k.Value, suggest(p.k.Value, fields.names))
			continue
		}
		d.value(join(key, p.k.Value), p.v, v.FieldByIndex(f))
	}
}

type structFields struct {
	byName map[string][]int // field index path, through inline structs
	names  []string
}

var fieldCache sync.Map // reflect.Type → *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	fs := &structFields{byName: map[string][]int{}}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("yaml")
			if tag == "-" || (!sf.IsExported() && !sf.Anonymous) {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			path := append(append([]int(nil), index...), i)
			if opts == "inline" {
				walk(sf.Type, path)
				continue
			}
			if name == "" {
				continue // only tagged fields come from YAML
			}
			fs.byName[name] = path
			fs.names = append(fs.names, name)
		}
	}
	walk(t, nil)
	fieldCache.Store(t, fs)
	return fs
}

// suggest names the known key closest to a misspelt one, if one is close.
func suggest(got string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if dd := distance(got, k); dd < bestD {
			best, bestD = k, dd
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the edit distance between a and b (insert, delete,
// substitute, swap adjacent).
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
