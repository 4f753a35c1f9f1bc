package ratelimit_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ticketrush/ticketrush/postgres"
	"github.com/ticketrush/ticketrush/ratelimit"
	"github.com/ticketrush/ticketrush/redis"
)

// sharedStores returns a fresh Shared store on each backend that has one;
// two calls on one backend share its state, as two nodes would.
func sharedStores(t *testing.T) map[string]func() ratelimit.Shared {
	t.Helper()
	pgURL := postgres.NewTestDatabase(t)
	redisURL := redis.NewTestURL(t)
	prefix := redisURL[strings.Index(redisURL, "prefix=")+len("prefix="):]
	return map[string]func() ratelimit.Shared{
		"postgres": func() ratelimit.Shared {
			pool, err := pgxpool.New(context.Background(), pgURL)
			if err != nil {
				t.Fatal(err)
			}
			p := ratelimit.NewPostgres(pool, nil)
			t.Cleanup(func() { p.Close(); pool.Close() })
			return p
		},
		"redis": func() ratelimit.Shared {
			o, err := goredis.ParseURL(strings.Split(redisURL, "?")[0])
			if err != nil {
				t.Fatal(err)
			}
			c := goredis.NewClient(o)
			t.Cleanup(func() { c.Close() })
			return ratelimit.NewRedis(c, prefix+":rl:")
		},
	}
}

// TestSharedLimitAcrossNodes: two limiters (two nodes) on one shared store
// give one client one budget between them, per address and per visitor, and
// a refused request gets a wait.
func TestSharedLimitAcrossNodes(t *testing.T) {
	for name, open := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			cfg := ratelimit.Config{PerSecond: 0.01, Burst: 4} // nothing refills during the test
			cfg.Shared = open()
			a := ratelimit.New(cfg)
			cfg.Shared = open()
			b := ratelimit.New(cfg)
			req := func(ip, token string) *http.Request {
				r := httptest.NewRequest("GET", "/api/events", nil)
				r.RemoteAddr = ip + ":40000"
				if token != "" {
					r.Header.Set("Visitor-Token", token)
				}
				return r
			}
			// One address over both nodes: four in all, then refused.
			allowed := 0
			for i := range 10 {
				n := a
				if i%2 == 1 {
					n = b
				}
				if n.Allow(req("198.51.100.1", "")) == 0 {
					allowed++
				}
			}
			if allowed != 4 {
				t.Fatalf("one address over two nodes: %d allowed, want the burst of 4 in all", allowed)
			}
			if w := b.Allow(req("198.51.100.1", "")); w < 90*time.Second {
				t.Fatalf("wait %v, want about 100 s (one request per 100 s)", w)
			}
			// IPv6 addresses of one /64 are one client.
			allowed = 0
			for i := range 8 {
				ip := fmt.Sprintf("[2001:db8:1:2:%x::%x]", i, i+1)
				r := httptest.NewRequest("GET", "/api/events", nil)
				r.RemoteAddr = ip + ":40000"
				n := a
				if i%2 == 1 {
					n = b
				}
				if n.Allow(r) == 0 {
					allowed++
				}
			}
			if allowed != 4 {
				t.Fatalf("one IPv6 /64 over two nodes: %d allowed, want 4", allowed)
			}
			// One visitor over many addresses and both nodes.
			const token = "c9439d95-5d3c-4c8e-9a57-1f0b2f6f1d7e"
			allowed = 0
			for i := range 10 {
				n := a
				if i%2 == 1 {
					n = b
				}
				if n.Allow(req("203.0.113."+string(rune('1'+i)), token)) == 0 {
					allowed++
				}
			}
			if allowed != 4 {
				t.Fatalf("one visitor over two nodes and many addresses: %d allowed, want 4", allowed)
			}
		})
	}
}

// TestSharedLimitRefills: with a real rate, the budget comes back at that
// rate.
func TestSharedLimitRefills(t *testing.T) {
	for name, open := range sharedStores(t) {
		t.Run(name, func(t *testing.T) {
			l := ratelimit.New(ratelimit.Config{PerSecond: 20, Burst: 2, Shared: open()})
			r := httptest.NewRequest("GET", "/api/events", nil)
			r.RemoteAddr = "192.0.2.9:1234"
			if l.Allow(r) != 0 || l.Allow(r) != 0 {
				t.Fatal("the burst was refused")
			}
			w := l.Allow(r)
			if w <= 0 || w > 100*time.Millisecond {
				t.Fatalf("third request: wait %v, want refused for about 50 ms", w)
			}
			time.Sleep(w + 20*time.Millisecond)
			if got := l.Allow(r); got != 0 {
				t.Fatalf("after the wait: refused again (%v)", got)
			}
		})
	}
}

// A shared store that does not answer lets requests through rather than
// fail the service.
func TestSharedStoreDownLetsThrough(t *testing.T) {
	l := ratelimit.New(ratelimit.Config{PerSecond: 1, Burst: 1, Shared: failing{}, SharedTimeout: 10 * time.Millisecond})
	r := httptest.NewRequest("GET", "/api/events", nil)
	for range 5 {
		if w := l.Allow(r); w != 0 {
			t.Fatalf("refused (%v) while the store is down", w)
		}
	}
}

type failing struct{}

func (failing) Take(ctx context.Context, _ []string, _ float64, _ int) (time.Duration, int, error) {
	<-ctx.Done()
	return 0, 0, ctx.Err()
}

// An undeclared proxy makes every client behind it one client: the limiter
// says so once, naming the flag.
func TestUndeclaredProxyWarnsOnce(t *testing.T) {
	var buf bytes.Buffer
	l := ratelimit.New(ratelimit.Config{PerSecond: 100, Burst: 100, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	for range 3 {
		r := httptest.NewRequest("GET", "/api/events", nil)
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		l.Allow(r)
	}
	if n := strings.Count(buf.String(), "--trusted-proxies"); n != 1 {
		t.Fatalf("%d warnings naming --trusted-proxies, want 1:\n%s", n, buf.String())
	}
}
