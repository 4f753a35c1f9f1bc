package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/sqlite"
)

func BenchmarkDecodeReserve(b *testing.B) {
	body := []byte(`{"event_id":1,"amount":2}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeReserve(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReserveHandler measures what the HTTP layer adds to a reserve:
// routing, decoding, metrics and encoding, with a reserve strategy that
// answers at once.
func BenchmarkReserveHandler(b *testing.B) {
	now := time.Date(2025, 11, 18, 7, 49, 23, 0, time.UTC)
	srv := New(Config{
		Reserver: reserverFunc(func(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
			return &ticketrush.Reservation{ID: 1, EventID: r.EventID, UserUID: r.VisitorToken, Amount: r.Amount,
				Status: ticketrush.StatusReserved, ExpiresAt: now.Add(ticketrush.DefaultHold), CreatedAt: now, UpdatedAt: now}, nil
		}),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(),
	})
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/api/reserve", strings.NewReader(`{"event_id":1,"amount":2}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Visitor-Token", tokenA)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != http.StatusCreated {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

func BenchmarkDecodePurchase(b *testing.B) {
	body := []byte(`{"reservation_id":268435457}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodePurchase(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeCreateEvent(b *testing.B) {
	body := []byte(`{"name":"Örnek Etkinlik","ticket_quantity":2000,"hold_seconds":300,"max_per_visitor":4,"sale_starts_at":"2026-01-01T10:00:00Z"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeCreateEvent(body, 300); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeReserveRefused measures the error path: a bad and an
// unknown field, both named in the answer.
func BenchmarkDecodeReserveRefused(b *testing.B) {
	body := []byte(`{"event_id":1,"amount":0,"qty":3}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeReserve(body); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkPollHandler measures a waiting visitor's poll answered from the
// node's memory (the room's snapshot and the visitor's cached place), the
// waiting room's most frequent request; BenchmarkHealthzHandler is the
// no-op beside it.
func BenchmarkPollHandler(b *testing.B) {
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "ticketrush.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	ev, err := s.CreateEvent(b.Context(), ticketrush.NewEvent{Name: "rush", TicketQuantity: 100, HoldSeconds: 300,
		WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 1, PassSeconds: 300}})
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []string{tokenB, tokenA} { // tokenA waits behind tokenB
		if _, err := s.JoinQueue(b.Context(), ev.ID, []ticketrush.JoinRequest{{Visitor: v}}); err != nil {
			b.Fatal(err)
		}
	}
	srv := New(Config{Store: s, Reserver: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()})
	defer srv.Close()
	path := "/api/events/" + strconv.FormatInt(ev.ID, 10) + "/queue"
	poll := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("Visitor-Token", tokenA)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"waiting"`) {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
		return w
	}
	poll() // the first poll reads the entry; the others are answered from memory
	b.ReportAllocs()
	for b.Loop() {
		poll()
	}
}

func BenchmarkHealthzHandler(b *testing.B) {
	srv := New(Config{Reserver: reserverFunc(func(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
		return nil, nil
	}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()})
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("GET", "/healthz", nil)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
