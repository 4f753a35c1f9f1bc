// Package batch is group commit for reserves: it turns many concurrent
// reserves of one event into one database transaction.
//
// In a ticket rush every request hits the same event row. Locking that row
// once per request (the original's strategy) serializes every request behind
// a commit, and throughput falls as concurrency grows. The Batcher instead
// keeps one queue per event. While one batch's transaction is in flight, new
// reserves for that event wait in the queue; when it commits, the next
// transaction takes everything queued (up to MaxBatch). There is no timer: an
// idle service answers in one transaction's time, and a busy one amortises
// each commit (and each fsync) over the whole queue.
//
// Safety does not depend on the batcher: Store.ReserveBatch locks the event
// row and decides each request in arrival order, so batches from several
// processes serialize on the row just as single reserves do. A request is
// answered only after the commit that made it durable; if the transaction
// fails, every request in it gets the error and nothing is applied.
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ticketrush/ticketrush"
)

// Options tunes a Batcher. Zero values take the defaults.
type Options struct {
	// MaxBatch caps the requests decided in one transaction (default 1024).
	MaxBatch int
	// MaxQueue caps the requests waiting per event; beyond it Reserve fails
	// at once with EOverloaded, so latency stays bounded (default 8192).
	MaxQueue int
	// Timeout bounds one batch's transaction (default 1.5 s), so a database
	// outage is answered with EUnavailable rather than a hung request.
	Timeout time.Duration
	// Metrics, when set, records batch sizes, queue depth and waits.
	Metrics *Metrics
}

// Batcher is a ticketrush.Reserver that commits reserves in groups.
type Batcher struct {
	store ticketrush.Store
	opts  Options

	mu     sync.Mutex
	queues map[int64]*queue
	wg     sync.WaitGroup
}

// queue holds the waiting reserves of one event. Its flusher goroutine runs
// while the queue is non-empty and exits when it drains.
type queue struct {
	eventID int64
	pending []*waiter
}

// Waiter states: a waiter is claimed by exactly one of its batch (taken) or
// its own caller giving up (abandoned).
const (
	stateQueued int32 = iota
	stateTaken
	stateAbandoned
)

type waiter struct {
	req      ticketrush.ReserveRequest
	enqueued time.Time
	// deadline is when the caller stops waiting; zero when never.
	deadline time.Time
	state    atomic.Int32
	done     chan struct{}
	res      *ticketrush.Reservation
	err      error
}

// New returns a Batcher over s.
func New(s ticketrush.Store, opts Options) *Batcher {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 8192
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 1500 * time.Millisecond
	}
	return &Batcher{store: s, opts: opts, queues: make(map[int64]*queue)}
}

// Reserve queues r behind the event's running batch and returns its outcome
// once the batch that decided it has committed.
//
// If ctx ends while r is still queued, r is dropped and never applied: the
// answer is EUnavailable. If its batch has already started, Reserve waits
// for the commit and returns the outcome, because that reservation may now
// exist; when the batch fails in a way that leaves its outcome open (a
// deadline after the requests were sent), the answer is EOutcomeUnknown.
func (b *Batcher) Reserve(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
	if err := ctx.Err(); err != nil {
		return nil, ticketrush.Unavailable(err)
	}
	w := &waiter{req: r, enqueued: time.Now(), done: make(chan struct{})}
	if d, ok := ctx.Deadline(); ok {
		w.deadline = d
	}

	b.mu.Lock()
	q := b.queues[r.EventID]
	if q == nil {
		q = &queue{eventID: r.EventID}
		b.queues[r.EventID] = q
		b.wg.Add(1)
		go b.flush(q)
	} else if len(q.pending) >= b.opts.MaxQueue {
		b.mu.Unlock()
		b.opts.Metrics.rejected()
		return nil, ticketrush.Errorf(ticketrush.EOverloaded, "Too many requests for this event right now, please retry.")
	}
	q.pending = append(q.pending, w)
	b.opts.Metrics.queued(1)
	b.mu.Unlock()

	select {
	case <-w.done:
		return w.res, w.err
	case <-ctx.Done():
		if w.state.CompareAndSwap(stateQueued, stateAbandoned) {
			return nil, ticketrush.Unavailable(ctx.Err())
		}
		<-w.done
		return w.res, w.err
	}
}

// flush runs batches for q until it is empty, then retires the queue.
func (b *Batcher) flush(q *queue) {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		n := min(len(q.pending), b.opts.MaxBatch)
		if n == 0 {
			delete(b.queues, q.eventID)
			b.mu.Unlock()
			return
		}
		taken := q.pending[:n:n]
		if n == len(q.pending) {
			q.pending = nil
		} else {
			q.pending = append([]*waiter(nil), q.pending[n:]...)
		}
		b.opts.Metrics.queued(-n)
		b.mu.Unlock()
		b.run(q.eventID, taken)
	}
}

// run decides one batch in one transaction and answers its waiters.
//
// A waiter taken into a batch waits for its commit, so the batch must end
// by the earliest deadline among its waiters: otherwise a request queued
// behind a stalled batch would wait for that one and then for its own
// whole Timeout. A waiter left with less than a quarter of Timeout is
// answered EUnavailable at once, unapplied, rather than cut the batch of
// everyone else that short.
func (b *Batcher) run(eventID int64, taken []*waiter) {
	start := time.Now()
	deadline := start.Add(b.opts.Timeout)
	minBudget := b.opts.Timeout / 4
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
	reqs := make([]ticketrush.ReserveRequest, len(live))
	for i, w := range live {
		reqs[i] = w.req
		b.opts.Metrics.waited(start.Sub(w.enqueued))
	}

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	results, err := b.store.ReserveBatch(ctx, eventID, reqs)
	cancel()
	if err == nil && len(results) != len(live) {
		err = fmt.Errorf("batch: store returned %d results for %d requests", len(results), len(live))
	}
	if ticketrush.ErrorCode(err) == ticketrush.EInternal &&
		(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		// The store did not say how far the batch got, and it had the
		// requests: they may have been applied. Only the store can tell
		// "nothing was sent" (EUnavailable) from this.
		err = ticketrush.OutcomeUnknown(err)
	}
	b.opts.Metrics.batch(len(live), time.Since(start))
	for i, w := range live {
		if err != nil {
			w.err = err
		} else {
			w.res, w.err = results[i].Reservation, results[i].Err
		}
		close(w.done)
	}
}

// Close waits for the running batches to finish. Reserves still arriving are
// served; call it after the HTTP server has stopped taking requests.
func (b *Batcher) Close() {
	b.wg.Wait()
}

// Queued returns how many reserves wait for a batch, over all events.
func (b *Batcher) Queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, q := range b.queues {
		n += len(q.pending)
	}
	return n
}
