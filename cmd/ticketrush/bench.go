package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/bench"
)

func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: ticketrush bench [--postgres URL] [--redis URL] [--concurrency 256] [--duration 10s] [--warmup 1s] [--strategies lock,batch] [--load auto|wrk|go] [--events 1] [--max-per-visitor 0] [--rounds 1] [--queue] [--json]

Measures reserve throughput over real HTTP on loopback, for each backend it
can reach (SQLite unless --sqlite=false, in a new directory under $TMPDIR
with synchronous=FULL; PostgreSQL with --postgres, in a fresh database it
drops afterwards; Redis with --redis, under a fresh key prefix it deletes
afterwards) and each strategy.

Each run starts a fresh server (serve's own, rate limit off) in this
process, creates an event with ample stock, and loads it from outside with
wrk when it is installed (Debian: apt-get install wrk), else from
goroutines in this process (--load picks; the report says which drove it).
Every reserve is one ticket with a fresh Visitor-Token; only 2xx answers
count. Then the same load hits GET /healthz on the same server. The report
gives per backend and strategy: reserves/s, /healthz/s, their ratio, batch
over lock, p50 and p99, and the server's CPU time per request.

Before loading it prints how long the loads will take (runs x 2 loads x
(warm-up + duration)) and then each phase as it starts. After each run it
checks the event's stats: nothing oversold, capacity == available + held +
purchased, and held == the tickets acknowledged (give or take the answers
wrk never read when it stopped). It exits with status 1 when any run
oversold, broke that invariant, or got a 5xx.

With --rounds N every run is repeated N times, each round going through
every backend (a fresh database each time), and the report adds each
backend and strategy's medians over the rounds: reserves/s, and the
ratios (x lock, x /healthz) as medians of the ratios within each round.
Runs on a small shared machine differ by 20% and more; medians of
interleaved rounds are what to compare.

With --queue it measures the waiting room instead, on one fresh server per
backend (batch strategy, rate limit and join quota off, challenge_bits 0):
batch reserves/s, joins/s (a fresh visitor per join), polls/s (GET queue
as --queue-pool visitors who joined) and /healthz/s, then a crowd of
--crowd visitors joining one event, timed until the server's queue holds
them all. Targets: joins/s >= reserves/s, polls/s >= 0.8 x /healthz/s, the
crowd within --crowd-within with no error. It exits with status 1 when a
check failed or a target was missed.

Flags:
`)
		fs.PrintDefaults()
	}
	c := bench.Config{Serve: benchServe, Progress: stderr}
	fs.BoolVar(&c.SQLite, "sqlite", true, "measure SQLite (--sqlite=false to measure only the servers given)")
	fs.StringVar(&c.Postgres, "postgres", "", "PostgreSQL server URL (postgres://…); the bench creates and drops its own database there")
	fs.StringVar(&c.Redis, "redis", "", "Redis URL (redis://…); the bench uses its own key prefix and deletes it afterwards")
	conc := fs.String("concurrency", "256", "concurrent clients; a comma-separated list runs each in turn (e.g. 64,256,1000)")
	strategies := fs.String("strategies", "lock,batch", "reserve strategies to measure, comma-separated: lock, batch")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time of each load")
	fs.DurationVar(&c.Warmup, "warmup", time.Second, "unmeasured load before each measurement")
	fs.IntVar(&c.PostgresConns, "postgres-conns", bench.DefaultPostgresConns, "PostgreSQL connection pool of each bench server")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of this process (the server, and the clients with --load go) during each measured load to PREFIX-BACKEND-STRATEGY-CLIENTS-{reserve,healthz}.pprof")
	fs.StringVar(&c.Load, "load", bench.LoadAuto, "load generator: wrk (a separate process), go (goroutines in this process) or auto (wrk when installed, else go)")
	fs.StringVar(&c.Wrk, "wrk", "wrk", "the wrk executable")
	fs.IntVar(&c.WrkThreads, "wrk-threads", bench.DefaultWrkThreads, "wrk's threads")
	fs.IntVar(&c.Events, "events", 1, "spread the reserves uniformly over this many events (each connection's requests take the events in turn)")
	fs.Int64Var(&c.MaxPerVisitor, "max-per-visitor", 0, "the bench events' max_per_visitor (0: no cap)")
	queue := fs.Bool("queue", false, "measure the waiting room instead: batch reserves/s, joins/s (a fresh visitor each), polls/s (joined visitors) and /healthz/s on one server, then a crowd of --crowd joins to one event; needs wrk")
	pool := fs.Int("queue-pool", bench.DefaultPool, "with --queue: joined visitors the poll load takes turns with")
	crowd := fs.Int("crowd", bench.DefaultCrowd, "with --queue: visitors of the crowd run (0: skip it)")
	crowdWithin := fs.Duration("crowd-within", bench.DefaultCrowdWithin, "with --queue: the crowd run's target, e.g. 1m")
	checkout := fs.Bool("checkout", false, "measure checkout and reads instead (needs wrk): reserves, then purchases (each its own hold and visitor), GET /api/events with 20 events, GET /api/events/{id} and /healthz on each server")
	rounds := fs.Int("rounds", 1, "repeat every run this many times, backends interleaved, and report (with --checkout and --queue: judge) the medians")
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if c.Clients, err = bench.ParseClients(*conc); err != nil {
		fmt.Fprintf(stderr, "--concurrency: %v\n", err)
		return errUsage
	}
	if c.Strategies, err = bench.ParseStrategies(*strategies); err != nil {
		fmt.Fprintf(stderr, "--strategies: %v\n", err)
		return errUsage
	}
	switch {
	case c.Duration <= 0:
		fmt.Fprintln(stderr, "--duration must be positive")
		return errUsage
	case c.Warmup < 0:
		fmt.Fprintln(stderr, "--warmup must not be negative")
		return errUsage
	case !c.SQLite && c.Postgres == "" && c.Redis == "":
		fmt.Fprintln(stderr, "nothing to measure: --sqlite=false without --postgres or --redis")
		return errUsage
	case c.PostgresConns < 1:
		fmt.Fprintln(stderr, "--postgres-conns must be at least 1")
		return errUsage
	case c.Load != bench.LoadAuto && c.Load != bench.LoadWrk && c.Load != bench.LoadGo:
		fmt.Fprintf(stderr, "--load %q: want auto, wrk or go\n", c.Load)
		return errUsage
	case c.Events < 1 || c.Events > bench.MaxEvents:
		fmt.Fprintf(stderr, "--events must be from 1 to %d\n", bench.MaxEvents)
		return errUsage
	case c.MaxPerVisitor < 0:
		fmt.Fprintln(stderr, "--max-per-visitor must not be negative")
		return errUsage
	case c.WrkThreads < 1:
		fmt.Fprintln(stderr, "--wrk-threads must be at least 1")
		return errUsage
	case *rounds < 1 || *rounds > 100:
		fmt.Fprintln(stderr, "--rounds: want 1 to 100")
		return errUsage
	}

	c.Rounds = *rounds
	if *queue {
		return runQueueBench(ctx, c, *pool, *crowd, *crowdWithin, *asJSON, stdout, stderr)
	}
	if *checkout {
		return runCheckoutBench(ctx, bench.CheckoutConfig{Config: c}, *asJSON, stdout)
	}
	rep, err := bench.Run(ctx, c)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.WriteMarkdown(stdout)
	}
	if len(rep.Problems) > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("bench: %d failed checks (see the report)", len(rep.Problems))}
	}
	return nil
}

// runCheckoutBench runs and prints the checkout bench.
func runCheckoutBench(ctx context.Context, c bench.CheckoutConfig, asJSON bool, stdout io.Writer) error {
	rep, err := bench.RunCheckout(ctx, c)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.WriteMarkdown(stdout)
	}
	if len(rep.Problems) > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("bench: %d failed checks (see the report)", len(rep.Problems))}
	}
	return nil
}

// benchServe runs serve's own server for one bench run.
func benchServe(ctx context.Context, s ticketrush.Store, backend string, ln net.Listener, set bench.ServerSettings, log *slog.Logger) error {
	return runServer(ctx, s, backend, ln, serveConfig{
		hold:          set.Hold,
		adminToken:    set.AdminToken,
		sweepInterval: set.SweepInterval,
		strategy:      set.Strategy,
		maxBatch:      set.MaxBatch,
		maxQueue:      set.MaxQueue,
		timeout:       set.Timeout,
		rateLimit:     set.RateLimit,
	}, log)
}
