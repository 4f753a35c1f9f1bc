package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/postgres"
	"github.com/ticketrush/ticketrush/redis"
	"github.com/ticketrush/ticketrush/sqlite"
)

// benchConfig is the command line of bench.
type benchConfig struct {
	sqlite     bool
	postgres   string
	redis      string
	clients    []int
	strategies []string
	duration   time.Duration
	warmup     time.Duration
	pgConns    int
	json       bool
	cpuProfile string
}

// benchPGConns is the PostgreSQL pool of every bench server: the one serve
// runs with. Group commit needs one connection per hot event plus a few for
// reads and the sweeper; the lock strategy gets the same pool, so both are
// measured as serve runs them. (The lock strategy is sensitive to it: each
// connection is one more transaction queueing on the event row.)
const benchPGConns = postgres.DefaultMaxConns

// benchTickets is the stock of each bench event: more than any run can
// reserve, so no request is refused for lack of tickets.
const benchTickets = ticketrush.MaxTicketQuantity

func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: ticketrush bench [--postgres URL] [--redis URL] [--concurrency 256] [--duration 10s] [--warmup 1s] [--strategies lock,batch] [--json]

Measures reserve throughput over real HTTP on loopback, for each backend it
can reach (SQLite unless --sqlite=false, in a new directory under $TMPDIR
with synchronous=FULL; PostgreSQL with --postgres, in a fresh database it
drops afterwards; Redis with --redis, under a fresh key prefix it deletes
afterwards) and each strategy. Each run starts a fresh in-process server, creates an event with
ample stock, and drives a closed loop of concurrent clients, each reserving
one ticket at a time with its own Visitor-Token; then the same load against
GET /healthz on the same server. It then checks the event's stats: nothing
oversold, capacity == available + held + purchased, and held == the tickets
acknowledged. It exits with status 1 when any run oversold, broke that
invariant, or got a 5xx.

Flags:
`)
		fs.PrintDefaults()
	}
	var c benchConfig
	fs.BoolVar(&c.sqlite, "sqlite", true, "measure SQLite (--sqlite=false to measure only the servers given)")
	fs.StringVar(&c.postgres, "postgres", "", "PostgreSQL server URL (postgres://…); the bench creates and drops its own database there")
	fs.StringVar(&c.redis, "redis", "", "Redis URL (redis://…); the bench uses its own key prefix and deletes it afterwards")
	conc := fs.String("concurrency", "256", "concurrent clients; a comma-separated list runs each in turn (e.g. 64,256,1000)")
	strategies := fs.String("strategies", "lock,batch", "reserve strategies to measure, comma-separated: lock, batch")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time of each load")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured load before each measurement")
	fs.IntVar(&c.pgConns, "postgres-conns", benchPGConns, "PostgreSQL connection pool of each bench server")
	fs.BoolVar(&c.json, "json", false, "print the results as JSON")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile (server and clients) of each measured load to PREFIX-BACKEND-STRATEGY-CLIENTS-{reserve,healthz}.pprof")
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if c.clients, err = parseClients(*conc); err != nil {
		fmt.Fprintf(stderr, "--concurrency: %v\n", err)
		return errUsage
	}
	if c.strategies, err = parseStrategies(*strategies); err != nil {
		fmt.Fprintf(stderr, "--strategies: %v\n", err)
		return errUsage
	}
	switch {
	case c.duration <= 0:
		fmt.Fprintln(stderr, "--duration must be positive")
		return errUsage
	case c.warmup < 0:
		fmt.Fprintln(stderr, "--warmup must not be negative")
		return errUsage
	case !c.sqlite && c.postgres == "" && c.redis == "":
		fmt.Fprintln(stderr, "nothing to measure: --sqlite=false without --postgres or --redis")
		return errUsage
	case c.pgConns < 1:
		fmt.Fprintln(stderr, "--postgres-conns must be at least 1")
		return errUsage
	}

	rep, err := bench(ctx, c, stderr)
	if err != nil {
		return err
	}
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.writeMarkdown(stdout)
	}
	if len(rep.Problems) > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("bench: %d failed checks (see the report)", len(rep.Problems))}
	}
	return nil
}

func parseClients(s string) ([]int, error) {
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

func parseStrategies(s string) ([]string, error) {
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

// benchReport is what bench prints, as a table or as JSON.
type benchReport struct {
	Machine         benchMachine   `json:"machine"`
	DurationSeconds float64        `json:"duration_seconds"`
	WarmupSeconds   float64        `json:"warmup_seconds"`
	Backends        []benchSetup   `json:"backends"`
	Runs            []*benchResult `json:"runs"`
	// Scaling compares each backend and strategy at its most clients to
	// its fewest, when --concurrency lists several.
	Scaling  []benchScaling `json:"scaling,omitempty"`
	OK       bool           `json:"ok"`
	Problems []string       `json:"problems,omitempty"`
}

type benchMachine struct {
	OS   string `json:"os"`
	Arch string `json:"arch"`
	CPUs int    `json:"cpus"`
	CPU  string `json:"cpu,omitempty"`
	Go   string `json:"go"`
}

// benchSetup describes one backend as measured, durability included.
type benchSetup struct {
	Backend string `json:"backend"`
	Detail  string `json:"detail"`
}

type benchScaling struct {
	Backend  string  `json:"backend"`
	Strategy string  `json:"strategy"`
	From     int     `json:"from_clients"`
	To       int     `json:"to_clients"`
	Ratio    float64 `json:"ratio"`
}

// benchResult is one backend × strategy × client count.
type benchResult struct {
	Backend  string `json:"backend"`
	Strategy string `json:"strategy"`
	Clients  int    `json:"clients"`

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

	// ReserveCPUMicros and HealthzCPUMicros are the CPU time this process
	// (clients and server together, not the database) spent per measured
	// request: what the HTTP stack and the reserve path cost, whatever else
	// runs on the machine. Zero where the system does not say.
	ReserveCPUMicros float64 `json:"reserve_cpu_us"`
	HealthzCPUMicros float64 `json:"healthz_cpu_us"`

	// Batches describes group commit over the whole run, from the
	// server's metrics; nil for the lock strategy.
	Batches *benchBatches `json:"batches,omitempty"`

	Stats     benchStats `json:"stats"`
	Oversold  int64      `json:"oversold"`
	Invariant string     `json:"invariant"`
	// VsLock is reserve/s over the lock strategy's at the same backend and
	// client count; null without a lock run.
	VsLock    *float64 `json:"vs_lock"`
	VsHealthz float64  `json:"vs_healthz"`
}

// benchBatches sums the batcher's histograms: how many transactions, how
// many reserves each decided, how long each took (commit included) and how
// long a reserve waited in its queue for one to start.
type benchBatches struct {
	Count      int64   `json:"count"`
	MeanSize   float64 `json:"mean_size"`
	MeanMs     float64 `json:"mean_ms"`
	MeanWaitMs float64 `json:"mean_wait_ms"`
}

// benchStats is the stats endpoint's answer.
type benchStats struct {
	EventID   int64 `json:"event_id"`
	Capacity  int64 `json:"capacity"`
	Available int64 `json:"available"`
	Held      int64 `json:"held"`
	Purchased int64 `json:"purchased"`
	Expired   int64 `json:"expired"`
	Cancelled int64 `json:"cancelled"`
}

// benchBackend is a database made for one bench, and how to remove it.
type benchBackend struct {
	name   string
	detail string
	store  store
	drop   func() error
}

// bench runs every backend × client count × strategy.
func bench(ctx context.Context, c benchConfig, progress io.Writer) (*benchReport, error) {
	rep := &benchReport{
		Machine:         machine(),
		DurationSeconds: c.duration.Seconds(),
		WarmupSeconds:   c.warmup.Seconds(),
	}
	var opens []func(context.Context) (*benchBackend, error)
	if c.sqlite {
		opens = append(opens, benchSQLite)
	}
	if c.postgres != "" {
		opens = append(opens, func(ctx context.Context) (*benchBackend, error) {
			return benchPostgres(ctx, c.postgres, c.pgConns)
		})
	}
	if c.redis != "" {
		opens = append(opens, func(ctx context.Context) (*benchBackend, error) {
			return benchRedis(ctx, c.redis)
		})
	}
	for _, open := range opens {
		b, err := open(ctx)
		if err != nil {
			return nil, err
		}
		rep.Backends = append(rep.Backends, benchSetup{Backend: b.name, Detail: b.detail})
		err = benchBackendRuns(ctx, b, c, rep, progress)
		if derr := b.drop(); derr != nil {
			fmt.Fprintf(progress, "bench: removing the %s bench database: %v\n", b.name, derr)
		}
		if err != nil {
			return nil, err
		}
	}
	rep.finish(c)
	return rep, nil
}

func benchBackendRuns(ctx context.Context, b *benchBackend, c benchConfig, rep *benchReport, progress io.Writer) error {
	for _, clients := range c.clients {
		for _, strategy := range c.strategies {
			fmt.Fprintf(progress, "bench: %s %s, %d clients…\n", b.name, strategy, clients)
			r, err := benchRun(ctx, b, strategy, clients, c)
			if err != nil {
				return fmt.Errorf("bench %s %s %d clients: %w", b.name, strategy, clients, err)
			}
			fmt.Fprintf(progress, "bench: %s %s, %d clients: %.0f reserves/s (p99 %s), %.0f /healthz/s\n",
				b.name, strategy, clients, r.ReservePerSec, fmtMs(r.P99Ms), r.HealthzPerSec)
			rep.Runs = append(rep.Runs, r)
		}
	}
	return nil
}

// benchSQLite makes a SQLite database in a new temporary directory.
func benchSQLite(ctx context.Context) (*benchBackend, error) {
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
	return &benchBackend{
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
func benchPostgres(ctx context.Context, serverURL string, conns int) (*benchBackend, error) {
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
	return &benchBackend{
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
func benchRedis(ctx context.Context, redisURL string) (*benchBackend, error) {
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
	return &benchBackend{
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
func benchRun(ctx context.Context, b *benchBackend, strategy string, clients int, c benchConfig) (_ *benchResult, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	token := randomHex(16)
	logs := &headWriter{max: 8 << 10}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sc := serveConfig{
		hold:          ticketrush.DefaultHold,
		adminToken:    token,
		sweepInterval: time.Second,
		strategy:      strategy,
		maxBatch:      1024,
		maxQueue:      8192,
		// The bench measures throughput, not shedding: a generous deadline
		// keeps the lock strategy's long queues from turning into 503s.
		timeout: 30 * time.Second,
	}
	sctx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- runServer(sctx, b.store, b.name, ln, sc, log) }()
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

	ev, err := benchCreateEvent(ctx, tr, base, token)
	if err != nil {
		return nil, err
	}
	reserve := &loadTarget{
		method: http.MethodPost,
		url:    base + "/api/reserve",
		body:   []byte(`{"event_id":` + strconv.FormatInt(ev, 10) + `,"amount":1}`),
		want:   http.StatusCreated,
	}
	if c.cpuProfile != "" {
		reserve.profile = fmt.Sprintf("%s-%s-%s-%d-reserve.pprof", c.cpuProfile, b.name, strategy, clients)
	}
	rl, err := runLoad(ctx, tr, reserve, clients, c.warmup, c.duration)
	if err != nil {
		return nil, err
	}
	health := &loadTarget{method: http.MethodGet, url: base + "/healthz", want: http.StatusOK}
	if c.cpuProfile != "" {
		health.profile = fmt.Sprintf("%s-%s-%s-%d-healthz.pprof", c.cpuProfile, b.name, strategy, clients)
	}
	hl, err := runLoad(ctx, tr, health, clients, c.warmup, c.duration)
	if err != nil {
		return nil, err
	}
	st, err := benchEventStats(ctx, tr, base, token, ev)
	if err != nil {
		return nil, err
	}
	var batches *benchBatches
	if strategy == "batch" {
		if batches, err = benchBatchMetrics(ctx, tr, base); err != nil {
			return nil, err
		}
	}

	r := &benchResult{
		Backend:          b.name,
		Strategy:         strategy,
		Clients:          clients,
		ReservePerSec:    rl.rate(),
		P50Ms:            rl.hist.quantile(0.50).Seconds() * 1000,
		P99Ms:            rl.hist.quantile(0.99).Seconds() * 1000,
		Requests:         rl.measured,
		Acknowledged:     rl.ok,
		Errors:           rl.other + rl.failed,
		Errors5xx:        rl.status5xx,
		Failed:           rl.failed,
		ErrorSample:      rl.sample,
		HealthzPerSec:    hl.rate(),
		HealthzP50Ms:     hl.hist.quantile(0.50).Seconds() * 1000,
		HealthzP99Ms:     hl.hist.quantile(0.99).Seconds() * 1000,
		HealthzErrors:    hl.other + hl.failed,
		ReserveCPUMicros: rl.cpuPerRequest(),
		HealthzCPUMicros: hl.cpuPerRequest(),
		Batches:          batches,
		Stats:            *st,
		Oversold:         max(0, rl.ok-st.Capacity),
		Invariant:        "ok",
	}
	if r.HealthzPerSec > 0 {
		r.VsHealthz = r.ReservePerSec / r.HealthzPerSec
	}
	// A request that got no answer, or a 503 because its deadline passed
	// while its commit was under way, may or may not have been committed,
	// so it widens what held may be; with every request answered 201 or
	// 4xx, held must equal what was acknowledged exactly.
	var broken []string
	if st.Capacity != st.Available+st.Held+st.Purchased {
		broken = append(broken, fmt.Sprintf("capacity %d != available %d + held %d + purchased %d",
			st.Capacity, st.Available, st.Held, st.Purchased))
	}
	if st.Held < rl.ok || st.Held > rl.ok+rl.failed+rl.status5xx {
		broken = append(broken, fmt.Sprintf("held %d != %d acknowledged", st.Held, rl.ok))
	}
	if len(broken) > 0 {
		r.Invariant = strings.Join(broken, ", ")
	}
	if (r.Errors5xx > 0 || r.Failed > 0) && r.ErrorSample != "" {
		if first, _, _ := strings.Cut(logs.String(), "\n"); first != "" {
			r.ErrorSample += "; server log: " + first
		}
	}
	return r, nil
}

// benchCreateEvent creates the bench's event through the admin API.
func benchCreateEvent(ctx context.Context, tr http.RoundTripper, base, token string) (int64, error) {
	body := fmt.Sprintf(`{"name":"bench","ticket_quantity":%d,"hold_seconds":%d}`,
		benchTickets, ticketrush.MaxHoldSeconds)
	var ev struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if err := benchAdmin(ctx, tr, http.MethodPost, base+"/api/admin/events", token, body, http.StatusCreated, &ev); err != nil {
		return 0, fmt.Errorf("create event: %w", err)
	}
	return ev.Data.ID, nil
}

func benchEventStats(ctx context.Context, tr http.RoundTripper, base, token string, id int64) (*benchStats, error) {
	var st struct {
		Data benchStats `json:"data"`
	}
	u := base + "/api/admin/events/" + strconv.FormatInt(id, 10) + "/stats"
	if err := benchAdmin(ctx, tr, http.MethodGet, u, token, "", http.StatusOK, &st); err != nil {
		return nil, fmt.Errorf("event stats: %w", err)
	}
	return &st.Data, nil
}

// benchBatchMetrics reads the batcher's histograms from /metrics.
func benchBatchMetrics(ctx context.Context, tr http.RoundTripper, base string) (*benchBatches, error) {
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
	b := &benchBatches{Count: int64(v["ticketrush_batch_size_count"])}
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

// The load generator: a closed loop of clients, each one keep-alive
// connection sending one request after the other. It shares the machine
// with the server, so each request costs the client as little as it can:
// one request value per client, a body replayed from one byte slice,
// responses drained into io.Discard so connections are reused, and latency
// counted in a per-client histogram without locks.

// loadTarget is the request every client repeats.
type loadTarget struct {
	method string
	url    string
	body   []byte // nil for none
	want   int    // the status that counts as success
	// profile, when set, is a file for a CPU profile of the measured phase.
	profile string
}

// Load phases: warming up (not measured), measuring, stopping.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// loadResult sums the clients' counts.
type loadResult struct {
	elapsed  time.Duration // of the measured phase
	cpu      time.Duration // this process's CPU time in the measured phase
	measured int64         // answers completed while measuring
	// ok, other, status5xx and failed count the whole run, warm-up
	// included: answers with the wanted status, other answers (5xx
	// included), 5xx answers, and requests with no answer.
	ok, other, status5xx, failed int64
	sample                       string // the first unwanted answer
	hist                         histogram
}

func (r *loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.measured) / r.elapsed.Seconds()
}

func (r *loadResult) cpuPerRequest() float64 {
	if r.measured == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.measured)
}

// loadClient is one client's counts; each client writes only its own.
type loadClient struct {
	measured, ok, other, status5xx, failed int64
	sample                                 string
	hist                                   histogram
}

// runLoad drives clients concurrent clients at t for warmup, then measures
// for d, then waits for the requests in flight.
func runLoad(ctx context.Context, tr *http.Transport, t *loadTarget, clients int, warmup, d time.Duration) (*loadResult, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var phase atomic.Int32
	if warmup <= 0 {
		phase.Store(phaseMeasure)
	}
	cs := make([]*loadClient, clients)
	var wg sync.WaitGroup
	for i := range cs {
		cs[i] = &loadClient{hist: newHistogram()}
		req, err := t.request(lctx)
		if err != nil {
			return nil, err
		}
		wg.Go(func() { cs[i].loop(tr, req, t, &phase) })
	}
	sleep := func(d time.Duration) error {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var err error
	if warmup > 0 {
		err = sleep(warmup)
		phase.Store(phaseMeasure)
	}
	stopProfile := func() {}
	if err == nil && t.profile != "" {
		stopProfile, err = startProfile(t.profile)
	}
	start := time.Now()
	cpu0 := processCPU()
	if err == nil {
		err = sleep(d)
	}
	phase.Store(phaseStop)
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	if stopProfile != nil {
		stopProfile()
	}
	if err != nil {
		cancel()
	}
	// Requests in flight are waited for, not cancelled: the answer to each
	// is needed to check the stats. Only a server that stopped answering
	// is given up on.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cancel()
		<-done
	}
	if err != nil {
		return nil, err
	}

	r := &loadResult{elapsed: elapsed, cpu: cpu, hist: newHistogram()}
	for _, c := range cs {
		r.measured += c.measured
		r.ok += c.ok
		r.other += c.other
		r.status5xx += c.status5xx
		r.failed += c.failed
		if r.sample == "" {
			r.sample = c.sample
		}
		r.hist.add(&c.hist)
	}
	return r, nil
}

// request builds a client's request: every client is its own visitor.
func (t *loadTarget) request(ctx context.Context) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, t.method, t.url, nil)
	if err != nil {
		return nil, err
	}
	if t.body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Visitor-Token", uuid.NewString())
		req.ContentLength = int64(len(t.body))
		b := t.body
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	return req, nil
}

// loop sends req until the phase says stop.
func (c *loadClient) loop(tr *http.Transport, req *http.Request, t *loadTarget, phase *atomic.Int32) {
	// The body is an io.NopCloser around a bytes.Reader, which the
	// transport knows to be in memory, so it writes headers and body in
	// one system call. It is rewound for each request: the previous answer
	// was read to the end and closed, and the server answers only after
	// reading the whole body, so the transport is done with it.
	br := bytes.NewReader(t.body)
	body := io.NopCloser(br)
	for phase.Load() != phaseStop {
		if t.body != nil {
			br.Reset(t.body)
			req.Body = body
		}
		start := time.Now()
		resp, err := tr.RoundTrip(req)
		if err != nil {
			c.failed++
			if c.sample == "" {
				c.sample = err.Error()
			}
			if req.Context().Err() != nil {
				return
			}
			continue
		}
		if resp.StatusCode != t.want && c.sample == "" {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			c.sample = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		switch {
		case err != nil:
			// The status arrived, so the outcome is known; only the
			// connection broke.
			c.failed++
		case resp.StatusCode >= 500:
			c.other++
			c.status5xx++
		case resp.StatusCode != t.want:
			c.other++
		}
		if resp.StatusCode == t.want {
			c.ok++
		}
		if phase.Load() == phaseMeasure {
			c.measured++
			c.hist.record(elapsed)
		}
	}
}

// histogram counts latencies in log-linear buckets, as HDR histograms do:
// values below 2^histSub ns each get a bucket, and every power of two above
// is split into 2^histSub buckets, so a quantile is within 1/2^histSub
// (about 1.6 %) of the true value, in a fixed 16 KiB per client.
type histogram struct {
	counts []uint64
	n      uint64
}

const (
	histSub     = 6
	histMaxExp  = 37 // 2^37 ns is over two minutes; longer is clamped
	histBuckets = (histMaxExp - histSub + 1) << histSub
)

func newHistogram() histogram {
	return histogram{counts: make([]uint64, histBuckets)}
}

func histIndex(v uint64) int {
	shift := bits.Len64(v) - histSub - 1
	if shift < 0 {
		return int(v)
	}
	i := shift<<histSub + int(v>>shift)
	return min(i, histBuckets-1)
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < 2<<histSub {
		return uint64(i)
	}
	shift := i>>histSub - 1
	m := uint64(i - shift<<histSub)
	return m<<shift + 1<<shift/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	h.n++
}

func (h *histogram) add(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the latency below which a fraction q of the values lie.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(histValue(i))
		}
	}
	return time.Duration(histValue(len(h.counts) - 1))
}

// finish fills the ratios and the verdict.
func (rep *benchReport) finish(c benchConfig) {
	lock := map[string]*benchResult{}
	key := func(r *benchResult) string { return r.Backend + "/" + strconv.Itoa(r.Clients) }
	for _, r := range rep.Runs {
		if r.Strategy == "lock" {
			lock[key(r)] = r
		}
	}
	for _, r := range rep.Runs {
		if l := lock[key(r)]; l != nil && l.ReservePerSec > 0 {
			v := r.ReservePerSec / l.ReservePerSec
			r.VsLock = &v
		}
		name := fmt.Sprintf("%s %s at %d clients", r.Backend, r.Strategy, r.Clients)
		if r.Oversold > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s oversold %d tickets", name, r.Oversold))
		}
		if r.Invariant != "ok" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s broke the invariant: %s", name, r.Invariant))
		}
		if r.Errors5xx > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s got %d 5xx answers (%s)", name, r.Errors5xx, r.ErrorSample))
		}
		if r.Failed > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s had %d requests with no answer (%s)", name, r.Failed, r.ErrorSample))
		}
		if r.HealthzErrors > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s got %d failed /healthz requests", name, r.HealthzErrors))
		}
	}
	if len(c.clients) > 1 {
		lo, hi := slicesMinMax(c.clients)
		for _, r := range rep.Runs {
			if r.Clients != lo {
				continue
			}
			for _, s := range rep.Runs {
				if s.Clients == hi && s.Backend == r.Backend && s.Strategy == r.Strategy && r.ReservePerSec > 0 {
					rep.Scaling = append(rep.Scaling, benchScaling{
						Backend: r.Backend, Strategy: r.Strategy, From: lo, To: hi,
						Ratio: s.ReservePerSec / r.ReservePerSec,
					})
				}
			}
		}
	}
	rep.OK = len(rep.Problems) == 0
}

func slicesMinMax(v []int) (lo, hi int) {
	lo, hi = v[0], v[0]
	for _, x := range v[1:] {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

// writeMarkdown prints the report as a markdown table with its context.
func (rep *benchReport) writeMarkdown(w io.Writer) {
	m := rep.Machine
	cpu := ""
	if m.CPU != "" {
		cpu = " (" + m.CPU + ")"
	}
	fmt.Fprintf(w, "ticketrush bench: %s/%s, %d CPUs%s, %s; load generator in the same process, over loopback HTTP\n",
		m.OS, m.Arch, m.CPUs, cpu, m.Go)
	fmt.Fprintf(w, "each run: %s warm-up, %s measured on POST /api/reserve (amount 1), then the same on GET /healthz; request deadline 30s\n",
		fmtSeconds(rep.WarmupSeconds), fmtSeconds(rep.DurationSeconds))
	for _, b := range rep.Backends {
		fmt.Fprintf(w, "- %s: %s\n", b.Backend, b.Detail)
	}
	fmt.Fprintln(w)

	rows := [][]string{{"backend", "strategy", "clients", "reserve/s", "p50", "p99", "errors", "oversold", "× lock", "× /healthz", "/healthz/s"}}
	for _, r := range rep.Runs {
		errs := strconv.FormatInt(r.Errors, 10)
		if r.Errors > 0 {
			errs += fmt.Sprintf(" (5xx: %d", r.Errors5xx)
			if r.Failed > 0 {
				errs += fmt.Sprintf(", no answer: %d", r.Failed)
			}
			errs += ")"
		}
		over := strconv.FormatInt(r.Oversold, 10)
		if r.Invariant != "ok" {
			over += " (invariant broken)"
		}
		vsLock := "–"
		if r.VsLock != nil {
			vsLock = fmt.Sprintf("%.1f×", *r.VsLock)
		}
		rows = append(rows, []string{
			r.Backend, r.Strategy, strconv.Itoa(r.Clients),
			fmt.Sprintf("%.0f", r.ReservePerSec), fmtMs(r.P50Ms), fmtMs(r.P99Ms),
			errs, over, vsLock, fmt.Sprintf("%.2f×", r.VsHealthz), fmt.Sprintf("%.0f", r.HealthzPerSec),
		})
	}
	writeTable(w, rows, map[int]bool{2: true, 3: true, 4: true, 5: true, 8: true, 9: true, 10: true})

	var notes []string
	for _, r := range rep.Runs {
		if b := r.Batches; b != nil && b.Count > 0 {
			notes = append(notes, fmt.Sprintf("- %s batch, %d clients: %d transactions, %.1f reserves each, %s per transaction (commit included), %s queued before one started",
				r.Backend, r.Clients, b.Count, b.MeanSize, fmtMs(b.MeanMs), fmtMs(b.MeanWaitMs)))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	}
	if len(rep.Scaling) > 0 {
		fmt.Fprintln(w)
		for _, s := range rep.Scaling {
			fmt.Fprintf(w, "- %s %s: %d clients reserve %.2f× as fast as %d clients\n", s.Backend, s.Strategy, s.To, s.Ratio, s.From)
		}
	}
	fmt.Fprintln(w)
	if rep.OK {
		fmt.Fprintln(w, "verified: nothing oversold, capacity == available + held + purchased, held == acknowledged, no 5xx")
		return
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "FAIL:", p)
	}
}

// writeTable prints rows as a markdown table with padded columns; the
// columns in right are right-aligned.
func writeTable(w io.Writer, rows [][]string, right map[int]bool) {
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	line := func(row []string) {
		bw.WriteString("|")
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			if right[i] {
				bw.WriteString(" " + pad + cell + " |")
			} else {
				bw.WriteString(" " + cell + pad + " |")
			}
		}
		bw.WriteString("\n")
	}
	line(rows[0])
	bw.WriteString("|")
	for i := range rows[0] {
		dash := strings.Repeat("-", width[i])
		if right[i] {
			bw.WriteString(" " + dash[1:] + ": |")
		} else {
			bw.WriteString(" " + dash + " |")
		}
	}
	bw.WriteString("\n")
	for _, row := range rows[1:] {
		line(row)
	}
}

func fmtMs(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f ms", ms)
	}
}

func fmtSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).String()
}

// machine describes where the bench ran, for the report.
func machine() benchMachine {
	m := benchMachine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version()}
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

// processCPU returns the CPU time (user and system, all threads) this
// process has used, from /proc where there is one, else 0.
func processCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th, in clock ticks of
	// 1/100 s on Linux.
	_, rest, ok := bytes.Cut(b, []byte(") "))
	f := strings.Fields(string(rest))
	if !ok || len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
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
