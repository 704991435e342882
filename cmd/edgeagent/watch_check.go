package main

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/edgeagent/edgeagent/sparkplug"
	"github.com/edgeagent/edgeagent/sparkplug/sparkplugpb"
)

// The checker is a Sparkplug host's view of the traffic: it keeps, per edge
// node, what a host must (bdSeq, the seq chain, the aliases and datatypes
// of the births, which devices are born) and reports, as each message is
// handled, what breaks Sparkplug B 3.0 (a violation) and what is allowed but
// worth knowing (info). It does no I/O but writing its lines; tests feed it
// messages directly.

// Kinds of violations: a rule of Sparkplug B 3.0 broken. Any fails -check.
const (
	kSeq      = "seq"       // seq missing, out of range, a gap, out of order
	kOrder    = "order"     // DATA or DBIRTH after an NDEATH; DDATA without DBIRTH
	kNBirth   = "nbirth"    // NBIRTH seq not 0, bdSeq or Node Control/Rebirth missing or wrong
	kNDeath   = "ndeath"    // NDEATH without bdSeq or with a seq
	kBdSeq    = "bdseq"     // a new session reusing the bdSeq of one that died
	kBirth    = "birth"     // a birth metric without name or datatype; duplicate names
	kAlias    = "alias"     // unknown alias or name in DATA, alias collisions
	kDatatype = "datatype"  // a value that does not fit its datatype
	kTemplate = "template"  // template definitions and instances
	kTime     = "timestamp" // payload or metric timestamp missing
	kQoS      = "qos"       // edge messages at QoS > 0, retained messages
	kPayload  = "payload"   // a payload that does not decode, a bad spBv1.0 topic
	kState    = "state"     // a STATE payload that does not parse
)

// Kinds of info: allowed, worth a line.
const (
	iJoined    = "joined"         // the watcher joined a node's stream mid-session
	iDuplicate = "duplicate"      // DATA repeating metrics already received
	iDeath     = "ndeath-ignored" // an NDEATH ignored: another session's, repeated, unmatched
	iNoDeath   = "no-ndeath"      // a new session while the last had no NDEATH (yet)
	iRebirth   = "rebirth"        // the watcher asked a node for its births
	iReconnect = "reconnect"      // the watcher lost its connection: a blind spot
)

// dedupeWindow is how many metric fingerprints of DATA each node keeps to
// recognise re-sends: an agent's in-flight window after a fault is far
// smaller, and 32768 fingerprints are about 1.5 MB.
const dedupeWindow = 1 << 15

// watchMsg is one message as the broker delivered it.
type watchMsg struct {
	At       time.Time
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

type severity bool

const (
	info      severity = false
	violation severity = true
)

type finding struct {
	sev  severity
	kind string
	text string
}

// msgCtx gathers what handling one message found.
type msgCtx struct {
	idx      int
	at       time.Time
	topic    string
	node     *nodeState // nil for STATE and foreign topics
	findings []finding
}

func (x *msgCtx) violation(kind, format string, a ...any) {
	x.findings = append(x.findings, finding{violation, kind, fmt.Sprintf(format, a...)})
}

func (x *msgCtx) info(kind, format string, a ...any) {
	x.findings = append(x.findings, finding{info, kind, fmt.Sprintf(format, a...)})
}

type phase uint8

const (
	phaseNew    phase = iota // nothing seen (or forgotten at a reconnect of the watcher)
	phaseJoined              // tracking a stream whose NBIRTH the watcher did not see
	phaseBorn                // an NBIRTH seen, no NDEATH of its session since
	phaseDead                // the NDEATH of the last NBIRTH's session seen
)

type defKey struct{ device, name string }

// metricDef is a metric as a birth declared it.
type metricDef struct {
	device, name string
	typ          sparkplug.DataType
}

type deviceState struct{ born, dead bool }

// nodeStats are the counts of one edge node for the summary.
type nodeStats struct {
	msgs                   int
	nbirth, dbirth         int
	ndeath, ddeath         int
	ndata, ddata, commands int
	metrics                int
	seqChecked             int
	violations, infos      map[string]int
}

// nodeState is what a host keeps of one edge node (group/node).
type nodeState struct {
	id       string // group/node
	group    string
	node     string
	phase    phase
	bdSeq    uint64 // of the last NBIRTH; in phaseDead, of the session that died
	hasBdSeq bool
	next     uint64 // the seq expected next, if tracking
	tracking bool
	// After a message behind the chain, the seq that would continue from
	// it: if the next message has it, the node restarted its chain and
	// the checker follows (reported once).
	behind    uint64
	hasBehind bool
	rejoined  bool // forgotten at a reconnect of the watcher
	asked     bool // a rebirth was requested
	byAlias   map[uint64]*metricDef
	byName    map[defKey]*metricDef
	devices   map[string]*deviceState
	templates map[string]*sparkplug.Template // definitions of the NBIRTH, by name
	seen      dedupe
	st        nodeStats
}

// checker checks and prints decoded traffic. Its methods are safe for
// concurrent use; messages must be handled in arrival order.
type checker struct {
	mu    sync.Mutex
	out   io.Writer
	quiet bool // no traffic lines, only findings
	// rebirth, if set, asks an edge node for its births (NCMD Node
	// Control/Rebirth); the checker calls it once per node, for the nodes
	// whose stream it joined mid-session.
	rebirth func(group, node string) error

	seed     maphash.Seed
	closed   bool
	n        int // messages handled
	nodes    map[string]*nodeState
	order    []string  // node ids, first seen first
	state    int       // STATE messages
	other    int       // messages outside spBv1.0
	global   nodeStats // findings of no node: STATE, bad topics, the watcher's own
	first    []string  // the first line of each violation kind, in order
	firstOf  map[string]bool
	lostAt   []time.Time // when the watcher's connection dropped
	lostDown time.Duration
}

func newChecker(out io.Writer, quiet bool) *checker {
	return &checker{out: out, quiet: quiet, seed: maphash.MakeSeed(), nodes: map[string]*nodeState{}, firstOf: map[string]bool{}}
}

// handle checks and prints one message.
func (c *checker) handle(m watchMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.n++
	x := &msgCtx{idx: c.n, at: m.At, topic: m.Topic}
	line := c.process(x, m)
	if !c.quiet {
		fmt.Fprintln(c.out, line)
	}
	for _, f := range x.findings {
		c.emit(x, f)
	}
}

// connectionLost notes that the watcher lost its connection: what is
// published until it resubscribes is never seen, so every node is
// forgotten and joined afresh, and no seq gap across the blind spot is
// blamed on a node.
func (c *checker) connectionLost(at time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.lostAt = append(c.lostAt, at)
	for _, n := range c.nodes {
		n.forget()
	}
	c.emit(&msgCtx{at: at}, finding{info, iReconnect, fmt.Sprintf("the watcher lost its connection (%v): messages until it resubscribes are not seen; every edge node is joined afresh", err)})
}

// watcherInfo reports something about the watcher itself.
func (c *checker) watcherInfo(at time.Time, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.emit(&msgCtx{at: at}, finding{info, iReconnect, text})
	}
}

// close stops handling: lines of messages still in flight would follow
// the summary.
func (c *checker) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

func (c *checker) emit(x *msgCtx, f finding) {
	st := &c.global
	if x.node != nil {
		st = &x.node.st
	}
	where := ""
	if x.idx > 0 {
		where = fmt.Sprintf(" #%d %s:", x.idx, x.topic)
	}
	label := "info     "
	if f.sev == violation {
		label = "VIOLATION"
		st.violations = inc(st.violations, f.kind)
	} else {
		st.infos = inc(st.infos, f.kind)
	}
	line := fmt.Sprintf("%s  %s [%s]%s %s", x.at.Format("15:04:05.000"), label, f.kind, where, f.text)
	fmt.Fprintln(c.out, line)
	if f.sev == violation && !c.firstOf[f.kind] {
		c.firstOf[f.kind] = true
		c.first = append(c.first, line)
	}
}

func inc(m map[string]int, k string) map[string]int {
	if m == nil {
		m = map[string]int{}
	}
	m[k]++
	return m
}

func (c *checker) nodeOf(group, node string) *nodeState {
	id := group + "/" + node
	n := c.nodes[id]
	if n == nil {
		n = &nodeState{id: id, group: group, node: node}
		n.forget()
		n.rejoined = false
		c.nodes[id] = n
		c.order = append(c.order, id)
	}
	return n
}

// forget drops all state of the node's session; it is joined afresh.
func (n *nodeState) forget() {
	n.phase, n.tracking, n.hasBehind, n.rejoined = phaseNew, false, false, true
	n.byAlias, n.byName = map[uint64]*metricDef{}, map[defKey]*metricDef{}
	n.devices, n.templates = map[string]*deviceState{}, map[string]*sparkplug.Template{}
}

// process checks one message and returns its traffic line.
func (c *checker) process(x *msgCtx, m watchMsg) string {
	now := m.At.Format("15:04:05.000")
	t, err := sparkplug.ParseTopic(m.Topic)
	if err != nil {
		c.other++
		if !strings.HasPrefix(m.Topic, sparkplug.Namespace+"/") {
			return fmt.Sprintf("%s  %-7s %s  (not a Sparkplug B topic)", now, "?", m.Topic)
		}
		x.violation(kPayload, "%v", err)
		return fmt.Sprintf("%s  %-7s %s  (%v)", now, "?", m.Topic, err)
	}
	if t.Type == sparkplug.STATE {
		c.state++
		if _, err := sparkplug.ParseState(m.Payload); err != nil {
			x.violation(kState, "%v", err)
		}
		return fmt.Sprintf("%s  %-7s %-34s %s", now, t.Type, t.Host, m.Payload)
	}
	n := c.nodeOf(t.Group, t.Node)
	x.node = n
	n.st.count(t.Type)
	where := n.id
	if t.Device != "" {
		where += "/" + t.Device
	}
	edge := t.Type != sparkplug.NCMD && t.Type != sparkplug.DCMD
	seqd := edge && t.Type != sparkplug.NDEATH
	if seqd && m.QoS > 0 {
		x.violation(kQoS, "%s published at QoS %d: an edge node publishes every message but its Will (NDEATH) at QoS 0", t.Type, m.QoS)
	}
	if m.Retained {
		if edge {
			x.violation(kQoS, "retained %s (delivered at subscribe, so it is old): Sparkplug messages are published with retain=false", t.Type)
		} else {
			x.violation(kQoS, "retained %s: the broker hands it to the node again at every subscribe; commands are published with retain=false", t.Type)
		}
	}
	pl, err := sparkplug.Decode(m.Payload)
	if err != nil {
		x.violation(kPayload, "payload does not decode: %v", err)
		if seqd && !m.Retained {
			if seq, ok := rawSeq(m.Payload); ok {
				n.checkSeq(x, t.Type, seq)
			} else {
				n.tracking = false
			}
		}
		return fmt.Sprintf("%s  %-7s %-34s undecodable: %v", now, t.Type, where, err)
	}
	n.st.metrics += len(pl.Metrics)
	names := make([]string, len(pl.Metrics))
	switch {
	case m.Retained: // old: print it, track nothing
	case t.Type == sparkplug.NBIRTH:
		n.nbirth(x, pl, names)
	case t.Type == sparkplug.DBIRTH:
		c.join(x, n, t.Type, pl)
		n.dbirth(x, t.Device, pl, names)
	case t.Type == sparkplug.NDATA || t.Type == sparkplug.DDATA:
		c.join(x, n, t.Type, pl)
		n.data(x, t, pl, names, c.seed)
	case t.Type == sparkplug.DDEATH:
		c.join(x, n, t.Type, pl)
		n.ddeath(x, t.Device, pl)
	case t.Type == sparkplug.NDEATH:
		n.ndeath(x, pl)
	}
	for i := range names {
		if names[i] == "" { // not named by a check: NDEATH, commands, retained
			names[i] = n.lookup(t.Device, &pl.Metrics[i])
		}
	}
	return trafficLine(x, now, t, where, pl, names)
}

func (s *nodeStats) count(t sparkplug.MessageType) {
	s.msgs++
	switch t {
	case sparkplug.NBIRTH:
		s.nbirth++
	case sparkplug.DBIRTH:
		s.dbirth++
	case sparkplug.NDEATH:
		s.ndeath++
	case sparkplug.DDEATH:
		s.ddeath++
	case sparkplug.NDATA:
		s.ndata++
	case sparkplug.DDATA:
		s.ddata++
	default:
		s.commands++
	}
}

// rawSeq reads the seq of a payload Decode refused (a metric that does not
// fit its datatype), so that one bad metric does not also break the chain.
func rawSeq(b []byte) (uint64, bool) {
	var pb sparkplugpb.Payload
	if proto.Unmarshal(b, &pb) != nil || pb.Seq == nil {
		return 0, false
	}
	return pb.GetSeq(), true
}

// join starts tracking a node whose first message since the watcher
// subscribed is not an NBIRTH: the watcher joined mid-session. Nothing is
// wrong with that; seq is checked from this message on, and aliases and
// devices as births arrive.
func (c *checker) join(x *msgCtx, n *nodeState, t sparkplug.MessageType, pl *sparkplug.Payload) {
	if n.phase != phaseNew {
		return
	}
	n.phase = phaseJoined
	why := "no NBIRTH seen since the watcher subscribed"
	if n.rejoined {
		why = "no NBIRTH seen since the watcher resubscribed"
	}
	seq := "no seq"
	if pl.HasSeq {
		seq = fmt.Sprintf("seq %d", pl.Seq)
	}
	x.info(iJoined, "joined mid-session (%s): seq is checked from this %s (%s) on; metrics are checked once their birth is seen", why, t, seq)
	if c.rebirth == nil || n.asked {
		return
	}
	n.asked = true
	topic := sparkplug.Topic{Group: n.group, Type: sparkplug.NCMD, Node: n.node}.String()
	if err := c.rebirth(n.group, n.node); err != nil {
		x.info(iRebirth, "requesting a rebirth on %s failed: %v", topic, err)
		return
	}
	x.info(iRebirth, "requested a rebirth: NCMD %s=true on %s", sparkplug.MetricRebirth, topic)
}

// seq checks the payload's seq against the node's chain.
func (n *nodeState) seq(x *msgCtx, t sparkplug.MessageType, pl *sparkplug.Payload) {
	if !pl.HasSeq {
		kind := kSeq
		if t == sparkplug.NBIRTH {
			kind = kNBirth
		}
		x.violation(kind, "%s without seq: every NBIRTH (seq 0), DBIRTH, NDATA, DDATA and DDEATH carries one", t)
		n.tracking = false
		return
	}
	n.checkSeq(x, t, pl.Seq)
}

// checkSeq checks seq against the chain: one counter per edge node shared
// with its devices, NBIRTH 0, then +1 per message, 255 wrapping to 0.
func (n *nodeState) checkSeq(x *msgCtx, t sparkplug.MessageType, seq uint64) {
	switch {
	case seq > 255:
		x.violation(kSeq, "seq %d is out of range 0..255", seq)
		n.tracking = false
		return
	case t == sparkplug.NBIRTH:
		if seq != 0 {
			x.violation(kNBirth, "NBIRTH with seq %d: an NBIRTH starts the chain at 0", seq)
		}
	case !n.tracking:
	case seq == n.next:
		n.st.seqChecked++
	case n.hasBehind && seq == n.behind:
		// The message before went back and this one continues from it:
		// the node restarted its chain (reported once, just now).
	default:
		d := (seq + 256 - n.next) % 256
		if d < 128 {
			x.violation(kSeq, "seq gap: expected %d, got %d (%d message(s) missing)", n.next, seq, d)
			break
		}
		x.violation(kSeq, "seq out of order: expected %d, got %d (%d behind)", n.next, seq, 256-d)
		n.behind, n.hasBehind = (seq+1)%256, true
		return // a late or repeated message: the chain goes on from n.next
	}
	n.next, n.tracking, n.hasBehind = (seq+1)%256, true, false
}

// nbirth starts a session: seq 0, bdSeq, Node Control/Rebirth; every
// alias and device of the node is forgotten.
func (n *nodeState) nbirth(x *msgCtx, pl *sparkplug.Payload, names []string) {
	n.seq(x, sparkplug.NBIRTH, pl)
	var bd, rb *sparkplug.Metric
	for i := range pl.Metrics {
		switch m := &pl.Metrics[i]; m.Name {
		case sparkplug.MetricBdSeq:
			bd = m
		case sparkplug.MetricRebirth:
			rb = m
		}
	}
	switch {
	case bd == nil:
		x.violation(kNBirth, "NBIRTH without a bdSeq metric: hosts cannot match the NDEATH to it")
	case bd.Type != sparkplug.TypeInt64 && bd.Type != sparkplug.TypeUInt64:
		x.violation(kNBirth, "NBIRTH bdSeq is %s; it is an Int64 (long_value)", bd.Type)
	}
	switch {
	case rb == nil:
		x.violation(kNBirth, "NBIRTH without %q: hosts cannot ask the node for a rebirth", sparkplug.MetricRebirth)
	case rb.Type != sparkplug.TypeBoolean:
		x.violation(kNBirth, "NBIRTH %q is %s, not Boolean", sparkplug.MetricRebirth, rb.Type)
	case rb.HasAlias:
		x.violation(kNBirth, "NBIRTH %q has alias %d: it always goes by name", sparkplug.MetricRebirth, rb.Alias)
	}
	if bd != nil {
		b := bd.Int
		switch {
		case n.phase == phaseBorn && n.hasBdSeq && b != n.bdSeq:
			x.info(iNoDeath, "new session bdSeq=%d while session bdSeq=%d had no NDEATH (yet: a Will can come late, and is then ignored)", b, n.bdSeq)
		case n.phase == phaseDead && n.hasBdSeq && b == n.bdSeq:
			x.violation(kBdSeq, "NBIRTH with bdSeq=%d, the session whose NDEATH was seen: every new MQTT CONNECT increments bdSeq", b)
		}
		n.bdSeq, n.hasBdSeq = b, true
	} else {
		n.hasBdSeq = false
	}
	clear(n.byAlias)
	clear(n.byName)
	clear(n.devices)
	clear(n.templates)
	n.phase = phaseBorn
	for i := range pl.Metrics {
		if m := &pl.Metrics[i]; m.Type == sparkplug.TypeTemplate && !m.Null {
			if tp, err := sparkplug.DecodeTemplate(m.Bytes); err == nil && tp.IsDefinition {
				n.templates[m.Name] = tp
			}
		}
	}
	n.birth(x, sparkplug.NBIRTH, "", pl, names)
}

// dbirth (re)births a device: its metrics replace any it had.
func (n *nodeState) dbirth(x *msgCtx, device string, pl *sparkplug.Payload, names []string) {
	n.seq(x, sparkplug.DBIRTH, pl)
	if n.phase == phaseDead {
		x.violation(kOrder, "DBIRTH after the node's NDEATH (bdSeq=%d), before a new NBIRTH", n.bdSeq)
	}
	for a, d := range n.byAlias {
		if d.device == device {
			delete(n.byAlias, a)
		}
	}
	for k := range n.byName {
		if k.device == device {
			delete(n.byName, k)
		}
	}
	n.birth(x, sparkplug.DBIRTH, device, pl, names)
	n.devices[device] = &deviceState{born: true}
}

// birth checks and records the metrics of an NBIRTH or DBIRTH.
func (n *nodeState) birth(x *msgCtx, t sparkplug.MessageType, device string, pl *sparkplug.Payload, names []string) {
	n.payloadTime(x, t, pl)
	var untyped, unnamed, undated []string
	for i := range pl.Metrics {
		m := &pl.Metrics[i]
		names[i] = m.Name
		id := m.Name
		if m.Name == "" {
			id = fmt.Sprintf("alias:%d", m.Alias)
			names[i] = id
			unnamed = append(unnamed, id)
		}
		if m.Type == sparkplug.TypeUnknown {
			untyped = append(untyped, id)
		}
		if m.Timestamp == 0 {
			undated = append(undated, id)
		}
		n.value(x, t, id, m)
		if m.Name == "" {
			continue
		}
		d := &metricDef{device: device, name: m.Name, typ: m.Type}
		k := defKey{device, m.Name}
		if n.byName[k] != nil {
			x.violation(kBirth, "%s names metric %q twice", t, m.Name)
		}
		n.byName[k] = d
		if !m.HasAlias {
			continue
		}
		if o := n.byAlias[m.Alias]; o != nil {
			x.violation(kAlias, "alias %d of %q is already %s: aliases are unique across the node and its devices", m.Alias, m.Name, o.what())
		}
		n.byAlias[m.Alias] = d
	}
	if len(unnamed) > 0 {
		x.violation(kBirth, "%s metrics without a name: %s (births carry name and alias)", t, list(unnamed))
	}
	if len(untyped) > 0 {
		x.violation(kBirth, "%s metrics without a datatype: %s", t, list(untyped))
	}
	if len(undated) > 0 {
		x.violation(kTime, "%s metrics without a timestamp: %s", t, list(undated))
	}
}

func (d *metricDef) what() string {
	if d.device == "" {
		return fmt.Sprintf("%q of the node", d.name)
	}
	return fmt.Sprintf("%q of device %s", d.name, d.device)
}

func (n *nodeState) payloadTime(x *msgCtx, t sparkplug.MessageType, pl *sparkplug.Payload) {
	if pl.Timestamp == 0 {
		x.violation(kTime, "%s without a payload timestamp", t)
	}
}

// value checks that a bytes-carried value decodes as its datatype, and
// templates against the NBIRTH's definitions.
func (n *nodeState) value(x *msgCtx, t sparkplug.MessageType, id string, m *sparkplug.Metric) {
	if _, err := formatValue(m); err != nil {
		x.violation(kDatatype, "%s: %v", id, err)
		return
	}
	if m.Null || m.Type != sparkplug.TypeTemplate && (m.Type != sparkplug.TypeUnknown || m.Kind != sparkplug.KindTemplate) {
		return
	}
	tp, _ := sparkplug.DecodeTemplate(m.Bytes) // decoded by formatValue
	if err := tp.Validate(); err != nil {
		x.violation(kTemplate, "%s: %v", id, err)
		return
	}
	if tp.IsDefinition {
		if t != sparkplug.NBIRTH {
			x.violation(kTemplate, "%s: a template definition in a %s; definitions go only in the NBIRTH", id, t)
		}
		return // an NBIRTH's definitions were recorded before its metrics were checked
	}
	if n.phase != phaseBorn {
		return // the definitions are in an NBIRTH not seen
	}
	def := n.templates[tp.Ref]
	if def == nil {
		x.violation(kTemplate, "%s: an instance of %q, which the NBIRTH does not define", id, tp.Ref)
		return
	}
	members := map[string]bool{}
	for _, mm := range def.Metrics {
		members[mm.Name] = true
	}
	var extra []string
	for _, mm := range tp.Metrics {
		if !members[mm.Name] {
			extra = append(extra, mm.Name)
		}
		delete(members, mm.Name)
	}
	if len(extra) > 0 {
		x.violation(kTemplate, "%s: members %s are not in the definition %q", id, list(extra), tp.Ref)
	}
	if len(members) > 0 && (t == sparkplug.NBIRTH || t == sparkplug.DBIRTH) {
		missing := make([]string, 0, len(members))
		for k := range members {
			missing = append(missing, k)
		}
		slices.Sort(missing)
		x.violation(kTemplate, "%s: an instance in a %s lacks members %s of %q (births carry all)", id, t, list(missing), tp.Ref)
	}
}

// lookup names a metric from the births seen, resolving its type, without
// judging: for commands, retained and unchecked messages.
func (n *nodeState) lookup(device string, m *sparkplug.Metric) string {
	d := n.byName[defKey{device, m.Name}]
	if m.HasAlias && (m.Name == "" || d == nil) {
		d = n.byAlias[m.Alias]
	}
	if d != nil && m.Type == sparkplug.TypeUnknown {
		_ = m.Resolve(d.typ)
	}
	switch {
	case m.Name != "":
		return m.Name
	case d != nil:
		return d.name
	}
	return fmt.Sprintf("alias:%d", m.Alias)
}

// data checks an NDATA or DDATA: its place in the session, every metric
// against its birth, timestamps, and re-sends.
func (n *nodeState) data(x *msgCtx, t sparkplug.Topic, pl *sparkplug.Payload, names []string, seed maphash.Seed) {
	n.seq(x, t.Type, pl)
	n.payloadTime(x, t.Type, pl)
	strict := false
	switch n.phase {
	case phaseDead:
		x.violation(kOrder, "%s after the node's NDEATH (bdSeq=%d), before a new NBIRTH", t.Type, n.bdSeq)
	case phaseBorn:
		strict = true
		if d := n.devices[t.Device]; t.Device != "" && (d == nil || !d.born) {
			strict = false
			if d != nil && d.dead {
				x.violation(kOrder, "DDATA of device %s after its DDEATH, before a new DBIRTH", t.Device)
			} else {
				x.violation(kOrder, "DDATA of device %s, which has no DBIRTH since the NBIRTH", t.Device)
			}
		}
	case phaseJoined:
		d := n.devices[t.Device]
		strict = t.Device != "" && d != nil && d.born
	}
	var unknown, undated []string
	for i := range pl.Metrics {
		m := &pl.Metrics[i]
		names[i] = n.lookup(t.Device, m)
		if m.Timestamp == 0 {
			undated = append(undated, names[i])
		}
		if !strict {
			continue
		}
		d := n.byName[defKey{t.Device, m.Name}]
		if m.HasAlias {
			if d = n.byAlias[m.Alias]; d != nil && d.device != t.Device {
				x.violation(kAlias, "alias %d is %s, not a metric of this %s", m.Alias, d.what(), t.Type)
				continue
			}
		}
		if d == nil {
			unknown = append(unknown, names[i])
			continue
		}
		switch {
		case m.Type == sparkplug.TypeUnknown:
			if err := m.Resolve(d.typ); err != nil {
				x.violation(kDatatype, "%s: %v (its birth declared %s)", names[i], err, d.typ)
				continue
			}
		case m.Type != d.typ:
			x.violation(kDatatype, "%s is %s here, %s in its birth", names[i], m.Type, d.typ)
			continue
		}
		n.value(x, t.Type, names[i], m)
	}
	if len(unknown) > 0 {
		x.violation(kAlias, "%s metrics not in the birth: %s", t.Type, list(unknown))
	}
	if len(undated) > 0 {
		x.violation(kTime, "%s metrics without a timestamp: %s", t.Type, list(undated))
	}
	n.duplicates(x, t, pl, names, seed)
}

// duplicates reports DATA repeating metrics (same metric, timestamp and
// value) the node already sent: the in-flight window a node re-sends after
// a fault, as the spec allows. Metrics without a timestamp are not
// compared.
func (n *nodeState) duplicates(x *msgCtx, t sparkplug.Topic, pl *sparkplug.Payload, names []string, seed maphash.Seed) {
	hs := make([]uint64, 0, len(pl.Metrics))
	repeats, hist := 0, 0
	for i := range pl.Metrics {
		m := &pl.Metrics[i]
		if m.Timestamp == 0 {
			continue
		}
		h := fingerprint(seed, t.Device, names[i], m)
		hs = append(hs, h)
		if n.seen.has(h) {
			repeats++
			if m.Historical {
				hist++
			}
		}
	}
	for _, h := range hs {
		n.seen.add(h)
	}
	if repeats == 0 {
		return
	}
	flag := "flagged is_historical"
	if hist < repeats {
		flag = fmt.Sprintf("%d of them not flagged is_historical", repeats-hist)
	}
	x.info(iDuplicate, "%d of %d metrics repeat ones already received (same metric, timestamp and value; %s): a re-send, as after a fault", repeats, len(pl.Metrics), flag)
}

func fingerprint(seed maphash.Seed, device, name string, m *sparkplug.Metric) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteString(device)
	h.WriteByte(0)
	h.WriteString(name)
	h.WriteByte(0)
	var b [33]byte
	binary.LittleEndian.PutUint64(b[0:], m.Timestamp)
	binary.LittleEndian.PutUint64(b[8:], uint64(m.Type))
	binary.LittleEndian.PutUint64(b[16:], m.Int)
	binary.LittleEndian.PutUint64(b[24:], math.Float64bits(m.Float))
	if m.Null {
		b[32] = 1
	}
	h.Write(b[:])
	h.WriteString(m.Str)
	h.Write(m.Bytes)
	return h.Sum64()
}

// dedupe is a set of the last dedupeWindow fingerprints.
type dedupe struct {
	set  map[uint64]int // fingerprint → occurrences in ring
	ring []uint64
	pos  int
}

func (d *dedupe) has(h uint64) bool { return d.set[h] > 0 }

func (d *dedupe) add(h uint64) {
	if d.set == nil {
		d.set = map[uint64]int{}
	}
	if len(d.ring) < dedupeWindow {
		d.ring = append(d.ring, h)
	} else {
		old := d.ring[d.pos]
		if d.set[old]--; d.set[old] <= 0 {
			delete(d.set, old)
		}
		d.ring[d.pos] = h
		d.pos = (d.pos + 1) % dedupeWindow
	}
	d.set[h]++
}

// ddeath takes a device offline until its next DBIRTH.
func (n *nodeState) ddeath(x *msgCtx, device string, pl *sparkplug.Payload) {
	n.seq(x, sparkplug.DDEATH, pl)
	n.payloadTime(x, sparkplug.DDEATH, pl)
	if n.phase == phaseDead {
		x.violation(kOrder, "DDEATH after the node's NDEATH (bdSeq=%d), before a new NBIRTH", n.bdSeq)
	}
	if d := n.devices[device]; d != nil {
		d.born, d.dead = false, true
	}
}

// ndeath ends the session whose NBIRTH had the same bdSeq; any other NDEATH
// is a Will of another connection, which hosts ignore.
func (n *nodeState) ndeath(x *msgCtx, pl *sparkplug.Payload) {
	if pl.HasSeq {
		x.violation(kNDeath, "NDEATH with seq %d: an NDEATH has no seq", pl.Seq)
	}
	var bd *sparkplug.Metric
	for i := range pl.Metrics {
		if pl.Metrics[i].Name == sparkplug.MetricBdSeq {
			bd = &pl.Metrics[i]
		}
	}
	if bd == nil {
		x.violation(kNDeath, "NDEATH without a bdSeq metric (by name): hosts cannot match it to an NBIRTH")
		if n.phase == phaseBorn {
			n.die()
		}
		return
	}
	b := bd.Int
	switch {
	case n.phase == phaseBorn && (!n.hasBdSeq || b == n.bdSeq):
		n.die()
	case n.phase == phaseBorn || n.phase == phaseDead && b != n.bdSeq:
		age := "an older connection"
		if d := (b + 256 - n.bdSeq) % 256; d > 0 && d < 128 {
			age = "a newer connection that sent no NBIRTH"
		}
		state := "the session stays online"
		if n.phase == phaseDead {
			state = "the node stays offline"
		}
		x.info(iDeath, "NDEATH of another session ignored: bdSeq=%d, the last NBIRTH's is %d; the Will of %s (%s)", b, n.bdSeq, age, state)
	case n.phase == phaseDead:
		x.info(iDeath, "NDEATH bdSeq=%d again: the session had already ended (an explicit NDEATH, then the Will?)", b)
	default:
		x.info(iDeath, "NDEATH bdSeq=%d of a session whose NBIRTH the watcher did not see: nothing to match it against", b)
		n.forget()
		n.rejoined = false
	}
}

func (n *nodeState) die() {
	n.phase, n.tracking, n.hasBehind = phaseDead, false, false
	for _, d := range n.devices {
		d.born, d.dead = false, true
	}
}

// list joins names, at most 8 of them.
func list(names []string) string {
	if len(names) > 8 {
		return fmt.Sprintf("%s … +%d more", strings.Join(names[:8], ", "), len(names)-8)
	}
	return strings.Join(names, ", ")
}

// trafficLine formats one message on one line: time, type, where, seq and
// up to six metrics by name; a replay of history is summarised.
func trafficLine(x *msgCtx, now string, t sparkplug.Topic, where string, pl *sparkplug.Payload, names []string) string {
	seq := "      "
	if pl.HasSeq {
		seq = fmt.Sprintf("seq=%-3d", pl.Seq)
	}
	var b strings.Builder
	hist := 0
	var histFrom, histTo uint64
	for i := range pl.Metrics {
		m := &pl.Metrics[i]
		if m.Historical {
			hist++
			if histFrom == 0 || m.Timestamp < histFrom {
				histFrom = m.Timestamp
			}
			histTo = max(histTo, m.Timestamp)
		}
		if i < 6 {
			if i > 0 {
				b.WriteString(", ")
			}
			v, _ := formatValue(m)
			b.WriteString(names[i] + "=" + v + qualityNote(m))
		}
	}
	if len(pl.Metrics) > 6 {
		fmt.Fprintf(&b, ", … +%d more", len(pl.Metrics)-6)
	}
	switch {
	case hist > 0 && hist == len(pl.Metrics):
		// A replay sends many samples per tag: count them instead.
		b.Reset()
		fmt.Fprintf(&b, "%d historical metrics (is_historical), timestamped %s to %s: %s",
			hist, clockMs(histFrom), clockMs(histTo), countNames(names))
	case hist > 0:
		fmt.Fprintf(&b, "  [%d historical, timestamped %s to %s]", hist, clockMs(histFrom), clockMs(histTo))
	}
	return fmt.Sprintf("%s  %-7s %-34s %s %s", now, t.Type, where, seq, b.String())
}
