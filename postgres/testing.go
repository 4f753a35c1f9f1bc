package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultTestURL is the server tests use when TICKETRUSH_TEST_POSTGRES is
// unset.
const DefaultTestURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// NewTestDatabase creates an empty, migrated database for one test and
// returns its URL; the database is removed when the test ends. The server
// is TICKETRUSH_TEST_POSTGRES (else DefaultTestURL). When it cannot be
// reached the test is skipped, or fails if TICKETRUSH_REQUIRE_SERVERS=1.
//
// Each test's database is a schema of its own in one shared database,
// ticketrush_test, and the URL selects it through search_path. Creating and
// dropping a schema takes a fraction of the time creating and dropping a
// database does (which writes and syncs a copy of the whole catalog), and a
// suite makes dozens. Every statement of the store names its tables
// unqualified, so a schema isolates a test as well as a database would.
func NewTestDatabase(t testing.TB) string {
	t.Helper()
	return newTestSchema(t, true)
}

// newTestSchema is NewTestDatabase, optionally leaving the schema empty.
func newTestSchema(t testing.TB, migrate bool) string {
	t.Helper()
	base := os.Getenv("TICKETRUSH_TEST_POSTGRES")
	if base == "" {
		base = DefaultTestURL
	}
	shared, err := testSharedDatabase(base)
	if err != nil {
		if errors.As(err, new(serverDown)) {
			if os.Getenv("TICKETRUSH_REQUIRE_SERVERS") == "1" {
				t.Fatalf("postgres: %v (TICKETRUSH_REQUIRE_SERVERS=1)", err)
			}
			t.Skipf("postgres: %v; start PostgreSQL or set TICKETRUSH_TEST_POSTGRES (TICKETRUSH_REQUIRE_SERVERS=1 makes this a failure)", err)
		}
		t.Fatalf("postgres: test database: %v", err)
	}

	// The creation time in the name lets a later run remove what a killed
	// run left behind.
	name := fmt.Sprintf("%s%d_%d_%d", testSchemaPrefix, time.Now().Unix(), os.Getpid(), testSeq.Add(1))
	u, err := withParams(shared, map[string]string{"search_path": name, "application_name": name})
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adminExec(ctx, shared, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("postgres: create test schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dropTestSchema(ctx, shared, name); err != nil {
			t.Errorf("postgres: drop test schema: %v", err)
		}
	})
	if !migrate {
		return u
	}
	s, err := Open(ctx, u, Options{MaxConns: 1})
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer s.Close()
	// No migration lock: nothing else can see this schema yet.
	if err := s.migrate(ctx); err != nil {
		t.Fatalf("postgres: migrate test schema: %v", err)
	}
	return u
}

const (
	testDatabase     = "ticketrush_test"
	testSchemaPrefix = "ticketrush_test_"
)

var (
	testSeq   atomic.Int64
	sharedMu  sync.Mutex
	sharedURL string
	sharedErr error
)

// serverDown is an error reaching the test server, as opposed to a failure
// of the schema or of the test itself.
type serverDown struct{ err error }

func (e serverDown) Error() string { return "no test server: " + e.err.Error() }

// testSharedDatabase returns the URL of the database that holds the test
// schemas, creating it on first use. A failure is remembered, so a missing
// server costs one connect timeout per test binary rather than one per test.
func testSharedDatabase(base string) (string, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedURL != "" || sharedErr != nil {
		return sharedURL, sharedErr
	}
	sharedURL, sharedErr = createSharedDatabase(base)
	if sharedErr != nil {
		sharedURL = ""
	}
	return sharedURL, sharedErr
}

func createSharedDatabase(base string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := adminConnect(ctx, base)
	if err != nil {
		return "", serverDown{err}
	}
	defer conn.Close(context.Background())

	// Test binaries of several packages start at once.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", testDatabase); err != nil {
		return "", err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock(hashtext($1))", testDatabase)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", testDatabase).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{testDatabase}.Sanitize()); err != nil {
			return "", err
		}
	}
	u, err := withDatabase(base, testDatabase)
	if err != nil {
		return "", err
	}
	removeStaleSchemas(ctx, u)
	return u, nil
}

// removeStaleSchemas drops test schemas more than an hour old, which only a
// test binary killed before its cleanup leaves. Best effort.
func removeStaleSchemas(ctx context.Context, shared string) {
	conn, err := adminConnect(ctx, shared)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(ctx, "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", testSchemaPrefix)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range names {
		created, _, _ := strings.Cut(strings.TrimPrefix(name, testSchemaPrefix), "_")
		sec, err := strconv.ParseInt(created, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)) < time.Hour {
			continue
		}
		_ = dropTestSchema(ctx, shared, name)
	}
}

// dropTestSchema ends the sessions a failed test left on the schema (they
// carry its name as application_name), then drops it.
func dropTestSchema(ctx context.Context, shared, name string) error {
	conn, err := adminConnect(ctx, shared)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()`, name)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
	return err
}

func adminConnect(ctx context.Context, base string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
		cfg.ConnectTimeout = 5 * time.Second
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func adminExec(ctx context.Context, base, sql string) error {
	conn, err := adminConnect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// withDatabase returns base pointing at another database, for a URL or a
// key=value DSN.
func withDatabase(base, name string) (string, error) {
	if !isURL(base) {
		return base + " dbname=" + name, nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("test server url: %w", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// withParams returns base with run-time parameters set, for a URL or a
// key=value DSN; the names and values need no quoting.
func withParams(base string, params map[string]string) (string, error) {
	if !isURL(base) {
		for k, v := range params {
			base += " " + k + "=" + v
		}
		return base, nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("test server url: %w", err)
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
