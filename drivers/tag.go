package drivers

import (
	"fmt"
	"strings"
)

// Tag holds the keys every driver's tag has in common. Drivers embed it
// inline in their own tag struct (`yaml:",inline"`) next to their addressing
// keys, and fill Type after decoding.
type Tag struct {
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
}

// Scaled reports whether the tag has a scale or offset.
func (t *Tag) Scaled() bool { return t.Scale != nil || t.Offset != nil }

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
