package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's Prometheus metrics. Label sets are bounded: the
// route label is the mux pattern (never the raw path), the method label one
// of the standard methods or "OTHER", the code label an HTTP status, and the
// outcome label "reserved" or a known error code.
type Metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	reservations map[string]prometheus.Counter
	released     prometheus.Counter
	// unmatched serves requests no route matched, by method.
	unmatched map[string]*routeMetrics
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketrush_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ticketrush_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"route", "method"}),
		released: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ticketrush_holds_released_total",
			Help: "Expired holds released by the sweeper.",
		}),
		reservations: make(map[string]prometheus.Counter),
		unmatched:    make(map[string]*routeMetrics),
	}
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ticketrush_reservations_total",
		Help: `Reserve requests by outcome: "reserved" or the error code.`,
	}, []string{"outcome"})
	reg.MustRegister(m.requests, m.duration, m.released, outcomes)

	// Creating every series up front keeps the hot path to a map read and
	// makes a zero visible from the first scrape.
	m.reservations["reserved"] = outcomes.WithLabelValues("reserved")
	for code := range statuses {
		m.reservations[code] = outcomes.WithLabelValues(code)
	}
	for _, method := range methods {
		m.unmatched[method] = m.route("unmatched", method)
	}
	m.unmatched[methodOther] = m.route("unmatched", methodOther)
	return m
}

// HoldsReleased counts holds released by the sweeper; pass it as the
// released callback of ticketrush.Sweep.
func (m *Metrics) HoldsReleased(n int) {
	if n > 0 {
		m.released.Add(float64(n))
	}
}

// reserved counts one reserve outcome: err nil means reserved.
func (m *Metrics) reserved(err error) {
	outcome := "reserved"
	if err != nil {
		outcome, _ = classify(err)
	}
	m.reservations[outcome].Inc()
}

// routeMetrics are one route's series, curried so a request only picks its
// status code.
type routeMetrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Observer
}

func (m *Metrics) route(route, method string) *routeMetrics {
	l := prometheus.Labels{"route": route, "method": method}
	return &routeMetrics{
		requests: m.requests.MustCurryWith(l),
		duration: m.duration.With(l),
	}
}

// forPattern returns the series of a mux pattern such as
// "GET /api/events/{id}".
func (m *Metrics) forPattern(pattern string) *routeMetrics {
	method, path, _ := strings.Cut(pattern, " ")
	return m.route(path, method)
}

func (m *Metrics) forUnmatched(method string) *routeMetrics {
	if rm, ok := m.unmatched[method]; ok {
		return rm
	}
	return m.unmatched[methodOther]
}

func (rm *routeMetrics) observe(status int, d time.Duration) {
	rm.requests.WithLabelValues(statusLabel(status)).Inc()
	rm.duration.Observe(d.Seconds())
}

// methods are the method label values; any other method counts as
// methodOther so a client cannot create series at will.
var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
}

const methodOther = "OTHER"

var statusLabels = func() []string {
	s := make([]string, 600)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusLabel(status int) string {
	if status >= 0 && status < len(statusLabels) {
		return statusLabels[status]
	}
	return "other"
}
