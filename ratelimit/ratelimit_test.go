package ratelimit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const (
	tokenA = "4f8c2a0e-6b1d-4c3a-9e57-2d1f0b6a8c91"
	tokenB = "a3b9d4e2-1f6c-4a8b-b2d7-9c0e5f1a3b64"
)

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 11, 18, 7, 54, 23, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// ok is the handler behind the limiter.
var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

// req is a request from peer (host:port) with optional Visitor-Token and
// X-Forwarded-For.
func req(peer, token string, xff ...string) *http.Request {
	r := httptest.NewRequest("POST", "/api/reserve", nil)
	r.RemoteAddr = peer
	if token != "" {
		r.Header.Set("Visitor-Token", token)
	}
	for _, v := range xff {
		r.Header.Add("X-Forwarded-For", v)
	}
	return r
}

func send(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// allowed sends n requests made by mk and returns how many got through.
func allowed(h http.Handler, n int, mk func(i int) *http.Request) int {
	got := 0
	for i := range n {
		if send(h, mk(i)).Code == http.StatusNoContent {
			got++
		}
	}
	return got
}

func TestBurstThen429(t *testing.T) {
	c := newClock()
	h := New(Config{PerSecond: 1, Burst: 3, Now: c.now}).Wrap(ok)
	for i := range 3 {
		if w := send(h, req("192.0.2.1:1000", tokenA)); w.Code != http.StatusNoContent {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	w := send(h, req("192.0.2.1:1000", tokenA))
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("4th request: %d, want 429", w.Code)
	}
	if got := w.Header().Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != "rate_limited" || body.Error.Message == "" {
		t.Errorf("body %s (%v)", w.Body, err)
	}
	if strings.Contains(w.Body.String(), tokenA) {
		t.Errorf("429 body shows the visitor token: %s", w.Body)
	}
	// A refused request takes nothing: one second refills one token.
	c.add(time.Second)
	if w := send(h, req("192.0.2.1:1000", tokenA)); w.Code != http.StatusNoContent {
		t.Fatalf("after 1s: %d", w.Code)
	}
	if w := send(h, req("192.0.2.1:1000", tokenA)); w.Code != http.StatusTooManyRequests {
		t.Fatalf("second after 1s: %d", w.Code)
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	c := newClock()
	h := New(Config{PerSecond: 0.1, Burst: 1, Now: c.now}).Wrap(ok)
	send(h, req("192.0.2.1:1", ""))
	c.add(500 * time.Millisecond)
	if got := send(h, req("192.0.2.1:1", "")).Header().Get("Retry-After"); got != "10" {
		t.Errorf("Retry-After %q, want 10 (9.5s rounded up)", got)
	}
}

// TestVisitorAcrossIPs: one visitor spread over many addresses is held to
// its own bucket.
func TestVisitorAcrossIPs(t *testing.T) {
	c := newClock()
	h := New(Config{PerSecond: 1, Burst: 5, Now: c.now}).Wrap(ok)
	got := allowed(h, 50, func(i int) *http.Request { return req(fmt.Sprintf("198.51.100.%d:1", i+1), tokenA) })
	if got != 5 {
		t.Errorf("%d of 50 requests of one visitor from 50 addresses got through, want 5", got)
	}
	// The visitor bucket is upper case or lower case alike.
	if w := send(h, req("198.51.100.200:1", strings.ToUpper(tokenA))); w.Code != http.StatusTooManyRequests {
		t.Errorf("upper-case token: %d, want 429", w.Code)
	}
	// Another visitor is not affected.
	if w := send(h, req("198.51.100.201:1", tokenB)); w.Code != http.StatusNoContent {
		t.Errorf("another visitor: %d", w.Code)
	}
}

// TestIPAcrossTokens: one machine rotating visitor tokens (or sending none)
// is held to its address's bucket.
func TestIPAcrossTokens(t *testing.T) {
	c := newClock()
	h := New(Config{PerSecond: 2, Burst: 4, Now: c.now}).Wrap(ok)
	got := allowed(h, 50, func(i int) *http.Request {
		return req("203.0.113.9:5555", fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
	})
	if got != 4 {
		t.Errorf("%d of 50 requests with fresh tokens from one address got through, want 4", got)
	}
	if got := allowed(h, 10, func(int) *http.Request { return req("203.0.113.9:6666", "") }); got != 0 {
		t.Errorf("%d requests without a token from the same address (other port) got through, want 0", got)
	}
}

// TestForwardedForSpoofIgnored: a client that is not a trusted proxy cannot
// pick its bucket with X-Forwarded-For.
func TestForwardedForSpoofIgnored(t *testing.T) {
	c := newClock()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	h := New(Config{PerSecond: 1, Burst: 3, TrustedProxies: trusted, Now: c.now}).Wrap(ok)
	got := allowed(h, 30, func(i int) *http.Request {
		return req("203.0.113.7:4242", "", fmt.Sprintf("198.51.100.%d", i+1), fmt.Sprintf("10.0.0.%d", i+1))
	})
	if got != 3 {
		t.Errorf("%d of 30 requests with forged X-Forwarded-For from an untrusted peer got through, want 3", got)
	}
	// No proxies configured: the header is never read.
	h = New(Config{PerSecond: 1, Burst: 3, Now: c.now}).Wrap(ok)
	got = allowed(h, 30, func(i int) *http.Request {
		return req("10.1.2.3:4242", "", fmt.Sprintf("198.51.100.%d", i+1))
	})
	if got != 3 {
		t.Errorf("%d of 30 got through with no trusted proxies, want 3", got)
	}
}

func TestClientIP(t *testing.T) {
	l := New(Config{PerSecond: 1, TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"),
	}})
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"UntrustedPeer", "203.0.113.7:1", []string{"198.51.100.1"}, "203.0.113.7"},
		{"TrustedProxy", "10.0.0.1:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"ClientPrependsForgery", "10.0.0.1:1", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"TwoProxies", "10.0.0.1:1", []string{"198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"SeveralHeaders", "10.0.0.1:1", []string{"1.2.3.4", "198.51.100.1"}, "198.51.100.1"},
		{"ForgedTrustedAddress", "10.0.0.1:1", []string{"10.9.9.9, 198.51.100.1"}, "198.51.100.1"},
		{"AllTrusted", "10.0.0.1:1", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"NoHeader", "10.0.0.1:1", nil, "10.0.0.1"},
		{"Garbage", "10.0.0.1:1", []string{"198.51.100.1, <script>, 10.0.0.2"}, "10.0.0.2"},
		{"WithPort", "10.0.0.1:1", []string{"198.51.100.1:8080"}, "198.51.100.1"},
		{"IPv6Bracketed", "10.0.0.1:1", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"IPv6Proxy", "[fd00::1]:1", []string{"2001:db8::7"}, "2001:db8::7"},
		{"MappedPeer", "[::ffff:203.0.113.7]:1", nil, "203.0.113.7"},
		{"MappedForwarded", "10.0.0.1:1", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"BadPeer", "not-an-address", []string{"198.51.100.1"}, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := l.clientIP(req(tc.peer, "", tc.xff...)).String(); got != tc.want {
				t.Errorf("client %s, want %s", got, tc.want)
			}
		})
	}
}

// TestIPv6By64: addresses of one /64 share a bucket, the next /64 does
// not.
func TestIPv6By64(t *testing.T) {
	c := newClock()
	h := New(Config{PerSecond: 1, Burst: 2, Now: c.now}).Wrap(ok)
	got := allowed(h, 20, func(i int) *http.Request { return req(fmt.Sprintf("[2001:db8:0:1::%x]:1", i+1), "") })
	if got != 2 {
		t.Errorf("%d of 20 requests from one /64 got through, want 2", got)
	}
	if w := send(h, req("[2001:db8:0:2::1]:1", "")); w.Code != http.StatusNoContent {
		t.Errorf("next /64: %d", w.Code)
	}
}

// TestInvalidTokensMakeNoBuckets: only valid tokens get a bucket, so a
// client cannot fill memory with made-up ones.
func TestInvalidTokensMakeNoBuckets(t *testing.T) {
	l := New(Config{PerSecond: 1000, Burst: 1000})
	h := l.Wrap(ok)
	for i := range 100 {
		send(h, req("192.0.2.1:1", fmt.Sprintf("not-a-token-%d", i)))
		r := req("192.0.2.1:1", tokenA)
		r.Header.Add("Visitor-Token", tokenB)
		send(h, r)
	}
	if n := l.visitors.len(); n != 0 {
		t.Errorf("%d visitor buckets for invalid or repeated tokens, want 0", n)
	}
}

// TestBoundedMemory: the tables never hold more than MaxKeys buckets, and
// buckets idle long enough to be full again are dropped.
func TestBoundedMemory(t *testing.T) {
	c := newClock()
	l := New(Config{PerSecond: 10, Burst: 20, MaxKeys: 100, Now: c.now})
	h := l.Wrap(ok)
	for i := range 1000 {
		send(h, req(fmt.Sprintf("198.51.%d.%d:1", i/250, i%250+1), fmt.Sprintf("00000000-0000-4000-8000-%012d", i)))
		if l.ips.len() > 100 || l.visitors.len() > 100 {
			t.Fatalf("after %d clients: %d IP and %d visitor buckets, want at most 100", i+1, l.ips.len(), l.visitors.len())
		}
	}
	// Refilling 20 tokens at 10/s takes 2s: after that every bucket is
	// idle and the next arrival clears them.
	c.add(2 * time.Second)
	send(h, req("192.0.2.99:1", tokenA))
	if n, m := l.ips.len(), l.visitors.len(); n != 1 || m != 1 {
		t.Errorf("after 2s idle: %d IP and %d visitor buckets, want 1 and 1", n, m)
	}
}

// TestEvictedBucketStartsFull: evicting the least recently used bucket
// only ever forgets a client that has been quiet the longest.
func TestEvictedBucketStartsFull(t *testing.T) {
	c := newClock()
	l := New(Config{PerSecond: 1, Burst: 1, MaxKeys: 2, Now: c.now})
	h := l.Wrap(ok)
	send(h, req("192.0.2.1:1", ""))
	send(h, req("192.0.2.2:1", ""))
	send(h, req("192.0.2.1:1", "")) // refused, but used most recently
	send(h, req("192.0.2.3:1", "")) // evicts 192.0.2.2
	if w := send(h, req("192.0.2.1:1", "")); w.Code != http.StatusTooManyRequests {
		t.Errorf("recently used client: %d, want 429 (its bucket kept)", w.Code)
	}
}

func TestDisabled(t *testing.T) {
	l := New(Config{})
	if l.Enabled() {
		t.Fatal("enabled with PerSecond 0")
	}
	h := l.Wrap(ok)
	if got := allowed(h, 1000, func(int) *http.Request { return req("192.0.2.1:1", tokenA) }); got != 1000 {
		t.Errorf("%d of 1000 got through with limiting off", got)
	}
}

func TestExempt(t *testing.T) {
	c := newClock()
	h := New(Config{PerSecond: 1, Burst: 1, Now: c.now,
		Exempt: func(r *http.Request) bool { return r.URL.Path == "/healthz" }}).Wrap(ok)
	got := allowed(h, 10, func(int) *http.Request {
		r := req("192.0.2.1:1", "")
		r.URL.Path = "/healthz"
		return r
	})
	if got != 10 {
		t.Errorf("%d of 10 exempt requests got through", got)
	}
	if got := allowed(h, 3, func(int) *http.Request { return req("192.0.2.1:1", "") }); got != 1 {
		t.Errorf("%d of 3 other requests got through, want 1: exempt ones must not use the bucket", got)
	}
}

func TestMetrics(t *testing.T) {
	c := newClock()
	reg := prometheus.NewRegistry()
	l := New(Config{PerSecond: 1, Burst: 1, Now: c.now, Registerer: reg})
	h := l.Wrap(ok)
	send(h, req("192.0.2.1:1", tokenA))
	send(h, req("192.0.2.2:1", tokenA)) // visitor bucket empty
	send(h, req("192.0.2.2:1", tokenB)) // IP bucket of .2 still full: ok
	send(h, req("192.0.2.2:1", ""))     // IP bucket empty
	for by, want := range map[string]float64{"visitor": 1, "ip": 1} {
		var m dto.Metric
		if err := l.refused.WithLabelValues(by).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("refused by %s = %v, want %v", by, got, want)
		}
	}
}

// TestConcurrent hammers one limiter from many goroutines (run with -race)
// while other clients churn a small table: exactly the hot client's burst
// gets through, however the requests interleave.
func TestConcurrent(t *testing.T) {
	c := newClock()
	l := New(Config{PerSecond: 1, Burst: 50, MaxKeys: 300, Now: c.now})
	h := l.Wrap(ok)
	var wg sync.WaitGroup
	var mu sync.Mutex
	through := 0
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				code := send(h, req("192.0.2.1:1", "")).Code
				// Other addresses churn the small table meanwhile.
				send(h, req(fmt.Sprintf("198.51.100.%d:1", (g*100+i)%200+1), ""))
				if code == http.StatusNoContent {
					mu.Lock()
					through++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if through != 50 {
		t.Errorf("%d requests of the hot client got through, want its burst of 50", through)
	}
	if n := l.ips.len(); n != 201 {
		t.Errorf("%d IP buckets, want 201", n)
	}
}

// TestConcurrentEviction churns a table far smaller than its clients from
// many goroutines (run with -race): it never grows past MaxKeys.
func TestConcurrentEviction(t *testing.T) {
	l := New(Config{PerSecond: 1, Burst: 1, MaxKeys: 10})
	h := l.Wrap(ok)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				send(h, req(fmt.Sprintf("198.51.100.%d:1", (g*200+i)%250+1), fmt.Sprintf("00000000-0000-4000-8000-%012d", g*200+i)))
			}
		}()
	}
	wg.Wait()
	if n, m := l.ips.len(), l.visitors.len(); n > 10 || m > 10 {
		t.Errorf("%d IP and %d visitor buckets, want at most 10 each", n, m)
	}
}
