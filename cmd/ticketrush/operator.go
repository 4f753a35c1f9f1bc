package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/ratelimit"
	"github.com/ticketrush/ticketrush/redis"
)

// Errors a command prints are read by an operator: each says what failed,
// where (the address or database URL, without its password) and what to
// check. Messages meant for HTTP clients ("please retry") never reach
// them.

// operatorError says that doing what failed on the database at dsn, with
// the underlying cause and what to check.
func operatorError(what, dsn string, err error) error {
	cause := unwrapCause(err)
	hint := "check the database URL (--db, TICKETRUSH_DB or DATABASE_URL)"
	switch {
	case strings.HasPrefix(dsn, "postgres"):
		hint = "check that PostgreSQL is running and reachable at that address, and that the URL's user, password and database name (--db, TICKETRUSH_DB or DATABASE_URL) are right"
	case strings.HasPrefix(dsn, "redis"):
		hint = "check that Redis is running and reachable at that address, and that the URL's password and database number (--db, TICKETRUSH_DB or DATABASE_URL) are right"
	case strings.HasPrefix(dsn, "sqlite:"):
		hint = "check that the file's directory exists and is writable, and that no other program holds the file locked"
	}
	return fmt.Errorf("cannot %s at %s: %v; %s", what, redactDSN(dsn), cause, hint)
}

// unwrapCause drops the client-facing message of a domain error and keeps
// its cause: an operator needs "connection refused", not "please retry".
func unwrapCause(err error) error {
	var de *ticketrush.Error
	for errors.As(err, &de) && de.Err != nil {
		err = de.Err
	}
	return err
}

// redactDSN hides the password of a database URL.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}

// envErrors collects environment values a command could not read, so that
// a bad TICKETRUSH_HOLD is refused like a bad --hold instead of ignored.
type envErrors []error

func (e envErrors) err() error { return errors.Join(e...) }

// checkEnvNumbers returns an error for each of keys set to something that
// is not a number: the defaults read from them fall back silently, and an
// operator who set TICKETRUSH_RATE_LIMIT=ten must hear about it.
func checkEnvNumbers(getenv func(string) string, keys ...string) []error {
	var errs []error
	for _, k := range keys {
		if v := getenv(k); v != "" {
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want a number", k, v))
			}
		}
	}
	return errs
}

// durationValue is a flag.Value for a duration whose error names the form
// expected: the flag package's own says only "parse error".
type durationValue struct{ d *time.Duration }

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

// parseDuration reads a Go duration, refusing a bare number with a message
// that shows the form.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration with a unit, such as 5m, 90s, 1h30m or 500ms")
	}
	return d, nil
}

// durationVar registers a duration flag defaulting from the environment
// variable env (else def). A bad environment value is recorded in errs.
func durationVar(fs *flag.FlagSet, errs *envErrors, getenv func(string) string, p *time.Duration, name, env string, def time.Duration, usage string) {
	*p = def
	if v := getenv(env); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s=%q: %w", env, v, err))
		} else {
			*p = d
		}
	}
	fs.Var(durationValue{p}, name, usage)
}

// sharedLimitStore opens the store that makes the rate limit one for every
// node: on PostgreSQL and Redis, the same database the service uses
// (through connections of its own, so a saturated store pool never delays
// the limit check); on SQLite, which is one node, none (the limiter keeps
// its buckets in the process).
func sharedLimitStore(ctx context.Context, s ticketrush.Store, backend, dsn string, log *slog.Logger) (ratelimit.Shared, func(), error) {
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch backend {
	case "postgres":
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return nil, nil, operatorError("read the database URL for the rate limit", dsn, err)
		}
		cfg.MaxConns = 4
		if cfg.ConnConfig.ConnectTimeout == 0 {
			cfg.ConnConfig.ConnectTimeout = 5 * time.Second
		}
		cfg.ConnConfig.RuntimeParams["application_name"] = "ticketrush-ratelimit"
		pool, err := pgxpool.NewWithConfig(octx, cfg)
		if err != nil {
			return nil, nil, operatorError("connect the rate limit to the postgres database", dsn, err)
		}
		p := ratelimit.NewPostgres(pool, log)
		return p, func() { p.Close(); pool.Close() }, nil
	case "redis":
		u, opts, err := redisOptions(dsn)
		if err != nil {
			return nil, nil, err
		}
		var rdb goredis.UniversalClient
		if opts.Cluster {
			o, err := goredis.ParseClusterURL(u)
			if err != nil {
				return nil, nil, operatorError("read the database URL for the rate limit", dsn, err)
			}
			o.ContextTimeoutEnabled = true
			rdb = goredis.NewClusterClient(o)
		} else {
			o, err := goredis.ParseURL(u)
			if err != nil {
				return nil, nil, operatorError("read the database URL for the rate limit", dsn, err)
			}
			o.ContextTimeoutEnabled = true
			rdb = goredis.NewClient(o)
		}
		prefix := opts.Prefix
		if prefix == "" {
			prefix = redis.DefaultPrefix
		}
		return ratelimit.NewRedis(rdb, prefix+":rl:"), func() { rdb.Close() }, nil
	}
	return nil, func() {}, nil
}
