package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/edgeagent/edgeagent/drivers"
)

// Schema names what a version 3 record's indexes and values are: the
// device and, per position, the tag's name and its published type.
type Schema struct {
	Device string
	Names  []string
	Types  []drivers.Type
}

const schemaVersion = 1

// Encode returns the schema's stored form.
func (s *Schema) Encode() []byte {
	n := 16 + len(s.Device)
	for _, name := range s.Names {
		n += 2 + len(name)
	}
	b := make([]byte, 0, n)
	b = append(b, schemaVersion)
	b = binary.AppendUvarint(b, uint64(len(s.Device)))
	b = append(b, s.Device...)
	b = binary.AppendUvarint(b, uint64(len(s.Names)))
	for i, name := range s.Names {
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
		b = append(b, byte(s.Types[i]))
	}
	return b
}

// SchemaID is the id of an encoded schema: a digest of its content, so
// the same device and tags get the same id in every process.
func SchemaID(encoded []byte) uint64 {
	sum := sha256.Sum256(encoded)
	return binary.LittleEndian.Uint64(sum[:8])
}

// DecodeSchema parses a stored schema.
func DecodeSchema(b []byte) (*Schema, error) {
	d := decoder{b: b}
	if v := d.byte(); v != schemaVersion {
		if d.err != nil {
			return nil, d.err
		}
		return nil, fmt.Errorf("schema version %d is not %d", v, schemaVersion)
	}
	s := &Schema{Device: string(d.bytes())}
	n := d.uvarint()
	if d.err != nil {
		return nil, d.err
	}
	if n > uint64(len(b)) {
		return nil, fmt.Errorf("schema claims %d tags in %d bytes", n, len(b))
	}
	s.Names = make([]string, 0, n)
	s.Types = make([]drivers.Type, 0, n)
	for range n {
		s.Names = append(s.Names, string(d.bytes()))
		s.Types = append(s.Types, drivers.Type(d.byte()))
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes after a schema of %d tags", len(d.b), n)
	}
	return s, nil
}

// Encoder writes version 3 records. It keeps the running state of one
// record (previous index and time); one per writer, reused.
type Encoder struct {
	types    []drivers.Type
	prevIdx  int32
	prevTime int64
	n        int
}

// Begin starts a record of n samples of a schema (whose types it takes)
// and returns dst extended by the header; n calls of Add must follow.
func (e *Encoder) Begin(dst []byte, kind Kind, schema uint64, types []drivers.Type, at int64, n int) []byte {
	e.types, e.prevIdx, e.prevTime, e.n = types, -1, at, n
	dst = append(dst, Version, byte(kind))
	dst = binary.LittleEndian.AppendUint64(dst, schema)
	dst = binary.AppendVarint(dst, at)
	return binary.AppendUvarint(dst, uint64(n))
}

// Add appends one sample; p.Value must have the schema's type for p.Tag.
func (e *Encoder) Add(dst []byte, p *Point) []byte {
	head := zigzag(int64(p.Tag)-int64(e.prevIdx)-1) << 2
	if p.Time != e.prevTime {
		head |= 2
	}
	if p.Quality != drivers.QualityGood {
		head |= 1
	}
	dst = binary.AppendUvarint(dst, head)
	if p.Time != e.prevTime {
		dst = binary.AppendVarint(dst, p.Time-e.prevTime)
	}
	if p.Quality != drivers.QualityGood {
		dst = append(dst, byte(p.Quality))
	}
	e.prevIdx, e.prevTime = p.Tag, p.Time
	if p.Quality == drivers.QualityBad {
		return dst
	}
	return appendValueV3(dst, e.types[p.Tag], p.Value)
}

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func appendValueV3(dst []byte, t drivers.Type, v drivers.Value) []byte {
	switch {
	case t == drivers.Bool:
		if v.Bool() {
			return append(dst, 1)
		}
		return append(dst, 0)
	case t.IsUnsigned():
		return binary.AppendUvarint(dst, v.Uint())
	case t.IsSigned() || t == drivers.DateTime:
		return binary.AppendVarint(dst, v.Int())
	case t == drivers.Float32:
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(v.Float())))
	case t == drivers.Float64:
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Float()))
	case t == drivers.String || t == drivers.Bytes || t.IsArray():
		// An array is its Sparkplug encoding (drivers.Value keeps it so).
		dst = binary.AppendUvarint(dst, uint64(len(v.Data())))
		return append(dst, v.Data()...)
	}
	return dst
}

var errNoSchemas = errors.New("a version 3 record needs its schema")

func decodeV3(b []byte, r *Record, schemas Schemas) error {
	d := decoder{b: b[1:]}
	r.Version, r.Device = Version, nil
	r.Kind = Kind(d.byte())
	if r.Kind < Data || r.Kind > History {
		return fmt.Errorf("unknown record kind %d", byte(r.Kind))
	}
	r.Schema = d.u64()
	r.Time = d.varint()
	n := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if n > uint64(len(b)) { // every sample takes at least one byte
		return fmt.Errorf("record claims %d samples in %d bytes", n, len(b))
	}
	r.Samples = r.Samples[:0]
	if n == 0 {
		if len(d.b) != 0 {
			return fmt.Errorf("%d trailing bytes after 0 samples", len(d.b))
		}
		return nil
	}
	if schemas == nil {
		return errNoSchemas
	}
	types, ok := schemas.Types(r.Schema)
	if !ok {
		return fmt.Errorf("%w (%016x)", ErrUnknownSchema, r.Schema)
	}
	prevIdx, prevTime := int64(-1), r.Time
	for i := uint64(0); i < n; i++ {
		head := d.uvarint()
		idx := prevIdx + 1 + unzigzag(head>>2)
		if d.err == nil && (idx < 0 || idx >= int64(len(types))) {
			return fmt.Errorf("sample %d: tag %d is not in a schema of %d tags", i, idx, len(types))
		}
		p := Sample{Index: int32(idx), Time: prevTime}
		if head&2 != 0 {
			p.Time += d.varint()
		}
		if head&1 != 0 {
			p.Quality = drivers.Quality(d.byte())
			if p.Quality == drivers.QualityGood {
				return fmt.Errorf("sample %d: quality flag set for a good sample", i)
			}
		}
		if d.err != nil {
			return fmt.Errorf("sample %d: %w", i, d.err)
		}
		t := types[idx]
		if p.Quality == drivers.QualityBad {
			p.Value = drivers.ZeroValue(t)
		} else {
			if p.Value, ok = d.valueV3(t); !ok {
				return fmt.Errorf("sample %d: the schema's type %d is unknown", i, byte(t))
			}
			if d.err != nil {
				return fmt.Errorf("sample %d: %w", i, d.err)
			}
		}
		prevIdx, prevTime = idx, p.Time
		r.Samples = append(r.Samples, p)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d trailing bytes after %d samples", len(d.b), n)
	}
	return nil
}

func (d *decoder) valueV3(t drivers.Type) (drivers.Value, bool) {
	switch {
	case t == drivers.Bool:
		return drivers.BoolValue(d.byte() != 0), true
	case t == drivers.Bytes:
		// Copied: the record's memory is reused for the next one.
		return drivers.BytesValue(bytes.Clone(d.bytes())), true
	case t.IsArray():
		b := d.bytes()
		if d.err != nil {
			return drivers.Value{}, true
		}
		v, err := drivers.PackedArray(t, bytes.Clone(b))
		if err != nil {
			d.err = fmt.Errorf("%s value: %w", t, err)
		}
		return v, true
	}
	return d.value(t)
}
