package uplink

import (
	"slices"

	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// Templates (node.templates). The devices that share a tag-map file are
// instances of one Sparkplug Template: its definition is a metric of the
// NBIRTH named after the template; each device's DBIRTH carries one
// instance metric of that name with every member, and its DDATA the
// members that changed. A host (Ignition's MQTT Engine: a UDT) then makes
// one type for fifty machines.
//
// Definitions live only in the NBIRTH, so when the definitions the device
// set needs differ from those published (a reload changed a shared tag
// map, a PLC changed a member's type), the node is re-born, same bdSeq.
// Until then, a device that does not match its published definition is
// published with plain metrics: every message stays valid Sparkplug.

// tmplDef is a template definition: the members' names, units and
// descriptions (from the tags) and their types.
type tmplDef struct {
	name  string
	tags  []drivers.Tag
	types []drivers.Type
}

// fits reports whether a device with these tags and types is an instance
// of d.
func (d *tmplDef) fits(tags []drivers.Tag, types []drivers.Type) bool {
	if len(tags) != len(d.tags) || !slices.Equal(types, d.types) {
		return false
	}
	for i := range tags {
		a, b := &tags[i], &d.tags[i]
		if a.Name != b.Name || a.Unit() != b.Unit() || a.Description() != b.Description() {
			return false
		}
	}
	return true
}

// wantDefs returns the definitions the device set needs: per template,
// those of its first device in configuration order whose types are all
// known (an OPC UA device that never connected may not know them yet; its
// template waits, and its devices are plain, until one does).
func (s *session) wantDefs() []*tmplDef {
	if !s.cfg.Node.Templates {
		return nil
	}
	var defs []*tmplDef
	for _, ds := range s.order {
		name := ds.dev.Template()
		if name == "" || slices.ContainsFunc(defs, func(d *tmplDef) bool { return d.name == name }) {
			continue
		}
		_, types := ds.dev.Schema()
		if slices.Contains(types, drivers.TypeInvalid) {
			continue
		}
		defs = append(defs, &tmplDef{name: name, tags: ds.dev.Tags(), types: types})
	}
	slices.SortFunc(defs, func(a, b *tmplDef) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return defs
}

// sameDefs reports whether two definition lists are equal.
func sameDefs(a, b []*tmplDef) bool {
	return slices.EqualFunc(a, b, func(x, y *tmplDef) bool { return x.name == y.name && x.fits(y.tags, y.types) })
}

// checkDefs notes that the node must be re-born when the definitions the
// device set needs are no longer those of the NBIRTH.
func (s *session) checkDefs() {
	if s.cfg.Node.Templates && !s.defsStale && !sameDefs(s.wantDefs(), s.defs) {
		s.defsStale = true
	}
}

// defOf returns the definition a device is published as an instance of
// now, or nil for plain metrics.
func (s *session) defOf(ds *devState) *tmplDef {
	name := ds.dev.Template()
	if name == "" {
		return nil
	}
	for _, d := range s.defs {
		if d.name == name {
			if d.fits(ds.dev.Tags(), ds.types) {
				return d
			}
			break
		}
	}
	return nil
}

// defMetrics returns the NBIRTH's definition metrics, aliased from alias.
func (s *session) defMetrics(ts uint64, alias uint64) []sparkplug.Metric {
	ms := make([]sparkplug.Metric, 0, len(s.defs))
	for i, d := range s.defs {
		t := sparkplug.Template{IsDefinition: true}
		for j := range d.tags {
			tag := &d.tags[j]
			m := sparkplug.Metric{Name: tag.Name, Type: spType(d.types[j]), Null: true}
			m.Properties = tagProperties(tag, nil)
			t.Metrics = append(t.Metrics, m)
		}
		m := sparkplug.Metric{Name: d.name, Timestamp: ts, Type: sparkplug.TypeTemplate, Bytes: sparkplug.AppendTemplate(nil, &t)}
		if s.cfg.Node.UseAliases() {
			m.Alias, m.HasAlias = alias+uint64(i), true
		}
		ms = append(ms, m)
	}
	return ms
}

// tagProperties appends a tag's unit and description as metric properties.
func tagProperties(tag *drivers.Tag, ps []sparkplug.Property) []sparkplug.Property {
	if u := tag.Unit(); u != "" {
		ps = append(ps, sparkplug.Property{Key: "engUnit", Type: sparkplug.TypeString, Str: u})
	}
	if d := tag.Description(); d != "" {
		ps = append(ps, sparkplug.Property{Key: "Documentation", Type: sparkplug.TypeString, Str: d})
	}
	return ps
}

// instance wraps member metrics (named, as s.metric builds them) into
// one instance metric of ds's template.
func (s *session) instance(ds *devState, members []sparkplug.Metric, ts uint64) sparkplug.Metric {
	t := sparkplug.Template{Ref: ds.tmpl.name, Metrics: members}
	m := sparkplug.Metric{Name: ds.tmpl.name, Timestamp: ts, Type: sparkplug.TypeTemplate,
		Bytes: sparkplug.AppendTemplate(nil, &t)}
	if s.cfg.Node.UseAliases() {
		m.Alias, m.HasAlias = ds.alias, true
	}
	return m
}

// instances turns a device's pending DDATA members into instance
// metrics: one per run of members with distinct names and one historical
// flag (a member may change twice in one message, a template names it
// once).
func (s *session) instances(ds *devState, pend []sparkplug.Metric) []sparkplug.Metric {
	var out []sparkplug.Metric
	start := 0
	seen := map[string]bool{}
	emit := func(end int) {
		if end == start {
			return
		}
		run := pend[start:end]
		ts := uint64(0)
		for i := range run {
			ts = max(ts, run[i].Timestamp)
		}
		m := s.instance(ds, run, ts)
		m.Historical = run[0].Historical
		out = append(out, m)
		start = end
		clear(seen)
	}
	for i := range pend {
		if seen[pend[i].Name] || i > start && pend[i].Historical != pend[start].Historical {
			emit(i)
		}
		seen[pend[i].Name] = true
	}
	emit(len(pend))
	return out
}
