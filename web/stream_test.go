package web_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush/web"
)

// sse is one stream read by a test: its availability events arrive on c,
// and c closes when the stream ends.
type sse struct {
	res *http.Response
	c   chan web.Availability
}

func openStream(t *testing.T, s *server, eventID int64) *sse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("%s/api/events/%d/stream", s.URL, eventID), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("stream: status %d: %s", res.StatusCode, b)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("stream: Content-Type %q", ct)
	}
	st := &sse{res: res, c: make(chan web.Availability, 100)}
	go func() {
		defer close(st.c)
		sc := bufio.NewScanner(res.Body)
		var name, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if name == "availability" {
					var a web.Availability
					if err := json.Unmarshal([]byte(data), &a); err != nil {
						t.Errorf("stream data %q: %v", data, err)
						return
					}
					st.c <- a
				}
				name, data = "", ""
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(func() { res.Body.Close() })
	return st
}

// next waits for the next availability.
func (st *sse) next(t *testing.T, within time.Duration) web.Availability {
	t.Helper()
	select {
	case a, ok := <-st.c:
		if !ok {
			t.Fatal("stream ended")
		}
		return a
	case <-time.After(within):
		t.Fatalf("no availability within %v", within)
		return web.Availability{}
	}
}

func TestStreamFollowsReservations(t *testing.T) {
	s := newServer(t, serverOptions{})
	e := s.createEvent(t, map[string]any{"name": "Tarkan — Harbiye Açıkhava", "ticket_quantity": 10})
	st := openStream(t, s, e.ID)
	if a := st.next(t, 2*time.Second); a != (web.Availability{EventID: e.ID, TicketQuantity: 10, Capacity: 10}) {
		t.Fatalf("first = %+v", a)
	}
	r := s.reserve(t, e.ID, 3)
	if a := st.next(t, 2*time.Second); a.TicketQuantity != 7 {
		t.Fatalf("after reserving 3: %+v", a)
	}
	var cancelled any
	s.call(t, http.MethodDelete, fmt.Sprintf("/api/reservations/%d", r.ID), map[string]string{"Visitor-Token": r.UserUID}, nil, http.StatusOK, &cancelled)
	if a := st.next(t, 2*time.Second); a.TicketQuantity != 10 {
		t.Fatalf("after cancelling: %+v", a)
	}

	// Closing ends the stream, so a graceful shutdown is not held up.
	s.web.Close()
	select {
	case _, ok := <-st.c:
		if ok {
			t.Fatal("an event after Close")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("stream still open after Close")
	}
}

// Each process polls the shared database itself, so a reserve made through
// one shows on the streams of another.
func TestStreamAcrossProcesses(t *testing.T) {
	db := filepath.Join(t.TempDir(), "shared.db")
	a := newServer(t, serverOptions{db: db})
	b := newServer(t, serverOptions{db: db})
	e := a.createEvent(t, map[string]any{"name": "İki Süreç", "ticket_quantity": 40})
	sa, sb := openStream(t, a, e.ID), openStream(t, b, e.ID)
	sa.next(t, 2*time.Second)
	sb.next(t, 2*time.Second)
	b.reserve(t, e.ID, 4)
	a.reserve(t, e.ID, 6)
	for name, st := range map[string]*sse{"a": sa, "b": sb} {
		deadline := time.After(2 * time.Second)
		for got := int64(-1); got != 30; {
			select {
			case v, ok := <-st.c:
				if !ok {
					t.Fatalf("stream of %s ended", name)
				}
				got = v.TicketQuantity
			case <-deadline:
				t.Fatalf("stream of %s: no 30 within 2s, last %d", name, got)
			}
		}
	}
}

func TestStreamErrorsAreJSON(t *testing.T) {
	s := newServer(t, serverOptions{})
	for path, want := range map[string]int{
		"/api/events/12345/stream": http.StatusNotFound,
		"/api/events/abc/stream":   http.StatusUnprocessableEntity,
	} {
		res, err := s.Client().Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want || res.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(string(b), `{"error":{"code":`) {
			t.Errorf("GET %s: %d %s %s, want %d with a JSON error", path, res.StatusCode, res.Header.Get("Content-Type"), b, want)
		}
	}
}

// The binary's server has read and write timeouts; a stream must outlive
// both and still deliver.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := newServer(t, serverOptions{timeout: timeout})
	e := s.createEvent(t, map[string]any{"name": "Örnek Etkinlik", "ticket_quantity": 5})
	st := openStream(t, s, e.ID)
	st.next(t, 2*time.Second)
	time.Sleep(3 * timeout)
	s.reserve(t, e.ID, 1)
	if a := st.next(t, 2*time.Second); a.TicketQuantity != 4 {
		t.Fatalf("after the timeouts: %+v", a)
	}
}

// However many watch, the database is read once per interval per event.
func TestStreamsShareOneRead(t *testing.T) {
	const interval = 50 * time.Millisecond
	s := newServer(t, serverOptions{interval: interval})
	e := s.createEvent(t, map[string]any{"name": "Sezen Aksu", "ticket_quantity": 100})
	streams := make([]*sse, 25)
	for i := range streams {
		streams[i] = openStream(t, s, e.ID)
	}
	for _, st := range streams {
		st.next(t, 2*time.Second)
	}
	s.reads.Store(0)
	start := time.Now()
	s.reserve(t, e.ID, 2)
	for i, st := range streams {
		if a := st.next(t, 2*time.Second); a.TicketQuantity != 98 {
			t.Fatalf("stream %d: %+v", i, a)
		}
	}
	time.Sleep(10 * interval)
	reads, elapsed := s.reads.Load(), time.Since(start)
	if max := int64(elapsed/interval) + 2; reads > max || reads == 0 {
		t.Fatalf("%d reads in %v for %d streams, want 1 to %d (one per interval)", reads, elapsed, len(streams), max)
	}
	t.Logf("%d reads in %v for %d streams", reads, elapsed, len(streams))
}

func TestPagesAndAssets(t *testing.T) {
	s := newServer(t, serverOptions{})
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", "<title>ticketrush"},
		{"/admin", "text/html; charset=utf-8", "organiser dashboard"},
		{"/static/app.js", "text/javascript; charset=utf-8", "EventSource"},
		{"/static/admin.js", "text/javascript; charset=utf-8", "Authorization"},
		{"/static/style.css", "text/css; charset=utf-8", "prefers-color-scheme"},
		{"/static/favicon.svg", "image/svg+xml", "<svg"},
	} {
		res, err := s.Client().Get(s.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != tc.ctype || !strings.Contains(string(b), tc.contains) {
			t.Errorf("GET %s: %d %q, want 200 %q containing %q", tc.path, res.StatusCode, res.Header.Get("Content-Type"), tc.ctype, tc.contains)
			continue
		}
		if strings.HasPrefix(tc.ctype, "text/html") && !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: no Content-Security-Policy", tc.path)
		}
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", tc.path)
			continue
		}
		req, _ := http.NewRequest(http.MethodGet, s.URL+tc.path, nil)
		req.Header.Set("If-None-Match", etag)
		res, err = s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", tc.path, res.StatusCode)
		}
	}
	for _, path := range []string{"/static/nope.js", "/static/index.html", "/static/"} {
		res, err := s.Client().Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
}

// An unknown event is answered 404 through the whole server, after one
// read and with no poller left behind: nothing reads it afterwards.
func TestStreamUnknownEventStartsNoPoller(t *testing.T) {
	const interval = 20 * time.Millisecond
	s := newServer(t, serverOptions{interval: interval})
	s.reads.Store(0)
	for range 5 {
		res, err := s.Client().Get(s.URL + "/api/events/424242/stream")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound || !strings.Contains(string(b), `"code":"event_not_found"`) {
			t.Fatalf("unknown event: %d %s", res.StatusCode, b)
		}
	}
	after := s.reads.Load()
	time.Sleep(10 * interval)
	if got := s.reads.Load(); after != 5 || got != after {
		t.Fatalf("reads: %d for 5 refused streams, %d after %v; want 5 and no more (no poller)", after, got, 10*interval)
	}
}

// One client address holds at most its cap of streams, through the whole
// server and its middleware; over it the answer is 429 too_many_streams
// with Retry-After, and a closed stream frees its place.
func TestStreamCapPerClientIP(t *testing.T) {
	s := newServer(t, serverOptions{maxStreamsPerIP: 3})
	e := s.createEvent(t, map[string]any{"name": "Kalabalık", "ticket_quantity": 5})
	streams := make([]*sse, 3)
	for i := range streams {
		streams[i] = openStream(t, s, e.ID)
		streams[i].next(t, 2*time.Second)
	}
	res, err := s.Client().Get(fmt.Sprintf("%s/api/events/%d/stream", s.URL, e.ID))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), `"code":"too_many_streams"`) || res.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth stream: %d Retry-After %q %s; want 429 too_many_streams with Retry-After", res.StatusCode, res.Header.Get("Retry-After"), b)
	}
	// The rest of the API is not affected.
	s.reserve(t, e.ID, 1)

	streams[0].res.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("%s/api/events/%d/stream", s.URL, e.ID), nil)
		res, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == http.StatusOK {
			res.Body.Close()
			break
		}
		res.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream did not free its place: %d", res.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
