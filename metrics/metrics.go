// Package metrics holds Parley's Prometheus collectors and the registry that
// serves them at /metrics. Collectors are process-wide, like the process and
// Go runtime collectors registered beside them; all are safe for concurrent use.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is the registry every Parley collector is registered with.
var Registry = prometheus.NewRegistry()

var (
	// Connections is the number of open WebSocket connections.
	Connections = gauge("parley_gateway_connections", "Open WebSocket connections.")
	// FramesIn counts frames received from clients, by frame type.
	FramesIn = counterVec("parley_gateway_frames_in_total", "Frames received from clients, by type.", "type")
	// FramesOut counts frames written to clients.
	FramesOut = counter("parley_gateway_frames_out_total", "Frames written to clients.")
	// SlowConsumers counts connections closed because their outbound queue overflowed.
	SlowConsumers = counter("parley_gateway_slow_consumers_total", "Connections closed because their outbound queue overflowed.")
	// Kicks counts connections closed by the server, by kick code.
	Kicks = counterVec("parley_gateway_kicks_total", "Connections closed by the server, by reason.", "code")
	// Sends counts committed messages (duplicates excluded).
	Sends = counter("parley_messages_committed_total", "Messages committed.")
	// Duplicates counts sends answered from an earlier commit with the same client message id.
	Duplicates = counter("parley_messages_duplicate_total", "Sends that repeated a client message id.")
	// FanoutShed counts group message pushes shed because a fan-out
	// worker's queue was full: fan-out is falling behind commits, and
	// members are catching up by pulls.
	FanoutShed = counter("parley_fanout_shed_total", "Group message pushes shed for a full fan-out worker queue.")
	// CommitBatch observes how many messages each group commit carried.
	CommitBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "parley_commit_batch_size",
		Help:    "Messages per group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	})
	// CommitSeconds observes how long each group commit took.
	CommitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "parley_commit_seconds",
		Help:    "Duration of one group commit.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	// Errors counts errors returned to clients, by stable error code.
	Errors = counterVec("parley_errors_total", "Errors returned to clients, by code.", "code")
	// HTTPRequests counts REST requests by route pattern and status code.
	HTTPRequests = counterVec("parley_http_requests_total", "REST requests by route and status.", "route", "status")
)

func init() {
	Registry.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		Connections, FramesIn, FramesOut, SlowConsumers, Kicks, Sends, Duplicates, FanoutShed,
		CommitBatch, CommitSeconds, Errors, HTTPRequests,
	)
}

// Handler serves the registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{})
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}
