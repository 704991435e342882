package uplink

import (
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/edgeagent/edgeagent/internal/version"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// The node's own metrics: Node Control, and the gateway's health as a
// host shows it beside the devices. Their set never changes with the
// configuration (a device added by a reload must not cost a node
// rebirth), so devices are summed up in two metrics rather than one each.
// They describe the present: the NBIRTH carries their values at the
// time, NDATA their changes, at most every nodeDataEvery and after the
// data they describe; nothing of them is buffered during a cut.

// Names of the node metrics.
const (
	MetricNextServer      = "Node Control/Next Server"
	metricVersion         = "Properties/Version"
	metricOS              = "Properties/OS"
	metricHostname        = "Properties/Hostname"
	metricBufRecords      = "Buffer/Records"
	metricBufBytes        = "Buffer/Bytes"
	metricBufOldest       = "Buffer/Oldest Age"
	metricBufDropped      = "Buffer/Dropped"
	metricReconnects      = "Uplink/Reconnects"
	metricSamplesDropped  = "Uplink/Samples Dropped"
	metricCommandsRefused = "Commands/Refused"
	metricWritesFailed    = "Writes/Failed"
	metricDevicesOnline   = "Devices/Online"
	metricDevicesOffline  = "Devices/Offline"
)

// nodeMetric is one node metric: its alias is its index here plus
// firstNodeAlias.
type nodeMetric struct {
	name string
	typ  sparkplug.DataType
	unit string
	doc  string
}

var nodeMetrics = []nodeMetric{
	{name: MetricNextServer, typ: sparkplug.TypeBoolean, doc: "write true: publish the NDEATH and move to the next server of mqtt.servers"},
	{name: metricVersion, typ: sparkplug.TypeString},
	{name: metricOS, typ: sparkplug.TypeString},
	{name: metricHostname, typ: sparkplug.TypeString},
	{name: metricBufRecords, typ: sparkplug.TypeUInt64, doc: "records stored and not yet proven received"},
	{name: metricBufBytes, typ: sparkplug.TypeUInt64, unit: "B"},
	{name: metricBufOldest, typ: sparkplug.TypeDouble, unit: "s", doc: "age of the oldest stored record"},
	{name: metricBufDropped, typ: sparkplug.TypeUInt64, doc: "records dropped by buffer.max_bytes since start"},
	{name: metricReconnects, typ: sparkplug.TypeUInt64, doc: "broker connections since start, after the first"},
	{name: metricSamplesDropped, typ: sparkplug.TypeUInt64, doc: "samples of removed tags or devices, unreadable records, or refused by the buffer"},
	{name: metricCommandsRefused, typ: sparkplug.TypeUInt64},
	{name: metricWritesFailed, typ: sparkplug.TypeUInt64, doc: "DCMD writes the PLC refused or that could not reach it"},
	{name: metricDevicesOnline, typ: sparkplug.TypeUInt32},
	{name: metricDevicesOffline, typ: sparkplug.TypeString, doc: "ids of the configured devices that are offline, comma-separated"},
}

// Aliases: bdSeq 1, the node metrics from 2 in the order above, the
// devices' blocks after them. Node Control/Rebirth has none.
const (
	bdSeqAlias     = 1
	firstNodeAlias = 2
)

// firstDeviceAlias is where the devices' alias blocks start.
var firstDeviceAlias = uint64(firstNodeAlias + len(nodeMetrics))

// nodeDataEvery bounds how often node metrics are published.
const nodeDataEvery = 5 * time.Second

// NodeInfo is what the node metrics report beyond the uplink's own
// counters; the agent supplies it.
type NodeInfo struct {
	WritesFailed uint64
	SamplesLost  uint64 // refused by the buffer
}

var hostname = func() string {
	h, _ := os.Hostname()
	return h
}()

// nodeValues fills ms (one per nodeMetrics entry) with the node's state.
func (s *session) nodeValues(ms []sparkplug.Metric, ts uint64) []sparkplug.Metric {
	u := s.u
	st := u.buf.Stats()
	var info NodeInfo
	if u.info != nil {
		info = u.info()
	}
	var online uint64
	var offline []string
	for _, ds := range s.order {
		if ds.online {
			online++
		} else {
			offline = append(offline, ds.dev.ID())
		}
	}
	reconnects := u.stats.connects.Load()
	if reconnects > 0 {
		reconnects--
	}
	ms = ms[:0]
	for i, nm := range nodeMetrics {
		m := sparkplug.Metric{Name: nm.name, Timestamp: ts, Type: nm.typ}
		if s.cfg.Node.UseAliases() {
			m.Alias, m.HasAlias = uint64(firstNodeAlias+i), true
		}
		switch nm.name {
		case MetricNextServer:
		case metricVersion:
			m.Str = version.Version
		case metricOS:
			m.Str = runtime.GOOS + "/" + runtime.GOARCH
		case metricHostname:
			m.Str = hostname
		case metricBufRecords:
			m.Int = uint64(st.Records)
		case metricBufBytes:
			m.Int = uint64(st.Bytes)
		case metricBufOldest:
			m.Float = st.OldestAge.Round(time.Second).Seconds()
		case metricBufDropped:
			m.Int = st.Dropped
		case metricReconnects:
			m.Int = reconnects
		case metricSamplesDropped:
			m.Int = u.stats.droppedUnknown.Load() + u.stats.droppedCorrupt.Load() + info.SamplesLost
		case metricCommandsRefused:
			m.Int = u.stats.commandsRefused.Load()
		case metricWritesFailed:
			m.Int = info.WritesFailed
		case metricDevicesOnline:
			m.Int = online
		case metricDevicesOffline:
			m.Str = strings.Join(offline, ",")
		}
		ms = append(ms, m)
	}
	return ms
}

// nodeBirthMetrics are the NBIRTH's metrics: bdSeq, Rebirth, the node
// metrics with their units and descriptions.
func (s *session) nodeBirthMetrics(ts uint64) []sparkplug.Metric {
	bd := sparkplug.BdSeqMetric(s.bdSeq, ts)
	if s.cfg.Node.UseAliases() {
		bd.Alias, bd.HasAlias = bdSeqAlias, true
	}
	ms := []sparkplug.Metric{bd, {Name: sparkplug.MetricRebirth, Timestamp: ts, Type: sparkplug.TypeBoolean}}
	vals := s.nodeValues(nil, ts)
	for i := range vals {
		nm := &nodeMetrics[i]
		if nm.unit != "" {
			vals[i].Properties = append(vals[i].Properties, sparkplug.Property{Key: "engUnit", Type: sparkplug.TypeString, Str: nm.unit})
		}
		if nm.doc != "" {
			vals[i].Properties = append(vals[i].Properties, sparkplug.Property{Key: "Documentation", Type: sparkplug.TypeString, Str: nm.doc})
		}
	}
	s.nodeLast = append(s.nodeLast[:0], vals...)
	s.nodeAt = s.u.now()
	ms = append(ms, vals...)
	return append(ms, s.defMetrics(ts, firstDeviceAlias)...)
}

// nodeData publishes the node metrics that changed since they were last
// published, if nodeDataEvery has passed. It runs after pump, so they
// never run ahead of the data they describe.
func (s *session) nodeData() {
	now := s.u.now()
	if now.Sub(s.nodeAt) < nodeDataEvery || len(s.nodeLast) != len(nodeMetrics) {
		return
	}
	s.nodeAt = now
	ts := uint64(now.UnixMilli())
	cur := s.nodeValues(s.nodeScratch, ts)
	s.nodeScratch = cur
	var changed []sparkplug.Metric
	for i := range cur {
		last := &s.nodeLast[i]
		if cur[i].Int == last.Int && cur[i].Float == last.Float && cur[i].Str == last.Str {
			continue
		}
		*last = cur[i]
		changed = append(changed, cur[i])
	}
	if len(changed) == 0 {
		return
	}
	s.seq++
	s.publish(s.topics.data, sparkplug.AppendData(nil, ts, uint64(s.seq), changed), 0)
}
