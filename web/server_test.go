package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/httpapi"
	"github.com/ticketrush/ticketrush/sqlite"
	"github.com/ticketrush/ticketrush/web"
)

const adminToken = "test-admin-token"

// server is the whole service as the binary serves it: the API, with the
// pages and the stream mounted on their routes, over a fresh SQLite file.
type server struct {
	*httptest.Server
	store *sqlite.Store
	web   *web.Web
	// reads counts the Event reads the web package made.
	reads *atomic.Int64
}

type serverOptions struct {
	interval time.Duration
	// timeout, when set, is the http.Server's ReadTimeout and WriteTimeout;
	// else those of the binary.
	timeout time.Duration
	// wrapAPI, when set, wraps the API handler (to inject answers).
	wrapAPI func(http.Handler) http.Handler
	// db, when set, is the SQLite file, so two servers can share one
	// database as two processes would; else a fresh one.
	db string
	// noAdmin starts the server without an admin token.
	noAdmin bool
	// maxStreamsPerIP is web.Config.MaxStreamsPerIP.
	maxStreamsPerIP int
	// keepQueues, when set, advances the waiting rooms this often, as
	// every node of the binary does.
	keepQueues time.Duration
}

// countingStore counts Event calls on the Store it wraps.
type countingStore struct {
	ticketrush.Store
	reads *atomic.Int64
}

func (s countingStore) Event(ctx context.Context, id int64) (*ticketrush.Event, error) {
	s.reads.Add(1)
	return s.Store.Event(ctx, id)
}

func newServer(t *testing.T, opts serverOptions) *server {
	t.Helper()
	ctx := t.Context()
	db := opts.db
	if db == "" {
		db = filepath.Join(t.TempDir(), "ticketrush.db")
	}
	st, err := sqlite.Open(ctx, db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reads := new(atomic.Int64)
	w := web.New(web.Config{Store: countingStore{st, reads}, Logger: log, Interval: opts.interval, MaxStreamsPerIP: opts.maxStreamsPerIP})
	token := adminToken
	if opts.noAdmin {
		token = ""
	}
	// The pages and the stream are mounted in the API server as the
	// binary does, so they pass through its middleware.
	var api http.Handler = httpapi.New(httpapi.Config{Store: st, AdminToken: token, Logger: log,
		Web: w.Handler(), WebRoutes: web.Routes})
	if opts.wrapAPI != nil {
		api = opts.wrapAPI(api)
	}

	srv := httptest.NewUnstartedServer(api)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Config.ReadTimeout = 10 * time.Second
	srv.Config.WriteTimeout = 30 * time.Second
	if opts.timeout > 0 {
		srv.Config.ReadTimeout = opts.timeout
		srv.Config.WriteTimeout = opts.timeout
	}
	srv.Start()
	stopKeeper := func() {}
	if opts.keepQueues > 0 {
		kctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			ticketrush.KeepQueues(kctx, st, opts.keepQueues, log, nil)
		}()
		stopKeeper = func() { cancel(); <-done }
	}
	t.Cleanup(func() {
		stopKeeper()
		w.Close() // ends the streams, which would hold srv.Close up
		srv.Close()
		st.Close()
	})
	return &server{Server: srv, store: st, web: w, reads: reads}
}

// createEvent creates an event through the admin API.
func (s *server) createEvent(t *testing.T, body map[string]any) httpapi.Event {
	t.Helper()
	var e httpapi.Event
	s.call(t, http.MethodPost, "/api/admin/events", map[string]string{"Authorization": "Bearer " + adminToken}, body, http.StatusCreated, &e)
	return e
}

// reserve reserves through the API as a new visitor.
func (s *server) reserve(t *testing.T, eventID, amount int64) httpapi.Reservation {
	t.Helper()
	var r httpapi.Reservation
	s.call(t, http.MethodPost, "/api/reserve", nil, map[string]any{"event_id": eventID, "amount": amount}, http.StatusCreated, &r)
	return r
}

func (s *server) stats(t *testing.T, eventID int64) httpapi.Stats {
	t.Helper()
	var st httpapi.Stats
	s.call(t, http.MethodGet, fmt.Sprintf("/api/admin/events/%d/stats", eventID), map[string]string{"Authorization": "Bearer " + adminToken}, nil, http.StatusOK, &st)
	return st
}

// call sends a JSON request and decodes the data of a JSON answer.
func (s *server) call(t *testing.T, method, path string, header map[string]string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil {
		env := struct {
			Data any `json:"data"`
		}{out}
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}
