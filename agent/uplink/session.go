package uplink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/agent/health"
	"github.com/edgeagent/edgeagent/agent/record"
	"github.com/edgeagent/edgeagent/buffer"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// session is everything that belongs to one MQTT connection. It is made
// new for every CONNECT and dropped whole when the connection ends.
type session struct {
	u      *Uplink
	cfg    *config.Config // node and broker settings of this connection
	server string
	gen    uint64
	bdSeq  uint64
	client mqtt.Client
	// ctx ends with the session: writes queued from its commands are
	// dropped rather than applied in a later one.
	ctx    context.Context
	cancel context.CancelFunc

	inbox *inbox
	lost  chan struct{}
	rcpt  chan receipt

	topics nodeTopics
	devs   map[string]*devState
	order  []*devState // in configuration order
	nextAl uint64      // next free alias
	due    []change    // device set changes waiting for their place in the records

	restart  bool   // a reload changed the node or broker settings
	behind   uint64 // live records up to here are older than a rebirth's births: published as history
	seq      uint8
	hostUp   bool
	w        uint64 // newest record at session start: history is <= w
	live     uint64 // last record published live
	hist     uint64 // last history record published
	histDone bool
	histRecs []buffer.Record // read, not yet published (valid until the next read of histReader)
	ackLive  uint64          // live records proven up to here
	ackHist  uint64
	pending  int // receipts in flight
	sent     bool
	tokens   float64
	lastTok  time.Time

	nodeLast    []sparkplug.Metric // node metrics as last published
	nodeScratch []sparkplug.Metric
	nodeAt      time.Time // when they were last published
	rebirthAt   time.Time // the last rebirth a host asked for

	defs      []*tmplDef // template definitions of the NBIRTH
	pubErr    error      // the first publish the connection did not take
	defsStale bool       // the device set needs others: re-birth the node

	filling    []*devState          // devices with DDATA being filled, oldest first
	maxFilling int                  // how many may fill at once: 1 live, more for history
	spare      [][]sparkplug.Metric // metric slices to reuse
	dataMsg    uint64               // DDATA messages published this session
}

type nodeTopics struct{ birth, death, data, cmd, dcmds, state string }

type receipt struct {
	live, hist uint64
	err        error
}

// session runs one MQTT connection. established reports whether births
// went out, so the caller can reset its backoff.
func (u *Uplink) session(ctx context.Context, server string) (established bool, err error) {
	bd, err := u.bd.next()
	if err != nil {
		return false, err
	}
	u.gen++
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &session{u: u, cfg: u.cfg, server: server, gen: u.gen, bdSeq: bd, ctx: sctx, cancel: cancel,
		inbox: newInbox(), lost: make(chan struct{}, 1), rcpt: make(chan receipt, 2*maxPendingReceipts)}
	s.topics = topicsOf(u.cfg)
	opts, err := s.clientOptions()
	if err != nil {
		return false, err
	}
	c := mqtt.NewClient(opts)
	wait := u.cfg.MQTT.ConnectTimeout.D() + time.Second
	u.heart.Busy(wait)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		c.Disconnect(0)
		return false, fmt.Errorf("connecting to %s: timed out", server)
	}
	if err := tok.Error(); err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			// No CONNECT left: bdSeq counts CONNECT packets.
			if uerr := u.bd.undo(); uerr != nil {
				u.log.Warn("could not take back an unused bdSeq", "err", uerr)
			}
		}
		return false, fmt.Errorf("connecting to %s: %w", server, err)
	}
	s.client = c
	u.stats.connects.Add(1)
	u.stats.connected.Store(true)
	defer func() {
		u.stats.connected.Store(false)
		if lerr := u.buf.SetLinkUp(false); lerr != nil {
			u.log.Error("spilling buffer to disk failed", "err", lerr)
		}
	}()
	u.log.Info("connected to broker", "server", server, "bdSeq", bd)

	// One DCMD filter for all devices: a DCMD for a device this node does
	// not have is then refused and counted, not silently never seen.
	filters := map[string]byte{s.topics.cmd: 1, s.topics.dcmds: 1}
	if s.topics.state != "" {
		filters[s.topics.state] = 1
	}
	u.heart.Busy(u.cfg.MQTT.ConnectTimeout.D())
	if err := waitToken(c.SubscribeMultiple(filters, nil), u.cfg.MQTT.ConnectTimeout.D()); err != nil {
		s.disconnect(true)
		return false, fmt.Errorf("subscribing on %s: %w", server, err)
	}
	s.hostUp = s.topics.state == ""
	if !s.hostUp {
		if err := s.waitHost(ctx); err != nil {
			s.disconnect(!errors.Is(err, errConnLost))
			return false, err
		}
	}
	if err := u.buf.SetLinkUp(true); err != nil {
		u.log.Error("buffer link state", "err", err)
	}
	s.start()
	s.births()
	err = s.serve(ctx)
	switch {
	case ctx.Err() != nil:
		s.goodbye(true)
		return true, nil
	case errors.Is(err, errReconfigured), errors.Is(err, errNextServer):
		s.goodbye(false)
	case errors.Is(err, errConnLost):
		s.disconnect(false)
	default:
		s.disconnect(true)
	}
	return true, err
}

var errConnLost = errors.New("connection lost")

func waitToken(t mqtt.Token, d time.Duration) error {
	if !t.WaitTimeout(d) {
		return errors.New("timed out")
	}
	return t.Error()
}

func topicsOf(cfg *config.Config) nodeTopics {
	g, e := cfg.Node.GroupID, cfg.Node.EdgeNodeID
	tp := func(t sparkplug.MessageType, dev string) string {
		return sparkplug.Topic{Group: g, Type: t, Node: e, Device: dev}.String()
	}
	t := nodeTopics{birth: tp(sparkplug.NBIRTH, ""), death: tp(sparkplug.NDEATH, ""), data: tp(sparkplug.NDATA, ""), cmd: tp(sparkplug.NCMD, ""), dcmds: tp(sparkplug.DCMD, "+")}
	if h := cfg.MQTT.PrimaryHostID; h != "" {
		t.state = sparkplug.Topic{Type: sparkplug.STATE, Host: h}.String()
		if cfg.MQTT.PrimaryHostVersion == "2.2" {
			// Sparkplug 2.2 hosts publish outside the namespace.
			t.state = "STATE/" + h
		}
	}
	return t
}

// start takes the device set and a consistent mark: the births carry
// exactly what the host would know after receiving records up to w.
func (s *session) start() {
	u := s.u
	s.applyChanges()
	s.devs = make(map[string]*devState, len(u.devs))
	s.order = s.order[:0]
	for _, d := range u.devs {
		ds := s.newDevState(d)
		s.devs[d.ID()] = ds
		s.order = append(s.order, ds)
	}
	s.w = s.mark()
	s.live, s.ackLive = s.w, s.w
	s.tokens, s.lastTok = 1, u.now()
	st := u.buf.Stats()
	u.log.Debug("session start", "history_through", s.w, "buffered", st.Records, "oldest", st.OldestSeq)
}

// mark snapshots every device's state into its table, and returns the
// seq of the newest stored record: the state as of that record.
func (s *session) mark() uint64 {
	return s.u.store.Mark(func() {
		for _, ds := range s.order {
			ds.table, ds.online = ds.dev.Snapshot(ds.table)
		}
	})
}

// applyChanges takes every device set change handed over so far; at
// session start they are all due.
func (s *session) applyChanges() {
	if s.u.takeSettings(func(ch []change) { s.due = append(s.due, ch...) }) {
		s.restart = true
	}
	if n := len(s.due); n > 0 {
		s.u.devs = s.due[n-1].devs
		s.due = s.due[:0]
	}
}

// serve publishes live data and history, handles commands and receipts,
// until the connection drops, the host goes offline, a reload changes the
// session's settings, or ctx ends.
func (s *session) serve(ctx context.Context) error {
	u := s.u
	timer := time.NewTimer(0)
	defer timer.Stop()
	linger := time.NewTimer(0)
	defer linger.Stop()
	tick := time.NewTicker(health.BeatEvery)
	defer tick.Stop()
	for {
		u.heart.Beat()
		more, err := s.pump()
		if err != nil {
			return err
		}
		if s.pubErr != nil {
			return s.pubErr
		}
		if s.restart {
			return errReconfigured
		}
		if s.defsStale {
			s.u.log.Info("template definitions changed: re-birthing the node")
			s.nodeRebirth()
			continue
		}
		s.nodeData()
		var next <-chan time.Time
		if more {
			timer.Reset(s.nextTokenIn())
			next = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.lost:
			return errConnLost
		case <-u.store.Notify():
			// Linger a moment: scans of devices polled together land in
			// one pump, one receipt and one delete transaction.
			linger.Reset(lingerFor)
			select {
			case <-linger.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		case <-next:
		case <-tick.C:
		case r := <-s.rcpt:
			s.onReceipt(r)
		case <-s.inbox.ready:
			if err := s.handleInbox(); err != nil {
				return err
			}
		case <-u.wake:
			if u.takeSettings(func(ch []change) { s.due = append(s.due, ch...) }) {
				s.restart = true
			}
		}
	}
}

// pump publishes what is ready: live records, then history within the
// replay rate. more reports that history is waiting for rate tokens.
func (s *session) pump() (more bool, err error) {
	u := s.u
	if s.pending >= maxPendingReceipts {
		return false, nil
	}
	const batch = 256
	if s.histDone || !u.cfg.Buffer.InOrder {
		recs, err := u.reader.Peek(s.live, batch, 8<<20)
		if err != nil {
			return false, fmt.Errorf("reading buffer: %w", err)
		}
		// Take device set changes after reading: a record read now was
		// stored after every change handed over before it.
		if u.takeSettings(func(ch []change) { s.due = append(s.due, ch...) }) {
			s.restart = true
		}
		s.maxFilling = 1
		for _, r := range recs {
			for len(s.due) > 0 && s.due[0].at < r.Seq {
				s.switchDevices()
			}
			s.publishRecord(r, false)
			s.live = r.Seq
		}
		for len(s.due) > 0 && s.due[0].at <= s.live {
			s.switchDevices()
		}
		s.flushAll() // never mix live and historical metrics in one message
		if len(recs) == batch {
			defer u.store.Signal()
		}
	}
	if !s.histDone {
		s.refill()
		if s.tokens >= 1 {
			// A batch of records at a time: records of interleaved
			// devices merge into fewer, fuller messages. Publishing stops
			// where the messages sent use up the tokens, so the rate holds
			// within a pump, not only on average; the last message may
			// overdraw them (the next pump waits until they are back).
			// What the tokens did not cover waits in histRecs: reading
			// the batch again for each pump would cost a read of up to
			// 256 records for the few messages a pump may send.
			if len(s.histRecs) == 0 {
				recs, err := u.histReader.Peek(s.hist, batch, 8<<20)
				if err != nil {
					return false, fmt.Errorf("reading buffer: %w", err)
				}
				s.histRecs = recs
				if len(recs) == 0 {
					s.finishHistory()
				}
			}
			before := s.dataMsg
			// Interleaved records of several devices fill a DDATA each,
			// so history goes out in full messages whatever the layout.
			s.maxFilling = maxFillingHistory
			for len(s.histRecs) > 0 && !s.histDone {
				r := &s.histRecs[0]
				if r.Seq > s.w {
					s.finishHistory()
					break
				}
				if float64(s.dataMsg-before) >= s.tokens {
					break
				}
				s.publishRecord(*r, true)
				s.hist = r.Seq
				s.histRecs = s.histRecs[1:]
			}
			s.flushAll()
			s.tokens -= float64(max(s.dataMsg-before, 1))
			if !s.histDone && s.hist >= s.w {
				s.finishHistory()
			}
		}
		more = !s.histDone
	}
	if s.sent {
		s.sendReceipt()
	}
	return more, nil
}

func (s *session) refill() {
	now := s.u.now()
	rate := float64(s.u.cfg.Buffer.ReplayRate)
	s.tokens = min(s.tokens+now.Sub(s.lastTok).Seconds()*rate, max(1, rate/10))
	s.lastTok = now
}

func (s *session) nextTokenIn() time.Duration {
	// Wait for a burst worth a pump (5 ms of the rate), not for each
	// token: a wake-up per message would cost more than the message.
	rate := float64(s.u.cfg.Buffer.ReplayRate)
	want := max(1, rate/200)
	if s.tokens >= want {
		return 0
	}
	return time.Duration((want - s.tokens) / rate * float64(time.Second))
}

// finishHistory ends replay: devices born only to carry their history
// and still offline get their DDEATH.
func (s *session) finishHistory() {
	s.histDone = true
	s.hist = s.w
	s.histRecs = nil
	for _, ds := range s.order {
		ds.table = nil
	}
	s.spare = nil // what replay needed; live data fills one message at a time
	for _, ds := range s.order {
		if ds.histBorn && !ds.online {
			s.deviceDeath(ds)
		}
	}
	s.sent = true
	s.u.log.Info("history replay done", "through", s.w)
}

// maxFillingHistory bounds the devices whose history DDATA fill at once
// (each holds up to max_metrics_per_message metrics meanwhile).
const maxFillingHistory = 16

// publishRecord publishes one buffered record (data may wait in the
// device's pending DDATA for more of the same device).
func (s *session) publishRecord(r buffer.Record, historical bool) {
	u := s.u
	rec := &u.rec
	if err := record.Decode(r.Data, rec, u.store); err != nil {
		u.stats.droppedCorrupt.Add(1)
		u.log.Error("dropping unreadable buffer record", "seq", r.Seq, "err", err)
		return
	}
	var sch *record.Schema
	device := rec.Device
	if rec.Version != 2 {
		var ok bool
		if sch, ok = u.store.Schema(rec.Schema); !ok {
			u.stats.droppedCorrupt.Add(1)
			u.log.Error("dropping buffer record whose schema is missing", "seq", r.Seq, "schema", fmt.Sprintf("%016x", rec.Schema))
			return
		}
		device = []byte(sch.Device)
	}
	ds, ok := s.devs[string(device)]
	if !ok {
		u.stats.droppedUnknown.Add(uint64(len(rec.Samples)))
		u.log.Warn("dropping record of a device no longer configured", "device", string(device), "samples", len(rec.Samples))
		return
	}
	switch rec.Kind {
	case record.Offline:
		ds.lostAt = rec.Time
		if historical {
			return // superseded by this session's births
		}
		ds.online = false
		if ds.born {
			s.deviceDeath(ds)
			s.sent = true
		}
		return
	case record.Online:
		if !historical {
			ds.online = true
			s.adopt(ds)
			// Birth from the record's snapshot; a table kept for the
			// history replay takes it too.
			keep := ds.table != nil
			s.tableFrom(ds, rec, sch)
			s.deviceBirth(ds)
			if !keep {
				ds.table = nil
			}
			ds.histBorn = false
			s.sent = true
			return
		}
		// The snapshot read when the device came back during an outage
		// holds samples like any scan: replay them as data.
	}
	if !ds.born {
		// History of a device that is offline now: birth it from its
		// last known state, marked stale, so the data is valid
		// Sparkplug; it gets its DDEATH, stamped with when it was lost,
		// when replay ends.
		s.adopt(ds)
		ds.histBorn = historical
		s.deviceBirth(ds)
		ds.histBorn = historical
	}
	s.startFilling(ds)
	asHistory := historical || r.Seq <= s.behind || rec.Kind == record.History
	for k := range rec.Samples {
		p := &rec.Samples[k]
		j, ok := ds.tagOf(rec, p, sch)
		if !ok {
			u.stats.droppedUnknown.Add(1)
			continue
		}
		if historical && j < len(ds.table) {
			// The DBIRTH carried the device's state as of the mark: a
			// historical sample equal to it is delivered.
			if b := &ds.table[j]; b.Time == p.Time && b.Quality == p.Quality && b.Value.Equal(p.Value) {
				continue
			}
		}
		ds.pend = append(ds.pend, s.metric(ds, j, p.Value, p.Time, p.Quality, asHistory))
		if len(ds.pend) >= u.cfg.Buffer.MaxMetrics {
			s.flush(ds)
			s.startFilling(ds)
		}
	}
	n := uint64(len(rec.Samples))
	u.stats.samples.Add(n)
	if asHistory {
		u.stats.historical.Add(n)
	}
	s.sent = true
}

// startFilling makes ds a device whose DDATA is being filled, publishing
// the oldest filling one first if too many are.
func (s *session) startFilling(ds *devState) {
	if ds.pend != nil {
		return
	}
	for len(s.filling) >= max(s.maxFilling, 1) {
		s.flush(s.filling[0])
	}
	if n := len(s.spare); n > 0 {
		ds.pend, s.spare = s.spare[n-1], s.spare[:n-1]
	} else {
		ds.pend = make([]sparkplug.Metric, 0, 64)
	}
	s.filling = append(s.filling, ds)
}

// tableFrom sets the device's table from an Online record's snapshot.
func (s *session) tableFrom(ds *devState, rec *record.Record, sch *record.Schema) {
	n := len(ds.dev.Tags())
	if len(ds.table) != n {
		ds.table = make([]record.Point, n)
	} else {
		clear(ds.table)
	}
	for k := range rec.Samples {
		p := &rec.Samples[k]
		if j, ok := ds.tagOf(rec, p, sch); ok {
			ds.table[j] = record.Point{Tag: int32(j), Value: p.Value, Time: p.Time, Quality: p.Quality}
		}
	}
}

// flush publishes the DDATA a device is filling. Records of one device
// share a message up to max_metrics_per_message; a device's birth, death
// or a receipt flushes first, so order holds per device, and every
// message before a receipt is sent before it.
func (s *session) flush(ds *devState) {
	if ds.pend == nil {
		return
	}
	if i := slices.Index(s.filling, ds); i >= 0 {
		s.filling = slices.Delete(s.filling, i, i+1)
	}
	pend := ds.pend
	ds.pend = nil
	if len(pend) > 0 {
		u := s.u
		s.seq++
		ts := uint64(u.now().UnixMilli())
		if ds.tmpl != nil {
			ms := s.instances(ds, pend)
			s.publish(ds.topics.data, sparkplug.AppendData(nil, ts, uint64(s.seq), ms), byte(s.cfg.MQTT.DataQoS))
		} else if s.cfg.MQTT.DataQoS == 1 {
			payload := sparkplug.AppendData(make([]byte, 0, 64+len(pend)*24), ts, uint64(s.seq), pend)
			s.publish(ds.topics.data, payload, 1)
		} else {
			payload := sparkplug.AppendData(u.payloads.get(64+len(pend)*24), ts, uint64(s.seq), pend)
			u.payloads.put(payload, s.publish(ds.topics.data, payload, 0))
		}
		s.dataMsg++
	}
	// Keep a few slices for the next messages; the metrics' strings are
	// cleared so nothing published stays reachable.
	if len(s.spare) < maxFillingHistory && cap(pend) <= 4*s.u.cfg.Buffer.MaxMetrics {
		clear(pend)
		s.spare = append(s.spare, pend[:0])
	}
}

// flushAll publishes every DDATA being filled, oldest first.
func (s *session) flushAll() {
	for len(s.filling) > 0 {
		s.flush(s.filling[0])
	}
}

func (s *session) publish(topic string, payload []byte, qos byte) mqtt.Token {
	s.u.stats.published.Add(1)
	tok := s.client.Publish(topic, qos, false, payload)
	if err := tok.Error(); err != nil && s.pubErr == nil {
		// Not handed to the connection (not connected, or the write
		// timeout): what follows must not be proven by a receipt, so
		// the session ends before it sends one.
		s.pubErr = fmt.Errorf("publishing on %s: %w", topic, err)
	}
	return tok
}

// sendReceipt asks the broker to prove it read everything published so
// far on this connection.
func (s *session) sendReceipt() {
	s.flushAll()
	if s.pubErr != nil {
		return // a message before it never left: nothing may be proven
	}
	s.sent = false
	live, hist := s.live, s.hist
	var payload [16]byte
	binary.BigEndian.PutUint64(payload[:8], live)
	binary.BigEndian.PutUint64(payload[8:], hist)
	tok := s.client.Publish(s.cfg.MQTT.ReceiptTopic, 1, false, payload[:])
	s.pending++
	timeout := 2 * s.cfg.MQTT.Keepalive.D()
	rcpt := s.rcpt
	go func() {
		var err error
		if !tok.WaitTimeout(timeout) {
			err = errors.New("receipt timed out")
		} else {
			err = tok.Error()
		}
		rcpt <- receipt{live: live, hist: hist, err: err}
	}()
}

func (s *session) onReceipt(r receipt) {
	u := s.u
	s.pending--
	if r.err != nil {
		u.log.Warn("no receipt from broker; records stay buffered", "err", r.err)
		return
	}
	u.log.Debug("receipt", "live", r.live, "hist", r.hist, "acked_live", s.ackLive, "acked_hist", s.ackHist)
	if r.hist > s.ackHist {
		u.acks.ack(0, r.hist)
		s.ackHist = r.hist
	}
	if r.live > s.ackLive {
		if s.ackHist >= s.w {
			u.acks.ack(0, r.live)
		} else {
			u.acks.ack(s.ackLive+1, r.live)
		}
		s.ackLive = r.live
	}
}

// goodbye ends the session on purpose: publish what is ready (on shutdown,
// and wait for its receipt until drainBy), DDEATH per device, NDEATH, then
// DISCONNECT (Sparkplug's order for MQTT 3.1.1).
func (s *session) goodbye(drain bool) {
	if drain {
		s.drain()
	}
	s.flushAll()
	for _, ds := range s.order {
		if ds.born {
			s.deviceDeath(ds)
		}
	}
	s.disconnect(true)
	s.u.log.Info("disconnected from broker", "bdSeq", s.bdSeq)
}

// disconnect closes the connection, after the NDEATH when death is set
// (every intentional disconnect: a DISCONNECT discards the Will).
func (s *session) disconnect(death bool) {
	if death {
		s.flushAll()
		tok := s.publish(s.topics.death, sparkplug.AppendNodeDeath(nil, uint64(s.u.now().UnixMilli()), s.bdSeq), 0)
		tok.WaitTimeout(2 * time.Second)
	}
	s.client.Disconnect(250)
}

// drain publishes the live records still stored and waits for their
// receipt, until drainBy.
func (s *session) drain() {
	u := s.u
	deadline := time.Unix(0, u.drainBy.Load())
	for time.Now().Before(deadline) {
		if _, err := s.pump(); err != nil {
			return
		}
		st := u.buf.Stats()
		if s.pending == 0 && s.live >= st.NewestSeq {
			return
		}
		select {
		case r := <-s.rcpt:
			s.onReceipt(r)
		case <-s.lost:
			return
		case <-time.After(time.Until(deadline)):
			return
		}
	}
}

// payloadRing recycles QoS 0 DDATA buffers: paho holds a QoS 0 payload
// until it has written it to the connection, and then completes its
// token. A buffer whose token is not done yet is left to paho and the
// collector.
type payloadRing struct {
	slots [8]struct {
		buf []byte
		tok mqtt.Token
	}
	next int
}

// maxRecycled bounds the buffers the ring keeps.
const maxRecycled = 64 << 10

// get returns an empty buffer of at least size bytes: the next slot's if
// paho is done with it.
func (r *payloadRing) get(size int) []byte {
	s := &r.slots[r.next]
	free := s.tok == nil
	if !free {
		select {
		case <-s.tok.Done():
			free = true
		default:
		}
	}
	if free && cap(s.buf) >= size {
		return s.buf[:0]
	}
	return make([]byte, 0, size)
}

// put records the buffer get's slot now holds and the token of its publish.
func (r *payloadRing) put(buf []byte, tok mqtt.Token) {
	s := &r.slots[r.next]
	r.next = (r.next + 1) % len(r.slots)
	if cap(buf) > maxRecycled {
		s.buf, s.tok = nil, nil
		return
	}
	s.buf, s.tok = buf, tok
}
