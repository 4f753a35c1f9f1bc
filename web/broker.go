package web

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ticketrush/ticketrush"
)

// pollTimeout bounds one read of an event. A read that takes longer is
// abandoned and the next tick tries again.
const pollTimeout = 1500 * time.Millisecond

// Availability is what a stream tells its readers: the tickets of an event
// still on sale, and how many there were.
type Availability struct {
	EventID        int64 `json:"event_id"`
	TicketQuantity int64 `json:"ticket_quantity"`
	Capacity       int64 `json:"capacity"`
}

// broker fans availability out to every open stream of this process. Each
// event with at least one stream has one poller, which reads the event once
// per interval and hands a changed value to every subscription. So a rush
// of buyers costs the database one read per event and interval however many
// watch, and each process of a cluster, polling the shared database itself,
// shows the true number.
//
// A subscription's channel holds one value. The poller never waits for a
// reader: when the channel is full it swaps the unread value for the new
// one, so a slow reader skips to the latest number and a fast one sees each.
type broker struct {
	store    ticketrush.Store
	interval time.Duration
	max      int
	log      *slog.Logger

	ctx    context.Context // ends at close, and with it every poll
	cancel context.CancelFunc
	wg     sync.WaitGroup // running pollers

	// maxPerIP caps the subscriptions of one client address.
	maxPerIP int

	mu     sync.Mutex
	topics map[int64]*topic
	n      int            // subscriptions in all topics
	perIP  map[string]int // subscriptions by client address
	closed bool
}

// topic is one event's poller and subscribers. Its fields are guarded by
// the broker's mutex.
type topic struct {
	id      int64
	subs    map[*subscription]struct{}
	last    Availability
	have    bool // last holds a value
	failing bool // the last read failed; logged once per outage
	stop    context.CancelFunc
}

// subscription is one stream's view of a topic.
type subscription struct {
	t *topic
	// c holds the newest value the reader has not taken yet.
	c chan Availability
	// done is closed when the broker ends the subscription; err says why.
	done chan struct{}
	err  error
	ip   string // the client's address, counted in perIP
}

func newBroker(store ticketrush.Store, interval time.Duration, max, maxPerIP int, log *slog.Logger) *broker {
	ctx, cancel := context.WithCancel(context.Background())
	return &broker{
		store:    store,
		interval: interval,
		max:      max,
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
		topics:   map[int64]*topic{},
		perIP:    map[string]int{},
		maxPerIP: maxPerIP,
	}
}

// subscribe starts watching an event for a client at address ip. The first
// value is on the subscription's channel when it returns. An event nobody
// watches yet is read first, before anything is started: an unknown event
// answers EEventNotFound and costs no poller, and a failed read answers
// EUnavailable. Over the process's cap the answer is EOverloaded, over the
// client's ETooManyStreams. The caller must unsubscribe.
func (b *broker) subscribe(ctx context.Context, eventID int64, ip string) (*subscription, error) {
	b.mu.Lock()
	if err := b.admit(ip); err != nil {
		b.mu.Unlock()
		return nil, err
	}
	if t := b.topics[eventID]; t != nil && t.have {
		s := b.join(t, ip)
		b.mu.Unlock()
		return s, nil
	}
	b.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, pollTimeout)
	e, err := b.store.Event(rctx, eventID)
	cancel()
	if err != nil {
		if code := ticketrush.ErrorCode(err); code != ticketrush.EEventNotFound && code != ticketrush.EUnavailable {
			err = ticketrush.Unavailable(err)
		}
		return nil, err
	}
	first := Availability{EventID: e.ID, TicketQuantity: e.TicketQuantity, Capacity: e.Capacity}

	b.mu.Lock()
	defer b.mu.Unlock()
	// Checked again: the broker was unlocked during the read.
	if err := b.admit(ip); err != nil {
		return nil, err
	}
	t := b.topics[eventID]
	if t == nil {
		pctx, stop := context.WithCancel(b.ctx)
		t = &topic{id: eventID, subs: map[*subscription]struct{}{}, stop: stop, last: first, have: true}
		b.topics[eventID] = t
		b.wg.Add(1)
		go b.poll(pctx, t)
	} else if !t.have {
		t.last, t.have = first, true
	}
	return b.join(t, ip), nil
}

// admit checks whether a client at ip may open one more subscription. The
// caller holds the mutex.
func (b *broker) admit(ip string) error {
	switch {
	case b.closed:
		return errShuttingDown()
	case b.n >= b.max:
		return ticketrush.Errorf(ticketrush.EOverloaded, "Too many live updates are open; please retry in a moment.")
	case b.maxPerIP > 0 && b.perIP[ip] >= b.maxPerIP:
		return ticketrush.Errorf(ticketrush.ETooManyStreams,
			"Too many live updates are open from your address (at most %d); close one and retry.", b.maxPerIP)
	}
	return nil
}

// join adds a subscription for ip to t, which has a value. The caller holds
// the mutex.
func (b *broker) join(t *topic, ip string) *subscription {
	s := &subscription{t: t, c: make(chan Availability, 1), done: make(chan struct{}), ip: ip}
	t.subs[s] = struct{}{}
	b.n++
	b.perIP[ip]++
	s.c <- t.last
	return s
}

// release forgets s's place in the per-address count. The caller holds the
// mutex.
func (b *broker) release(s *subscription) {
	if n := b.perIP[s.ip]; n <= 1 {
		delete(b.perIP, s.ip)
	} else {
		b.perIP[s.ip] = n - 1
	}
}

// unsubscribe ends s. The topic's poller stops with its last subscriber.
func (b *broker) unsubscribe(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := s.t
	if _, ok := t.subs[s]; !ok {
		return // the broker ended it already
	}
	delete(t.subs, s)
	b.n--
	b.release(s)
	if len(t.subs) == 0 {
		b.drop(t)
	}
}

// drop stops t's poller and forgets t, unless a newer topic for the same
// event took its place already.
func (b *broker) drop(t *topic) {
	t.stop()
	if b.topics[t.id] == t {
		delete(b.topics, t.id)
	}
}

// end ends every subscription of t with err, and drops t.
func (b *broker) end(t *topic, err error) {
	for s := range t.subs {
		s.err = err
		close(s.done)
		b.release(s)
	}
	b.n -= len(t.subs)
	clear(t.subs)
	b.drop(t)
}

// poll reads t's event every interval until stopped. The first value came
// from subscribe's own read.
func (b *broker) poll(ctx context.Context, t *topic) {
	defer b.wg.Done()
	tick := time.NewTicker(b.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !b.read(ctx, t) {
			return
		}
	}
}

// read reads the event once and hands a changed value to every subscriber.
// It reports whether polling should go on.
func (b *broker) read(ctx context.Context, t *topic) bool {
	rctx, cancel := context.WithTimeout(ctx, pollTimeout)
	e, err := b.store.Event(rctx, t.id)
	cancel()
	if ctx.Err() != nil {
		return false // stopped while reading: nobody is left to tell
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		code := ticketrush.ErrorCode(err)
		// Without a first value there is nothing to show: tell the waiting
		// streams at once rather than keep them hanging through an outage.
		// Once streams are open a failed read only skips an update.
		if code == ticketrush.EEventNotFound || !t.have {
			if code != ticketrush.EEventNotFound && code != ticketrush.EUnavailable {
				err = ticketrush.Unavailable(err)
			}
			b.end(t, err)
			return false
		}
		if !t.failing {
			t.failing = true
			b.log.Warn("availability poll failed", "event_id", t.id, "err", err)
		}
		return true
	}
	if t.failing {
		t.failing = false
		b.log.Info("availability poll recovered", "event_id", t.id)
	}
	a := Availability{EventID: e.ID, TicketQuantity: e.TicketQuantity, Capacity: e.Capacity}
	if t.have && a == t.last {
		return true
	}
	t.last, t.have = a, true
	for s := range t.subs {
		offer(s.c, a)
	}
	return true
}

// offer puts a into c without waiting, replacing a value not yet taken.
// Only the poller sends on c once the subscription exists, and it holds
// the broker's mutex, so the loop ends by its second turn.
func offer(c chan Availability, a Availability) {
	for {
		select {
		case c <- a:
			return
		default:
		}
		select {
		case <-c:
		default:
		}
	}
}

// close ends every subscription, refuses new ones and waits for the
// pollers to stop.
func (b *broker) close() {
	b.mu.Lock()
	b.closed = true
	for _, t := range b.topics {
		b.end(t, errShuttingDown())
	}
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}

func errShuttingDown() error {
	return ticketrush.Errorf(ticketrush.EUnavailable, "The server is restarting; please retry in a moment.")
}
