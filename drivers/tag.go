package drivers

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unsafe"
)

// TagConfig holds the keys every driver's tag has in common, as the
// configuration writes them. Drivers embed it inline in their own tag
// struct (`yaml:",inline"`) next to their addressing keys, and turn it into
// a Tag with a TagBuilder once validated.
type TagConfig struct {
	// Name is the Sparkplug metric name; '/' separates folders.
	Name string `yaml:"name"`
	// Scale and Offset turn the raw value into engineering units:
	// value = raw*Scale + Offset. A scaled tag is published as Double.
	Scale  *float64 `yaml:"scale"`
	Offset *float64 `yaml:"offset"`
	// Unit is an engineering unit, published as a metric property.
	Unit string `yaml:"unit"`
	// Description is free text, published as a metric property.
	Description string `yaml:"description"`
	// Deadband suppresses numeric changes smaller than this (absolute, in
	// engineering units). Zero reports every change.
	Deadband float64 `yaml:"deadband"`
	// Type is the value type the driver decodes into, e.g. "float32".
	Type Type `yaml:"type"`
	// Writable allows Sparkplug DCMD writes to this tag.
	Writable bool `yaml:"writable"`
	// Min and Max bound what a DCMD may write to a writable numeric tag,
	// in engineering units (after scale and offset): a write outside them
	// is refused and never reaches the PLC. Either may be left out.
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
}

// CheckLimits validates min and max, the one part of TagConfig every
// driver checks the same way: only on a writable tag of a numeric type
// (or of a type the driver learns from the PLC), numbers, and min <= max.
// Errors are KeyErrors naming the key.
func (c *TagConfig) CheckLimits() error {
	if c.Min == nil && c.Max == nil {
		return nil
	}
	key := "min"
	if c.Min == nil {
		key = "max"
	}
	switch {
	case !c.Writable:
		return KeyErr(key, errors.New("is only for writable tags (it bounds what a DCMD may write)"))
	case c.Type != TypeInvalid && !c.Type.IsNumeric():
		return KeyErr(key, fmt.Errorf("applies to numbers, not %v", c.Type))
	case c.Min != nil && math.IsNaN(*c.Min):
		return KeyErr("min", errors.New("is not a number"))
	case c.Max != nil && math.IsNaN(*c.Max):
		return KeyErr("max", errors.New("is not a number"))
	case c.Min != nil && c.Max != nil && *c.Min > *c.Max:
		return KeyErr("min", fmt.Errorf("%v is above max %v", *c.Min, *c.Max))
	}
	return nil
}

// Tag is a configured tag as the agent holds it, one per tag for the life
// of the process: 32 bytes. Scale, offset, deadband, write limits, unit
// and description (rarely set, and then mostly the same for many tags) sit behind one
// pointer shared by every tag that has the same; names share the
// TagBuilder's memory.
type Tag struct {
	Name     string
	meta     *tagMeta // nil: none of them set
	Type     Type
	Writable bool
}

type tagMeta struct {
	scale, offset, deadband             float64
	min, max                            float64
	hasScale, hasOffset, hasMin, hasMax bool
	unit, description                   string
}

// Scale returns the tag's scale, if it has one.
func (t *Tag) Scale() (float64, bool) {
	if t.meta == nil {
		return 0, false
	}
	return t.meta.scale, t.meta.hasScale
}

// Offset returns the tag's offset, if it has one.
func (t *Tag) Offset() (float64, bool) {
	if t.meta == nil {
		return 0, false
	}
	return t.meta.offset, t.meta.hasOffset
}

// Min returns the lowest value a write may set, in engineering units, if
// the tag has one.
func (t *Tag) Min() (float64, bool) {
	if t.meta == nil {
		return 0, false
	}
	return t.meta.min, t.meta.hasMin
}

// Max returns the highest value a write may set, in engineering units, if
// the tag has one.
func (t *Tag) Max() (float64, bool) {
	if t.meta == nil {
		return 0, false
	}
	return t.meta.max, t.meta.hasMax
}

// Unit is the engineering unit, or "".
func (t *Tag) Unit() string {
	if t.meta == nil {
		return ""
	}
	return t.meta.unit
}

// Deadband is the smallest change reported, in engineering units (0:
// every change).
func (t *Tag) Deadband() float64 {
	if t.meta == nil {
		return 0
	}
	return t.meta.deadband
}

// Description is the tag's free text, or "".
func (t *Tag) Description() string {
	if t.meta == nil {
		return ""
	}
	return t.meta.description
}

// Scaled reports whether the tag has a scale or offset.
func (t *Tag) Scaled() bool { return t.meta != nil && (t.meta.hasScale || t.meta.hasOffset) }

// TagBuilder makes Tags from TagConfigs, sharing their scale, offset,
// deadband, limits, unit and description among tags that have the same, and
// copying their names into blocks of memory it keeps (a name is then its
// bytes, not an allocation of its own). The zero value is ready to use.
type TagBuilder struct {
	metas map[tagMeta]*tagMeta
	names []byte // the block being filled
}

// nameBlock is the size of the blocks names are copied into.
const nameBlock = 4 << 10

// name returns a copy of s in the builder's blocks.
func (b *TagBuilder) name(s string) string {
	if len(s) == 0 || len(s) > nameBlock/4 {
		return strings.Clone(s)
	}
	if cap(b.names)-len(b.names) < len(s) {
		b.names = make([]byte, 0, nameBlock)
	}
	start := len(b.names)
	b.names = append(b.names, s...)
	return unsafe.String(&b.names[start], len(s))
}

// Tag returns the Tag a configuration describes.
func (b *TagBuilder) Tag(c *TagConfig) Tag {
	t := Tag{Name: b.name(c.Name), Type: c.Type, Writable: c.Writable}
	m := tagMeta{unit: c.Unit, description: c.Description, deadband: c.Deadband}
	if c.Scale != nil {
		m.scale, m.hasScale = *c.Scale, true
	}
	if c.Offset != nil {
		m.offset, m.hasOffset = *c.Offset, true
	}
	if c.Min != nil {
		m.min, m.hasMin = *c.Min, true
	}
	if c.Max != nil {
		m.max, m.hasMax = *c.Max, true
	}
	if m == (tagMeta{}) {
		return t
	}
	if b.metas == nil {
		b.metas = map[tagMeta]*tagMeta{}
	}
	p, ok := b.metas[m]
	if !ok {
		p = &m
		b.metas[m] = p
	}
	t.meta = p
	return t
}

// CheckName validates a tag name as a Sparkplug metric name.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("tag name is empty")
	case strings.ContainsAny(name, "+#"):
		return fmt.Errorf("tag name %q contains + or #", name)
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//"):
		return fmt.Errorf("tag name %q has an empty folder", name)
	case strings.HasPrefix(name, "Node Control/") || strings.HasPrefix(name, "Device Control/") || name == "bdSeq":
		return fmt.Errorf("tag name %q is reserved by Sparkplug", name)
	}
	return nil
}
