package batch

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ticketrush/ticketrush"
)

// CommitFunc decides reqs, all for one key (an event), in one transaction
// and returns one result per request, in order, after the commit; or an
// error and no result when nothing was applied.
type CommitFunc[Req, Res any] func(ctx context.Context, key int64, reqs []Req) ([]Res, error)

// Group is group commit for any operation that is decided per key in
// batches, such as queue joins (ticketrush.Queues.JoinQueue). It keeps the
// Batcher's guarantees: one queue per key, no timer (the next batch takes
// everything that queued while the previous one committed), a request is
// answered only after the commit that decided it, a full queue is refused
// at once with EOverloaded, and a caller that gives up before its batch
// starts is never applied. Options.Metrics is not used: a Group's caller
// counts its own outcomes.
type Group[Req, Res any] struct {
	commit CommitFunc[Req, Res]
	opts   Options

	mu     sync.Mutex
	queues map[int64]*groupQueue[Req, Res]
	wg     sync.WaitGroup
}

type groupQueue[Req, Res any] struct {
	key     int64
	pending []*groupWaiter[Req, Res]
}

type groupWaiter[Req, Res any] struct {
	req      Req
	deadline time.Time
	state    atomic.Int32
	done     chan struct{}
	res      Res
	err      error
}

// NewGroup returns a Group committing with commit.
func NewGroup[Req, Res any](commit CommitFunc[Req, Res], opts Options) *Group[Req, Res] {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 8192
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 1500 * time.Millisecond
	}
	return &Group[Req, Res]{commit: commit, opts: opts, queues: make(map[int64]*groupQueue[Req, Res])}
}

// Do queues r behind key's running batch and returns its outcome once the
// batch that decided it has committed. If ctx ends while r is still queued,
// r is dropped and never applied; once its batch has started, Do waits for
// the commit, because r may now be applied.
func (g *Group[Req, Res]) Do(ctx context.Context, key int64, r Req) (Res, error) {
	var zero Res
	if err := ctx.Err(); err != nil {
		return zero, ticketrush.Unavailable(err)
	}
	w := &groupWaiter[Req, Res]{req: r, done: make(chan struct{})}
	if d, ok := ctx.Deadline(); ok {
		w.deadline = d
	}
	g.mu.Lock()
	q := g.queues[key]
	if q == nil {
		q = &groupQueue[Req, Res]{key: key}
		g.queues[key] = q
		g.wg.Add(1)
		go g.flush(q)
	} else if len(q.pending) >= g.opts.MaxQueue {
		g.mu.Unlock()
		return zero, ticketrush.Errorf(ticketrush.EOverloaded, "Too many requests for this event right now, please retry.")
	}
	q.pending = append(q.pending, w)
	g.mu.Unlock()

	select {
	case <-w.done:
		return w.res, w.err
	case <-ctx.Done():
		if w.state.CompareAndSwap(stateQueued, stateAbandoned) {
			return zero, ticketrush.Unavailable(ctx.Err())
		}
		<-w.done
		return w.res, w.err
	}
}

func (g *Group[Req, Res]) flush(q *groupQueue[Req, Res]) {
	defer g.wg.Done()
	for {
		g.mu.Lock()
		n := min(len(q.pending), g.opts.MaxBatch)
		if n == 0 {
			delete(g.queues, q.key)
			g.mu.Unlock()
			return
		}
		taken := q.pending[:n:n]
		if n == len(q.pending) {
			q.pending = nil
		} else {
			q.pending = append([]*groupWaiter[Req, Res](nil), q.pending[n:]...)
		}
		g.mu.Unlock()
		g.run(q.key, taken)
	}
}

// run commits one batch, ending by the earliest deadline among its waiters
// (as Batcher.run does, and for the same reason).
func (g *Group[Req, Res]) run(key int64, taken []*groupWaiter[Req, Res]) {
	start := time.Now()
	deadline := start.Add(g.opts.Timeout)
	minBudget := g.opts.Timeout / 4
	live := taken[:0]
	for _, w := range taken {
		if !w.state.CompareAndSwap(stateQueued, stateTaken) {
			continue
		}
		if !w.deadline.IsZero() && w.deadline.Sub(start) < minBudget {
			w.err = ticketrush.Unavailable(context.DeadlineExceeded)
			close(w.done)
			continue
		}
		live = append(live, w)
		if !w.deadline.IsZero() && w.deadline.Before(deadline) {
			deadline = w.deadline
		}
	}
	if len(live) == 0 {
		return
	}
	reqs := make([]Req, len(live))
	for i, w := range live {
		reqs[i] = w.req
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	results, err := g.commit(ctx, key, reqs)
	cancel()
	if err == nil && len(results) != len(live) {
		err = fmt.Errorf("batch: commit returned %d results for %d requests", len(results), len(live))
	}
	for i, w := range live {
		if err != nil {
			w.err = err
		} else {
			w.res = results[i]
		}
		close(w.done)
	}
}

// Close waits for the running batches to finish.
func (g *Group[Req, Res]) Close() { g.wg.Wait() }

// Queued returns how many requests wait for a batch, over all keys.
func (g *Group[Req, Res]) Queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, q := range g.queues {
		n += len(q.pending)
	}
	return n
}
