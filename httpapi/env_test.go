package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
	"github.com/ticketrush/ticketrush/postgres"
	"github.com/ticketrush/ticketrush/sqlite"
	"github.com/ticketrush/ticketrush/storetest"
)

const adminToken = "test-admin-token-0123456789"

// start is where every test clock begins: the seed's sample time, with a
// fractional part ending in zeros so that both truncation and dropped
// digits show.
var start = time.Date(2025, 11, 18, 7, 49, 23, 120000000, time.UTC)

// backend opens a fresh, migrated, empty store for one test.
type backend struct {
	name string
	open func(t *testing.T, clock ticketrush.Clock) ticketrush.Store
}

var backends = []backend{
	{"sqlite", func(t *testing.T, clock ticketrush.Clock) ticketrush.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ticketrush.db"), sqlite.Options{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"postgres", func(t *testing.T, clock ticketrush.Clock) ticketrush.Store {
		url := postgres.NewTestDatabase(t)
		s, err := postgres.Open(t.Context(), url, postgres.Options{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// strategy picks the reserve path: the store's own per-request lock, or
// group commit over it.
type strategy struct {
	name     string
	reserver func(t *testing.T, s ticketrush.Store) ticketrush.Reserver
}

var strategies = []strategy{
	{"lock", func(t *testing.T, s ticketrush.Store) ticketrush.Reserver { return s }},
	{"batch", func(t *testing.T, s ticketrush.Store) ticketrush.Reserver {
		b := batch.New(s, batch.Options{})
		t.Cleanup(b.Close)
		return b
	}},
}

// env is one server on one fresh database.
type env struct {
	clock *storetest.Clock
	store ticketrush.Store
	srv   *Server
	log   *syncBuffer
}

// forEachBackend runs f once per backend and strategy, each on a fresh
// database.
func forEachBackend(t *testing.T, f func(t *testing.T, e *env)) {
	for _, b := range backends {
		for _, st := range strategies {
			t.Run(b.name+"/"+st.name, func(t *testing.T) {
				t.Parallel()
				clock := storetest.NewClock(start)
				s := b.open(t, clock.Now)
				f(t, newEnv(clock, s, st.reserver(t, s)))
			})
		}
	}
}

func newEnv(clock *storetest.Clock, s ticketrush.Store, r ticketrush.Reserver) *env {
	log := &syncBuffer{}
	// The batch strategy group-commits purchases and cancels too, as the
	// server does.
	var checkout *batch.Options
	if _, ok := r.(*batch.Batcher); ok {
		checkout = &batch.Options{Timeout: time.Minute}
	}
	srv := New(Config{
		Store:      s,
		Reserver:   r,
		Checkout:   checkout,
		AdminToken: adminToken,
		Logger:     slog.New(slog.NewTextHandler(log, nil)),
		Registry:   prometheus.NewRegistry(),
		// A loaded test machine must not turn a slow commit into a 503;
		// the deadline itself has its own test.
		Timeout: time.Minute,
	})
	return &env{clock: clock, store: s, srv: srv, log: log}
}

// response is what a request got.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request describes one request to the server.
type request struct {
	method  string
	path    string
	headers map[string]string
	body    string
}

// do sends req to the server and checks the response against the OpenAPI
// document.
func (e *env) do(t testing.TB, req request) response {
	t.Helper()
	var body io.Reader = http.NoBody
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r := httptest.NewRequestWithContext(t.Context(), req.method, "http://ticketrush.test"+req.path, body)
	if req.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.headers {
		if v == "<absent>" {
			r.Header.Del(k)
			continue
		}
		r.Header.Set(k, v)
	}
	return e.serve(t, r)
}

// serve runs r through the server and checks the answer against the
// OpenAPI document.
func (e *env) serve(t testing.TB, r *http.Request) response {
	t.Helper()
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	res := response{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
	checkResponse(t, r, res.status, res.header, res.body)
	if res.status >= 400 && r.Method != http.MethodHead {
		var eb ErrorBody
		if err := json.Unmarshal(res.body, &eb); err != nil || eb.Error.Code == "" {
			t.Errorf("%s %s → %d: not a JSON error: %q", r.Method, r.URL, res.status, res.body)
		}
	}
	return res
}

// must sends req and fails t unless it got status.
func (e *env) must(t testing.TB, req request, status int) response {
	t.Helper()
	res := e.do(t, req)
	if res.status != status {
		t.Fatalf("%s %s: got %d, want %d: %s", req.method, req.path, res.status, status, res.body)
	}
	return res
}

func decode[T any](t testing.TB, res response) T {
	t.Helper()
	var env Envelope[T]
	if err := json.Unmarshal(res.body, &env); err != nil {
		t.Fatalf("decode %s: %v", res.body, err)
	}
	return env.Data
}

func errorOf(t testing.TB, res response) ErrorDetail {
	t.Helper()
	var eb ErrorBody
	if err := json.Unmarshal(res.body, &eb); err != nil {
		t.Fatalf("decode error %s: %v", res.body, err)
	}
	return eb.Error
}

func admin() map[string]string {
	return map[string]string{"Authorization": "Bearer " + adminToken}
}

func visitor(token string) map[string]string {
	return map[string]string{"Visitor-Token": token}
}

// createEvent creates an event through the admin API.
func (e *env) createEvent(t testing.TB, body string) Event {
	t.Helper()
	return decode[Event](t, e.must(t, request{method: "POST", path: "/api/admin/events", headers: admin(), body: body}, http.StatusCreated))
}

// reserve holds amount tickets of event for token ("" creates a visitor).
func (e *env) reserve(t testing.TB, eventID int64, amount int, token string) Reservation {
	t.Helper()
	h := map[string]string{}
	if token != "" {
		h["Visitor-Token"] = token
	}
	body, _ := json.Marshal(map[string]any{"event_id": eventID, "amount": amount})
	return decode[Reservation](t, e.must(t, request{method: "POST", path: "/api/reserve", headers: h, body: string(body)}, http.StatusCreated))
}

// snapshot is everything a bad request must leave unchanged: every event as
// listed and its stats.
func (e *env) snapshot(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	events, err := e.store.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, ev := range events {
		st, err := e.store.Stats(ctx, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal([]any{newEvent(ev), newStats(st)})
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// syncBuffer is a log sink the server writes from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
