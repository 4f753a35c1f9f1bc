// Package httpapi is ticketrush's HTTP API: JSON over HTTP, routes in
// routes.go, one table from domain error code to HTTP status in errors.go,
// strict request decoding in decode.go. Its OpenAPI description lives in
// package api and the tests hold every response to it.
package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
	"golang.org/x/time/rate"
)

// DefaultTimeout bounds the database work of one request, so that during an
// outage a client gets 503 quickly instead of a hung request.
const DefaultTimeout = 1500 * time.Millisecond

// readyTimeout bounds the database ping of /readyz.
const readyTimeout = time.Second

// Config is what a Server needs. Store is required; every other field has a
// default.
type Config struct {
	Store ticketrush.Store
	// Reserver is the reserve strategy; nil means Store itself (the
	// original's lock per request).
	Reserver ticketrush.Reserver
	// Checkout, when set, group-commits purchases and cancels through a
	// batch.Settler with these options (the batch strategy); nil means one
	// Store call, one transaction, per request (the lock strategy).
	Checkout *batch.Options
	// AdminToken guards the admin routes; "" refuses every admin request.
	AdminToken string
	// DefaultHold is the hold time of events created without hold_seconds;
	// 0 means ticketrush.DefaultHold.
	DefaultHold time.Duration
	// Timeout bounds each request's database work; 0 means DefaultTimeout.
	Timeout time.Duration
	// Logger gets internal errors and outages; nil means slog.Default().
	Logger *slog.Logger
	// Registry receives the metrics and is served at /metrics; nil means a
	// new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Web, when set, serves WebRoutes (the buyer page, the dashboard, their
	// assets and the live availability stream) beside the API.
	Web       http.Handler
	WebRoutes []string
	// AllowedOrigins are the origins (canonical, as ParseOrigins returns
	// them) whose pages may call the API and the admin routes from a
	// browser. Every other cross-site browser request that changes state
	// or reaches admin is refused with 403 cross_site_request.
	AllowedOrigins []string
	// Limiter, when set, is asked before every route except /healthz,
	// /readyz and /metrics; a request it refuses is answered 429
	// rate_limited with Retry-After.
	Limiter Limiter
	// ClientIP names the client of a request in the request log; nil
	// means the connection's peer address.
	ClientIP func(*http.Request) string
	// RequestLog configures the one line logged per request.
	RequestLog RequestLogConfig
	// WaitingRoom configures the queue endpoints and admission passes.
	WaitingRoom WaitingRoomConfig
	// EventsMaxAge bounds how old the public GET /api/events and
	// GET /api/events/{id} answers may be, which come from a per-process
	// snapshot (see eventView); 0 means DefaultEventsMaxAge, a negative
	// value reads the store on every request.
	EventsMaxAge time.Duration
}

// Limiter decides whether a request may go on.
type Limiter interface {
	// Allow returns 0 when r may go on, else how long until it could.
	Allow(r *http.Request) time.Duration
}

// unlimited are the routes a Limiter never sees: probes and scrapes come
// from a few fixed addresses at a steady pace, and limiting them would only
// fail health checks.
var unlimited = map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true}

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	store    ticketrush.Store
	reserver ticketrush.Reserver
	// settler purchases and cancels: the Store, or checkout's batcher.
	settler     ticketrush.Settler
	checkout    *batch.Settler
	log         *slog.Logger
	web         http.Handler
	webRoutes   []string
	registry    *prometheus.Registry
	metrics     *Metrics
	mux         *http.ServeMux
	timeout     time.Duration
	defaultHold int64 // seconds
	// adminHash is the SHA-256 of the admin token, so comparing a
	// candidate takes the same time whatever its length.
	adminHash [sha256.Size]byte
	adminSet  bool
	// outageLog keeps a database outage from writing a log line per
	// request.
	outageLog      *rate.Limiter
	allowedOrigins []string
	limiter        Limiter
	clientIP       func(*http.Request) string
	reqLog         *requestLog
	// wr is the waiting room's HTTP side (queue.go).
	wr *waitingRoom
	// events serves the public event reads (eventview.go).
	events *eventView
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	s := &Server{
		store:     cfg.Store,
		reserver:  cfg.Reserver,
		log:       cfg.Logger,
		web:       cfg.Web,
		webRoutes: cfg.WebRoutes,
		registry:  cfg.Registry,
		timeout:   cfg.Timeout,
		mux:       http.NewServeMux(),
		outageLog: rate.NewLimiter(rate.Every(time.Second), 1),

		allowedOrigins: cfg.AllowedOrigins,
		limiter:        cfg.Limiter,
		clientIP:       cfg.ClientIP,
	}
	if s.reserver == nil {
		s.reserver = cfg.Store
	}
	s.settler = cfg.Store
	if cfg.Checkout != nil {
		s.checkout = batch.NewSettler(cfg.Store, *cfg.Checkout)
		s.settler = s.checkout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
		s.registry.MustRegister(collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	hold := cfg.DefaultHold
	if hold <= 0 {
		hold = ticketrush.DefaultHold
	}
	s.defaultHold = max(int64(hold/time.Second), 1)
	if cfg.AdminToken != "" {
		s.adminHash = sha256.Sum256([]byte(cfg.AdminToken))
		s.adminSet = true
	}
	if s.clientIP == nil {
		s.clientIP = peerIP
	}
	s.metrics = newMetrics(s.registry)
	s.reqLog = newRequestLog(cfg.RequestLog, s.log, s.registry)
	maxAge := cfg.EventsMaxAge
	if maxAge == 0 {
		maxAge = DefaultEventsMaxAge
	}
	s.events = newEventView(cfg.Store, max(maxAge, 0), s.timeout)
	s.wr = newWaitingRoom(s, cfg.WaitingRoom, s.registry)
	s.routes()
	return s
}

// Metrics returns the server's metrics, e.g. to count the sweeper's
// released holds.
func (s *Server) Metrics() *Metrics { return s.metrics }

// HoldsReleased counts holds released by the sweeper; pass it as the
// released callback of ticketrush.Sweep.
func (s *Server) HoldsReleased(n int) { s.metrics.HoldsReleased(n) }

// Registry returns the registry served at /metrics, so other components
// (the batcher) can register theirs.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// ServeHTTP implements http.Handler: it routes r, answers the mux's own
// 404 and 405 in JSON, turns a panic into a 500, and records metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w, s: s, req: r}
	defer func() {
		v := recover()
		abort := v == http.ErrAbortHandler
		if v != nil && !abort {
			s.log.LogAttrs(r.Context(), slog.LevelError, "panic",
				slog.String("method", r.Method), slog.String("route", routeOf(r)),
				slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			if rw.wroteHeader {
				// Part of an answer is out: abort the connection so the
				// client cannot take it for a whole one.
				abort = true
			} else {
				rw.discard = true
				writeJSON(passthrough{rw}, http.StatusInternalServerError,
					ErrorBody{Error: ErrorDetail{Code: ticketrush.EInternal, Message: internalMessage}})
			}
		}
		rm := rw.route
		if rm == nil {
			rm = s.metrics.forUnmatched(r.Method)
		}
		status := rw.status
		if status == 0 {
			status = http.StatusOK // nothing written: net/http sends 200
		}
		elapsed := time.Since(start)
		rm.observe(status, elapsed)
		s.reqLog.write(r, rw, status, elapsed, s.clientIP)
		if abort {
			panic(http.ErrAbortHandler)
		}
	}()
	if s.preflight(passthrough{rw}, r) {
		return
	}
	s.mux.ServeHTTP(rw, r)
}

// handle registers a route. The wrapper tells the response writer which
// route matched, which is how ServeHTTP tells a handler's answer from the
// mux's own 404 and 405.
//
// Every route is guarded the same way, in this order: cross-site browser
// requests first (refusing them costs nothing and must not spend the
// visitor's rate budget), then the rate limit.
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	rm := s.metrics.forPattern(pattern)
	limited := s.limiter != nil && !unlimited[pattern]
	// The organiser's own dashboard polls every event's stats: requests
	// with the valid admin token are not the traffic the limit is for.
	adminRoute := strings.Contains(pattern, " /api/admin/")
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if rw, ok := w.(*responseWriter); ok {
			rw.route = rm
		}
		if len(s.allowedOrigins) > 0 {
			s.corsHeaders(w, r)
		}
		if err := s.crossSite(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := requireJSONBody(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		if limited && !(adminRoute && s.authorized(r)) {
			if wait := s.limiter.Allow(r); wait > 0 {
				w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(wait.Seconds()))), 10))
				s.writeError(w, r, errRateLimited)
				return
			}
		}
		h(w, r)
	})
}

var errRateLimited = ticketrush.Errorf(ticketrush.ERateLimited, "Too many requests, please retry later.")

// peerIP is the client of r when no proxy is trusted: the connection's
// peer.
func peerIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// ctx returns the context for a request's database work: the request's,
// bounded by the server's timeout.
func (s *Server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.timeout)
}

// routeOf names the route of r for logs: its pattern, never the raw path.
func routeOf(r *http.Request) string {
	if r.Pattern == "" {
		return "unmatched"
	}
	return r.Pattern
}

// responseWriter records the status for metrics, and replaces the mux's
// plain-text 404, 405 and path-cleaning redirects with JSON errors.
type responseWriter struct {
	http.ResponseWriter
	s           *Server
	req         *http.Request
	route       *routeMetrics // nil until a route's handler runs
	status      int
	wroteHeader bool
	discard     bool   // the mux's own body, replaced by ours
	code        string // the error code answered, for the request log
	bytes       int64  // body bytes written, for the request log
}

func (rw *responseWriter) WriteHeader(status int) {
	if rw.wroteHeader {
		return
	}
	if rw.route == nil && !rw.discard {
		rw.replaceMuxAnswer(status)
		return
	}
	rw.wroteHeader = true
	rw.status = status
	rw.ResponseWriter.WriteHeader(status)
}

func (rw *responseWriter) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.discard {
		return len(b), nil
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// replaceMuxAnswer answers in JSON for the mux. A 405 keeps its Allow
// header. Anything else the mux says on its own (404, or a redirect to a
// cleaned path such as /api/events/1/../2) is a not_found: an API client
// should send canonical paths, and a redirect is no error a client expects.
func (rw *responseWriter) replaceMuxAnswer(status int) {
	h := rw.Header()
	allow := h.Get("Allow")
	for k := range h {
		delete(h, k)
	}
	var err error
	if status == http.StatusMethodNotAllowed {
		h.Set("Allow", allow)
		err = ticketrush.Errorf(ticketrush.EMethodNotAllowed, "The method %s is not allowed here.", safeMethod(rw.req.Method))
	} else {
		err = ticketrush.Errorf(ticketrush.ENotFound, "No such route.")
	}
	// From here on the writer passes our answer through and swallows the
	// mux's.
	rw.discard = true
	rw.s.writeError(passthrough{rw}, rw.req, err)
}

// passthrough writes to the underlying writer while rw drops the mux's own
// body.
type passthrough struct{ rw *responseWriter }

func (p passthrough) Header() http.Header { return p.rw.ResponseWriter.Header() }

func (p passthrough) WriteHeader(status int) {
	p.rw.wroteHeader = true
	p.rw.status = status
	p.rw.ResponseWriter.WriteHeader(status)
}

func (p passthrough) Write(b []byte) (int, error) {
	n, err := p.rw.ResponseWriter.Write(b)
	p.rw.bytes += int64(n)
	return n, err
}

// safeMethod keeps a hostile method token out of a message verbatim.
func safeMethod(m string) string {
	for _, known := range methods {
		if m == known {
			return m
		}
	}
	return "used"
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a bug (an unencodable value) gets here; say so plainly
		// rather than send half a body.
		b = []byte(`{"error":{"code":"internal","message":"Internal error."}}`)
		status = http.StatusInternalServerError
	}
	writeBody(w, status, b)
}

// writeBody answers with an encoded JSON body.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// The values of every JSON answer's fixed headers, shared by all answers:
// net/http copies a handler's header values before it writes them and never
// changes a value slice, so no answer allocates its own.
var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
	headerNoSniff = []string{"nosniff"}
)

// setJSONHeaders sets the headers of a JSON answer (keys already in
// canonical form).
func setJSONHeaders(h http.Header) {
	h["Content-Type"] = headerJSON
	h["Cache-Control"] = headerNoStore
	h["X-Content-Type-Options"] = headerNoSniff
}
