package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/httpapi"
)

// writeTimeout bounds each write to a stream. The server's WriteTimeout
// would cut every stream at the same age; instead each write gets its own
// deadline, so a stream lives as long as its reader reads, and a reader
// that stopped reading (its socket buffer full) is dropped instead of
// holding a goroutine for ever.
const writeTimeout = 10 * time.Second

// retryMillis is the reconnection delay a browser's EventSource uses after
// a dropped connection. A restart of the server sends every stream back at
// once; two seconds spreads them a little without looking dead.
const retryMillis = 2000

// streamsRetryAfter is the Retry-After, in seconds, of a client over its
// stream cap.
const streamsRetryAfter = 10

// stream answers GET /api/events/{id}/stream with server-sent events: an
// "availability" event at once, another whenever the number changes (at
// most one per broker interval), and a comment line every heartbeat.
//
// Server-sent events rather than WebSockets: the data flows one way, they
// are plain HTTP (proxies, HTTP/2 and the server's own middleware work
// unchanged), and browsers reconnect by themselves.
func (w *Web) stream(rw http.ResponseWriter, r *http.Request) {
	id, err := pathID(r.PathValue("id"))
	if err != nil {
		writeError(rw, err)
		return
	}
	sub, err := w.broker.subscribe(r.Context(), id, w.clientIP(r))
	if err != nil {
		writeError(rw, err)
		return
	}
	defer w.broker.unsubscribe(sub)

	// subscribe read the event (or found it watched) before starting
	// anything, so an unknown event was a 404 above and the first value is
	// waiting.
	var first Availability
	select {
	case first = <-sub.c:
	case <-sub.done:
		writeError(rw, sub.err)
		return
	case <-r.Context().Done():
		return
	}

	rc := http.NewResponseController(rw)
	h := rw.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// Reverse proxies that buffer answers (nginx does by default) would
	// hold the events back; this asks them not to.
	h.Set("X-Accel-Buffering", "no")

	buf := make([]byte, 0, 256)
	buf = append(buf, "retry: "...)
	buf = strconv.AppendInt(buf, retryMillis, 10)
	buf = append(buf, '\n')
	buf = appendEvent(buf, first)
	if !w.write(rc, rw, buf) || r.Method == http.MethodHead {
		return
	}

	heartbeat := time.NewTicker(w.heartbeat)
	defer heartbeat.Stop()
	for {
		buf = buf[:0]
		select {
		case a := <-sub.c:
			buf = appendEvent(buf, a)
		case <-heartbeat.C:
			buf = append(buf, ": heartbeat\n\n"...)
		case <-sub.done:
			// The broker is closing or the event is gone: ending the
			// stream lets the browser reconnect and learn which.
			return
		case <-r.Context().Done():
			return
		}
		if !w.write(rc, rw, buf) {
			return
		}
	}
}

// write sends b and flushes it, under its own deadline. It reports whether
// the client is still there.
func (w *Web) write(rc *http.ResponseController, rw http.ResponseWriter, b []byte) bool {
	if err := rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		w.log.Debug("stream: set write deadline", "err", err)
	}
	if _, err := rw.Write(b); err != nil {
		return false
	}
	if err := rc.Flush(); err != nil {
		if !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		w.noFlush.Do(func() {
			w.log.Warn("stream: the response writer cannot flush; events reach browsers late")
		})
	}
	return true
}

// appendEvent appends a as one "availability" event.
func appendEvent(b []byte, a Availability) []byte {
	data, _ := json.Marshal(a) // three integers cannot fail to encode
	b = append(b, "event: availability\ndata: "...)
	b = append(b, data...)
	return append(b, '\n', '\n')
}

// pathID parses an {id} path segment as the API does.
func pathID(s string) (int64, error) { return ticketrush.ParseID(s) }

// writeError answers with err in the API's error format and status.
func writeError(rw http.ResponseWriter, err error) {
	code := ticketrush.ErrorCode(err)
	status := httpapi.StatusOf(code)
	msg := ticketrush.ErrorMessage(err)
	if code == ticketrush.EInternal {
		msg = "Internal error."
	}
	body := httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: code, Message: msg}}
	var e *ticketrush.Error
	if code == ticketrush.EValidation && errors.As(err, &e) {
		body.Error.Fields = e.Fields
	}
	b, _ := json.Marshal(body)
	httpapi.SetErrorCode(rw, code)
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	switch {
	case code == ticketrush.ETooManyStreams:
		// A place frees only when one of the client's own streams ends.
		h.Set("Retry-After", strconv.Itoa(streamsRetryAfter))
	case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		h.Set("Retry-After", "1")
	}
	rw.WriteHeader(status)
	rw.Write(append(b, '\n'))
}
