// Package batch is group commit for reserves: it turns many concurrent
// reserves into one database transaction.
//
// In a ticket rush every request hits the same event row. Locking that row
// once per request (the original's strategy) serializes every request behind
// a commit, and throughput falls as concurrency grows. The Batcher instead
// keeps one queue per event and one transaction in flight. While it runs,
// new reserves wait in their event's queue; when it commits, the next
// transaction takes what every event queued (up to MaxBatch in all), so
// that a load spread over many events is batched as well as one on a single
// hot event: Store.ReserveBatches decides each event's requests in arrival
// order in one transaction (one fsync). There is no timer: an idle service
// answers in one transaction's time, and a busy one amortises each commit
// over the whole queue.
//
// Safety does not depend on the batcher: Store.ReserveBatches locks the
// event rows (in id order) and decides each request in arrival order, so
// batches from several processes serialize on the rows just as single
// reserves do. A request is answered only after the commit that made it
// durable; if the transaction fails, every request in it gets the error and
// nothing is applied.
package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ticketrush/ticketrush"
)

// Options tunes a Batcher. Zero values take the defaults.
type Options struct {
	// MaxBatch caps the requests decided in one transaction, over all its
	// events (default 1024).
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
	// ready lists the events with reserves waiting, in the order they
	// started waiting: each transaction serves them from the front, and an
	// event left with more than MaxBatch allowed goes to the back, so no
	// event waits behind another's backlog for more than one turn.
	ready []*queue
	// running is set while the flusher goroutine runs; it exits when every
	// queue is empty.
	running bool
	queued  int
	wg      sync.WaitGroup
}

// queue holds the waiting reserves of one event.
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

// Reserve queues r behind the running transaction and returns its outcome
// once the transaction that decided it has committed.
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
	w := &waiter{req: r, done: make(chan struct{})}
	if b.opts.Metrics != nil {
		w.enqueued = time.Now()
	}
	if d, ok := ctx.Deadline(); ok {
		w.deadline = d
	}

	b.mu.Lock()
	q := b.queues[r.EventID]
	if q == nil {
		q = &queue{eventID: r.EventID}
		b.queues[r.EventID] = q
	}
	if len(q.pending) >= b.opts.MaxQueue {
		b.mu.Unlock()
		b.opts.Metrics.rejected()
		return nil, ticketrush.Errorf(ticketrush.EOverloaded, "Too many requests for this event right now, please retry.")
	}
	if len(q.pending) == 0 {
		b.ready = append(b.ready, q)
	}
	q.pending = append(q.pending, w)
	b.queued++
	b.opts.Metrics.queued(1)
	if !b.running {
		b.running = true
		b.wg.Add(1)
		go b.flush()
	}
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

// taken is one event's share of a transaction.
type taken struct {
	eventID int64
	waiters []*waiter
}

// flush runs transactions until every queue is empty, then stops.
func (b *Batcher) flush() {
	defer b.wg.Done()
	var batch []taken
	for {
		batch = b.take(batch[:0])
		if batch == nil {
			return
		}
		b.run(batch)
	}
}

// take moves the next transaction's reserves out of the queues: events in
// the order they became ready, each event's reserves in arrival order, up
// to MaxBatch in all. It returns nil, and marks the flusher stopped, when
// nothing waits.
func (b *Batcher) take(into []taken) []taken {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queued == 0 {
		b.running = false
		return nil
	}
	room := b.opts.MaxBatch
	served := 0
	for _, q := range b.ready {
		if room == 0 {
			break
		}
		served++
		n := min(len(q.pending), room)
		room -= n
		ws := q.pending[:n:n]
		if n == len(q.pending) {
			q.pending = nil
			// An empty queue is dropped: the next reserve of its event
			// makes a new one, so the map holds only events with reserves
			// waiting.
			delete(b.queues, q.eventID)
		} else {
			q.pending = append([]*waiter(nil), q.pending[n:]...)
		}
		into = append(into, taken{eventID: q.eventID, waiters: ws})
	}
	// Served events with reserves left go to the back of the line.
	rest := b.ready[served:]
	var again []*queue
	for _, q := range b.ready[:served] {
		if len(q.pending) > 0 {
			again = append(again, q)
		}
	}
	b.ready = append(append(b.ready[:0:0], rest...), again...)
	total := b.opts.MaxBatch - room
	b.queued -= total
	b.opts.Metrics.queued(-total)
	// The store locks event rows in id order; giving them in that order
	// costs nothing here.
	slices.SortFunc(into, func(x, y taken) int {
		switch {
		case x.eventID < y.eventID:
			return -1
		case x.eventID > y.eventID:
			return 1
		}
		return 0
	})
	return into
}

// run decides one transaction's reserves and answers their waiters.
//
// A waiter taken into a batch waits for its commit, so the batch must end
// by the earliest deadline among its waiters: otherwise a request queued
// behind a stalled batch would wait for that one and then for its own
// whole Timeout. A waiter left with less than a quarter of Timeout is
// answered EUnavailable at once, unapplied, rather than cut the batch of
// everyone else that short.
func (b *Batcher) run(batch []taken) {
	start := time.Now()
	deadline := start.Add(b.opts.Timeout)
	minBudget := b.opts.Timeout / 4
	batches := make([]ticketrush.EventBatch, 0, len(batch))
	live := 0
	for i := range batch {
		t := &batch[i]
		ws := t.waiters[:0]
		for _, w := range t.waiters {
			if !w.state.CompareAndSwap(stateQueued, stateTaken) {
				continue
			}
			if !w.deadline.IsZero() && w.deadline.Sub(start) < minBudget {
				w.err = ticketrush.Unavailable(context.DeadlineExceeded)
				close(w.done)
				continue
			}
			ws = append(ws, w)
			if !w.deadline.IsZero() && w.deadline.Before(deadline) {
				deadline = w.deadline
			}
		}
		t.waiters = ws
		if len(ws) == 0 {
			continue
		}
		reqs := make([]ticketrush.ReserveRequest, len(ws))
		for j, w := range ws {
			reqs[j] = w.req
			if b.opts.Metrics != nil {
				b.opts.Metrics.waited(start.Sub(w.enqueued))
			}
		}
		batches = append(batches, ticketrush.EventBatch{EventID: t.eventID, Reqs: reqs})
		live += len(ws)
	}
	if live == 0 {
		return
	}

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	results, err := b.store.ReserveBatches(ctx, batches)
	cancel()
	if err == nil && len(results) != len(batches) {
		err = fmt.Errorf("batch: store returned %d results for %d events", len(results), len(batches))
	}
	err = inDoubt(err)
	b.opts.Metrics.batch(live, time.Since(start))
	n := 0
	for i := range batch {
		ws := batch[i].waiters
		if len(ws) == 0 {
			continue
		}
		var res []ticketrush.ReserveResult
		berr := err
		if berr == nil {
			res = results[n]
			if len(res) != len(ws) {
				berr = fmt.Errorf("batch: store returned %d results for %d requests of event %d", len(res), len(ws), batch[i].eventID)
			}
		}
		n++
		for j, w := range ws {
			if berr != nil {
				w.err = berr
			} else {
				w.res, w.err = res[j].Reservation, inDoubt(res[j].Err)
			}
			close(w.done)
		}
	}
}

// inDoubt turns a bare deadline the store did not classify into
// EOutcomeUnknown: the store had the requests and did not say how far it
// got, so they may have been applied. Only the store can tell "nothing was
// sent" (EUnavailable) from this.
func inDoubt(err error) error {
	if err != nil && ticketrush.ErrorCode(err) == ticketrush.EInternal &&
		(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return ticketrush.OutcomeUnknown(err)
	}
	return err
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
	return b.queued
}
