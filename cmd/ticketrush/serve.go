package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
	"github.com/ticketrush/ticketrush/httpapi"
	"github.com/ticketrush/ticketrush/ratelimit"
	"github.com/ticketrush/ticketrush/redis"
	"github.com/ticketrush/ticketrush/web"
)

// serveConfig is everything serve needs; bench builds one per server.
type serveConfig struct {
	addr          string
	db            string
	hold          time.Duration
	adminToken    string
	sweepInterval time.Duration
	strategy      string
	maxBatch      int
	maxQueue      int
	timeout       time.Duration
	logLevel      string
	// rateLimit is requests/s per visitor token and per client IP; 0 is
	// off. rateBurst 0 means rateLimit rounded up.
	rateLimit      float64
	rateBurst      int
	trustedProxies []netip.Prefix
	// passKeys sign admission passes and join challenges ("kid:secret,…";
	// the first signs, all verify); "" derives one (see passKeysFor).
	passKeys string
	// joinRate and joinBurst are the join quota per client IP and visitor;
	// joinRate 0 is off.
	joinRate  float64
	joinBurst int
	// queueInterval is how often this node advances every waiting room.
	queueInterval time.Duration
	// ready, when set, is told the listening address once the server
	// accepts connections.
	ready func(addr string)
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: ticketrush serve [flags]\n\nRuns the HTTP service. Migrates the database on start and, when it has no\nevents, seeds the demo event \"Örnek Etkinlik\" with 2000 tickets.\n\nFlags (each defaults from the environment variable named):\n")
		fs.PrintDefaults()
	}
	var c serveConfig
	fs.StringVar(&c.addr, "addr", envString(getenv, "TICKETRUSH_ADDR", ":8080"), "listen address (env TICKETRUSH_ADDR)")
	db := dbFlag(fs, getenv)
	fs.DurationVar(&c.hold, "hold", envDuration(getenv, "TICKETRUSH_HOLD", ticketrush.DefaultHold), "default hold time for new events (env TICKETRUSH_HOLD)")
	fs.StringVar(&c.adminToken, "admin-token", getenv("TICKETRUSH_ADMIN_TOKEN"), "bearer token for /api/admin; admin routes refuse every request when unset (env TICKETRUSH_ADMIN_TOKEN)")
	fs.DurationVar(&c.sweepInterval, "sweep-interval", envDuration(getenv, "TICKETRUSH_SWEEP_INTERVAL", time.Second), "how often expired holds are released (env TICKETRUSH_SWEEP_INTERVAL)")
	fs.StringVar(&c.strategy, "strategy", envString(getenv, "TICKETRUSH_STRATEGY", "batch"), "reserve, purchase and cancel strategy: batch (group commit) or lock (one transaction per request, the original's) (env TICKETRUSH_STRATEGY)")
	fs.IntVar(&c.maxBatch, "max-batch", 1024, "most reserves decided in one group-commit transaction")
	fs.IntVar(&c.maxQueue, "max-queue", 8192, "most reserves waiting per event; beyond it reserve answers 503 with Retry-After")
	fs.DurationVar(&c.timeout, "request-timeout", envDuration(getenv, "TICKETRUSH_REQUEST_TIMEOUT", httpapi.DefaultTimeout), "deadline of each request's database work; past it the answer is 503 with Retry-After (env TICKETRUSH_REQUEST_TIMEOUT)")
	fs.StringVar(&c.logLevel, "log-level", envString(getenv, "TICKETRUSH_LOG_LEVEL", "info"), "debug, info, warn or error (env TICKETRUSH_LOG_LEVEL)")
	fs.Float64Var(&c.rateLimit, "rate-limit", envFloat(getenv, "TICKETRUSH_RATE_LIMIT", 0), "requests per second allowed to each visitor token and to each client IP, answering 429 beyond; 0 turns the limit off (env TICKETRUSH_RATE_LIMIT)")
	fs.IntVar(&c.rateBurst, "rate-burst", envInt(getenv, "TICKETRUSH_RATE_BURST", 0), "requests a visitor or an IP may send at once after a pause; 0 means --rate-limit rounded up (env TICKETRUSH_RATE_BURST)")
	proxies := fs.String("trusted-proxies", getenv("TICKETRUSH_TRUSTED_PROXIES"), "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For the rate limit believes, e.g. 10.0.0.0/8; empty: the header is ignored (env TICKETRUSH_TRUSTED_PROXIES)")
	fs.StringVar(&c.passKeys, "pass-keys", getenv("TICKETRUSH_PASS_KEYS"), "keys signing admission passes and join challenges, \"kid:secret,kid2:secret2\" (secrets of 16+ characters): the first signs, all verify, so a key rotates by adding it second, moving it first, then dropping the old one; every node needs the same keys. Unset: derived from --admin-token, or random to this process when that is unset too (env TICKETRUSH_PASS_KEYS)")
	fs.Float64Var(&c.joinRate, "join-rate", envFloat(getenv, "TICKETRUSH_JOIN_RATE", 1), "queue joins per second allowed to each client IP (IPv6 per /64) and visitor token, 429 beyond; 0 turns the quota off (env TICKETRUSH_JOIN_RATE)")
	fs.IntVar(&c.joinBurst, "join-burst", envInt(getenv, "TICKETRUSH_JOIN_BURST", 20), "queue joins a client IP may send at once after a pause (env TICKETRUSH_JOIN_BURST)")
	fs.DurationVar(&c.queueInterval, "queue-interval", envDuration(getenv, "TICKETRUSH_QUEUE_INTERVAL", defaultQueueInterval), "how often this node advances every waiting room (shuffle, expiry, admission), e.g. 250ms (env TICKETRUSH_QUEUE_INTERVAL)")
	if err := parse(fs, args); err != nil {
		return err
	}
	c.db = *db
	var err error
	if c.trustedProxies, err = parsePrefixes(*proxies); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	return serve(ctx, c, stderr)
}

// serve runs the service until ctx ends, then shuts down gracefully: it stops
// accepting, finishes in-flight requests (so every acknowledged reservation
// is committed), drains the batcher and closes the database.
func serve(ctx context.Context, c serveConfig, logOut io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	if c.strategy != "batch" && c.strategy != "lock" {
		return fmt.Errorf("--strategy %q: want batch or lock", c.strategy)
	}
	if c.hold < time.Second || c.hold > ticketrush.MaxHoldSeconds*time.Second {
		return fmt.Errorf("--hold %s: want 1s to 24h", c.hold)
	}
	if c.sweepInterval <= 0 {
		return fmt.Errorf("--sweep-interval %s: must be positive", c.sweepInterval)
	}
	if c.rateLimit < 0 || c.rateBurst < 0 {
		return fmt.Errorf("--rate-limit %g, --rate-burst %d: must not be negative", c.rateLimit, c.rateBurst)
	}
	if err := c.checkWaitingRoom(); err != nil {
		return err
	}

	s, backend, err := openStore(ctx, c.db, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if e, err := seedDemo(ctx, s, c.hold); err != nil {
		return fmt.Errorf("seed: %w", err)
	} else if e != nil {
		log.Info("seeded demo event", "event_id", e.ID, "name", e.Name, "tickets", e.TicketQuantity)
	}
	if rs, ok := s.(*redis.Store); ok {
		if on, err := rs.AOFEnabled(ctx); err == nil && !on {
			log.Warn("redis has appendonly off: acknowledged reservations are lost if redis restarts; set appendonly yes and appendfsync always (see README)")
		}
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	return runServer(ctx, s, backend, ln, c, log)
}

// runServer serves the API over an open, migrated store on ln until ctx
// ends, then shuts down gracefully: it stops accepting, finishes in-flight
// requests (so every acknowledged reservation is committed), drains the
// batcher and stops the sweeper. The caller closes the store. bench uses it
// to run one fresh server per measurement on a store it created.
func runServer(ctx context.Context, s ticketrush.Store, backend string, ln net.Listener, c serveConfig, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var reserver ticketrush.Reserver = s
	var batcher *batch.Batcher
	var checkout *batch.Options
	if c.strategy == "batch" {
		batcher = batch.New(s, batch.Options{MaxBatch: c.maxBatch, MaxQueue: c.maxQueue, Timeout: c.timeout, Metrics: batch.NewMetrics(reg)})
		reserver = batcher
		checkout = &batch.Options{MaxBatch: c.maxBatch, MaxQueue: c.maxQueue, Timeout: c.timeout}
	}
	passKeys, err := passKeysFor(c, log)
	if err != nil {
		return err
	}
	pages := web.New(web.Config{Store: s, Logger: log})
	api := httpapi.New(httpapi.Config{
		Store:       s,
		Reserver:    reserver,
		Checkout:    checkout,
		AdminToken:  c.adminToken,
		DefaultHold: c.hold,
		Timeout:     c.timeout,
		Logger:      log,
		Registry:    reg,
		Web:         pages.Handler(),
		WebRoutes:   web.Routes,
		WaitingRoom: httpapi.WaitingRoomConfig{
			PassKeys:       passKeys,
			JoinsPerSecond: c.joinRate,
			JoinBurst:      c.joinBurst,
			TrustedProxies: c.trustedProxies,
		},
	})
	if c.adminToken == "" {
		log.Warn("no admin token set: admin routes refuse every request (set --admin-token or TICKETRUSH_ADMIN_TOKEN)")
	}

	var handler http.Handler = api
	if c.rateLimit > 0 {
		lim := ratelimit.New(ratelimit.Config{
			PerSecond:      c.rateLimit,
			Burst:          c.rateBurst,
			TrustedProxies: c.trustedProxies,
			Registerer:     reg,
			// Probes and scrapes come from a few fixed addresses at a
			// steady pace; limiting them would only fail health checks.
			Exempt: func(r *http.Request) bool {
				switch r.URL.Path {
				case "/healthz", "/readyz", "/metrics":
					return true
				}
				return false
			},
		})
		handler = lim.Wrap(api)
		log.Info("rate limit on", "per_second", c.rateLimit, "burst", c.rateBurst, "trusted_proxies", len(c.trustedProxies))
	}

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// Live availability streams never end by themselves: end them when
	// shutdown starts, so it waits only for real requests.
	srv.RegisterOnShutdown(pages.Close)

	sweepCtx, stopSweep := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		ticketrush.Sweep(sweepCtx, s, c.sweepInterval, log, api.HoldsReleased)
	}()

	queued := make(chan struct{})
	go func() {
		defer close(queued)
		keepQueues(sweepCtx, s, c.queueInterval, log, api.QueueAdvanced)
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "backend", backend, "strategy", c.strategy)
	if c.ready != nil {
		c.ready(ln.Addr().String())
	}

	select {
	case err := <-errc:
		stopSweep()
		<-swept
		<-queued
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	if batcher != nil {
		batcher.Close()
	}
	api.Close()
	stopSweep()
	<-swept
	<-queued
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// parsePrefixes reads a comma-separated list of CIDRs or single addresses.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// envFloat reads a number default from the environment.
func envFloat(getenv func(string) string, key string, def float64) float64 {
	if v := getenv(key); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

// envInt reads an integer default from the environment.
func envInt(getenv func(string) string, key string, def int) int {
	if v := getenv(key); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}
