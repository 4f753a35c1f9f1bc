package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ticketrush/ticketrush/postgres"
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

// newRedisDB returns the test Redis (TICKETRUSH_TEST_REDIS) under a key
// prefix no one else uses; its keys are deleted when the test ends.
func newRedisDB(t testing.TB) (string, string) {
	t.Helper()
	base := os.Getenv("TICKETRUSH_TEST_REDIS")
	if base == "" {
		base = "redis://127.0.0.1:6379/0"
	}
	o, err := goredis.ParseURL(base)
	if err != nil {
		t.Fatalf("TICKETRUSH_TEST_REDIS: %v", err)
	}
	c := goredis.NewClient(o)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		if requireServers() {
			t.Fatalf("Redis at %s does not answer: %v (TICKETRUSH_REQUIRE_SERVERS=1)", o.Addr, err)
		}
		t.Skipf("Redis at %s does not answer (%v); start it or set TICKETRUSH_TEST_REDIS (TICKETRUSH_REQUIRE_SERVERS=1 makes this a failure)", o.Addr, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "e2e-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("redis cleanup: %v", err)
		}
		for len(keys) > 0 {
			n := min(len(keys), 500)
			if err := c.Del(ctx, keys[:n]...).Err(); err != nil {
				t.Errorf("redis cleanup: %v", err)
				return
			}
			keys = keys[n:]
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("prefix", prefix)
	u.RawQuery = q.Encode()
	return u.String(), o.Addr
}
