package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/postgres"
	"github.com/ticketrush/ticketrush/redis"
	"github.com/ticketrush/ticketrush/sqlite"
)

// Config says what one bench measures.
type Config struct {
	// SQLite measures a SQLite file in a new temporary directory.
	SQLite bool
	// Postgres, when set, is a server URL: the bench creates a database of
	// its own there and drops it afterwards.
	Postgres string
	// Redis, when set, is a server URL: the bench works under a key prefix
	// of its own and deletes it afterwards.
	Redis string
	// PostgresConns is the PostgreSQL pool of each server.
	PostgresConns int
	// Clients lists the concurrent client counts, each run in turn.
	Clients []int
	// Strategies lists the reserve strategies: "lock", "batch".
	Strategies []string
	// Duration is the measured time of each load, Warmup the unmeasured
	// load before it.
	Duration, Warmup time.Duration
	// CPUProfile, when set, is the prefix of a CPU profile per measured load.
	CPUProfile string
	// Load picks the load generator: LoadAuto ("" too), LoadWrk or LoadGo.
	Load string
	// Wrk is the wrk executable; "" looks it up in PATH.
	Wrk string
	// WrkThreads is wrk's thread count; 0 means DefaultWrkThreads.
	WrkThreads int
	// Serve runs the server each run measures.
	Serve ServeFunc
	// Progress, when set, is told what the bench is doing.
	Progress io.Writer
	// Events spreads the reserves uniformly over this many events (0 or 1:
	// one hot event).
	Events int
	// MaxPerVisitor is the bench events' max_per_visitor (0: no cap).
	MaxPerVisitor int64
	// Rounds repeats every run (default 1), each round going through
	// every backend in turn, so that one backend's runs are interleaved
	// with the others' on a noisy machine; the report then gives each
	// figure's median over the rounds beside the rounds themselves.
	Rounds int
}

// ServeFunc serves the HTTP API over an open, migrated store on ln until
// ctx ends, then shuts down gracefully (every acknowledged reservation
// committed) without closing the store: what serve does after it has
// opened its database and bound its address. The command wires its own
// server in, so each run measures exactly what serve runs.
type ServeFunc func(ctx context.Context, s ticketrush.Store, backend string, ln net.Listener, set ServerSettings, log *slog.Logger) error

// ServerSettings are the settings of every bench server; anything not
// named here is serve's default.
type ServerSettings struct {
	Strategy   string
	AdminToken string
	Hold       time.Duration
	// SweepInterval is how often expired holds are released.
	SweepInterval time.Duration
	MaxBatch      int
	MaxQueue      int
	// Timeout is each request's deadline. The bench measures throughput,
	// not shedding: a generous deadline keeps the lock strategy's long
	// queues from turning into 503s.
	Timeout time.Duration
	// RateLimit is requests/s per visitor and per IP; always 0 (off) in the
	// bench, whatever serve's default, since every request comes from one
	// address.
	RateLimit float64
}

// DefaultPostgresConns is the PostgreSQL pool of every bench server: the one serve
// runs with. Group commit needs one connection for all events' reserves plus
// a few for reads and the sweeper; the lock strategy gets the same pool, so both are
// measured as serve runs them. (The lock strategy is sensitive to it: each
// connection is one more transaction queueing on the event row.)
const DefaultPostgresConns = postgres.DefaultMaxConns

// eventTickets is the stock of each bench event: more than any run can
// reserve, so no request is refused for lack of tickets.
const eventTickets = ticketrush.MaxTicketQuantity

func ParseClients(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 100_000 {
			return nil, fmt.Errorf("%q: want positive client counts, e.g. 64,256,1000", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func ParseStrategies(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f != "lock" && f != "batch" {
			return nil, fmt.Errorf("%q: want lock, batch or both", s)
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out, nil
}

// Report is what bench prints, as a table or as JSON.
type Report struct {
	Machine         Machine `json:"machine"`
	DurationSeconds float64 `json:"duration_seconds"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	// Load says which load generator drove the runs: "wrk" (a separate
	// process) or "go" (goroutines in the bench's own process).
	Load       string    `json:"load"`
	LoadDetail string    `json:"load_detail"`
	Backends   []Setup   `json:"backends"`
	Runs       []*Result `json:"runs"`
	// Scaling compares each backend and strategy at its most clients to
	// its fewest, when --concurrency lists several (per round).
	Scaling []Scaling `json:"scaling,omitempty"`
	// Medians gives, with several rounds, each backend, strategy and
	// client count's median over the rounds; each ratio is the median of
	// the ratios taken within a round.
	Medians  []Median `json:"medians,omitempty"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// Median is one backend, strategy and client count over the rounds.
type Median struct {
	Backend       string  `json:"backend"`
	Strategy      string  `json:"strategy"`
	Clients       int     `json:"clients"`
	Rounds        int     `json:"rounds"`
	ReservePerSec float64 `json:"reserve_per_sec"`
	HealthzPerSec float64 `json:"healthz_per_sec"`
	// VsHealthz and VsLock are medians of each round's ratio; VsLock is
	// null without lock runs.
	VsHealthz        float64   `json:"vs_healthz"`
	VsHealthzRounds  []float64 `json:"vs_healthz_rounds"`
	VsLock           *float64  `json:"vs_lock"`
	ReserveCPUMicros float64   `json:"reserve_cpu_us"`
	HealthzCPUMicros float64   `json:"healthz_cpu_us"`
}

type Machine struct {
	OS   string `json:"os"`
	Arch string `json:"arch"`
	CPUs int    `json:"cpus"`
	CPU  string `json:"cpu,omitempty"`
	Go   string `json:"go"`
	// GOGC is the garbage collector's target percentage the servers ran
	// with (the command's default or the GOGC environment variable).
	GOGC int `json:"gogc"`
}

// String is the machine as the reports' first line gives it.
func (m Machine) String() string {
	cpu := ""
	if m.CPU != "" {
		cpu = " (" + m.CPU + ")"
	}
	return fmt.Sprintf("%s/%s, %d CPUs%s, %s, GOGC %d", m.OS, m.Arch, m.CPUs, cpu, m.Go, m.GOGC)
}

// Setup describes one backend as measured, durability included.
type Setup struct {
	Backend string `json:"backend"`
	Detail  string `json:"detail"`
}

type Scaling struct {
	Round    int     `json:"round,omitempty"`
	Backend  string  `json:"backend"`
	Strategy string  `json:"strategy"`
	From     int     `json:"from_clients"`
	To       int     `json:"to_clients"`
	Ratio    float64 `json:"ratio"`
}

// Result is one backend × strategy × client count.
type Result struct {
	// Round is the run's round (1…Rounds) when there are several.
	Round    int    `json:"round,omitempty"`
	Backend  string `json:"backend"`
	Strategy string `json:"strategy"`
	Clients  int    `json:"clients"`
	// Events is how many events shared the reserves; MaxPerVisitor their
	// cap (0: none).
	Events        int   `json:"events"`
	MaxPerVisitor int64 `json:"max_per_visitor"`

	ReservePerSec float64 `json:"reserve_per_sec"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	// Requests counts the reserves measured; Acknowledged every 201 of the
	// run, warm-up included, which is what the stats are checked against.
	Requests     int64 `json:"requests"`
	Acknowledged int64 `json:"acknowledged"`
	// Errors counts every reserve not answered 201 during the run, warm-up
	// included: 4xx, 5xx (also in Errors5xx) and requests that got no
	// answer at all (also in Failed).
	Errors      int64  `json:"errors"`
	Errors5xx   int64  `json:"errors_5xx"`
	Failed      int64  `json:"failed"`
	ErrorSample string `json:"error_sample,omitempty"`

	HealthzPerSec float64 `json:"healthz_per_sec"`
	HealthzP50Ms  float64 `json:"healthz_p50_ms"`
	HealthzP99Ms  float64 `json:"healthz_p99_ms"`
	HealthzErrors int64   `json:"healthz_errors"`

	// ReserveCPUMicros and HealthzCPUMicros are the CPU time the server's
	// process (not the database) spent per measured request: what the HTTP
	// stack and the reserve path cost, whatever else runs on the machine.
	// With the in-process load generator they include the clients' cost.
	// Zero where the system does not say.
	ReserveCPUMicros float64 `json:"reserve_cpu_us"`
	HealthzCPUMicros float64 `json:"healthz_cpu_us"`
	// LoadCPUMicros is the load generator's own CPU time per measured
	// reserve, when it runs in a process of its own (wrk).
	LoadCPUMicros float64 `json:"load_cpu_us,omitempty"`
	// Abandoned bounds the reserves whose answers the load generator
	// never read (wrk stops with one request in flight per connection):
	// the server may have granted them, so they widen what held may be.
	Abandoned int64 `json:"abandoned,omitempty"`

	// Batches describes group commit over the whole run, from the
	// server's metrics; nil for the lock strategy.
	Batches *Batches `json:"batches,omitempty"`

	Stats     Stats  `json:"stats"`
	Oversold  int64  `json:"oversold"`
	Invariant string `json:"invariant"`
	// VsLock is reserve/s over the lock strategy's at the same backend and
	// client count; null without a lock run.
	VsLock    *float64 `json:"vs_lock"`
	VsHealthz float64  `json:"vs_healthz"`
}

// Batches sums the batcher's histograms: how many transactions, how
// many reserves each decided, how long each took (commit included) and how
// long a reserve waited in its queue for one to start.
type Batches struct {
	Count      int64   `json:"count"`
	MeanSize   float64 `json:"mean_size"`
	MeanMs     float64 `json:"mean_ms"`
	MeanWaitMs float64 `json:"mean_wait_ms"`
}

// Stats is the stats endpoint's answer.
type Stats struct {
	EventID   int64 `json:"event_id"`
	Capacity  int64 `json:"capacity"`
	Available int64 `json:"available"`
	Held      int64 `json:"held"`
	Purchased int64 `json:"purchased"`
	Expired   int64 `json:"expired"`
	Cancelled int64 `json:"cancelled"`
}

// store is what every backend offers beyond the domain contract.
type store interface {
	ticketrush.Store
	Migrate(ctx context.Context) error
}

// backend is a database made for one bench, and how to remove it.
type backend struct {
	name   string
	detail string
	store  store
	drop   func() error
}

// Run measures every backend × client count × strategy: a fresh server
// per run, each checked afterwards for oversell. It tells c.Progress up
// front how long the loads will take, and each phase as it starts.
func Run(ctx context.Context, c Config) (*Report, error) {
	if c.Serve == nil {
		return nil, errors.New("bench: no server to measure (Config.Serve)")
	}
	r := &runner{c: c, progress: c.Progress}
	if r.progress == nil {
		r.progress = io.Discard
	}
	rep := &Report{
		Machine:         machine(),
		DurationSeconds: c.Duration.Seconds(),
		WarmupSeconds:   c.Warmup.Seconds(),
	}
	dir, err := os.MkdirTemp("", "ticketrush-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if rep.Load, rep.LoadDetail, err = r.pickLoad(dir); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.progress, "bench: load generator: %s\n", rep.LoadDetail)

	var opens []func(context.Context) (*backend, error)
	if c.SQLite {
		opens = append(opens, benchSQLite)
	}
	if c.Postgres != "" {
		opens = append(opens, func(ctx context.Context) (*backend, error) {
			return benchPostgres(ctx, c.Postgres, c.PostgresConns)
		})
	}
	if c.Redis != "" {
		opens = append(opens, func(ctx context.Context) (*backend, error) {
			return benchRedis(ctx, c.Redis)
		})
	}
	r.total = rounds(c) * len(opens) * len(c.Clients) * len(c.Strategies)
	r.start = time.Now()
	r.estimate = LoadTime(c, len(opens))
	fmt.Fprintf(r.progress, "bench: %s\n", Plan(c, len(opens)))
	for round := 1; round <= rounds(c); round++ {
		if rounds(c) > 1 {
			r.round = round
			fmt.Fprintf(r.progress, "bench: round %d of %d\n", round, rounds(c))
		}
		// Each round opens a fresh database (server, event): a round
		// measures what the first one did, not a fuller table.
		err := eachBackend(ctx, opens, round, &rep.Backends, r.progress, "bench", func(b *backend) error {
			return r.backendRuns(ctx, b, rep)
		})
		if err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(r.progress, "bench: done in %s\n", time.Since(r.start).Round(100*time.Millisecond))
	rep.finish(c)
	return rep, nil
}

// eachBackend opens each of opens in turn, lists it in setups in the first
// round, calls fn with it and drops its database, whether fn failed or not.
func eachBackend(ctx context.Context, opens []func(context.Context) (*backend, error), round int,
	setups *[]Setup, progress io.Writer, label string, fn func(*backend) error) error {
	for _, open := range opens {
		b, err := open(ctx)
		if err != nil {
			return err
		}
		if round == 1 {
			*setups = append(*setups, Setup{Backend: b.name, Detail: b.detail})
		}
		err = fn(b)
		if derr := b.drop(); derr != nil {
			fmt.Fprintf(progress, "%s: removing the %s bench database: %v\n", label, b.name, derr)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Plan says how long a bench with c on backends backends will load the
// servers: each run is two loads (reserve, then /healthz on the same
// server), each a warm-up and a measurement. Set-up (databases, servers,
// checks) comes on top, usually well under a second per run.
func Plan(c Config, backends int) string {
	runs := rounds(c) * backends * len(c.Clients) * len(c.Strategies)
	perRound := ""
	if rounds(c) > 1 {
		perRound = fmt.Sprintf("%d rounds × ", rounds(c))
	}
	return fmt.Sprintf("%d runs (%s%d backends × %d client counts × %d strategies), each 2 loads (reserve, /healthz) of %s warm-up + %s measured: about %s in all, plus set-up",
		runs, perRound, backends, len(c.Clients), len(c.Strategies), c.Warmup, c.Duration, LoadTime(c, backends))
}

// rounds is c.Rounds, at least 1.
func rounds(c Config) int { return max(c.Rounds, 1) }

// LoadTime is the time a bench with c on backends backends spends under
// load.
func LoadTime(c Config, backends int) time.Duration {
	runs := rounds(c) * backends * len(c.Clients) * len(c.Strategies)
	return time.Duration(runs*2) * (c.Warmup + c.Duration)
}

// runner is one Run's state.
type runner struct {
	c        Config
	progress io.Writer
	wrk      *wrkTool // nil: the in-process client
	// total runs, how many started, and when the first did: for progress.
	total, done int
	start       time.Time
	estimate    time.Duration // of the time under load
	round       int           // the round running, 0 with one round
}

// pickLoad chooses the load generator as c.Load asks.
func (r *runner) pickLoad(dir string) (kind, detail string, err error) {
	threads := r.c.WrkThreads
	if threads <= 0 {
		threads = DefaultWrkThreads
	}
	switch r.c.Load {
	case LoadGo:
		return LoadGo, "in-process Go clients (as asked), sharing the server's process and CPU time", nil
	case LoadWrk, LoadAuto, "":
		w, err := findWrk(r.c.Wrk, threads, dir)
		if err != nil {
			if r.c.Load == LoadWrk {
				return "", "", err
			}
			return LoadGo, "in-process Go clients, sharing the server's process and CPU time (" + err.Error() + ")", nil
		}
		r.wrk = w
		return LoadWrk, fmt.Sprintf("%s (%s), a separate process with %d threads; only 2xx answers count", w.version, w.path, threads), nil
	default:
		return "", "", fmt.Errorf("bench: load generator %q: want auto, wrk or go", r.c.Load)
	}
}

func (r *runner) backendRuns(ctx context.Context, b *backend, rep *Report) error {
	for _, clients := range r.c.Clients {
		for _, strategy := range r.c.Strategies {
			r.done++
			res, err := r.run(ctx, b, strategy, clients)
			if err != nil {
				return fmt.Errorf("bench %s %s %d clients: %w", b.name, strategy, clients, err)
			}
			fmt.Fprintf(r.progress, "bench: [%d/%d] %s %s, %d clients: %.0f reserves/s (p99 %s), %.0f /healthz/s; %s of about %s so far\n",
				r.done, r.total, b.name, strategy, clients, res.ReservePerSec, fmtMs(res.P99Ms), res.HealthzPerSec,
				time.Since(r.start).Round(100*time.Millisecond), r.estimate)
			res.Round = r.round
			rep.Runs = append(rep.Runs, res)
		}
	}
	return nil
}

// phase tells the progress writer that a load starts.
func (r *runner) phase(b *backend, strategy string, clients int, what string) {
	fmt.Fprintf(r.progress, "bench: [%d/%d] %s %s, %d clients: %s, %s warm-up + %s…\n",
		r.done, r.total, b.name, strategy, clients, what, r.c.Warmup, r.c.Duration)
}

// load drives one load with the chosen generator.
func (r *runner) load(ctx context.Context, tr *http.Transport, t *loadTarget, clients int) (*loadResult, error) {
	if r.wrk != nil {
		return runWrkLoad(ctx, r.wrk, t, clients, r.c.Warmup, r.c.Duration)
	}
	return runLoad(ctx, tr, t, clients, r.c.Warmup, r.c.Duration)
}

// benchSQLite makes a SQLite database in a new temporary directory.
func benchSQLite(ctx context.Context) (*backend, error) {
	dir, err := os.MkdirTemp("", "ticketrush-bench-")
	if err != nil {
		return nil, err
	}
	s, err := sqlite.Open(ctx, filepath.Join(dir, "bench.db"), sqlite.Options{})
	if err == nil {
		if err = s.Migrate(ctx); err != nil {
			s.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return &backend{
		name:   "sqlite",
		detail: "SQLite file in " + os.TempDir() + ", WAL, synchronous=FULL",
		store:  s,
		drop: func() error {
			return errors.Join(s.Close(), os.RemoveAll(dir))
		},
	}, nil
}

// benchPostgres creates a fresh database on the server at serverURL and
// returns a store on it that drops it when done.
func benchPostgres(ctx context.Context, serverURL string, conns int) (*backend, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("--postgres %q: want a postgres:// URL", serverURL)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(cctx, serverURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	var version, fsync, syncCommit string
	err = admin.QueryRow(cctx, `SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')`).
		Scan(&version, &fsync, &syncCommit)
	if err != nil {
		admin.Close(context.Background())
		return nil, fmt.Errorf("postgres: %w", err)
	}
	name := "ticketrush_bench_" + randomHex(6)
	if _, err := admin.Exec(cctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(context.Background())
		return nil, fmt.Errorf("postgres: create database: %w", err)
	}
	drop := func() error {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := admin.Exec(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		return errors.Join(err, admin.Close(dctx))
	}
	u.Path = "/" + name
	s, err := postgres.Open(cctx, u.String(), postgres.Options{MaxConns: int32(conns)})
	if err == nil {
		if err = s.Migrate(cctx); err != nil {
			s.Close()
		}
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("postgres: %w", err), drop())
	}
	return &backend{
		name: "postgres",
		detail: fmt.Sprintf("PostgreSQL %s, fsync=%s, synchronous_commit=%s, pool of %d connections",
			version, fsync, syncCommit, conns),
		store: s,
		drop: func() error {
			return errors.Join(s.Close(), drop())
		},
	}, nil
}

// benchRedis opens a store under a fresh key prefix and deletes its keys
// when done.
func benchRedis(ctx context.Context, redisURL string) (*backend, error) {
	o, err := goredis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis %q: %w", redisURL, err)
	}
	prefix := "trbench-" + randomHex(6)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := redis.Open(cctx, redisURL, redis.Options{Prefix: prefix})
	if err == nil {
		if err = s.Migrate(cctx); err != nil {
			s.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	detail := "Redis, appendonly unknown"
	if on, err := s.AOFEnabled(cctx); err == nil && on {
		detail = "Redis, appendonly yes"
	} else if err == nil {
		detail = "Redis, appendonly no (not durable)"
	}
	return &backend{
		name:   "redis",
		detail: detail,
		store:  s,
		drop: func() error {
			c := goredis.NewClient(o)
			dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return errors.Join(s.Close(), deleteRedisPrefix(dctx, c, prefix), c.Close())
		},
	}, nil
}

// deleteRedisPrefix removes every key under prefix.
func deleteRedisPrefix(ctx context.Context, c *goredis.Client, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			if err := c.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
			keys = keys[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(keys) > 0 {
		return c.Unlink(ctx, keys...).Err()
	}
	return nil
}

// benchRun starts a fresh server on b's store, measures it and checks the
// event's stats.
func (r *runner) run(ctx context.Context, b *backend, strategy string, clients int) (_ *Result, err error) {
	c := r.c
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	token := randomHex(16)
	logs := &headWriter{max: 8 << 10}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	set := ServerSettings{
		Strategy:      strategy,
		AdminToken:    token,
		Hold:          ticketrush.DefaultHold,
		SweepInterval: time.Second,
		MaxBatch:      1024,
		MaxQueue:      8192,
		Timeout:       30 * time.Second,
		RateLimit:     0,
	}
	sctx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- c.Serve(sctx, b.store, b.name, ln, set, log) }()
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        clients,
		MaxIdleConnsPerHost: clients,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer func() {
		tr.CloseIdleConnections()
		stop()
		if serr := <-errc; serr != nil && err == nil {
			err = fmt.Errorf("server: %w", serr)
		}
	}()
	base := "http://" + ln.Addr().String()

	evs, err := createEvents(ctx, tr, base, token, c.Events, c.MaxPerVisitor)
	if err != nil {
		return nil, err
	}
	reserve := &loadTarget{
		method: http.MethodPost,
		url:    base + "/api/reserve",
		body:   reserveBody(evs[0]),
		want:   http.StatusCreated,
		events: evs,
	}
	if c.CPUProfile != "" {
		reserve.profile = fmt.Sprintf("%s-%s-%s-%d-reserve.pprof", c.CPUProfile, b.name, strategy, clients)
	}
	r.phase(b, strategy, clients, "POST /api/reserve")
	rl, err := r.load(ctx, tr, reserve, clients)
	if err != nil {
		return nil, err
	}
	health := &loadTarget{method: http.MethodGet, url: base + "/healthz", want: http.StatusOK}
	if c.CPUProfile != "" {
		health.profile = fmt.Sprintf("%s-%s-%s-%d-healthz.pprof", c.CPUProfile, b.name, strategy, clients)
	}
	r.phase(b, strategy, clients, "GET /healthz")
	hl, err := r.load(ctx, tr, health, clients)
	if err != nil {
		return nil, err
	}
	st, err := eventsStats(ctx, tr, base, token, evs)
	if err != nil {
		return nil, err
	}
	var batches *Batches
	if strategy == "batch" {
		if batches, err = benchBatchMetrics(ctx, tr, base); err != nil {
			return nil, err
		}
	}

	res := &Result{
		Backend:          b.name,
		Strategy:         strategy,
		Clients:          clients,
		Events:           len(evs),
		MaxPerVisitor:    c.MaxPerVisitor,
		ReservePerSec:    rl.rate(),
		P50Ms:            rl.p50.Seconds() * 1000,
		P99Ms:            rl.p99.Seconds() * 1000,
		Requests:         rl.measured,
		Acknowledged:     rl.ok,
		Errors:           rl.other + rl.failed,
		Errors5xx:        rl.status5xx,
		Failed:           rl.failed,
		ErrorSample:      rl.sample,
		HealthzPerSec:    hl.rate(),
		HealthzP50Ms:     hl.p50.Seconds() * 1000,
		HealthzP99Ms:     hl.p99.Seconds() * 1000,
		HealthzErrors:    hl.other + hl.failed,
		ReserveCPUMicros: rl.cpuPerRequest(),
		HealthzCPUMicros: hl.cpuPerRequest(),
		LoadCPUMicros:    rl.loadCPUPerRequest(),
		Abandoned:        rl.abandoned,
		Batches:          batches,
		Stats:            *st,
		Oversold:         max(0, rl.ok-st.Capacity),
		Invariant:        "ok",
	}
	if res.HealthzPerSec > 0 {
		res.VsHealthz = res.ReservePerSec / res.HealthzPerSec
	}
	// A request that got no answer, whose answer was never read, or a 503
	// because its deadline passed while its commit was under way, may or
	// may not have been committed, so it widens what held may be; with
	// every request answered 201 or 4xx and read, held must equal what was
	// acknowledged exactly.
	var broken []string
	if st.Capacity != st.Available+st.Held+st.Purchased {
		broken = append(broken, fmt.Sprintf("capacity %d != available %d + held %d + purchased %d",
			st.Capacity, st.Available, st.Held, st.Purchased))
	}
	if st.Held < rl.ok || st.Held > rl.ok+rl.failed+rl.status5xx+rl.abandoned {
		broken = append(broken, fmt.Sprintf("held %d, but %d acknowledged and %d in doubt",
			st.Held, rl.ok, rl.failed+rl.status5xx+rl.abandoned))
	}
	if len(broken) > 0 {
		res.Invariant = strings.Join(broken, ", ")
	}
	if (res.Errors5xx > 0 || res.Failed > 0) && res.ErrorSample != "" {
		if first, _, _ := strings.Cut(logs.String(), "\n"); first != "" {
			res.ErrorSample += "; server log: " + first
		}
	}
	return res, nil
}

func benchEventStats(ctx context.Context, tr http.RoundTripper, base, token string, id int64) (*Stats, error) {
	var st struct {
		Data Stats `json:"data"`
	}
	u := base + "/api/admin/events/" + strconv.FormatInt(id, 10) + "/stats"
	if err := benchAdmin(ctx, tr, http.MethodGet, u, token, "", http.StatusOK, &st); err != nil {
		return nil, fmt.Errorf("event stats: %w", err)
	}
	return &st.Data, nil
}

// benchBatchMetrics reads the batcher's histograms from /metrics.
func benchBatchMetrics(ctx context.Context, tr http.RoundTripper, base string) (*Batches, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	v := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "ticketrush_batch_") {
			continue
		}
		if f, err := strconv.ParseFloat(value, 64); err == nil {
			v[name] = f
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	b := &Batches{Count: int64(v["ticketrush_batch_size_count"])}
	if b.Count > 0 {
		b.MeanSize = v["ticketrush_batch_size_sum"] / float64(b.Count)
		b.MeanMs = v["ticketrush_batch_duration_seconds_sum"] / float64(b.Count) * 1000
	}
	if n := v["ticketrush_batch_wait_seconds_count"]; n > 0 {
		b.MeanWaitMs = v["ticketrush_batch_wait_seconds_sum"] / n * 1000
	}
	return b, nil
}

func benchAdmin(ctx context.Context, tr http.RoundTripper, method, u, token, body string, want int, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d: %s", method, u, resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

// machine describes where the bench ran, for the report.
func machine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version()}
	gogc := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(gogc)
	if gogc[0].Value.Kind() == metrics.KindUint64 {
		m.GOGC = int(gogc[0].Value.Uint64())
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// startProfile starts a CPU profile into a new file.
func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// headWriter keeps the first max bytes written to it: enough of a server's
// log to explain a failed run, without letting a flood of errors grow.
type headWriter struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (h *headWriter) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := h.max - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (h *headWriter) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.String()
}
