package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ticketrush/ticketrush/batch"
	"github.com/ticketrush/ticketrush/httpapi"
	"github.com/ticketrush/ticketrush/ratelimit"
	"github.com/ticketrush/ticketrush/sqlite"
)

// startLimited serves the API on a SQLite database behind a rate limit, as
// serve does with --rate-limit, on a loopback port.
func startLimited(t *testing.T, cfg ratelimit.Config) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ticketrush.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b := batch.New(s, batch.Options{})
	api := httpapi.New(httpapi.Config{Store: s, Reserver: b, AdminToken: adminToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	// The test's own admin requests (setup, stats) stay out of the
	// buckets under test.
	cfg.Exempt = func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/admin/") }
	srv := httptest.NewServer(ratelimit.New(cfg).Wrap(api))
	t.Cleanup(func() {
		srv.Close()
		b.Close()
		s.Close()
	})
	return newClient(t, srv.URL, 16, 10*time.Second)
}

// TestRateLimit checks the limit end to end over HTTP: per visitor, per
// address, X-Forwarded-For ignored from an untrusted peer and honoured from
// a trusted proxy; a refused request is a 429 JSON error with Retry-After
// and reserves nothing.
func TestRateLimit(t *testing.T) {
	const perSecond, burst = 0.01, 5 // one token per 100 s: none comes back during the test

	reserveN := func(c *client, ev int64, n int, h func(i int) http.Header) (created, limited int) {
		t.Helper()
		for i := range n {
			r, err := c.do(context.Background(), "POST", "/api/reserve", h(i), fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev))
			if err != nil {
				t.Fatal(err)
			}
			countLimited(t, r, http.StatusCreated, &created, &limited)
		}
		return created, limited
	}
	setup := func(t *testing.T, cfg ratelimit.Config) (*client, int64) {
		c := startLimited(t, cfg)
		ev := c.createEvent(t, "Rate limit", 1000)
		return c, ev.ID
	}

	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

	t.Run("PerVisitorAcrossAddresses", func(t *testing.T) {
		// Loopback is a trusted proxy, so each request comes from another
		// forwarded address: only the visitor's bucket can stop them.
		c, ev := setup(t, ratelimit.Config{PerSecond: perSecond, Burst: burst, TrustedProxies: loopback})
		token := uuid.NewString()
		created, limited := reserveN(c, ev, 20, func(i int) http.Header {
			h := visitor(token)
			h.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
			return h
		})
		if created != burst || limited != 20-burst {
			t.Errorf("one visitor from 20 addresses: %d created, %d limited; want %d created", created, limited, burst)
		}
		if s := c.checkInvariant(t, ev); s.Held != int64(created) {
			t.Errorf("held %d, want %d: a refused request must reserve nothing", s.Held, created)
		}
	})

	t.Run("PerAddressAcrossTokens", func(t *testing.T) {
		c, ev := setup(t, ratelimit.Config{PerSecond: perSecond, Burst: burst})
		created, limited := reserveN(c, ev, 20, func(int) http.Header { return visitor(uuid.NewString()) })
		if created != burst || limited != 20-burst {
			t.Errorf("20 fresh tokens from one address: %d created, %d limited; want %d created", created, limited, burst)
		}
		if s := c.checkInvariant(t, ev); s.Held != int64(created) {
			t.Errorf("held %d, want %d: a refused request must reserve nothing", s.Held, created)
		}
	})

	t.Run("ForgedForwardedForIgnored", func(t *testing.T) {
		// Loopback is not a trusted proxy here: the header must be ignored.
		c, ev := setup(t, ratelimit.Config{PerSecond: perSecond, Burst: burst,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		created, _ := reserveN(c, ev, 20, func(i int) http.Header {
			h := visitor(uuid.NewString())
			h.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
			return h
		})
		if created != burst {
			t.Errorf("forged X-Forwarded-For from an untrusted peer: %d created, want %d", created, burst)
		}
	})

	t.Run("TrustedProxy", func(t *testing.T) {
		// Behind a trusted proxy (loopback), each forwarded client has its
		// own bucket, and forging the left of the chain does not help.
		c, ev := setup(t, ratelimit.Config{PerSecond: perSecond, Burst: burst, TrustedProxies: loopback})
		total := 0
		for client := 1; client <= 3; client++ {
			created, _ := reserveN(c, ev, 10, func(i int) http.Header {
				h := visitor(uuid.NewString())
				h.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d, 198.51.100.%d", i+1, client))
				return h
			})
			if created != burst {
				t.Errorf("forwarded client %d: %d created, want %d", client, created, burst)
			}
			total += created
		}
		if s := c.checkInvariant(t, ev); s.Held != int64(total) {
			t.Errorf("held %d, want %d", s.Held, total)
		}
	})
}
