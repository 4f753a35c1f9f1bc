package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketrush/ticketrush"
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
