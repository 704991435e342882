package sparkplug

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/edgeagent/edgeagent/sparkplug/sparkplugpb"
)

// Template is a Sparkplug Template (a UDT): a definition, published once as
// an NBIRTH metric named after the template, or an instance of one, carried
// by a TypeTemplate metric whose Bytes is AppendTemplate's output.
type Template struct {
	Version string // optional, written when non-empty
	// Ref is template_ref, the name of the definition's NBIRTH metric; it is
	// "" for a definition, required for an instance.
	Ref          string
	IsDefinition bool
	// Metrics are the members. A definition lists every member (with its
	// default value); an instance in a BIRTH lists all of them, in DATA only
	// the changed ones. A member that is itself a template is a TypeTemplate
	// metric carrying an instance's serialised bytes.
	Metrics    []Metric
	Parameters []Parameter
}

// Parameter is a template parameter: its default value in a definition, the
// instance's value in an instance. Only scalar types (Int8..Text, UUID)
// exist; the value fields are used as in Property.
type Parameter struct {
	Name  string
	Type  DataType
	Int   uint64  // integer types as 64-bit two's complement, DateTime ms
	Float float64 // Float and Double
	Bool  bool    // Boolean
	Str   string  // String, Text, UUID
	// Null means no value: a definition parameter without a default, or an
	// instance taking the definition's. Parameters have no is_null field;
	// the value is simply absent.
	Null bool
}

// AppendTemplate appends the serialised Payload.Template message for t, to be
// carried in the Bytes of a TypeTemplate metric. Like the payload encoders it
// writes the wire format directly and allocates nothing beyond growing dst.
// It writes what it is given; Validate checks the spec's rules. Fields:
// version when non-empty; each member with its name (never an alias: hosts
// keep no alias table for members), timestamp when non-zero, datatype (in
// every message type, DATA included: a host has no BIRTH to look a member's
// type up in) unless TypeUnknown, the is_historical/is_transient/is_null
// flags, properties and value as for any metric; each parameter with name,
// type and, unless Null, its value in the field the type selects;
// template_ref when non-empty; is_definition always, false included.
func AppendTemplate(dst []byte, t *Template) []byte {
	if t.Version != "" {
		dst = protowire.AppendTag(dst, fTemplateVersion, protowire.BytesType)
		dst = protowire.AppendString(dst, t.Version)
	}
	for i := range t.Metrics {
		dst = appendMetric(dst, &t.Metrics[i], modeMember) // fTemplateMetrics
	}
	for i := range t.Parameters {
		p := &t.Parameters[i]
		var start int
		dst, start = openMessage(dst, fTemplateParameters)
		dst = protowire.AppendTag(dst, fParamName, protowire.BytesType)
		dst = protowire.AppendString(dst, p.Name)
		dst = appendVarintField(dst, fParamType, uint64(p.Type))
		if k := p.Type.kind(); !p.Null && k >= KindInt && k <= KindString {
			n := p.Int
			if k == KindBoolean {
				n = b2u(p.Bool)
			}
			dst = appendValue(dst, fParamValue0, k, p.Type, n, p.Float, p.Str, nil)
		}
		dst = closeMessage(dst, start)
	}
	if t.Ref != "" {
		dst = protowire.AppendTag(dst, fTemplateRef, protowire.BytesType)
		dst = protowire.AppendString(dst, t.Ref)
	}
	return appendVarintField(dst, fTemplateIsDef, b2u(t.IsDefinition))
}

// DecodeTemplate parses the Bytes of a TypeTemplate metric (Kind
// KindTemplate when the payload had no datatype). Members are decoded as
// Decode decodes metrics: those with a datatype (AppendTemplate writes it
// for every member with a Type) are resolved; those without keep their raw
// value and Kind. A member that is itself a template keeps its serialised bytes in
// Bytes, for another DecodeTemplate. An absent is_definition reads as false.
// A parameter must have a scalar type and a value that fits it (read from
// either integer field, as for properties); one without a value decodes as
// Null. DecodeTemplate does not check the rules Validate checks.
func DecodeTemplate(b []byte) (*Template, error) {
	var pt sparkplugpb.Payload_Template
	if err := proto.Unmarshal(b, &pt); err != nil {
		return nil, fmt.Errorf("decoding sparkplug template: %w", err)
	}
	t := &Template{Version: pt.GetVersion(), Ref: pt.GetTemplateRef(), IsDefinition: pt.GetIsDefinition()}
	if len(pt.Metrics) > 0 {
		t.Metrics = make([]Metric, len(pt.Metrics))
	}
	for i, pm := range pt.Metrics {
		if err := decodeMetric(&t.Metrics[i], pm); err != nil {
			return nil, fmt.Errorf("decoding sparkplug template %q: member %d (%s): %w", t.Ref, i, metricID(pm), err)
		}
	}
	if len(pt.Parameters) > 0 {
		t.Parameters = make([]Parameter, len(pt.Parameters))
	}
	for i, pp := range pt.Parameters {
		if err := decodeParameter(&t.Parameters[i], pp); err != nil {
			return nil, fmt.Errorf("decoding sparkplug template %q: parameter %d (%q): %w", t.Ref, i, pp.GetName(), err)
		}
	}
	return t, nil
}

func decodeParameter(p *Parameter, pp *sparkplugpb.Payload_Template_Parameter) error {
	p.Name, p.Type = pp.GetName(), DataType(pp.GetType())
	if pp.Type == nil {
		return fmt.Errorf("%w: no type", ErrTypeMismatch)
	}
	if k := p.Type.kind(); k < KindInt || k > KindString {
		return fmt.Errorf("%w: %s parameters are not supported", ErrTypeMismatch, p.Type)
	}
	var (
		k ValueKind
		n uint64
		f float64
	)
	switch v := pp.Value.(type) {
	case *sparkplugpb.Payload_Template_Parameter_IntValue:
		k, n = KindInt, uint64(v.IntValue)
	case *sparkplugpb.Payload_Template_Parameter_LongValue:
		k, n = KindLong, v.LongValue
	case *sparkplugpb.Payload_Template_Parameter_FloatValue:
		k, f = KindFloat, float64(v.FloatValue)
	case *sparkplugpb.Payload_Template_Parameter_DoubleValue:
		k, f = KindDouble, v.DoubleValue
	case *sparkplugpb.Payload_Template_Parameter_BooleanValue:
		k, p.Bool = KindBoolean, v.BooleanValue
	case *sparkplugpb.Payload_Template_Parameter_StringValue:
		k, p.Str = KindString, v.StringValue
	case nil:
		p.Null = true
		return nil
	default:
		return fmt.Errorf("%w: parameter extensions are not supported", ErrTypeMismatch)
	}
	var err error
	p.Int, p.Float, err = fit(p.Type, k, n, f)
	return err
}

// Validate checks t against Sparkplug 3.0 ch.6 §Template, failing with
// ErrInvalidTemplate:
//   - a definition has no Ref, an instance has one; Version and Ref are UTF-8;
//   - every member has a non-empty UTF-8 name unique within t, no alias, and
//     a metric datatype (not TypeUnknown: hosts read members by their own
//     datatype);
//   - a TypeTemplate member that is not Null decodes and is a valid
//     instance; templates nest at most 32 levels deep;
//   - every parameter has a non-empty UTF-8 name unique among the parameters
//     and a scalar type.
//
// What only the definition can tell (that an instance's members and
// parameters exist in it, that a BIRTH instance has all of them) and where a
// template may go (definitions in the NBIRTH only) is the caller's to check.
func (t *Template) Validate() error {
	if err := t.validate(0); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTemplate, err)
	}
	return nil
}

// maxTemplateDepth bounds the nesting Validate accepts and ValueString
// prints. Each level is decoded from bytes again, so the bound also keeps
// hostile input (thousands of levels in a few kilobytes) linear.
const maxTemplateDepth = 32

func (t *Template) validate(depth int) error {
	switch {
	case t.IsDefinition && t.Ref != "":
		return fmt.Errorf("definition has template_ref %q; a definition must omit it", t.Ref)
	case !t.IsDefinition && t.Ref == "":
		return fmt.Errorf("instance has no template_ref")
	case !utf8.ValidString(t.Ref):
		return fmt.Errorf("template_ref %q is not UTF-8", t.Ref)
	case !utf8.ValidString(t.Version):
		return fmt.Errorf("version %q is not UTF-8", t.Version)
	}
	seen := make(map[string]bool, len(t.Metrics))
	for i := range t.Metrics {
		m := &t.Metrics[i]
		if err := validateMember(m, seen, depth); err != nil {
			return fmt.Errorf("%s member %d (%q): %w", t.what(), i, m.Name, err)
		}
	}
	clear(seen)
	for i := range t.Parameters {
		p := &t.Parameters[i]
		var err error
		switch k := p.Type.kind(); {
		case p.Name == "":
			err = errors.New("no name")
		case !utf8.ValidString(p.Name):
			err = errors.New("name is not UTF-8")
		case seen[p.Name]:
			err = errors.New("duplicate name")
		case k < KindInt || k > KindString:
			err = fmt.Errorf("%s is not a parameter datatype", p.Type)
		}
		if err != nil {
			return fmt.Errorf("%s parameter %d (%q): %w", t.what(), i, p.Name, err)
		}
		seen[p.Name] = true
	}
	return nil
}

func validateMember(m *Metric, seen map[string]bool, depth int) error {
	switch {
	case m.Name == "":
		return errors.New("no name")
	case !utf8.ValidString(m.Name):
		return errors.New("name is not UTF-8")
	case seen[m.Name]:
		return errors.New("duplicate name")
	case m.HasAlias:
		return errors.New("members have no alias")
	case m.Type.kind() == KindNone:
		return fmt.Errorf("%s is not a member datatype", m.Type)
	}
	seen[m.Name] = true
	if m.Type != TypeTemplate || m.Null {
		return nil
	}
	if depth+1 >= maxTemplateDepth {
		return fmt.Errorf("templates nested more than %d deep", maxTemplateDepth)
	}
	nested, err := DecodeTemplate(m.Bytes)
	if err != nil {
		return err
	}
	if nested.IsDefinition {
		return errors.New("a nested template must be an instance, not a definition")
	}
	return nested.validate(depth + 1)
}

// what names t in errors: "definition" or the instance's template_ref.
func (t *Template) what() string {
	if t.IsDefinition {
		return "definition"
	}
	return fmt.Sprintf("instance of %q", t.Ref)
}

// templateString formats serialised template bytes on one line:
// Ref(param=value, ...){member=value, ...}, with "definition" for the Ref of
// a definition and the parameters' parentheses only when there are any.
// Nested templates nest, down to maxTemplateDepth levels; deeper ones print
// as {…}. Bytes that do not decode print as hex.
func templateString(b []byte, depth int) string {
	if depth >= maxTemplateDepth {
		return "{…}"
	}
	t, err := DecodeTemplate(b)
	if err != nil {
		return "0x" + hex.EncodeToString(b)
	}
	var s strings.Builder
	if t.IsDefinition {
		s.WriteString("definition")
	} else {
		s.WriteString(t.Ref)
	}
	if len(t.Parameters) > 0 {
		s.WriteByte('(')
		for i := range t.Parameters {
			p := &t.Parameters[i]
			if i > 0 {
				s.WriteString(", ")
			}
			v := Metric{Type: p.Type, Int: p.Int, Float: p.Float, Str: p.Str, Null: p.Null}
			if p.Type == TypeBoolean {
				v.Int = b2u(p.Bool)
			}
			s.WriteString(p.Name)
			s.WriteByte('=')
			s.WriteString(v.ValueString())
		}
		s.WriteByte(')')
	}
	s.WriteByte('{')
	for i := range t.Metrics {
		if i > 0 {
			s.WriteString(", ")
		}
		m := &t.Metrics[i]
		s.WriteString(m.Name)
		s.WriteByte('=')
		if !m.Null && (m.Type == TypeTemplate || m.Type == TypeUnknown && m.Kind == KindTemplate) {
			s.WriteString(templateString(m.Bytes, depth+1))
		} else {
			s.WriteString(m.ValueString())
		}
	}
	s.WriteByte('}')
	return s.String()
}
