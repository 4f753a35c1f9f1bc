package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a Shared store on PostgreSQL: GCRA in one SQL statement over
// the UNLOGGED table ratelimit (key, tat), created by the postgres
// package's migrations. tat is each key's theoretical arrival time in
// microseconds of the database's clock, so nodes with skewed clocks still
// share one limit. UNLOGGED because the state is worth nothing after a
// crash (every bucket simply starts full) and must not cost WAL.
type Postgres struct {
	pool *pgxpool.Pool
	stop context.CancelFunc
	done sync.WaitGroup
}

// pruneEvery is how often rows whose tat has passed (buckets that are full
// again, the same as absent) are deleted.
const pruneEvery = time.Minute

// NewPostgres returns a Shared store on pool, and starts pruning idle rows
// until Close. A pool of its own keeps the limit check from queueing behind
// a saturated store pool, and the other way round.
func NewPostgres(pool *pgxpool.Pool, log *slog.Logger) *Postgres {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Postgres{pool: pool, stop: cancel}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(pruneEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if _, err := pool.Exec(pctx, pruneSQL); err != nil && ctx.Err() == nil && log != nil {
				log.Warn("rate limit: prune idle buckets", "err", err)
			}
			cancel()
		}
	}()
	return p
}

// Close stops pruning. It does not close the pool.
func (p *Postgres) Close() {
	p.stop()
	p.done.Wait()
}

const pruneSQL = `DELETE FROM ratelimit WHERE tat < (extract(epoch FROM clock_timestamp()) * 1000000)::bigint`

// takeSQL is GCRA for several keys in one statement. $1 the keys, $2 the
// emission interval and $3 the burst tolerance (interval × burst), both in
// microseconds. A key is allowed when max(tat, now) + interval - tolerance
// <= now, and then its tat moves to max(tat, now) + interval; a new key is
// allowed and starts at now + interval. Keys are locked in the order given
// (the address before the visitor, always), so two statements can never
// wait on each other in a cycle. The final SELECT reads the snapshot from
// before the statement: for each refused key its old tat, from which the
// wait follows.
const takeSQL = `
WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS t),
k AS (SELECT key, ord FROM unnest($1::text[]) WITH ORDINALITY AS u(key, ord)),
up AS (
	INSERT INTO ratelimit AS r (key, tat)
	SELECT k.key, now.t + $2 FROM k, now ORDER BY k.ord
	ON CONFLICT (key) DO UPDATE
		SET tat = greatest(r.tat, (SELECT t FROM now)) + $2
		WHERE greatest(r.tat, (SELECT t FROM now)) + $2 - $3 <= (SELECT t FROM now)
	RETURNING r.key
)
SELECT k.ord, greatest(r.tat, now.t) + $2 - $3 - now.t AS wait
FROM k JOIN ratelimit r ON r.key = k.key, now
WHERE k.key NOT IN (SELECT key FROM up)
ORDER BY wait DESC
LIMIT 1`

// Take implements Shared.
func (p *Postgres) Take(ctx context.Context, keys []string, perSecond float64, burst int) (time.Duration, int, error) {
	interval := int64(math.Round(1e6 / perSecond))
	tolerance := interval * int64(max(1, burst))
	var ord, wait int64
	err := p.pool.QueryRow(ctx, takeSQL, keys, interval, tolerance).Scan(&ord, &wait)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, 0, nil
		}
		return 0, 0, err
	}
	return max(time.Duration(wait)*time.Microsecond, time.Millisecond), int(ord - 1), nil
}
