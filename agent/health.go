package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveHealth serves /healthz (JSON status; 503 while the broker link is
// down) and /metrics (Prometheus) on addr until ctx ends. Counters are
// read at scrape time, so the data path pays nothing for them.
func (a *Agent) serveHealth(ctx context.Context, addr string) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), (*agentCollector)(a))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", a.healthz)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	a.log.Info("health and metrics", "listen", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type healthStatus struct {
	Connected       bool            `json:"connected"`
	DevicesOnline   map[string]bool `json:"devices_online"`
	BufferedRecords int             `json:"buffered_records"`
	OldestBuffered  string          `json:"oldest_buffered_age"`
	Published       uint64          `json:"published_messages"`
}

func (a *Agent) healthz(w http.ResponseWriter, _ *http.Request) {
	s := a.Stats()
	h := healthStatus{Connected: s.Connected, DevicesOnline: map[string]bool{}, BufferedRecords: s.Buffer.Records,
		OldestBuffered: s.Buffer.OldestAge.Round(time.Second).String(), Published: s.Published}
	for _, d := range a.devs {
		h.DevicesOnline[d.cfg.ID] = d.isOnline()
	}
	w.Header().Set("Content-Type", "application/json")
	if !s.Connected {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(h)
}

// agentCollector exports Agent.Stats as Prometheus metrics.
type agentCollector Agent

var (
	descPublished  = prometheus.NewDesc("edgeagent_published_messages_total", "Sparkplug messages published.", nil, nil)
	descSamples    = prometheus.NewDesc("edgeagent_samples_published_total", "Samples published, live or historical (replayed).", []string{"kind"}, nil)
	descDropped    = prometheus.NewDesc("edgeagent_samples_dropped_total", "Samples dropped, by reason: buffer_cap (oldest dropped at max_bytes), unknown_tag (configuration changed), corrupt_record, store_failed.", []string{"reason"}, nil)
	descConnected  = prometheus.NewDesc("edgeagent_broker_connected", "1 while the MQTT session to the central broker is up.", nil, nil)
	descConnects   = prometheus.NewDesc("edgeagent_broker_connects_total", "MQTT sessions established.", nil, nil)
	descRebirths   = prometheus.NewDesc("edgeagent_rebirths_total", "Rebirths requested by a host (NCMD).", nil, nil)
	descRefused    = prometheus.NewDesc("edgeagent_commands_refused_total", "NCMD/DCMD refused (not writable, unknown, bad type, undecodable).", nil, nil)
	descBufRecords = prometheus.NewDesc("edgeagent_buffer_records", "Records waiting in the store-and-forward buffer.", nil, nil)
	descBufBytes   = prometheus.NewDesc("edgeagent_buffer_bytes", "Bytes the buffered records take against buffer.max_bytes.", nil, nil)
	descBufFile    = prometheus.NewDesc("edgeagent_buffer_file_bytes", "Size of the buffer file.", nil, nil)
	descBufWritten = prometheus.NewDesc("edgeagent_buffer_written_bytes_total", "Bytes committed to the buffer file (pages and meta pages): the flash wear the buffer causes.", nil, nil)
	descBufAge     = prometheus.NewDesc("edgeagent_buffer_oldest_age_seconds", "Age of the oldest buffered record.", nil, nil)
	descDevOnline  = prometheus.NewDesc("edgeagent_device_online", "1 while the device's PLC answers.", []string{"device"}, nil)
)

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPublished, descSamples, descDropped, descConnected, descConnects, descRebirths, descRefused, descBufRecords, descBufBytes, descBufFile, descBufWritten, descBufAge, descDevOnline} {
		ch <- d
	}
}

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	a := (*Agent)(c)
	s := a.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(descPublished, s.Published)
	counter(descSamples, s.Samples-s.HistoricalSamples, "live")
	counter(descSamples, s.HistoricalSamples, "historical")
	counter(descDropped, s.Buffer.Dropped, "buffer_cap")
	counter(descDropped, s.DroppedUnknown, "unknown_tag")
	counter(descDropped, s.DroppedCorrupt, "corrupt_record")
	counter(descDropped, s.StoreFailed, "store_failed")
	b := 0.0
	if s.Connected {
		b = 1
	}
	gauge(descConnected, b)
	counter(descConnects, s.Connects)
	counter(descRebirths, s.Rebirths)
	counter(descRefused, s.CommandsRefused)
	gauge(descBufRecords, float64(s.Buffer.Records))
	gauge(descBufBytes, float64(s.Buffer.Bytes))
	gauge(descBufFile, float64(s.Buffer.FileBytes))
	counter(descBufWritten, uint64(s.Buffer.WrittenBytes))
	gauge(descBufAge, s.Buffer.OldestAge.Seconds())
	for _, d := range a.devs {
		v := 0.0
		if d.isOnline() {
			v = 1
		}
		gauge(descDevOnline, v, d.cfg.ID)
	}
}
