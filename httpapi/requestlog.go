package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// RequestLogConfig configures the request log: one structured line per
// request with its method, route pattern, status, duration, error code,
// body bytes, client IP and the first characters of its visitor token
// (never the whole token: the log must not let anyone act as a visitor).
type RequestLogConfig struct {
	// Off turns the request log off.
	Off bool
	// Level is the level of the lines; the zero value is info. A line is
	// written only when the logger is enabled at this level.
	Level slog.Level
	// MaxPerSecond caps the lines written per second (with a burst of one
	// second's worth); 0 means no cap. Beyond it the log samples: lines
	// are dropped, counted in ticketrush_request_log_dropped_total, and a
	// line a second says how many were.
	MaxPerSecond float64
}

// requestLog writes the request log. A nil *requestLog logs nothing.
type requestLog struct {
	log     *slog.Logger
	level   slog.Level
	budget  *rate.Limiter // nil: no cap
	dropped prometheus.Counter

	mu          sync.Mutex
	droppedSeen int64 // dropped since the last summary line
	summary     *rate.Limiter
}

func newRequestLog(c RequestLogConfig, log *slog.Logger, reg prometheus.Registerer) *requestLog {
	if c.Off {
		return nil
	}
	l := &requestLog{log: log, level: c.Level}
	if c.MaxPerSecond > 0 {
		l.budget = rate.NewLimiter(rate.Limit(c.MaxPerSecond), max(1, int(c.MaxPerSecond)))
		l.summary = rate.NewLimiter(rate.Every(time.Second), 1)
		l.dropped = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ticketrush_request_log_dropped_total",
			Help: "Request log lines not written because the request log was over its lines-per-second cap.",
		})
		reg.MustRegister(l.dropped)
	}
	return l
}

// write writes the line of one answered request.
func (l *requestLog) write(r *http.Request, rw *responseWriter, status int, elapsed time.Duration, clientIP func(*http.Request) string) {
	if l == nil {
		return
	}
	ctx := r.Context()
	if !l.log.Enabled(ctx, l.level) {
		return
	}
	if l.budget != nil && !l.budget.Allow() {
		l.drop(ctx)
		return
	}
	l.log.LogAttrs(ctx, l.level, "request",
		slog.String("method", safeMethod(r.Method)),
		slog.String("route", routeOf(r)),
		slog.Int("status", status),
		slog.Duration("duration", elapsed),
		slog.String("code", rw.code),
		slog.Int64("bytes", rw.bytes),
		slog.String("ip", clientIP(r)),
		slog.String("visitor", redactToken(r.Header.Get(headerVisitorToken))),
	)
}

// drop counts a line over the cap and, at most once a second, says how
// many were dropped since the last time it said so.
func (l *requestLog) drop(ctx context.Context) {
	l.dropped.Inc()
	l.mu.Lock()
	l.droppedSeen++
	n := int64(0)
	if l.summary.Allow() {
		n, l.droppedSeen = l.droppedSeen, 0
	}
	l.mu.Unlock()
	if n > 0 {
		l.log.LogAttrs(ctx, l.level, "request log sampled: lines dropped over the cap", slog.Int64("dropped", n))
	}
}
