package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// NewTestURL returns the test Redis (TICKETRUSH_TEST_REDIS, default
// redis://127.0.0.1:6379/0) as a serve URL with a key prefix of the test's
// own (?prefix=…); the prefix's keys are deleted when the test ends. When
// Redis does not answer it skips the test, or fails it when
// TICKETRUSH_REQUIRE_SERVERS=1, so CI never skips silently.
func NewTestURL(t testing.TB) string {
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
		if os.Getenv("TICKETRUSH_REQUIRE_SERVERS") == "1" {
			t.Fatalf("Redis at %s does not answer: %v (TICKETRUSH_REQUIRE_SERVERS=1)", o.Addr, err)
		}
		t.Skipf("Redis at %s does not answer (%v); start it or set TICKETRUSH_TEST_REDIS (TICKETRUSH_REQUIRE_SERVERS=1 makes this a failure)", o.Addr, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "test-" + hex.EncodeToString(b)
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
	return u.String()
}
