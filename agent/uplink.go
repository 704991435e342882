package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeagent/edgeagent/buffer"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/internal/backoff"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// uplink is the bridge to the central broker. One goroutine (run) owns the
// MQTT connection, bdSeq, seq, births, replay and receipts; nothing else
// publishes, so seq has no gaps and a rebirth stops data at once.
//
// Per connection: bdSeq+1 persisted → CONNECT with Will NDEATH(bdSeq) →
// subscribe NCMD, DCMD, STATE (QoS 1) → wait for the primary host if one
// is configured → NBIRTH (seq 0) → DBIRTH per online device → live data
// and history interleaved, history marked is_historical.
//
// Records are deleted from the buffer only after a receipt: a QoS 1
// publish on the receipt topic after the data (or, with data_qos 1, the
// last data message itself). The broker acknowledges it only after it has
// read everything sent before it on the same connection, and paho writes
// publishes of both QoS in order (gathered by a batchConn, which keeps
// it). A receipt whose connection dropped in between proves nothing and
// is ignored.
type uplink struct {
	cfg   *Config
	log   *slog.Logger
	store *store
	devs  []*device
	bd    bdSeqStore
	now   func() time.Time

	byID      map[string]int
	aliasBase []uint64 // device i's tag j has alias aliasBase[i]+j
	topics    []devTopics
	nodeTopic struct{ birth, death, data, cmd string }
	stateTop  string

	msgs chan mqtt.Message
	lost chan uint64
	rcpt chan receipt

	// Session state, owned by run.
	client   mqtt.Client
	gen      uint64
	bdSeq    uint64
	seq      uint8
	born     []bool // DBIRTH sent this session
	histBorn []bool // born only to carry history of an offline device
	table    [][]Point
	online   []bool
	w        uint64 // newest record at session start: history is <= w
	live     uint64 // last record published live
	hist     uint64 // last history record published
	histDone bool
	ackLive  uint64 // live records proven up to here
	ackHist  uint64
	pending  int // receipts in flight
	sent     bool
	tokens   float64
	lastTok  time.Time
	hostUp   bool
	server   string            // of the current session
	hostTS   map[string]uint64 // newest STATE timestamp seen, per server

	acks     *acker
	reader   *buffer.Reader // records are published before the next read
	rec      record
	payloads payloadRing
	pendDev  int                // device of the DDATA being filled, -1 if none
	pend     []sparkplug.Metric // its metrics
	dataMsg  uint64             // DDATA messages published this session
	stats    uplinkStats

	// drainBy (Unix ns) is set before shutdown: publish what is stored
	// and wait for its receipt until then.
	drainBy atomic.Int64
}

type devTopics struct{ birth, death, data, cmd string }

type receipt struct {
	gen        uint64
	live, hist uint64
	err        error
}

type uplinkStats struct {
	published       atomic.Uint64 // messages
	samples         atomic.Uint64
	historical      atomic.Uint64 // samples
	droppedUnknown  atomic.Uint64 // samples of tags or devices no longer configured
	droppedCorrupt  atomic.Uint64 // records that failed to decode
	connects        atomic.Uint64
	rebirths        atomic.Uint64
	commandsRefused atomic.Uint64
	connected       atomic.Bool
}

const maxPendingReceipts = 32

// lingerFor is how long the uplink waits after new data before publishing,
// to gather the records of scans that finish together.
const lingerFor = 10 * time.Millisecond

// errHostOffline ends a session when the primary host goes offline.
var errHostOffline = errors.New("primary host went offline")

func newUplink(cfg *Config, log *slog.Logger, st *store, devs []*device) *uplink {
	u := &uplink{cfg: cfg, log: log, store: st, devs: devs, now: time.Now, pendDev: -1, reader: st.buf.NewReader(),
		bd:   bdSeqStore{path: cfg.StateDir + "/bdseq"},
		byID: map[string]int{}, hostTS: map[string]uint64{}, msgs: make(chan mqtt.Message, 256), lost: make(chan uint64, 4), rcpt: make(chan receipt, 2*maxPendingReceipts)}
	g, e := cfg.Node.GroupID, cfg.Node.EdgeNodeID
	tp := func(t sparkplug.MessageType, dev string) string {
		return sparkplug.Topic{Group: g, Type: t, Node: e, Device: dev}.String()
	}
	u.nodeTopic.birth, u.nodeTopic.death, u.nodeTopic.data, u.nodeTopic.cmd = tp(sparkplug.NBIRTH, ""), tp(sparkplug.NDEATH, ""), tp(sparkplug.NDATA, ""), tp(sparkplug.NCMD, "")
	if h := cfg.MQTT.PrimaryHostID; h != "" {
		u.stateTop = sparkplug.Topic{Type: sparkplug.STATE, Host: h}.String()
	}
	next := uint64(1)
	n := len(devs)
	u.aliasBase, u.topics = make([]uint64, n), make([]devTopics, n)
	u.born, u.histBorn, u.table, u.online = make([]bool, n), make([]bool, n), make([][]Point, n), make([]bool, n)
	for i, d := range devs {
		u.byID[d.cfg.ID] = i
		u.aliasBase[i] = next
		next += uint64(len(d.tags))
		u.topics[i] = devTopics{tp(sparkplug.DBIRTH, d.cfg.ID), tp(sparkplug.DDEATH, d.cfg.ID), tp(sparkplug.DDATA, d.cfg.ID), tp(sparkplug.DCMD, d.cfg.ID)}
	}
	return u
}

// run connects, walks the server list on failure, and serves sessions
// until ctx ends; then it sends DDEATHs and the NDEATH and disconnects.
func (u *uplink) run(ctx context.Context) error {
	u.acks = startAcker(u.store.buf, u.log)
	defer u.acks.stop()
	bo := backoff.Backoff{Min: u.cfg.MQTT.ReconnectMin.D(), Max: u.cfg.MQTT.ReconnectMax.D()}
	for i := 0; ctx.Err() == nil; i++ {
		server := u.cfg.MQTT.Servers[i%len(u.cfg.MQTT.Servers)]
		established, err := u.session(ctx, server)
		if ctx.Err() != nil {
			return nil
		}
		if established {
			bo.Reset()
		}
		wait := bo.Next()
		if errors.Is(err, errHostOffline) {
			wait = min(wait, 2*time.Second)
		}
		u.log.Warn("broker session ended", "server", server, "err", err, "retry_in", wait.Round(time.Millisecond))
		backoff.Sleep(ctx, wait)
	}
	return nil
}

// session runs one MQTT connection. established reports whether births
// went out, so the caller can reset its backoff.
func (u *uplink) session(ctx context.Context, server string) (established bool, err error) {
	bd, err := u.bd.next()
	if err != nil {
		return false, err
	}
	u.bdSeq = bd
	u.gen++
	gen := u.gen
	u.server = server
	opts, err := u.clientOptions(server, gen)
	if err != nil {
		return false, err
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(u.cfg.MQTT.ConnectTimeout.D() + time.Second) {
		c.Disconnect(0)
		return false, fmt.Errorf("connecting to %s: timed out", server)
	}
	if err := tok.Error(); err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			if uerr := u.bd.undo(); uerr != nil {
				u.log.Warn("could not take back an unused bdSeq", "err", uerr)
			}
		}
		return false, fmt.Errorf("connecting to %s: %w", server, err)
	}
	u.client = c
	u.stats.connects.Add(1)
	u.stats.connected.Store(true)
	defer func() {
		u.stats.connected.Store(false)
		u.client = nil
		if lerr := u.store.buf.SetLinkUp(false); lerr != nil {
			u.log.Error("spilling buffer to disk failed", "err", lerr)
		}
	}()
	u.log.Info("connected to broker", "server", server, "bdSeq", bd)

	// One DCMD filter for all devices: a DCMD for a device this node does
	// not have is then refused and counted, not silently never seen.
	dcmds := sparkplug.Topic{Group: u.cfg.Node.GroupID, Type: sparkplug.DCMD, Node: u.cfg.Node.EdgeNodeID, Device: "+"}.String()
	filters := map[string]byte{u.nodeTopic.cmd: 1, dcmds: 1}
	if u.stateTop != "" {
		filters[u.stateTop] = 1
	}
	if err := wait(c.SubscribeMultiple(filters, nil), u.cfg.MQTT.ConnectTimeout.D()); err != nil {
		c.Disconnect(0)
		return false, fmt.Errorf("subscribing on %s: %w", server, err)
	}
	u.hostUp = u.stateTop == ""
	if !u.hostUp {
		if err := u.waitHost(ctx, gen); err != nil {
			c.Disconnect(0)
			return false, err
		}
	}
	if err := u.store.buf.SetLinkUp(true); err != nil {
		u.log.Error("buffer link state", "err", err)
	}
	u.startSession()
	if err := u.births(); err != nil {
		c.Disconnect(0)
		return false, err
	}
	err = u.serve(ctx, gen)
	if ctx.Err() != nil {
		u.goodbye()
		return true, nil
	}
	if errors.Is(err, errHostOffline) {
		u.publishNodeDeath()
	}
	c.Disconnect(100)
	return true, err
}

func wait(t mqtt.Token, d time.Duration) error {
	if !t.WaitTimeout(d) {
		return errors.New("timed out")
	}
	return t.Error()
}

func (u *uplink) clientOptions(server string, gen uint64) (*mqtt.ClientOptions, error) {
	m := u.cfg.MQTT
	death := sparkplug.AppendNodeDeath(nil, uint64(u.now().UnixMilli()), u.bdSeq)
	o := mqtt.NewClientOptions().AddBroker(server).SetClientID(m.ClientID).
		// 3.1.1 only: paho would otherwise retry a refused CONNECT as
		// MQTT 3.1, a second CONNECT with the same bdSeq.
		SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(m.Keepalive.D()).SetPingTimeout(max(time.Second, m.Keepalive.D()/2)).
		SetConnectTimeout(m.ConnectTimeout.D()).SetOrderMatters(false).
		SetCustomOpenConnectionFn(dialBroker).
		SetBinaryWill(u.nodeTopic.death, death, 1, false).
		SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) { u.msgs <- msg }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			u.log.Warn("broker connection lost", "err", err)
			select {
			case u.lost <- gen:
			default:
			}
		})
	if m.Username != "" {
		o.SetUsername(m.Username)
	}
	if m.PasswordFile != "" {
		b, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.password_file: %w", err)
		}
		o.SetPassword(strings.TrimRight(string(b), "\r\n"))
	}
	if strings.HasPrefix(server, "ssl") || strings.HasPrefix(server, "tls") || strings.HasPrefix(server, "mqtts") || strings.HasPrefix(server, "wss") || m.TLS.CAFile != "" {
		tc, err := tlsConfig(m.TLS)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	return o, nil
}

func tlsConfig(t TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.tls.ca_file %s: no PEM certificates found", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// startSession resets per-session state from a consistent mark.
func (u *uplink) startSession() {
	u.w = u.store.mark(u.devs, u.table, u.online)
	u.live, u.ackLive = u.w, u.w
	u.hist, u.ackHist = 0, 0
	u.histDone = false
	u.pending, u.sent = 0, false
	u.tokens, u.lastTok = 1, u.now()
	for i := range u.born {
		u.born[i], u.histBorn[i] = false, false
	}
	st := u.store.buf.Stats()
	u.log.Debug("session start", "history_through", u.w, "buffered", st.Records, "oldest", st.OldestSeq)
}

// births sends NBIRTH (seq 0) and a DBIRTH for every online device, from
// the table (the state as of the last record published live).
func (u *uplink) births() error {
	// pump always ends with the pending DDATA flushed, so this publishes
	// nothing; were it not, dropping it would let a receipt ack it unsent.
	u.flushData()
	u.seq = 0
	ts := uint64(u.now().UnixMilli())
	nb := [2]sparkplug.Metric{
		sparkplug.BdSeqMetric(u.bdSeq, ts),
		{Name: sparkplug.MetricRebirth, Timestamp: ts, Type: sparkplug.TypeBoolean},
	}
	u.publish(u.nodeTopic.birth, sparkplug.AppendBirth(nil, ts, 0, nb[:]), 0)
	for i := range u.devs {
		u.born[i], u.histBorn[i] = false, false
		if u.online[i] {
			u.deviceBirth(i)
		}
	}
	u.log.Info("births published", "bdSeq", u.bdSeq, "devices_online", count(u.online))
	return nil
}

func count(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

func (u *uplink) deviceBirth(i int) {
	u.flushData()
	d := u.devs[i]
	ts := uint64(u.now().UnixMilli())
	// Births are rare: their scratch is not kept (it is the size of the
	// device's tag list).
	ms := make([]sparkplug.Metric, 0, len(d.tags))
	for j := range d.tags {
		p := &u.table[i][j]
		m := u.metric(i, j, p.Value, p.Time, p.Quality, false)
		if p.Value.Type() == drivers.TypeInvalid {
			m.Null = true
			m.Timestamp = ts
		}
		if t := &d.tags[j]; t.Unit != "" || t.Description != "" {
			if t.Unit != "" {
				m.Properties = append(m.Properties, sparkplug.Property{Key: "engUnit", Type: sparkplug.TypeString, Str: t.Unit})
			}
			if t.Description != "" {
				m.Properties = append(m.Properties, sparkplug.Property{Key: "Documentation", Type: sparkplug.TypeString, Str: t.Description})
			}
		}
		ms = append(ms, m)
	}
	u.seq++
	u.publish(u.topics[i].birth, sparkplug.AppendBirth(nil, ts, uint64(u.seq), ms), 0)
	u.born[i] = true
}

func (u *uplink) deviceDeath(i int) {
	u.flushData()
	u.seq++
	u.publish(u.topics[i].death, sparkplug.AppendDeviceDeath(nil, uint64(u.now().UnixMilli()), uint64(u.seq)), 0)
	u.born[i], u.histBorn[i] = false, false
}

// metric builds the Sparkplug metric for device i's tag j.
func (u *uplink) metric(i, j int, v drivers.Value, at int64, q drivers.Quality, historical bool) sparkplug.Metric {
	d := u.devs[i]
	m := sparkplug.Metric{Name: d.tags[j].Name, Timestamp: uint64(at), Historical: historical, Type: spType(d.types[j])}
	if u.cfg.Node.UseAliases() {
		m.Alias, m.HasAlias = u.aliasBase[i]+uint64(j), true
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

func (u *uplink) publish(topic string, payload []byte, qos byte) mqtt.Token {
	u.stats.published.Add(1)
	return u.client.Publish(topic, qos, false, payload)
}

// serve publishes live data and history, handles commands and receipts,
// until the connection drops, the host goes offline or ctx ends.
func (u *uplink) serve(ctx context.Context, gen uint64) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	linger := time.NewTimer(0)
	defer linger.Stop()
	for {
		more, err := u.pump(gen)
		if err != nil {
			return err
		}
		var tick <-chan time.Time
		if more {
			timer.Reset(u.nextTokenIn())
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case g := <-u.lost:
			if g == gen {
				return errors.New("connection lost")
			}
		case <-u.store.notify:
			// Linger a moment: scans of devices polled together land in
			// one pump, one receipt and one delete transaction.
			linger.Reset(lingerFor)
			select {
			case <-linger.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		case <-tick:
		case r := <-u.rcpt:
			u.onReceipt(r)
		case msg := <-u.msgs:
			if err := u.onMessage(msg); err != nil {
				return err
			}
		}
	}
}

// pump publishes what is ready: live records, then history within the
// replay rate. more reports that history is waiting for rate tokens.
func (u *uplink) pump(gen uint64) (more bool, err error) {
	if u.pending >= maxPendingReceipts {
		return false, nil
	}
	const batch = 256
	if u.histDone || !u.cfg.Buffer.InOrder {
		recs, err := u.reader.Peek(u.live, batch, 8<<20)
		if err != nil {
			return false, fmt.Errorf("reading buffer: %w", err)
		}
		for _, r := range recs {
			u.publishRecord(r, false)
			u.live = r.Seq
		}
		u.flushData() // never mix live and historical metrics in one message
		if len(recs) == batch {
			defer u.signal()
		}
	}
	if !u.histDone {
		u.refill()
		n := int(u.tokens)
		if n > 0 {
			recs, err := u.reader.Peek(u.hist, min(n, batch), 8<<20)
			if err != nil {
				return false, fmt.Errorf("reading buffer: %w", err)
			}
			before := u.dataMsg
			for _, r := range recs {
				if r.Seq > u.w {
					break
				}
				u.publishRecord(r, true)
				u.hist = r.Seq
			}
			u.flushData()
			u.tokens -= float64(max(u.dataMsg-before, 1))
			if len(recs) == 0 || recs[len(recs)-1].Seq >= u.w || u.hist >= u.w {
				u.finishHistory()
			}
		}
		more = !u.histDone
	}
	if u.sent {
		u.sendReceipt(gen)
	}
	return more, nil
}

func (u *uplink) signal() {
	select {
	case u.store.notify <- struct{}{}:
	default:
	}
}

func (u *uplink) refill() {
	now := u.now()
	rate := float64(u.cfg.Buffer.ReplayRate)
	u.tokens = min(u.tokens+now.Sub(u.lastTok).Seconds()*rate, max(1, rate/10))
	u.lastTok = now
}

func (u *uplink) nextTokenIn() time.Duration {
	if u.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - u.tokens) / float64(u.cfg.Buffer.ReplayRate) * float64(time.Second))
}

// finishHistory ends replay: devices born only to carry their history
// and still offline get their DDEATH.
func (u *uplink) finishHistory() {
	u.histDone = true
	u.hist = u.w
	for i := range u.devs {
		if u.histBorn[i] && !u.online[i] {
			u.deviceDeath(i)
		}
	}
	u.sent = true
	u.log.Info("history replay done", "through", u.w)
}

// publishRecord publishes one buffered record (data may wait in the
// pending DDATA for more of the same device).
func (u *uplink) publishRecord(r buffer.Record, historical bool) {
	if err := decodeRecord(r.Data, &u.rec); err != nil {
		u.stats.droppedCorrupt.Add(1)
		u.log.Error("dropping unreadable buffer record", "seq", r.Seq, "err", err)
		return
	}
	rec := &u.rec
	i, ok := u.byID[string(rec.device)]
	if !ok {
		u.stats.droppedUnknown.Add(uint64(len(rec.points)))
		u.log.Warn("dropping record of a device no longer configured", "device", string(rec.device), "samples", len(rec.points))
		return
	}
	d := u.devs[i]
	switch rec.kind {
	case recOffline:
		if historical {
			return // superseded by this session's births
		}
		fallthrough
	case recOnline:
		if historical {
			// The snapshot read when the device came back during an
			// outage holds samples like any scan: replay them as data.
			break
		}
		if rec.kind == recOffline {
			u.online[i] = false
			if u.born[i] {
				u.deviceDeath(i)
				u.sent = true
				return
			}
			return
		}
		u.online[i] = true
		u.updateTable(i, d, rec)
		u.deviceBirth(i)
		u.histBorn[i] = false
		u.sent = true
		return
	}
	if !historical {
		u.updateTable(i, d, rec)
	}
	if !u.born[i] {
		// History of a device that is offline now: birth it from its
		// last known state so the data is valid Sparkplug; it gets its
		// DDEATH when replay ends.
		u.deviceBirth(i)
		u.histBorn[i] = historical
	}
	if u.pendDev != i {
		u.flushData()
		u.pendDev = i
	}
	for k := range rec.points {
		p := &rec.points[k]
		j, ok := d.tagIndex(p)
		if !ok || p.value.Type() != d.types[j] {
			u.stats.droppedUnknown.Add(1)
			continue
		}
		if historical {
			// The DBIRTH of this session carried the device's state as of
			// the mark: a historical sample equal to it is delivered.
			if b := &u.table[i][j]; b.Time == p.time && b.Quality == p.quality && b.Value.Equal(p.value) {
				continue
			}
		}
		u.pend = append(u.pend, u.metric(i, j, p.value, p.time, p.quality, historical))
		if len(u.pend) >= u.cfg.Buffer.MaxMetrics {
			u.flushData()
			u.pendDev = i
		}
	}
	n := uint64(len(rec.points))
	u.stats.samples.Add(n)
	if historical {
		u.stats.historical.Add(n)
	}
	u.sent = true
}

// flushData publishes the DDATA being filled. Consecutive records of one
// device share a message up to max_metrics_per_message; anything else
// published (births, deaths, receipts) flushes it first, so order holds.
func (u *uplink) flushData() {
	i := u.pendDev
	u.pendDev = -1
	if i < 0 || len(u.pend) == 0 {
		u.pend = u.pend[:0]
		return
	}
	u.seq++
	var qos byte
	if u.cfg.MQTT.DataQoS == 1 {
		qos = 1
	}
	if qos == 0 {
		payload := sparkplug.AppendData(u.payloads.get(64+len(u.pend)*24), uint64(u.now().UnixMilli()), uint64(u.seq), u.pend)
		u.payloads.put(payload, u.publish(u.topics[i].data, payload, 0))
	} else {
		payload := sparkplug.AppendData(make([]byte, 0, 64+len(u.pend)*24), uint64(u.now().UnixMilli()), uint64(u.seq), u.pend)
		u.publish(u.topics[i].data, payload, qos)
	}
	u.dataMsg++
	u.pend = u.pend[:0]
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

func (u *uplink) updateTable(i int, d *device, rec *record) {
	for k := range rec.points {
		p := &rec.points[k]
		if j, ok := d.tagIndex(p); ok && p.value.Type() == d.types[j] {
			u.table[i][j] = Point{Tag: int32(j), Value: p.value, Time: p.time, Quality: p.quality}
		}
	}
}

// sendReceipt asks the broker to prove it read everything published so
// far on this connection.
func (u *uplink) sendReceipt(gen uint64) {
	u.flushData()
	u.sent = false
	live, hist := u.live, u.hist
	var payload [16]byte
	binary.BigEndian.PutUint64(payload[:8], live)
	binary.BigEndian.PutUint64(payload[8:], hist)
	tok := u.client.Publish(u.cfg.MQTT.ReceiptTopic, 1, false, payload[:])
	u.pending++
	timeout := 2 * u.cfg.MQTT.Keepalive.D()
	go func() {
		var err error
		if !tok.WaitTimeout(timeout) {
			err = errors.New("receipt timed out")
		} else {
			err = tok.Error()
		}
		u.rcpt <- receipt{gen: gen, live: live, hist: hist, err: err}
	}()
}

func (u *uplink) onReceipt(r receipt) {
	if r.gen != u.gen {
		return // from an earlier connection: proves nothing
	}
	u.pending--
	if r.err != nil {
		u.log.Warn("no receipt from broker; records stay buffered", "err", r.err)
		return
	}
	u.log.Debug("receipt", "live", r.live, "hist", r.hist, "acked_live", u.ackLive, "acked_hist", u.ackHist)
	if r.hist > u.ackHist {
		u.acks.ack(0, r.hist)
		u.ackHist = r.hist
	}
	if r.live > u.ackLive {
		if u.ackHist >= u.w {
			u.acks.ack(0, r.live)
		} else {
			u.acks.ack(u.ackLive+1, r.live)
		}
		u.ackLive = r.live
	}
}

// goodbye ends the session on shutdown: publish what is ready, DDEATH per
// device, NDEATH, then DISCONNECT (Sparkplug's order for MQTT 3.1.1).
func (u *uplink) goodbye() {
	u.drain()
	for i := range u.devs {
		if u.born[i] {
			u.deviceDeath(i)
		}
	}
	tok := u.publishNodeDeath()
	tok.WaitTimeout(2 * time.Second)
	u.client.Disconnect(250)
	u.log.Info("disconnected from broker", "bdSeq", u.bdSeq)
}

// drain publishes the live records still stored and waits for their
// receipt, until drainBy.
func (u *uplink) drain() {
	deadline := time.Unix(0, u.drainBy.Load())
	for time.Now().Before(deadline) {
		if _, err := u.pump(u.gen); err != nil {
			return
		}
		st := u.store.buf.Stats()
		if u.pending == 0 && u.live >= st.NewestSeq {
			return
		}
		select {
		case r := <-u.rcpt:
			u.onReceipt(r)
		case g := <-u.lost:
			if g == u.gen {
				return
			}
		case <-time.After(time.Until(deadline)):
			return
		}
	}
}

func (u *uplink) publishNodeDeath() mqtt.Token {
	return u.publish(u.nodeTopic.death, sparkplug.AppendNodeDeath(nil, uint64(u.now().UnixMilli()), u.bdSeq), 0)
}
