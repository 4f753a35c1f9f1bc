package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// streamRecorder is a ResponseWriter that a test may read while the
// handler writes, and that records the write deadline a ResponseController
// sets.
type streamRecorder struct {
	mu            sync.Mutex
	header        http.Header
	status        int
	body          bytes.Buffer
	flushes       int
	writeDeadline time.Time
}

func newStreamRecorder() *streamRecorder { return &streamRecorder{header: http.Header{}} }

func (r *streamRecorder) Header() http.Header { return r.header }

func (r *streamRecorder) WriteHeader(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == 0 {
		r.status = status
	}
}

func (r *streamRecorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *streamRecorder) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushes++
}

func (r *streamRecorder) SetWriteDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writeDeadline = t
	return nil
}

// take returns what was written since the last call.
func (r *streamRecorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.body.String()
	r.body.Reset()
	return s
}

func TestStreamEventsAndHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 10, 10))
		w := New(Config{Store: store, Logger: quietLog()})
		defer w.Close()

		ctx, hangUp := context.WithCancel(t.Context())
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/events/1/stream", nil)
		rec := newStreamRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.Handler().ServeHTTP(rec, req)
		}()
		synctest.Wait()

		if rec.status != http.StatusOK {
			t.Fatalf("status = %d, want 200", rec.status)
		}
		if ct := rec.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("Content-Type = %q", ct)
		}
		want := "retry: 2000\nevent: availability\ndata: {\"event_id\":1,\"ticket_quantity\":10,\"capacity\":10}\n\n"
		if got := rec.take(); got != want {
			t.Fatalf("first message:\n%q\nwant\n%q", got, want)
		}
		rec.mu.Lock()
		if wd := rec.writeDeadline; wd.IsZero() || wd.After(time.Now().Add(writeTimeout)) {
			t.Errorf("write deadline = %v, want at most %v ahead", wd, writeTimeout)
		}
		if rec.flushes == 0 {
			t.Error("first message not flushed")
		}
		rec.mu.Unlock()

		store.setQuantity(1, 4)
		time.Sleep(DefaultInterval)
		synctest.Wait()
		want = "event: availability\ndata: {\"event_id\":1,\"ticket_quantity\":4,\"capacity\":10}\n\n"
		if got := rec.take(); got != want {
			t.Fatalf("update:\n%q\nwant\n%q", got, want)
		}

		// Nothing changes: after the heartbeat interval a comment keeps the
		// connection alive, and nothing else was sent.
		time.Sleep(DefaultHeartbeat - DefaultInterval)
		synctest.Wait()
		if got := rec.take(); got != ": heartbeat\n\n" {
			t.Fatalf("after %v: %q, want one heartbeat", DefaultHeartbeat, got)
		}

		hangUp()
		<-done
		w.broker.mu.Lock()
		n := w.broker.n
		w.broker.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d subscriptions left after the client hung up", n)
		}
	})
}

func TestStreamEndsOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 10, 10))
		w := New(Config{Store: store, Logger: quietLog()})
		rec := newStreamRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/api/events/1/stream", nil))
		}()
		synctest.Wait()
		w.Close()
		<-done // the handler returned without the client hanging up

		rec2 := newStreamRecorder()
		w.Handler().ServeHTTP(rec2, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/api/events/1/stream", nil))
		if rec2.status != http.StatusServiceUnavailable || rec2.header.Get("Retry-After") == "" {
			t.Fatalf("stream after Close: status %d, Retry-After %q; want 503 with Retry-After", rec2.status, rec2.header.Get("Retry-After"))
		}
	})
}

func TestStreamErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 10, 10))
		w := New(Config{Store: store, Logger: quietLog()})
		defer w.Close()
		for _, tc := range []struct {
			path   string
			status int
			code   string
		}{
			{"/api/events/99/stream", http.StatusNotFound, "event_not_found"},
			{"/api/events/0/stream", http.StatusUnprocessableEntity, "validation_failed"},
			{"/api/events/01/stream", http.StatusUnprocessableEntity, "validation_failed"},
			{"/api/events/-1/stream", http.StatusUnprocessableEntity, "validation_failed"},
			{"/api/events/abc/stream", http.StatusUnprocessableEntity, "validation_failed"},
			{"/api/events/99999999999999999999/stream", http.StatusUnprocessableEntity, "validation_failed"},
		} {
			rec := newStreamRecorder()
			w.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, tc.path, nil))
			if rec.status != tc.status {
				t.Errorf("%s: status %d, want %d", tc.path, rec.status, tc.status)
			}
			if ct := rec.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type %q", tc.path, ct)
			}
			var body struct {
				Error struct {
					Code   string            `json:"code"`
					Fields map[string]string `json:"fields"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(rec.take()), &body); err != nil || body.Error.Code != tc.code {
				t.Errorf("%s: body code %q (%v), want %q", tc.path, body.Error.Code, err, tc.code)
			}
			if tc.code == "validation_failed" && body.Error.Fields["id"] == "" {
				t.Errorf("%s: no message for the id field", tc.path)
			}
		}
	})
}

func TestStreamHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 10, 10))
		w := New(Config{Store: store, Logger: quietLog()})
		defer w.Close()
		rec := newStreamRecorder()
		// A HEAD answer has no body to stream: the handler returns.
		w.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodHead, "/api/events/1/stream", nil))
		if rec.status != http.StatusOK || !strings.HasPrefix(rec.header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("HEAD: %d %q", rec.status, rec.header.Get("Content-Type"))
		}
	})
}
