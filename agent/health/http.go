package health

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source is what the endpoints read, at request time.
type Source interface {
	Status() Status
	// Stalled names the loops that stopped turning (see Monitor).
	Stalled() []string
}

// Status is the agent's state and counters.
type Status struct {
	Connected         bool
	Published         uint64 // Sparkplug messages
	Samples           uint64 // published, live and historical
	HistoricalSamples uint64
	DroppedUnknown    uint64 // samples of tags or devices no longer configured
	DroppedCorrupt    uint64 // records that failed to decode
	StoreFailed       uint64 // samples the buffer refused
	BufferCapDropped  uint64 // records dropped at buffer.max_bytes
	Connects          uint64
	Rebirths          uint64
	CommandsRefused   uint64
	WritesFailed      uint64
	Reloads           map[string]uint64 // by result

	BufferRecords      int
	BufferBytes        int64
	BufferFileBytes    int64
	BufferWrittenBytes int64
	BufferOldestAge    time.Duration

	Devices []DeviceStatus
}

// DeviceStatus is one device's state.
type DeviceStatus struct {
	ID     string
	Online bool
}

// document is the JSON both endpoints return.
type document struct {
	Alive           bool            `json:"alive"`
	Stalled         []string        `json:"stalled,omitempty"`
	Connected       bool            `json:"connected"`
	DevicesOnline   map[string]bool `json:"devices_online"`
	BufferedRecords int             `json:"buffered_records"`
	OldestBuffered  string          `json:"oldest_buffered_age"`
	Published       uint64          `json:"published_messages"`
}

// Serve serves the endpoints on addr until ctx ends.
func Serve(ctx context.Context, addr string, src Source, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collector{src})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		doc := status(src)
		write(w, doc, doc.Alive)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		doc := status(src)
		write(w, doc, doc.Alive && doc.Connected)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("health and metrics", "listen", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func status(src Source) document {
	s := src.Status()
	stalled := src.Stalled()
	doc := document{Alive: len(stalled) == 0, Stalled: stalled, Connected: s.Connected, DevicesOnline: map[string]bool{},
		BufferedRecords: s.BufferRecords, OldestBuffered: s.BufferOldestAge.Round(time.Second).String(), Published: s.Published}
	for _, d := range s.Devices {
		doc.DevicesOnline[d.ID] = d.Online
	}
	return doc
}

func write(w http.ResponseWriter, doc document, ok bool) {
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(doc)
}

// collector exports Status as Prometheus metrics.
type collector struct{ src Source }

var (
	descPublished  = prometheus.NewDesc("edgeagent_published_messages_total", "Sparkplug messages published.", nil, nil)
	descSamples    = prometheus.NewDesc("edgeagent_samples_published_total", "Samples published, live or historical (replayed).", []string{"kind"}, nil)
	descDropped    = prometheus.NewDesc("edgeagent_samples_dropped_total", "Samples dropped, by reason: buffer_cap (oldest records dropped at max_bytes; counts records), unknown_tag (configuration changed), corrupt_record, store_failed.", []string{"reason"}, nil)
	descConnected  = prometheus.NewDesc("edgeagent_broker_connected", "1 while the MQTT session to the central broker is up.", nil, nil)
	descConnects   = prometheus.NewDesc("edgeagent_broker_connects_total", "MQTT sessions established.", nil, nil)
	descRebirths   = prometheus.NewDesc("edgeagent_rebirths_total", "Rebirths requested by a host (NCMD).", nil, nil)
	descRefused    = prometheus.NewDesc("edgeagent_commands_refused_total", "NCMD/DCMD refused (not writable, unknown, bad type, undecodable, device offline).", nil, nil)
	descWrites     = prometheus.NewDesc("edgeagent_writes_failed_total", "DCMD writes the PLC did not accept.", nil, nil)
	descReloads    = prometheus.NewDesc("edgeagent_reloads_total", "Configuration reloads, by result: applied, partial (some keys need a restart and kept their value), invalid (nothing changed).", []string{"result"}, nil)
	descBufRecords = prometheus.NewDesc("edgeagent_buffer_records", "Records waiting in the store-and-forward buffer.", nil, nil)
	descBufBytes   = prometheus.NewDesc("edgeagent_buffer_bytes", "Bytes the buffered records take against buffer.max_bytes.", nil, nil)
	descBufFile    = prometheus.NewDesc("edgeagent_buffer_file_bytes", "Size of the buffer file.", nil, nil)
	descBufWritten = prometheus.NewDesc("edgeagent_buffer_written_bytes_total", "Bytes committed to the buffer file (pages and meta pages): the flash wear the buffer causes.", nil, nil)
	descBufAge     = prometheus.NewDesc("edgeagent_buffer_oldest_age_seconds", "Age of the oldest buffered record.", nil, nil)
	descDevOnline  = prometheus.NewDesc("edgeagent_device_online", "1 while the device's PLC answers.", []string{"device"}, nil)
	descAlive      = prometheus.NewDesc("edgeagent_alive", "1 while every loop of the agent is turning (what feeds the systemd watchdog).", nil, nil)
)

// ReloadResults are the values of edgeagent_reloads_total's result label.
var ReloadResults = []string{"applied", "partial", "invalid"}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPublished, descSamples, descDropped, descConnected, descConnects, descRebirths, descRefused, descWrites, descReloads, descBufRecords, descBufBytes, descBufFile, descBufWritten, descBufAge, descDevOnline, descAlive} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Status()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	counter(descPublished, s.Published)
	counter(descSamples, s.Samples-s.HistoricalSamples, "live")
	counter(descSamples, s.HistoricalSamples, "historical")
	counter(descDropped, s.BufferCapDropped, "buffer_cap")
	counter(descDropped, s.DroppedUnknown, "unknown_tag")
	counter(descDropped, s.DroppedCorrupt, "corrupt_record")
	counter(descDropped, s.StoreFailed, "store_failed")
	gauge(descConnected, b(s.Connected))
	counter(descConnects, s.Connects)
	counter(descRebirths, s.Rebirths)
	counter(descRefused, s.CommandsRefused)
	counter(descWrites, s.WritesFailed)
	for _, r := range ReloadResults {
		counter(descReloads, s.Reloads[r], r)
	}
	gauge(descBufRecords, float64(s.BufferRecords))
	gauge(descBufBytes, float64(s.BufferBytes))
	gauge(descBufFile, float64(s.BufferFileBytes))
	counter(descBufWritten, uint64(s.BufferWrittenBytes))
	gauge(descBufAge, s.BufferOldestAge.Seconds())
	for _, d := range s.Devices {
		gauge(descDevOnline, b(d.Online), d.ID)
	}
	gauge(descAlive, b(len(c.src.Stalled()) == 0))
}
