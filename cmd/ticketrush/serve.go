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
	"syscall"
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
	// allowedOrigins may call the API from a browser on another site.
	allowedOrigins []string
	// maxStreamsPerIP caps the live streams of one client; 0 means the
	// web package's default.
	maxStreamsPerIP int
	// requestLog is the level of the request log's lines, or "off"; ""
	// means info. requestLogMax caps its lines per second (0: no cap).
	requestLog    string
	requestLogMax float64
	// requestLogger, when set, writes the request log (serve gives it an
	// asynchronous writer); else the request log goes to the main log.
	requestLogger *slog.Logger
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
	c, err := parseServe(args, getenv, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, c, stderr)
}

// parseServe reads serve's flags and environment into a configuration.
func parseServe(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: ticketrush serve [flags]\n\nRuns the HTTP service. Migrates the database on start and, when it has no\nevents, seeds the demo event \"Örnek Etkinlik\" with 2000 tickets.\n\nFlags (each defaults from the environment variable named):\n")
		fs.PrintDefaults()
	}
	var c serveConfig
	var envErrs envErrors
	fs.StringVar(&c.addr, "addr", envString(getenv, "TICKETRUSH_ADDR", ":8080"), "listen address (env TICKETRUSH_ADDR)")
	db := dbFlag(fs, getenv)
	durationVar(fs, &envErrs, getenv, &c.hold, "hold", "TICKETRUSH_HOLD", ticketrush.DefaultHold, "default hold time for new events, a `duration` such as 5m or 90s (env TICKETRUSH_HOLD)")
	fs.StringVar(&c.adminToken, "admin-token", getenv("TICKETRUSH_ADMIN_TOKEN"), "bearer token for /api/admin; without one admin is switched off and answers 403 admin_disabled (env TICKETRUSH_ADMIN_TOKEN)")
	durationVar(fs, &envErrs, getenv, &c.sweepInterval, "sweep-interval", "TICKETRUSH_SWEEP_INTERVAL", time.Second, "how often expired holds are released, a `duration` such as 1s or 500ms (env TICKETRUSH_SWEEP_INTERVAL)")
	fs.StringVar(&c.strategy, "strategy", envString(getenv, "TICKETRUSH_STRATEGY", "batch"), "reserve, purchase and cancel strategy: batch (group commit) or lock (one transaction per request, the original's) (env TICKETRUSH_STRATEGY)")
	fs.IntVar(&c.maxBatch, "max-batch", 1024, "most reserves decided in one group-commit transaction")
	fs.IntVar(&c.maxQueue, "max-queue", 8192, "most reserves waiting per event; beyond it reserve answers 503 with Retry-After")
	durationVar(fs, &envErrs, getenv, &c.timeout, "request-timeout", "TICKETRUSH_REQUEST_TIMEOUT", httpapi.DefaultTimeout, "deadline of each request's database work, a `duration` such as 1500ms or 2s; past it the answer is 503 with Retry-After (env TICKETRUSH_REQUEST_TIMEOUT)")
	fs.StringVar(&c.logLevel, "log-level", envString(getenv, "TICKETRUSH_LOG_LEVEL", "info"), "debug, info, warn or error (env TICKETRUSH_LOG_LEVEL)")
	fs.StringVar(&c.requestLog, "request-log", envString(getenv, "TICKETRUSH_REQUEST_LOG", "info"), "level of the one log line per request (debug, info, warn or error; written when --log-level lets it through), or off (env TICKETRUSH_REQUEST_LOG)")
	fs.Float64Var(&c.requestLogMax, "request-log-max", envFloat(getenv, "TICKETRUSH_REQUEST_LOG_MAX", defaultRequestLogMax), "most request log lines per second; beyond it lines are sampled (dropped and counted, one summary line a second); 0 means no cap (env TICKETRUSH_REQUEST_LOG_MAX)")
	fs.Float64Var(&c.rateLimit, "rate-limit", envFloat(getenv, "TICKETRUSH_RATE_LIMIT", defaultRateLimit), "requests per second allowed to each visitor token and to each client IP (IPv6 per /64), answering 429 beyond, shared by all nodes on PostgreSQL and Redis; 0 turns the limit off (env TICKETRUSH_RATE_LIMIT)")
	fs.IntVar(&c.rateBurst, "rate-burst", envInt(getenv, "TICKETRUSH_RATE_BURST", defaultRateBurst), "requests a visitor or an IP may send at once after a pause; 0 means --rate-limit rounded up (env TICKETRUSH_RATE_BURST)")
	proxies := fs.String("trusted-proxies", getenv("TICKETRUSH_TRUSTED_PROXIES"), "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For the rate limit believes, e.g. 10.0.0.0/8; empty: the header is ignored (env TICKETRUSH_TRUSTED_PROXIES)")
	origins := fs.String("allowed-origins", getenv("TICKETRUSH_ALLOWED_ORIGINS"), "comma-separated origins whose pages may call the API and admin from a browser, e.g. https://shop.example.com; every other cross-site browser request that changes state or reaches admin is refused with 403 (env TICKETRUSH_ALLOWED_ORIGINS)")
	fs.IntVar(&c.maxStreamsPerIP, "max-streams-per-ip", envInt(getenv, "TICKETRUSH_MAX_STREAMS_PER_IP", web.DefaultMaxStreamsPerIP), "most live availability streams one client IP may hold open; beyond it 429 too_many_streams; negative: no cap (env TICKETRUSH_MAX_STREAMS_PER_IP)")
	fs.StringVar(&c.passKeys, "pass-keys", getenv("TICKETRUSH_PASS_KEYS"), "keys signing admission passes and join challenges, \"kid:secret,kid2:secret2\" (secrets of 16+ characters): the first signs, all verify, so a key rotates by adding it second, moving it first, then dropping the old one; every node needs the same keys. Unset: derived from --admin-token, or random to this process when that is unset too (env TICKETRUSH_PASS_KEYS)")
	fs.Float64Var(&c.joinRate, "join-rate", envFloat(getenv, "TICKETRUSH_JOIN_RATE", 1), "queue joins per second allowed to each client IP (IPv6 per /64) and visitor token, 429 beyond; 0 turns the quota off, and so does --rate-limit 0 unless this is given (env TICKETRUSH_JOIN_RATE)")
	fs.IntVar(&c.joinBurst, "join-burst", envInt(getenv, "TICKETRUSH_JOIN_BURST", 20), "queue joins a client IP may send at once after a pause (env TICKETRUSH_JOIN_BURST)")
	durationVar(fs, &envErrs, getenv, &c.queueInterval, "queue-interval", "TICKETRUSH_QUEUE_INTERVAL", defaultQueueInterval, "how often this node advances every waiting room (shuffle, expiry, admission), a `duration` such as 250ms (env TICKETRUSH_QUEUE_INTERVAL)")
	if err := parse(fs, args); err != nil {
		return c, err
	}
	envErrs = append(envErrs, checkEnvNumbers(getenv,
		"TICKETRUSH_RATE_LIMIT", "TICKETRUSH_RATE_BURST", "TICKETRUSH_REQUEST_LOG_MAX",
		"TICKETRUSH_MAX_STREAMS_PER_IP", "TICKETRUSH_JOIN_RATE", "TICKETRUSH_JOIN_BURST")...)
	if err := envErrs.err(); err != nil {
		return c, err
	}
	c.db = *db
	// --rate-limit 0 is what the README tells rehearsals and benchmarks
	// that send many visitors from one machine; their joins come from one
	// address too, so the join quota goes off with it unless it is named.
	joinRateSet := getenv("TICKETRUSH_JOIN_RATE") != ""
	fs.Visit(func(f *flag.Flag) { joinRateSet = joinRateSet || f.Name == "join-rate" })
	if c.rateLimit == 0 && !joinRateSet {
		c.joinRate = 0
	}
	var err error
	if c.trustedProxies, err = parsePrefixes(*proxies); err != nil {
		return c, fmt.Errorf("--trusted-proxies: %w", err)
	}
	if c.allowedOrigins, err = httpapi.ParseOrigins(*origins); err != nil {
		return c, fmt.Errorf("--allowed-origins: %w", err)
	}
	if c.maxStreamsPerIP == 0 {
		return c, errors.New("--max-streams-per-ip 0 would refuse every live stream: give a positive number, or a negative one for no cap")
	}
	return c, nil
}

// Defaults of the rate limit: ten requests a second sustained, fifty at
// once, per visitor token and per client IP. A buyer's page makes a
// handful of requests when it loads and about one per action after that, so
// no person comes near it; a script that loops reserves or rotates visitor
// tokens from one address meets 429 within its first second.
const (
	defaultRateLimit = 10
	defaultRateBurst = 50
)

// defaultRequestLogMax caps the request log at a rate a disk and a log
// shipper take without trouble, and far above the traffic of an ordinary
// day; in a rush the log samples instead of costing throughput.
const defaultRequestLogMax = 1000

// serve runs the service until ctx ends, then shuts down gracefully: it stops
// accepting, finishes in-flight requests (so every acknowledged reservation
// is committed), drains the batcher and closes the database.
//
// It binds its listener before it touches the database: a busy port fails
// at once and leaves nothing behind (no SQLite file, no migration, no
// seeded event).
func serve(ctx context.Context, c serveConfig, logOut io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	if _, err := requestLogConfig(c); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	// Request lines go out from a goroutine of their own, so that a
	// request never waits for the log's file or pipe.
	reqOut := httpapi.NewAsyncWriter(logOut)
	defer reqOut.Close()
	c.requestLogger = slog.New(slog.NewTextHandler(reqOut, &slog.HandlerOptions{Level: level}))
	if c.strategy != "batch" && c.strategy != "lock" {
		return fmt.Errorf("--strategy %q: want batch or lock", c.strategy)
	}
	if c.hold < time.Second || c.hold > ticketrush.MaxHoldSeconds*time.Second {
		return fmt.Errorf("--hold %s: want 1s to 24h, e.g. 5m or 90s", c.hold)
	}
	if c.sweepInterval <= 0 {
		return fmt.Errorf("--sweep-interval %s: must be positive, e.g. 1s", c.sweepInterval)
	}
	if c.timeout < 0 {
		return fmt.Errorf("--request-timeout %s: must not be negative, e.g. 1500ms", c.timeout)
	}
	if c.rateLimit < 0 || c.rateBurst < 0 {
		return fmt.Errorf("--rate-limit %g, --rate-burst %d: must not be negative (--rate-limit 0 turns the limit off)", c.rateLimit, c.rateBurst)
	}
	if err := c.checkWaitingRoom(); err != nil {
		return err
	}
	if c.requestLogMax < 0 {
		return fmt.Errorf("--request-log-max %g: must not be negative (0 means no cap)", c.requestLogMax)
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return listenError(c.addr, err)
	}
	defer ln.Close()

	s, backend, err := openStore(ctx, c.db, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return operatorError("migrate the "+backend+" database", c.db, err)
	}
	if e, err := seedDemo(ctx, s, c.hold); err != nil {
		return operatorError("seed the demo event into the "+backend+" database", c.db, err)
	} else if e != nil {
		log.Info("seeded demo event", "event_id", e.ID, "name", e.Name, "tickets", e.TicketQuantity)
	}
	if rs, ok := s.(*redis.Store); ok {
		if on, err := rs.AOFEnabled(ctx); err == nil && !on {
			log.Warn("redis has appendonly off: acknowledged reservations are lost if redis restarts; set appendonly yes and appendfsync always (see README)")
		}
	}

	return runServer(ctx, s, backend, ln, c, log)
}

// listenError says why serve could not take its address and what to do.
func listenError(addr string, err error) error {
	hint := "check the address (--addr or TICKETRUSH_ADDR), e.g. :8080 or 127.0.0.1:8080"
	if errors.Is(err, syscall.EADDRINUSE) {
		hint = "another program (perhaps another ticketrush) is listening on that port; stop it or choose another port with --addr or TICKETRUSH_ADDR"
	} else if errors.Is(err, syscall.EACCES) {
		hint = "ports below 1024 need privileges; choose a port above 1023 with --addr or TICKETRUSH_ADDR"
	}
	return fmt.Errorf("cannot listen on %s: %v; %s. Nothing was created or changed", addr, unwrapCause(err), hint)
}

// requestLogConfig reads the request log settings of c.
func requestLogConfig(c serveConfig) (httpapi.RequestLogConfig, error) {
	rl := httpapi.RequestLogConfig{MaxPerSecond: c.requestLogMax}
	switch c.requestLog {
	case "off":
		rl.Off = true
	case "":
	default:
		if err := rl.Level.UnmarshalText([]byte(c.requestLog)); err != nil {
			return rl, fmt.Errorf("--request-log %q: want debug, info, warn, error or off", c.requestLog)
		}
	}
	return rl, nil
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
	// Every part names a client the same way: behind trusted proxies, by
	// X-Forwarded-For; IPv6 by its /64 where clients are counted.
	clientIP := func(r *http.Request) string {
		return ratelimit.ClientIP(r, c.trustedProxies).String()
	}
	clientKey := func(r *http.Request) string {
		return ratelimit.ClientKey(ratelimit.ClientIP(r, c.trustedProxies)).String()
	}
	pages := web.New(web.Config{Store: s, Logger: log, MaxStreamsPerIP: c.maxStreamsPerIP, ClientIP: clientKey})
	reqLog, err := requestLogConfig(c)
	if err != nil {
		return err
	}
	reqLog.Logger = c.requestLogger
	var (
		limiter httpapi.Limiter
		shared  ratelimit.Shared
	)
	if c.rateLimit > 0 || c.joinRate > 0 {
		// One store for the rate limit and the join quota, shared by
		// every node on PostgreSQL and Redis (nil on SQLite: per node).
		var closeShared func()
		shared, closeShared, err = sharedLimitStore(ctx, s, backend, c.db, log)
		if err != nil {
			return err
		}
		defer closeShared()
	}
	if c.rateLimit > 0 {
		lim := ratelimit.New(ratelimit.Config{
			PerSecond:      c.rateLimit,
			Burst:          c.rateBurst,
			TrustedProxies: c.trustedProxies,
			Registerer:     reg,
			Shared:         shared,
			Logger:         log,
		})
		limiter = lim
		log.Info("rate limit on", "per_second", c.rateLimit, "burst", c.rateBurst, "shared_by", sharedBy(shared, backend), "trusted_proxies", len(c.trustedProxies))
	} else {
		log.Info("rate limit off")
	}
	if c.joinRate > 0 {
		log.Info("join quota on", "per_second", c.joinRate, "burst", c.joinBurst, "shared_by", sharedBy(shared, backend))
	} else {
		log.Info("join quota off")
	}
	passKeys, err := passKeysFor(c, log)
	if err != nil {
		return err
	}
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

		AllowedOrigins: c.allowedOrigins,
		Limiter:        limiter,
		ClientIP:       clientIP,
		RequestLog:     reqLog,
		WaitingRoom: httpapi.WaitingRoomConfig{
			PassKeys:       passKeys,
			JoinsPerSecond: c.joinRate,
			JoinBurst:      c.joinBurst,
			TrustedProxies: c.trustedProxies,
			JoinShared:     shared,
		},
	})
	if c.adminToken == "" {
		log.Warn("no admin token set: admin is switched off and answers 403 admin_disabled (set --admin-token or TICKETRUSH_ADMIN_TOKEN)")
	}

	var handler http.Handler = api

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
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
	// Go's server answers a request it cannot parse (or headers over the
	// limit) itself, in plain text: the listener makes those JSON too.
	go func() { errc <- srv.Serve(httpapi.Listener(ln, maxHeaderBytes)) }()
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

// maxHeaderBytes caps a request's header block (431 headers_too_large).
const maxHeaderBytes = 16 << 10

// sharedBy says who shares the limits' buckets, for the log.
func sharedBy(shared ratelimit.Shared, backend string) string {
	if shared == nil {
		return "this node"
	}
	return "all nodes (" + backend + ")"
}
