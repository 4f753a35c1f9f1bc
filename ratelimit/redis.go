package ratelimit

import (
	"context"
	"math"
	"time"

	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"
)

// Redis is a Shared store on Redis or Redis Cluster, using redis_rate's
// GCRA script: one key per bucket holding its theoretical arrival time,
// with an expiry, so idle buckets cost nothing. The script reads Redis's
// own clock, so nodes with skewed clocks still share one limit.
type Redis struct {
	lim    *redis_rate.Limiter
	prefix string
}

// NewRedis returns a Shared store on rdb (a client or a cluster client).
// Every key starts with prefix, so deployments sharing one Redis keep
// separate limits.
func NewRedis(rdb goredis.UniversalClient, prefix string) *Redis {
	return &Redis{lim: redis_rate.NewLimiter(rdb), prefix: prefix}
}

// Take implements Shared. Keys are asked in order and asking stops at the
// first refusal, so a request refused by its address costs its visitor
// nothing.
func (s *Redis) Take(ctx context.Context, keys []string, perSecond float64, burst int) (time.Duration, int, error) {
	limit := gcraLimit(perSecond, burst)
	for i, k := range keys {
		res, err := s.lim.Allow(ctx, s.prefix+k, limit)
		if err != nil {
			return 0, 0, err
		}
		if res.Allowed == 0 {
			return max(res.RetryAfter, time.Millisecond), i, nil
		}
	}
	return 0, 0, nil
}

// gcraLimit expresses perSecond (possibly fractional) and burst as
// redis_rate's integer rate per period: the emission interval
// period/rate is 1/perSecond seconds.
func gcraLimit(perSecond float64, burst int) redis_rate.Limit {
	const rate = 1000
	period := time.Duration(math.Round(float64(time.Second) * rate / perSecond))
	return redis_rate.Limit{Rate: rate, Burst: max(1, burst), Period: period}
}
