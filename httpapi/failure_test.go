package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
	"github.com/ticketrush/ticketrush/sqlite"
	"github.com/ticketrush/ticketrush/storetest"
)

// downStore is a real store that can be cut off: while down, every call
// fails as a store fails when its database is unreachable.
type downStore struct {
	ticketrush.Store
	down atomic.Bool
}

func (s *downStore) err() error {
	if s.down.Load() {
		return ticketrush.Unavailable(errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"))
	}
	return nil
}

func (s *downStore) Ping(ctx context.Context) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.Ping(ctx)
}

func (s *downStore) Events(ctx context.Context) ([]*ticketrush.Event, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Events(ctx)
}

func (s *downStore) Event(ctx context.Context, id int64) (*ticketrush.Event, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Event(ctx, id)
}

func (s *downStore) CreateEvent(ctx context.Context, e ticketrush.NewEvent) (*ticketrush.Event, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.CreateEvent(ctx, e)
}

func (s *downStore) Reserve(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Reserve(ctx, r)
}

func (s *downStore) ReserveBatch(ctx context.Context, eventID int64, reqs []ticketrush.ReserveRequest) ([]ticketrush.ReserveResult, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.ReserveBatch(ctx, eventID, reqs)
}

func (s *downStore) ReserveBatches(ctx context.Context, batches []ticketrush.EventBatch) ([][]ticketrush.ReserveResult, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.ReserveBatches(ctx, batches)
}

func (s *downStore) Reservation(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Reservation(ctx, id, visitor)
}

func (s *downStore) Purchase(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Purchase(ctx, id, visitor)
}

func (s *downStore) Cancel(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Cancel(ctx, id, visitor)
}

func (s *downStore) SettleBatch(ctx context.Context, reqs []ticketrush.SettleRequest) ([]ticketrush.SettleResult, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.SettleBatch(ctx, reqs)
}

func (s *downStore) Stats(ctx context.Context, eventID int64) (*ticketrush.Stats, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Stats(ctx, eventID)
}

// sqliteEnv is a server on a fresh SQLite database, for tests of the HTTP
// layer's own behaviour; cfg, when not nil, adjusts the configuration
// (wrapping the store, swapping the reserver) before the server is built.
func sqliteEnv(t *testing.T, cfg func(c *Config)) *env {
	t.Helper()
	clock := storetest.NewClock(start)
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ticketrush.db"), sqlite.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	c := Config{
		Store:      s,
		AdminToken: adminToken,
		Logger:     slog.New(slog.NewTextHandler(log, nil)),
		Registry:   prometheus.NewRegistry(),
	}
	if cfg != nil {
		cfg(&c)
	}
	return &env{clock: clock, store: s, srv: New(c), log: log}
}

// TestDatabaseDown: with the database unreachable, /readyz and every route
// that needs the database answer 503 unavailable with Retry-After, for both
// strategies; /healthz still answers; when it is back everything works.
func TestDatabaseDown(t *testing.T) {
	for _, st := range strategies {
		t.Run(st.name, func(t *testing.T) {
			var ds *downStore
			e := sqliteEnv(t, func(c *Config) {
				ds = &downStore{Store: c.Store}
				c.Store = ds
				c.Reserver = st.reserver(t, ds)
				if st.name == "batch" {
					c.Checkout = &batch.Options{}
				}
			})
			ev := e.createEvent(t, `{"name":"Down","ticket_quantity":10}`)
			r := e.reserve(t, ev.ID, 1, tokenA)
			ds.down.Store(true)

			reqs := []request{
				{method: "GET", path: "/readyz"},
				{method: "GET", path: "/api/events"},
				{method: "GET", path: fmt.Sprintf("/api/events/%d", ev.ID)},
				{method: "POST", path: "/api/reserve", body: fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID)},
				{method: "POST", path: "/api/purchase", headers: visitor(tokenA), body: fmt.Sprintf(`{"reservation_id":%d}`, r.ID)},
				{method: "GET", path: fmt.Sprintf("/api/reservations/%d", r.ID), headers: visitor(tokenA)},
				{method: "DELETE", path: fmt.Sprintf("/api/reservations/%d", r.ID), headers: visitor(tokenA)},
				{method: "POST", path: "/api/admin/events", headers: admin(), body: `{"name":"x","ticket_quantity":1}`},
				{method: "GET", path: fmt.Sprintf("/api/admin/events/%d/stats", ev.ID), headers: admin()},
			}
			for _, req := range reqs {
				res := e.must(t, req, http.StatusServiceUnavailable)
				if got := errorOf(t, res); got.Code != ticketrush.EUnavailable {
					t.Errorf("%s %s: code %q", req.method, req.path, got.Code)
				}
				if res.header.Get("Retry-After") != "1" {
					t.Errorf("%s %s: Retry-After %q", req.method, req.path, res.header.Get("Retry-After"))
				}
				if strings.Contains(string(res.body), "5432") {
					t.Errorf("%s %s: the cause leaked: %s", req.method, req.path, res.body)
				}
			}
			e.must(t, request{method: "GET", path: "/healthz"}, 200)
			if !strings.Contains(e.log.String(), "connection refused") {
				t.Errorf("the outage's cause was not logged:\n%s", e.log.String())
			}

			ds.down.Store(false)
			e.must(t, request{method: "GET", path: "/readyz"}, 200)
			e.must(t, request{method: "POST", path: "/api/purchase", headers: visitor(tokenA), body: fmt.Sprintf(`{"reservation_id":%d}`, r.ID)}, 200)
		})
	}
}

// slowStore never answers before its context ends, like a database behind
// a severed connection.
type slowStore struct{ ticketrush.Store }

func (s slowStore) Events(ctx context.Context) ([]*ticketrush.Event, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s slowStore) Ping(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s slowStore) Reserve(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
	<-ctx.Done()
	return nil, ticketrush.Unavailable(ctx.Err())
}

// TestDeadline: a database that does not answer gets the request a 503
// within the server's timeout, not a hung request, even when the store
// returns the bare context error.
func TestDeadline(t *testing.T) {
	e := sqliteEnv(t, func(c *Config) {
		c.Store = slowStore{c.Store}
		c.Timeout = 50 * time.Millisecond
	})
	for _, req := range []request{
		{method: "GET", path: "/api/events"},
		{method: "POST", path: "/api/reserve", body: `{"event_id":1,"amount":1}`},
	} {
		begin := time.Now()
		res := e.must(t, req, http.StatusServiceUnavailable)
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("%s %s took %v", req.method, req.path, d)
		}
		if got := errorOf(t, res); got.Code != ticketrush.EUnavailable || res.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: %+v %v", req.method, req.path, got, res.header)
		}
	}
	begin := time.Now()
	e.must(t, request{method: "GET", path: "/readyz"}, http.StatusServiceUnavailable)
	if d := time.Since(begin); d < readyTimeout/2 || d > 5*time.Second {
		t.Errorf("/readyz answered after %v; its deadline is %v", d, readyTimeout)
	}
}

// reserverFunc is a reserve strategy made of a function.
type reserverFunc func(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error)

func (f reserverFunc) Reserve(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
	return f(ctx, r)
}

func TestOverloaded(t *testing.T) {
	e := sqliteEnv(t, func(c *Config) {
		c.Reserver = reserverFunc(func(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
			return nil, ticketrush.Errorf(ticketrush.EOverloaded, "Too many requests for this event, please retry.")
		})
	})
	res := e.must(t, request{method: "POST", path: "/api/reserve", body: `{"event_id":1,"amount":1}`}, http.StatusServiceUnavailable)
	if got := errorOf(t, res); got.Code != ticketrush.EOverloaded || res.header.Get("Retry-After") != "1" {
		t.Fatalf("%+v %v", got, res.header)
	}
}

// TestOverloadedByBatcher fills a real batcher's queue: the request past
// the bound is shed at once with 503 overloaded.
func TestOverloadedByBatcher(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Bool
	var b *batch.Batcher
	var fillers sync.WaitGroup
	e := sqliteEnv(t, func(c *Config) {
		gate := &gateStore{Store: c.Store, release: release, started: &started}
		c.Store = gate
		b = batch.New(gate, batch.Options{MaxQueue: 1, MaxBatch: 1})
		// Cleanups run last first: release the gate, drain the batcher,
		// then wait for the two requests that filled the queue.
		t.Cleanup(fillers.Wait)
		t.Cleanup(b.Close)
		t.Cleanup(func() { close(release) })
		c.Reserver = b
		c.Timeout = time.Minute
	})
	ev, err := e.store.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "Gate", TicketQuantity: 10, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID)
	send := func() {
		defer fillers.Done()
		r := httptest.NewRequest("POST", "/api/reserve", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, r)
		checkResponse(t, r, w.Code, w.Header(), w.Body.Bytes())
	}
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting: %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	fillers.Add(2)
	go send() // taken into a batch that blocks in the store
	waitFor("a batch in flight", started.Load)
	go send() // waits in the queue, which is now full
	waitFor("a full queue", func() bool { return b.Queued() == 1 })

	res := e.must(t, request{method: "POST", path: "/api/reserve", body: body}, http.StatusServiceUnavailable)
	if got := errorOf(t, res); got.Code != ticketrush.EOverloaded || res.header.Get("Retry-After") != "1" {
		t.Fatalf("%+v %v", got, res.header)
	}
}

// gateStore holds every ReserveBatches until release is closed.
type gateStore struct {
	ticketrush.Store
	release chan struct{}
	started *atomic.Bool
}

func (g *gateStore) ReserveBatches(ctx context.Context, batches []ticketrush.EventBatch) ([][]ticketrush.ReserveResult, error) {
	g.started.Store(true)
	<-g.release
	return g.Store.ReserveBatches(context.Background(), batches)
}

// TestInternalErrorHidden: an unexpected failure is logged with its cause,
// method and route, and the client sees only "Internal error."; the visitor
// token is never logged in full.
func TestInternalErrorHidden(t *testing.T) {
	e := sqliteEnv(t, func(c *Config) {
		c.Reserver = reserverFunc(func(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
			return nil, errors.New(`ERROR: relation "secret_table" does not exist (SQLSTATE 42P01)`)
		})
	})
	res := e.must(t, request{method: "POST", path: "/api/reserve", headers: visitor(tokenA), body: `{"event_id":1,"amount":1}`}, 500)
	got := errorOf(t, res)
	if got.Code != ticketrush.EInternal || got.Message != "Internal error." || strings.Contains(string(res.body), "secret") {
		t.Fatalf("body %s", res.body)
	}
	log := e.log.String()
	for _, want := range []string{"secret_table", "method=POST", `route="POST /api/reserve"`, tokenA[:8] + "…"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, tokenA) {
		t.Errorf("log holds the full visitor token:\n%s", log)
	}
}

// TestPanicRecovered: a panicking handler answers 500 JSON and the server
// keeps serving.
func TestPanicRecovered(t *testing.T) {
	e := sqliteEnv(t, func(c *Config) {
		c.Reserver = reserverFunc(func(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
			var m map[string]int
			m["boom"]++ // a nil map write: a real bug's panic
			return nil, nil
		})
	})
	res := e.must(t, request{method: "POST", path: "/api/reserve", body: `{"event_id":1,"amount":1}`}, 500)
	if got := errorOf(t, res); got.Code != ticketrush.EInternal || got.Message != "Internal error." {
		t.Fatalf("body %s", res.body)
	}
	if log := e.log.String(); !strings.Contains(log, "panic") || !strings.Contains(log, "nil map") {
		t.Errorf("panic not logged:\n%s", log)
	}
	e.must(t, request{method: "GET", path: "/healthz"}, 200)
}

// TestAdminTokenUnset: a server without an admin token refuses every admin
// request, whatever it carries, with 403 admin_disabled: no token could
// work, so it does not ask for one (no 401, no WWW-Authenticate).
func TestAdminTokenUnset(t *testing.T) {
	e := sqliteEnv(t, func(c *Config) { c.AdminToken = "" })
	for _, auth := range []string{"<absent>", "Bearer ", "Bearer", "Bearer " + adminToken, "Bearer x"} {
		h := map[string]string{"Authorization": auth}
		res := e.must(t, request{method: "POST", path: "/api/admin/events", headers: h, body: `{"name":"x","ticket_quantity":1}`}, 403)
		if got := errorOf(t, res); got.Code != ticketrush.EAdminDisabled {
			t.Errorf("%q: code %q, want %q", auth, got.Code, ticketrush.EAdminDisabled)
		}
		if v := res.header.Get("WWW-Authenticate"); v != "" {
			t.Errorf("%q: WWW-Authenticate %q", auth, v)
		}
		e.must(t, request{method: "GET", path: "/api/admin/events/1/stats", headers: h}, 403)
	}
	if events, _ := e.store.Events(t.Context()); len(events) != 0 {
		t.Fatalf("an event was created: %v", events)
	}
}

// TestDefaultHold: events created without hold_seconds take the server's
// default.
func TestDefaultHold(t *testing.T) {
	e := sqliteEnv(t, func(c *Config) { c.DefaultHold = 90 * time.Second })
	if ev := e.createEvent(t, `{"name":"Default","ticket_quantity":1}`); ev.HoldSeconds != 90 {
		t.Fatalf("hold_seconds %d, want 90", ev.HoldSeconds)
	}
	e = sqliteEnv(t, nil)
	if ev := e.createEvent(t, `{"name":"Default","ticket_quantity":1}`); ev.HoldSeconds != int64(ticketrush.DefaultHold/time.Second) {
		t.Fatalf("hold_seconds %d, want the domain default", ev.HoldSeconds)
	}
}

// TestMetrics: /metrics exposes the request, latency, reservation and
// released-hold metrics, labelled by route pattern rather than raw path.
func TestMetrics(t *testing.T) {
	e := sqliteEnv(t, nil)
	ev := e.createEvent(t, `{"name":"Metrics","ticket_quantity":1}`)
	e.reserve(t, ev.ID, 1, "")
	e.must(t, request{method: "POST", path: "/api/reserve", body: fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID)}, 409)
	e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d", ev.ID)}, 200)
	e.must(t, request{method: "GET", path: "/api/no/such/route"}, 404)
	e.must(t, request{method: "BREW", path: "/api/events"}, 405)
	e.srv.HoldsReleased(3)
	e.srv.Metrics().HoldsReleased(2)

	body := string(e.must(t, request{method: "GET", path: "/metrics"}, 200).body)
	for _, want := range []string{
		`ticketrush_http_requests_total{code="201",method="POST",route="/api/reserve"} 1`,
		`ticketrush_http_requests_total{code="409",method="POST",route="/api/reserve"} 1`,
		`ticketrush_http_requests_total{code="200",method="GET",route="/api/events/{id}"} 1`,
		`ticketrush_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`ticketrush_http_requests_total{code="405",method="OTHER",route="unmatched"} 1`,
		`ticketrush_http_request_duration_seconds_bucket{method="POST",route="/api/reserve",le="+Inf"} 2`,
		`ticketrush_reservations_total{outcome="reserved"} 1`,
		`ticketrush_reservations_total{outcome="not_enough_tickets"} 1`,
		`ticketrush_reservations_total{outcome="overloaded"} 0`,
		`ticketrush_holds_released_total 5`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, fmt.Sprintf("/api/events/%d", ev.ID)) {
		t.Error("a raw path became a label")
	}
}

// TestOpenAPIServed: the served document is the embedded one.
func TestOpenAPIServed(t *testing.T) {
	e := sqliteEnv(t, nil)
	res := e.must(t, request{method: "GET", path: "/api/openapi.yaml"}, 200)
	if !strings.HasPrefix(res.header.Get("Content-Type"), "application/yaml") || !bytes.Contains(res.body, []byte("openapi: 3.0")) {
		t.Fatalf("%v %.100s", res.header, res.body)
	}
}

// TestReadBodyErrors: a body that breaks off is invalid_json, not a 500.
func TestReadBodyErrors(t *testing.T) {
	e := sqliteEnv(t, nil)
	r := httptest.NewRequest("POST", "/api/reserve", io.MultiReader(strings.NewReader(`{"event_id":1,`), errReader{}))
	r.Header.Set("Content-Type", "application/json")
	res := e.serve(t, r)
	if got := errorOf(t, res); res.status != 400 || got.Code != ticketrush.EInvalidJSON {
		t.Fatalf("%d %s", res.status, res.body)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
