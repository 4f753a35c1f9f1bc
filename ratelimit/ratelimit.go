// Package ratelimit limits requests per visitor token and per client IP
// with token buckets, answering 429 with Retry-After beyond the limit.
//
// Each request takes one token from the bucket of its client IP and, when
// it carries a valid Visitor-Token, one from the bucket of that visitor; it
// is refused if either is empty. The IP bucket stops one machine rotating
// visitor tokens; the visitor bucket stops one visitor spreading over many
// machines. IPv6 clients are grouped by /64, the block one subscriber
// usually holds, so rotating addresses inside it gains nothing.
//
// The client IP is the connection's peer. X-Forwarded-For is honoured only
// when that peer is one of Config.TrustedProxies, and then read from the
// right: the client is the first address that is not a trusted proxy, so a
// client cannot choose its own key by sending the header itself.
//
// Memory is bounded: a bucket idle long enough to have refilled is
// indistinguishable from a new one and is dropped, and at most
// Config.MaxKeys buckets of each kind are kept, the least recently used
// going first. The limiter never logs a key, so visitor tokens never reach
// a log.
//
// With Config.Shared the buckets live in a store every node of a cluster
// shares (Redis or PostgreSQL, see NewRedis and NewPostgres), so the limit
// is one for the whole service rather than one per node: a client gains
// nothing by spreading its requests over nodes. Shared stores use GCRA
// (the generic cell rate algorithm), which keeps one timestamp per key and
// allows the same rate and burst as the in-process token buckets. When the
// shared store cannot answer in time a request is let through: the limit
// protects the service, and must not become the thing that fails it.
package ratelimit

import (
	"container/list"
	"context"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/ticketrush/ticketrush"
)

// DefaultMaxKeys is how many buckets of each kind (IP, visitor) a Limiter
// keeps when Config.MaxKeys is 0: a few hundred bytes each, so tens of
// megabytes at most.
const DefaultMaxKeys = 100_000

// Config configures a Limiter.
type Config struct {
	// PerSecond is the sustained rate allowed to one visitor token and to
	// one client IP, in requests per second; 0 (or less) turns limiting
	// off.
	PerSecond float64
	// Burst is how many requests a client may send at once after a pause;
	// below 1 it is PerSecond rounded up (at least 1).
	Burst int
	// TrustedProxies are the networks of the reverse proxies in front of
	// the service. X-Forwarded-For is honoured only when the connection's
	// peer is in one of them; empty means it is never honoured.
	TrustedProxies []netip.Prefix
	// MaxKeys caps the buckets kept per kind; 0 means DefaultMaxKeys.
	MaxKeys int
	// Exempt, when set, lets the requests it returns true for through
	// without touching any bucket (health checks from a load balancer).
	Exempt func(*http.Request) bool
	// Registerer, when set, receives the counter of refused requests,
	// ticketrush_rate_limited_total{by="ip"|"visitor"}.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// Shared, when set, keeps the buckets in a store shared by every
	// node instead of in this process.
	Shared Shared
	// KeyPrefix starts every key this limiter asks Shared about, so that
	// two limiters on one store (the request rate limit and the join
	// quota) keep separate buckets for the same address and visitor.
	KeyPrefix string
	// SharedTimeout bounds one check against Shared; 0 means
	// DefaultSharedTimeout. Past it the request is let through.
	SharedTimeout time.Duration
	// Logger gets failures of Shared (at most one line every ten
	// seconds); nil means slog.Default().
	Logger *slog.Logger
}

// DefaultSharedTimeout bounds a check against a shared store: a limit that
// adds more than this to a request would hurt the buyers it protects.
const DefaultSharedTimeout = 250 * time.Millisecond

// Shared is limit state kept outside the process and shared by every node.
type Shared interface {
	// Take counts one request against each of keys, allowing each key
	// perSecond requests a second sustained and burst at once. It returns
	// 0 when every key allowed the request, else how long until the
	// slowest refusing key would allow one, and that key's index. A
	// refused request may still have counted against the keys that
	// allowed it.
	Take(ctx context.Context, keys []string, perSecond float64, burst int) (wait time.Duration, refused int, err error)
}

// Limiter is a per-visitor and per-IP rate limit. It is safe for
// concurrent use.
type Limiter struct {
	limit   rate.Limit
	burst   int
	trusted []netip.Prefix
	exempt  func(*http.Request) bool
	now     func() time.Time
	ips     *table[netip.Prefix]
	// visitors are keyed by the token's 16 bytes, not its text.
	visitors *table[[16]byte]
	refused  *prometheus.CounterVec

	shared        Shared
	keyPrefix     string
	sharedTimeout time.Duration
	sharedErrors  prometheus.Counter
	log           *slog.Logger
	errLog        *rate.Limiter
	// proxyHint warns once that requests come through a proxy nobody
	// declared, which makes every client behind it one client.
	proxyHint sync.Once
}

// New returns a Limiter for c.
func New(c Config) *Limiter {
	l := &Limiter{
		limit:   rate.Limit(c.PerSecond),
		burst:   c.Burst,
		trusted: c.TrustedProxies,
		exempt:  c.Exempt,
		now:     c.Now,

		shared:        c.Shared,
		keyPrefix:     c.KeyPrefix,
		sharedTimeout: c.SharedTimeout,
		log:           c.Logger,
		errLog:        rate.NewLimiter(rate.Every(10*time.Second), 1),
	}
	if l.sharedTimeout <= 0 {
		l.sharedTimeout = DefaultSharedTimeout
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.burst < 1 {
		l.burst = max(1, int(math.Ceil(c.PerSecond)))
	}
	if l.now == nil {
		l.now = time.Now
	}
	maxKeys := c.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	// A bucket idle this long is full again: dropping it changes nothing.
	idle := time.Second
	if c.PerSecond > 0 {
		idle = max(idle, time.Duration(float64(l.burst)/c.PerSecond*float64(time.Second)))
	}
	l.ips = newTable[netip.Prefix](maxKeys, idle)
	l.visitors = newTable[[16]byte](maxKeys, idle)
	if c.Registerer != nil {
		l.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketrush_rate_limited_total",
			Help: `Requests refused with 429 by the rate limit, by the bucket that was empty: "ip" or "visitor".`,
		}, []string{"by"})
		c.Registerer.MustRegister(l.refused)
		if l.shared != nil {
			l.sharedErrors = prometheus.NewCounter(prometheus.CounterOpts{
				Name: "ticketrush_rate_limit_errors_total",
				Help: "Requests let through because the shared rate-limit store did not answer in time.",
			})
			c.Registerer.MustRegister(l.sharedErrors)
		}
	}
	return l
}

// Enabled reports whether the limiter limits anything.
func (l *Limiter) Enabled() bool { return l.limit > 0 }

// Wrap returns next behind the limit; with limiting off it returns next
// itself.
func (l *Limiter) Wrap(next http.Handler) http.Handler {
	if !l.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait := l.Allow(r); wait > 0 {
			refuse(w, wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Allow takes a token for r from each bucket it belongs to. It returns 0 if
// r may go on, else how long until it could. Exempt requests, and every
// request when limiting is off, go on.
func (l *Limiter) Allow(r *http.Request) time.Duration {
	if !l.Enabled() || (l.exempt != nil && l.exempt(r)) {
		return 0
	}
	if len(l.trusted) == 0 && r.Header.Get("X-Forwarded-For") != "" {
		l.proxyHint.Do(func() {
			l.log.Warn("rate limit: requests carry X-Forwarded-For but no proxy is trusted, so every client behind a proxy shares its address's budget; name the proxies with --trusted-proxies (or TICKETRUSH_TRUSTED_PROXIES)")
		})
	}
	var wait time.Duration
	var by string
	if l.shared != nil {
		wait, by = l.takeShared(r)
	} else {
		wait, by = l.take(r)
	}
	if wait > 0 && l.refused != nil {
		l.refused.WithLabelValues(by).Inc()
	}
	return wait
}

// takeShared is take against the shared store.
func (l *Limiter) takeShared(r *http.Request) (time.Duration, string) {
	keys := make([]string, 1, 2)
	keys[0] = l.keyPrefix + "ip:" + clientKey(l.clientIP(r)).String()
	if key, ok := visitorKey(r); ok {
		keys = append(keys, l.keyPrefix+"v:"+uuid.UUID(key).String())
	}
	ctx, cancel := context.WithTimeout(r.Context(), l.sharedTimeout)
	defer cancel()
	wait, i, err := l.shared.Take(ctx, keys, float64(l.limit), l.burst)
	if err != nil {
		if l.sharedErrors != nil {
			l.sharedErrors.Inc()
		}
		if r.Context().Err() == nil && l.errLog.Allow() {
			l.log.Warn("rate limit: the shared store did not answer; letting requests through", "err", err)
		}
		return 0, ""
	}
	if wait <= 0 {
		return 0, ""
	}
	if i == 1 {
		return wait, "visitor"
	}
	return wait, "ip"
}

// take takes a token for r from each bucket it belongs to. It returns 0 if
// r may go on, else how long until it could and which bucket was empty; a
// refused request takes nothing.
func (l *Limiter) take(r *http.Request) (time.Duration, string) {
	now := l.now()
	ip := l.ips.get(clientKey(l.clientIP(r)), now, l.newLimiter)
	ipRes := ip.ReserveN(now, 1)
	wait, by := ipRes.DelayFrom(now), "ip"
	if key, ok := visitorKey(r); ok {
		v := l.visitors.get(key, now, l.newLimiter)
		vRes := v.ReserveN(now, 1)
		if d := vRes.DelayFrom(now); d > wait {
			wait, by = d, "visitor"
		}
		if wait > 0 {
			vRes.CancelAt(now)
		}
	}
	if wait > 0 {
		ipRes.CancelAt(now)
		return wait, by
	}
	return 0, ""
}

func (l *Limiter) newLimiter() *rate.Limiter { return rate.NewLimiter(l.limit, l.burst) }

// refuse answers 429 in the API's error format.
func refuse(w http.ResponseWriter, wait time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(wait.Seconds()))), 10))
	w.WriteHeader(http.StatusTooManyRequests)
	w.Write([]byte(`{"error":{"code":"` + ticketrush.ERateLimited + `","message":"Too many requests, please retry later."}}` + "\n"))
}

// ClientIP returns the address r came from, believing X-Forwarded-For only
// from the trusted proxies, as the limiter does.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	return (&Limiter{trusted: trusted}).clientIP(r)
}

// ClientKey is the block an address is counted by: itself for IPv4, its /64
// for IPv6, the block one subscriber usually holds.
func ClientKey(a netip.Addr) netip.Prefix { return clientKey(a) }

// clientIP returns the address r came from, by the rules in the package
// comment. It is the zero Addr when the peer address cannot be parsed,
// which puts such requests in one shared bucket.
func (l *Limiter) clientIP(r *http.Request) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !peer.IsValid() || !l.isTrusted(peer) {
		return peer
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseAddr(strings.TrimSpace(hops[i]))
		if !a.IsValid() {
			// Only a client writes garbage: the last trusted hop is as
			// far as the chain can be believed.
			return client
		}
		client = a
		if !l.isTrusted(a) {
			return a
		}
	}
	return client
}

func (l *Limiter) isTrusted(a netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseAddr reads "ip", "ip:port" or "[ipv6]:port", unmapping IPv4-mapped
// IPv6; the zero Addr when it is none of these.
func parseAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

// clientKey is the bucket of an address: itself for IPv4, its /64 for
// IPv6.
func clientKey(a netip.Addr) netip.Prefix {
	switch {
	case !a.IsValid():
		return netip.Prefix{}
	case a.Is4():
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// visitorKey returns the visitor of r when it sends exactly one valid
// Visitor-Token. Invalid tokens get no bucket: the API refuses them anyway,
// and a client must not be able to create buckets at will.
func visitorKey(r *http.Request) ([16]byte, bool) {
	v := r.Header.Values("Visitor-Token")
	if len(v) != 1 {
		return [16]byte{}, false
	}
	t, err := ticketrush.ParseVisitorToken(v[0])
	if err != nil {
		return [16]byte{}, false
	}
	u, err := uuid.Parse(t)
	if err != nil {
		return [16]byte{}, false
	}
	return u, true
}

// table holds buckets by key, most recently used first, so idle ones are
// found and dropped from the back without a scan or a background goroutine.
type table[K comparable] struct {
	mu    sync.Mutex
	items map[K]*list.Element
	order list.List // of *entry[K], front = most recently used
	max   int
	idle  time.Duration
}

type entry[K comparable] struct {
	key  K
	lim  *rate.Limiter
	last time.Time
}

func newTable[K comparable](max int, idle time.Duration) *table[K] {
	return &table[K]{items: make(map[K]*list.Element), max: max, idle: idle}
}

// get returns the bucket of key, creating it with mk.
func (t *table[K]) get(key K, now time.Time, mk func() *rate.Limiter) *rate.Limiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.items[key]; ok {
		e := el.Value.(*entry[K])
		e.last = now
		t.order.MoveToFront(el)
		return e.lim
	}
	for back := t.order.Back(); back != nil; back = t.order.Back() {
		e := back.Value.(*entry[K])
		if len(t.items) < t.max && now.Sub(e.last) < t.idle {
			break
		}
		t.order.Remove(back)
		delete(t.items, e.key)
	}
	e := &entry[K]{key: key, lim: mk(), last: now}
	t.items[key] = t.order.PushFront(e)
	return e.lim
}

// len returns how many buckets the table holds.
func (t *table[K]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.items)
}
