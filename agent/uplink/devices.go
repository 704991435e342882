package uplink

import (
	"github.com/edgeagent/edgeagent/agent/record"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// devState is what one session knows of one device.
type devState struct {
	dev      Device
	store    Store
	topics   devTopics
	alias    uint64 // the device's tag j has alias alias+j
	born     bool   // DBIRTH sent this session
	histBorn bool   // born only to carry history of an offline device
	online   bool
	tmpl     *tmplDef // the template its birth made it an instance of; nil: plain metrics
	lostAt   int64    // when it last went offline (Unix ms), as its records say; 0: not known
	// schema and types are what the device's birth declared (set by
	// adopt before each birth): records of other schemas are translated
	// to them.
	schema uint64
	types  []drivers.Type
	// table is the device's state at the session's mark (or a rebirth's):
	// what its birth carried. It is kept while history is replayed, to
	// birth an offline device from its last known state and to skip the
	// samples the birth already delivered, and dropped after: with
	// 100,000 tags it is 3 MB.
	table []record.Point
	pend  []sparkplug.Metric // DDATA being filled
	xlate map[uint64][]int32 // per schema of older records: its index → this device's, -1 if gone
}

type devTopics struct{ birth, death, data string }

// newDevState gives a device of this session its topics and a fresh block
// of aliases.
func (s *session) newDevState(d Device) *devState {
	g, e := s.cfg.Node.GroupID, s.cfg.Node.EdgeNodeID
	tp := func(t sparkplug.MessageType) string {
		return sparkplug.Topic{Group: g, Type: t, Node: e, Device: d.ID()}.String()
	}
	n := len(d.Tags())
	if s.nextAl == 0 {
		s.nextAl = firstDeviceAlias
	}
	ds := &devState{dev: d, store: s.u.store, topics: devTopics{tp(sparkplug.DBIRTH), tp(sparkplug.DDEATH), tp(sparkplug.DDATA)},
		alias: s.nextAl}
	s.nextAl += uint64(n)
	return ds
}

// renumber gives every device a block of aliases from the first device
// alias again. Only at an NBIRTH, after which hosts forget every alias of
// the node.
func (s *session) renumber() {
	s.nextAl = firstDeviceAlias + uint64(len(s.defs))
	for _, ds := range s.order {
		ds.alias = s.nextAl
		s.nextAl += uint64(len(ds.dev.Tags()))
	}
}

// switchDevices moves to the next device set handed over by a reload. A
// device whose Device is the same keeps everything; a removed one gets
// its DDEATH if it still has a birth; a changed or added one starts
// unborn and offline, with a fresh block of aliases, until its scanner
// reports it online.
func (s *session) switchDevices() {
	next := s.due[0].devs
	s.due = s.due[1:]
	s.u.devs = next
	s.flushAll()
	keep := make(map[string]*devState, len(next))
	order := make([]*devState, 0, len(next))
	for _, d := range next {
		ds, ok := s.devs[d.ID()]
		if !ok || ds.dev != d {
			if ok && ds.born {
				s.deviceDeath(ds)
				s.sent = true
			}
			ds = s.newDevState(d)
		}
		keep[d.ID()] = ds
		order = append(order, ds)
	}
	for id, ds := range s.devs {
		if _, ok := keep[id]; !ok && ds.born {
			s.deviceDeath(ds)
			s.sent = true
		}
	}
	s.devs, s.order = keep, order
	s.u.log.Info("devices reloaded", "devices", len(order))
	s.checkDefs()
}

// adopt takes the device's current schema and types for its next birth.
// If they differ from those of the birth it has now, the device is re-born
// (DDEATH now) with a fresh block of aliases: its types changed on the PLC,
// and no alias may name a metric of another type.
func (s *session) adopt(ds *devState) {
	id, types := ds.dev.Schema()
	if id == ds.schema && ds.types != nil {
		return
	}
	if ds.born {
		s.deviceDeath(ds)
		s.sent = true
	}
	if ds.types != nil {
		ds.alias = s.nextAl
		s.nextAl += uint64(len(types))
	}
	ds.schema, ds.types, ds.xlate = id, types, nil
	if ds.dev.Template() != "" {
		s.checkDefs()
	}
}

// births sends NBIRTH (seq 0) and a DBIRTH for every online device, from
// the tables (the devices' state at the mark).
func (s *session) births() {
	// pump always ends with the pending DDATA flushed, so this publishes
	// nothing; were it not, dropping it would let a receipt ack it unsent.
	s.flushAll()
	s.defs, s.defsStale = s.wantDefs(), false
	s.renumber()
	s.seq = 0
	ts := uint64(s.u.now().UnixMilli())
	s.publish(s.topics.birth, sparkplug.AppendBirth(nil, ts, 0, s.nodeBirthMetrics(ts)), 0)
	online := 0
	for _, ds := range s.order {
		ds.born, ds.histBorn = false, false
		if ds.online {
			s.adopt(ds)
			s.deviceBirth(ds)
			online++
		}
	}
	s.u.log.Info("births published", "bdSeq", s.bdSeq, "devices_online", online)
}

func (s *session) deviceBirth(ds *devState) {
	s.flush(ds)
	d := ds.dev
	tags := d.Tags()
	ts := uint64(s.u.now().UnixMilli())
	// Births are rare: their scratch is not kept (it is the size of the
	// device's tag list).
	ms := make([]sparkplug.Metric, 0, len(tags))
	table := ds.table
	if len(table) != len(tags) {
		table = make([]record.Point, len(tags)) // state unknown: nulls
	}
	for j := range tags {
		p := &table[j]
		q := p.Quality
		if ds.histBorn && q == drivers.QualityGood {
			// Born to carry the history of a device that is offline now:
			// its last values are not current.
			q = drivers.QualityStale
		}
		m := s.metric(ds, j, p.Value, p.Time, q, false)
		if p.Value.Type() == drivers.TypeInvalid {
			m.Null = true
			m.Timestamp = ts
		}
		m.Properties = tagProperties(&tags[j], m.Properties)
		ms = append(ms, m)
	}
	if ds.tmpl = s.defOf(ds); ds.tmpl != nil {
		ms = []sparkplug.Metric{s.instance(ds, ms, ts)}
	}
	s.seq++
	s.publish(ds.topics.birth, sparkplug.AppendBirth(nil, ts, uint64(s.seq), ms), 0)
	ds.born = true
}

// tagOf finds the device's tag of a decoded sample: by name in a version 2
// record; by the record's schema in version 3, through a translation
// table when the schema is not the device's current one. ok is false for a
// tag that no longer exists or changed its type.
func (ds *devState) tagOf(rec *record.Record, p *record.Sample, sch *record.Schema) (int, bool) {
	d := ds.dev
	if rec.Version == 2 {
		j, ok := d.TagIndexHint(p.Name, uint64(max(p.Index, 0)))
		return j, ok && p.Value.Type() == ds.types[j]
	}
	if rec.Schema == ds.schema {
		return int(p.Index), true
	}
	m, ok := ds.xlate[rec.Schema]
	if !ok {
		full, ok := ds.store.SchemaNames(rec.Schema)
		if !ok {
			return 0, false
		}
		sch = full
		m = make([]int32, len(sch.Names))
		for i, name := range sch.Names {
			m[i] = -1
			if j, ok := d.TagIndex([]byte(name)); ok && ds.types[j] == sch.Types[i] {
				m[i] = int32(j)
			}
		}
		if ds.xlate == nil {
			ds.xlate = map[uint64][]int32{}
		}
		ds.xlate[rec.Schema] = m
	}
	j := m[p.Index]
	return int(j), j >= 0
}

func (s *session) deviceDeath(ds *devState) {
	s.flush(ds)
	s.seq++
	ts := uint64(s.u.now().UnixMilli())
	if ds.histBorn && ds.lostAt > 0 && uint64(ds.lostAt) < ts {
		// The end of the history of a device that is offline: hosts mark
		// its metrics stale at a DDEATH's timestamp, so it says when the
		// device was lost.
		ts = uint64(ds.lostAt)
	}
	s.publish(ds.topics.death, sparkplug.AppendDeviceDeath(nil, ts, uint64(s.seq)), 0)
	ds.born, ds.histBorn = false, false
}

// metric builds the Sparkplug metric for a device's tag j.
func (s *session) metric(ds *devState, j int, v drivers.Value, at int64, q drivers.Quality, historical bool) sparkplug.Metric {
	m := sparkplug.Metric{Name: ds.dev.Tags()[j].Name, Timestamp: uint64(at), Historical: historical, Type: spType(ds.types[j])}
	if s.cfg.Node.UseAliases() {
		m.Alias, m.HasAlias = ds.alias+uint64(j), true
	}
	if q == drivers.QualityBad {
		// The PLC refused the read: there is no value, only the fact.
		m.Null = true
	} else {
		setValue(&m, v)
	}
	if q != drivers.QualityGood {
		qv := uint64(sparkplug.QualityBad)
		if q == drivers.QualityStale {
			qv = sparkplug.QualityStale
		}
		m.Properties = []sparkplug.Property{{Key: "Quality", Type: sparkplug.TypeInt32, Int: qv}}
	}
	return m
}
