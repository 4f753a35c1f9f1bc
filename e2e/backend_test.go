package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/ticketrush/ticketrush/postgres"
	"github.com/ticketrush/ticketrush/redis"
)

// backend makes fresh, empty databases of one kind for serve's --db.
type backend struct {
	name string
	// newDB returns the --db of a fresh database that lives until the test
	// ends, and the host:port of its server ("" for SQLite).
	newDB func(t testing.TB) (db, hostport string)
	// via returns db with its server reached at hostport instead (through
	// a proxy).
	via func(t *testing.T, db, hostport string) string
}

var (
	sqliteBackend = backend{
		name: "sqlite",
		newDB: func(t testing.TB) (string, string) {
			return "sqlite:" + filepath.Join(t.TempDir(), "ticketrush.db"), ""
		},
	}
	postgresBackend = backend{
		name: "postgres",
		newDB: func(t testing.TB) (string, string) {
			db := postgres.NewTestDatabase(t)
			return db, urlHost(t, db)
		},
		via: withHost,
	}
	redisBackend = backend{
		name:  "redis",
		newDB: newRedisDB,
		via:   withHost,
	}
)

// urlHost returns the host:port of a database URL.
func urlHost(t testing.TB, db string) string {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil || u.Host == "" {
		t.Fatalf("database %q: these tests need a URL with a host:port (%v)", db, err)
	}
	return u.Host
}

// withHost returns the database URL db pointing at hostport.
func withHost(t *testing.T, db, hostport string) string {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = hostport
	return u.String()
}

// requireServers reports whether a missing PostgreSQL or Redis fails the
// test rather than skipping it.
func requireServers() bool { return os.Getenv("TICKETRUSH_REQUIRE_SERVERS") == "1" }

// newRedisDB returns the test Redis under a key prefix of the test's own,
// and the server's address (for the outage proxy).
func newRedisDB(t testing.TB) (string, string) {
	t.Helper()
	u := redis.NewTestURL(t)
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return u, pu.Host
}
