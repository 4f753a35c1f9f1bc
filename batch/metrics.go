package batch

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics records how group commit behaves: how big batches get, how long
// requests wait for one, and how deep the queues are. A nil *Metrics records
// nothing.
type Metrics struct {
	size     prometheus.Histogram
	duration prometheus.Histogram
	wait     prometheus.Histogram
	depth    prometheus.Gauge
	rejects  prometheus.Counter
}

// NewMetrics registers the batcher's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		size: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ticketrush_batch_size",
			Help:    "Reserves decided in one group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ticketrush_batch_duration_seconds",
			Help:    "Time one group-commit transaction took, commit included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ticketrush_batch_wait_seconds",
			Help:    "Time a reserve waited in its event's queue before its batch started.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ticketrush_batch_queue_depth",
			Help: "Reserves waiting for a batch, over all events.",
		}),
		rejects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ticketrush_batch_rejected_total",
			Help: "Reserves refused because their event's queue was full.",
		}),
	}
	reg.MustRegister(m.size, m.duration, m.wait, m.depth, m.rejects)
	return m
}

func (m *Metrics) queued(n int) {
	if m != nil {
		m.depth.Add(float64(n))
	}
}

func (m *Metrics) waited(d time.Duration) {
	if m != nil {
		m.wait.Observe(d.Seconds())
	}
}

func (m *Metrics) batch(n int, d time.Duration) {
	if m != nil {
		m.size.Observe(float64(n))
		m.duration.Observe(d.Seconds())
	}
}

func (m *Metrics) rejected() {
	if m != nil {
		m.rejects.Inc()
	}
}
