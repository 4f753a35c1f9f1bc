package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/postgres"
	"github.com/ticketrush/ticketrush/redis"
	"github.com/ticketrush/ticketrush/sqlite"
)

// defaultDB is the embedded default: a SQLite file in the working directory.
const defaultDB = "sqlite:ticketrush.db"

// store is what every backend offers beyond the domain contract.
type store interface {
	ticketrush.Store
	Migrate(ctx context.Context) error
}

// dbFlag registers --db, defaulting from TICKETRUSH_DB, then DATABASE_URL.
func dbFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	def := getenv("TICKETRUSH_DB")
	if def == "" {
		def = getenv("DATABASE_URL")
	}
	if def == "" {
		def = defaultDB
	}
	return fs.String("db", def, "database: sqlite:PATH, postgres://…, postgresql://…, redis://… or rediss://… (env TICKETRUSH_DB, else DATABASE_URL)")
}

// openStore opens the backend a database URL names. now is nil in
// production: each backend then uses its own clock (Redis uses its server's).
func openStore(ctx context.Context, dsn string, now ticketrush.Clock) (store, string, error) {
	s, backend, err := openStoreRaw(ctx, dsn, now)
	if err != nil && backend != "" {
		return nil, backend, operatorError("open the "+backend+" database", dsn, err)
	}
	return s, backend, err
}

// openStoreRaw is openStore with the backend's own errors.
func openStoreRaw(ctx context.Context, dsn string, now ticketrush.Clock) (store, string, error) {
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
		if path == "" {
			return nil, "", fmt.Errorf("--db %q: want sqlite:PATH", dsn)
		}
		s, err := sqlite.Open(octx, path, sqlite.Options{Now: now})
		if err != nil {
			return nil, "sqlite", err
		}
		return s, "sqlite", nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err := postgres.Open(octx, dsn, postgres.Options{Now: now})
		if err != nil {
			return nil, "postgres", err
		}
		return s, "postgres", nil
	case strings.HasPrefix(dsn, "redis://"), strings.HasPrefix(dsn, "rediss://"):
		u, opts, err := redisOptions(dsn)
		if err != nil {
			return nil, "", err
		}
		opts.Now = now
		s, err := redis.Open(octx, u, opts)
		if err != nil {
			return nil, "redis", err
		}
		return s, "redis", nil
	default:
		return nil, "", fmt.Errorf("--db %q: want sqlite:PATH, postgres://…, postgresql://…, redis://… or rediss://…", dsn)
	}
}

// redisOptions takes ticketrush's own query parameters off a Redis URL:
// prefix=NAME starts every key (several deployments or tests share one
// Redis), cluster=true treats the URL as a Redis Cluster seed (more nodes in
// addr= parameters). The rest of the URL goes to the Redis client as is.
func redisOptions(dsn string) (string, redis.Options, error) {
	var opts redis.Options
	u, err := url.Parse(dsn)
	if err != nil {
		return "", opts, fmt.Errorf("--db: %w", err)
	}
	q := u.Query()
	opts.Prefix = q.Get("prefix")
	if c := q.Get("cluster"); c != "" {
		if opts.Cluster, err = strconv.ParseBool(c); err != nil {
			return "", opts, fmt.Errorf("--db: cluster=%q: want true or false", c)
		}
	}
	q.Del("prefix")
	q.Del("cluster")
	u.RawQuery = q.Encode()
	return u.String(), opts, nil
}

// Demo event of the original project.
const (
	demoName    = "Örnek Etkinlik"
	demoTickets = 2000
)

// seedDemo creates the original's demo event when the database has no
// events, so a fresh install can sell a ticket at once. It is one atomic
// step in every backend, so several nodes starting at once on one empty
// database create it once.
func seedDemo(ctx context.Context, s ticketrush.Store, hold time.Duration) (*ticketrush.Event, error) {
	return s.CreateFirstEvent(ctx, ticketrush.NewEvent{
		Name:           demoName,
		TicketQuantity: demoTickets,
		HoldSeconds:    int64(hold / time.Second),
	})
}

// envDuration reads a duration default from the environment.
func envDuration(getenv func(string) string, key string, def time.Duration) time.Duration {
	if v := getenv(key); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// envString reads a string default from the environment.
func envString(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: ticketrush migrate [--db URL]\n\nApplies the backend's migrations and exits.\n\n")
		fs.PrintDefaults()
	}
	db := dbFlag(fs, getenv)
	if err := parse(fs, args); err != nil {
		return err
	}
	s, backend, err := openStore(ctx, *db, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return operatorError("migrate the "+backend+" database", *db, err)
	}
	fmt.Fprintf(stdout, "migrated %s database\n", backend)
	return nil
}

func runSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: ticketrush seed [--db URL] [--hold 5m]\n\nMigrates, then creates the demo event \"Örnek Etkinlik\" with 2000 tickets when the database has no events.\n\n")
		fs.PrintDefaults()
	}
	db := dbFlag(fs, getenv)
	var envErrs envErrors
	hold := new(time.Duration)
	durationVar(fs, &envErrs, getenv, hold, "hold", "TICKETRUSH_HOLD", ticketrush.DefaultHold, "hold time of the demo event, a `duration` such as 5m or 90s (env TICKETRUSH_HOLD)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := envErrs.err(); err != nil {
		return err
	}
	s, backend, err := openStore(ctx, *db, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return operatorError("migrate the "+backend+" database", *db, err)
	}
	e, err := seedDemo(ctx, s, *hold)
	switch {
	case err != nil:
		return operatorError("seed the demo event into the "+backend+" database", *db, err)
	case e == nil:
		fmt.Fprintln(stdout, "database already has events; nothing seeded")
	default:
		fmt.Fprintf(stdout, "seeded event %d %q with %d tickets\n", e.ID, e.Name, e.TicketQuantity)
	}
	return nil
}

// parse parses flags, turning a bad command line into errUsage (the flag
// package has printed why) and --help into flag.ErrHelp.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case err == nil && fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	case errors.Is(err, flag.ErrHelp):
		return err
	case err != nil:
		return errUsage
	}
	return nil
}
