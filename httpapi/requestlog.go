package httpapi

import (
	"bytes"
	"context"
	"io"
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
	// Logger, when set, writes the lines instead of Config.Logger, e.g.
	// one on an AsyncWriter so that requests never wait for the log.
	Logger *slog.Logger
}

// SetErrorCode records code as the error code of the answer being written
// on w, for the request log, when w is the server's own writer. Handlers
// mounted beside the API (Config.Web) that answer errors themselves call
// it; elsewhere it does nothing.
func SetErrorCode(w http.ResponseWriter, code string) {
	if rw, ok := w.(*responseWriter); ok {
		rw.code = code
	}
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
	if c.Logger != nil {
		log = c.Logger
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

// AsyncWriter hands what is written to it to a background goroutine that
// writes it to the underlying writer, so a request never waits for the log
// file or pipe: with the request log on, one slow write would otherwise
// hold the log handler's lock while every other request queues behind it.
// Each Write must be whole lines (a slog handler writes one record per
// call); they are passed on in batches of whole lines of at most
// asyncChunk bytes, so lines from other writers of the same file descriptor
// never land inside one. When the writer falls more than asyncMax bytes
// behind, new lines are dropped and counted rather than buffered without
// bound. Close writes what is pending and stops the goroutine.
type AsyncWriter struct {
	out     io.Writer
	mu      sync.Mutex
	pending []byte
	dropped int64
	wake    chan struct{}
	done    chan struct{}
	closed  bool
}

const (
	asyncChunk = 4096    // at most one pipe's atomic write
	asyncMax   = 1 << 20 // bytes pending before lines are dropped
)

// NewAsyncWriter returns an AsyncWriter on out and starts its goroutine.
func NewAsyncWriter(out io.Writer) *AsyncWriter {
	w := &AsyncWriter{out: out, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// Write queues p, which is whole lines; it never blocks on the output.
func (w *AsyncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.out.Write(p)
	}
	if len(w.pending)+len(p) > asyncMax {
		w.dropped++
	} else {
		w.pending = append(w.pending, p...)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Dropped returns how many writes were dropped because the output could
// not keep up.
func (w *AsyncWriter) Dropped() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

func (w *AsyncWriter) run() {
	defer close(w.done)
	var buf []byte
	for range w.wake {
		w.mu.Lock()
		buf, w.pending = w.pending, buf[:0]
		closed := w.closed
		w.mu.Unlock()
		writeLines(w.out, buf)
		if closed {
			return
		}
	}
}

// writeLines writes b in chunks that end at a newline and hold at most
// asyncChunk bytes (a single longer line goes alone).
func writeLines(out io.Writer, b []byte) {
	for len(b) > 0 {
		n := len(b)
		if n > asyncChunk {
			n = bytes.LastIndexByte(b[:asyncChunk], '\n') + 1
			if n == 0 {
				n = bytes.IndexByte(b, '\n') + 1
				if n == 0 {
					n = len(b)
				}
			}
		}
		out.Write(b[:n])
		b = b[n:]
	}
}

// Close writes what is pending and stops the goroutine; later writes go
// straight to the output.
func (w *AsyncWriter) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
	return nil
}
