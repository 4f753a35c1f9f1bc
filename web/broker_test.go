package web

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ticketrush/ticketrush"
)

// fakeStore serves events from memory and counts reads per event. Only
// Event is implemented: it is all the broker may call.
type fakeStore struct {
	ticketrush.Store

	mu     sync.Mutex
	events map[int64]*ticketrush.Event
	err    error // returned by every read while set
	reads  map[int64]int
}

func newFakeStore(events ...*ticketrush.Event) *fakeStore {
	f := &fakeStore{events: map[int64]*ticketrush.Event{}, reads: map[int64]int{}}
	for _, e := range events {
		f.events[e.ID] = e
	}
	return f
}

func (f *fakeStore) Event(ctx context.Context, id int64) (*ticketrush.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads[id]++
	if f.err != nil {
		return nil, f.err
	}
	e, ok := f.events[id]
	if !ok {
		return nil, ticketrush.Errorf(ticketrush.EEventNotFound, "Event not found.")
	}
	c := *e
	return &c, nil
}

func (f *fakeStore) setQuantity(id, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events[id].TicketQuantity = n
}

func (f *fakeStore) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeStore) readsOf(id int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads[id]
}

func event(id, quantity, capacity int64) *ticketrush.Event {
	return &ticketrush.Event{ID: id, Name: "Örnek Etkinlik", TicketQuantity: quantity, Capacity: capacity, HoldSeconds: 300}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

const interval = 100 * time.Millisecond

// testIP is the client address of the tests' subscriptions.
const testIP = "192.0.2.1"

func mustSubscribe(t *testing.T, b *broker, id int64) *subscription {
	t.Helper()
	s, err := b.subscribe(context.Background(), id, testIP)
	if err != nil {
		t.Fatalf("subscribe(%d): %v", id, err)
	}
	return s
}

// next returns the value waiting on s, failing when there is none.
func next(t *testing.T, s *subscription) Availability {
	t.Helper()
	select {
	case a := <-s.c:
		return a
	default:
		t.Fatal("no value waiting")
		return Availability{}
	}
}

func expectNone(t *testing.T, s *subscription) {
	t.Helper()
	select {
	case a := <-s.c:
		t.Fatalf("unexpected value %+v", a)
	default:
	}
}

func TestBrokerFanOutReadsOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 10, 10))
		b := newBroker(store, interval, 1000, 0, quietLog())
		defer b.close()

		subs := make([]*subscription, 100)
		for i := range subs {
			subs[i] = mustSubscribe(t, b, 1)
		}
		synctest.Wait()
		if got := store.readsOf(1); got != 1 {
			t.Fatalf("reads after 100 subscribers = %d, want 1", got)
		}
		want := Availability{EventID: 1, TicketQuantity: 10, Capacity: 10}
		for i, s := range subs {
			if got := next(t, s); got != want {
				t.Fatalf("subscriber %d got %+v, want %+v", i, got, want)
			}
		}

		store.setQuantity(1, 7)
		time.Sleep(interval)
		synctest.Wait()
		if got := store.readsOf(1); got != 2 {
			t.Fatalf("reads after one interval = %d, want 2", got)
		}
		want.TicketQuantity = 7
		for i, s := range subs {
			if got := next(t, s); got != want {
				t.Fatalf("subscriber %d got %+v, want %+v", i, got, want)
			}
		}

		// An unchanged number is not sent again, but still read once per
		// interval, whatever the number of subscribers.
		time.Sleep(10 * interval)
		synctest.Wait()
		if got := store.readsOf(1); got != 12 {
			t.Fatalf("reads after eleven intervals = %d, want 12", got)
		}
		for _, s := range subs {
			expectNone(t, s)
		}
		for _, s := range subs {
			b.unsubscribe(s)
		}
	})
}

func TestBrokerLateSubscriberGetsValueWithoutRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 5, 10))
		b := newBroker(store, interval, 1000, 0, quietLog())
		defer b.close()

		first := mustSubscribe(t, b, 1)
		synctest.Wait()
		next(t, first)
		reads := store.readsOf(1)

		late := mustSubscribe(t, b, 1)
		// No wait: the value is in the channel when subscribe returns.
		if got := next(t, late); got.TicketQuantity != 5 {
			t.Fatalf("late subscriber got %+v", got)
		}
		if got := store.readsOf(1); got != reads {
			t.Fatalf("reads = %d after a late subscriber, want %d", got, reads)
		}
	})
}

func TestBrokerCoalescesForSlowReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 100, 100))
		b := newBroker(store, interval, 1000, 0, quietLog())
		defer b.close()

		fast := mustSubscribe(t, b, 1)
		slow := mustSubscribe(t, b, 1)
		synctest.Wait()
		next(t, fast)

		for n := int64(99); n >= 95; n-- {
			store.setQuantity(1, n)
			time.Sleep(interval)
			synctest.Wait()
			// The poller went on although slow never read: the fast
			// reader sees every number.
			if got := next(t, fast); got.TicketQuantity != n {
				t.Fatalf("fast reader got %d, want %d", got.TicketQuantity, n)
			}
		}
		// The slow reader finds only the newest number.
		if got := next(t, slow); got.TicketQuantity != 95 {
			t.Fatalf("slow reader got %d, want the latest, 95", got.TicketQuantity)
		}
		expectNone(t, slow)
	})
}

func TestBrokerStopsWhenLastSubscriberLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 10, 10))
		b := newBroker(store, interval, 1000, 0, quietLog())
		defer b.close()

		a := mustSubscribe(t, b, 1)
		c := mustSubscribe(t, b, 1)
		synctest.Wait()
		b.unsubscribe(a)
		time.Sleep(3 * interval)
		synctest.Wait()
		if got := store.readsOf(1); got != 4 {
			t.Fatalf("reads with one subscriber left = %d, want 4", got)
		}

		b.unsubscribe(c)
		synctest.Wait()
		stopped := store.readsOf(1)
		time.Sleep(20 * interval)
		synctest.Wait()
		if got := store.readsOf(1); got != stopped {
			t.Fatalf("reads went on after the last subscriber left: %d, then %d", stopped, got)
		}
		b.mu.Lock()
		topics, n := len(b.topics), b.n
		b.mu.Unlock()
		if topics != 0 || n != 0 {
			t.Fatalf("broker keeps %d topics and %d subscriptions, want none", topics, n)
		}
		b.unsubscribe(c) // twice is harmless

		// Watching again starts a new poller, which reads at once.
		d := mustSubscribe(t, b, 1)
		synctest.Wait()
		if got := store.readsOf(1); got != stopped+1 {
			t.Fatalf("reads after a new subscriber = %d, want %d", got, stopped+1)
		}
		next(t, d)
		b.unsubscribe(d)
	})
}

func TestBrokerEventsPolledSeparately(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 10, 10), event(2, 20, 20))
		b := newBroker(store, interval, 1000, 0, quietLog())
		defer b.close()

		for range 10 {
			mustSubscribe(t, b, 1)
			mustSubscribe(t, b, 2)
		}
		time.Sleep(4 * interval)
		synctest.Wait()
		for _, id := range []int64{1, 2} {
			if got := store.readsOf(id); got != 5 {
				t.Fatalf("reads of event %d = %d, want 5", id, got)
			}
		}
	})
}

// An unknown event is answered at once, before anything is started: one
// read, no poller, no topic, no subscription.
func TestBrokerUnknownEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore()
		b := newBroker(store, interval, 1000, 0, quietLog())
		defer b.close()

		s, err := b.subscribe(context.Background(), 99, testIP)
		if code := ticketrush.ErrorCode(err); code != ticketrush.EEventNotFound || s != nil {
			t.Fatalf("subscribe(99) = %v, %v; want %s", s, err, ticketrush.EEventNotFound)
		}
		time.Sleep(10 * interval)
		synctest.Wait()
		if got := store.readsOf(99); got != 1 {
			t.Fatalf("reads of an unknown event = %d, want the one check (no poller)", got)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.topics) != 0 || b.n != 0 || len(b.perIP) != 0 {
			t.Fatalf("broker keeps %d topics, %d subscriptions, %d addresses", len(b.topics), b.n, len(b.perIP))
		}
	})
}

// One client address may hold at most maxPerIP streams; others are not
// affected, and a closed stream frees its place.
func TestBrokerMaxStreamsPerIP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 10, 10), event(2, 10, 10))
		b := newBroker(store, interval, 1000, 3, quietLog())
		defer b.close()
		first := mustSubscribe(t, b, 1)
		mustSubscribe(t, b, 2)
		mustSubscribe(t, b, 1)
		for _, id := range []int64{1, 2} {
			if _, err := b.subscribe(context.Background(), id, testIP); ticketrush.ErrorCode(err) != ticketrush.ETooManyStreams {
				t.Fatalf("fourth stream of one address (event %d): %v, want %s", id, err, ticketrush.ETooManyStreams)
			}
		}
		if _, err := b.subscribe(context.Background(), 1, "198.51.100.7"); err != nil {
			t.Fatalf("another address: %v", err)
		}
		b.unsubscribe(first)
		mustSubscribe(t, b, 1)
	})
}

func TestBrokerOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 10, 10))
		b := newBroker(store, interval, 1000, 0, quietLog())
		defer b.close()
		down := ticketrush.Unavailable(context.DeadlineExceeded)

		// Without a first value a failed read ends the waiting streams,
		// so they can answer 503 instead of hanging.
		store.setErr(down)
		if _, err := b.subscribe(context.Background(), 1, testIP); ticketrush.ErrorCode(err) != ticketrush.EUnavailable {
			t.Fatalf("err = %v, want %s", err, ticketrush.EUnavailable)
		}

		// With a value, an outage only skips updates.
		store.setErr(nil)
		s := mustSubscribe(t, b, 1)
		synctest.Wait()
		next(t, s)
		store.setErr(down)
		time.Sleep(5 * interval)
		synctest.Wait()
		select {
		case <-s.done:
			t.Fatal("an outage ended an open stream")
		default:
		}
		expectNone(t, s)

		store.setErr(nil)
		store.setQuantity(1, 3)
		time.Sleep(interval)
		synctest.Wait()
		if got := next(t, s); got.TicketQuantity != 3 {
			t.Fatalf("after the outage got %+v, want 3 tickets", got)
		}
		b.unsubscribe(s)
	})
}

func TestBrokerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 10, 10))
		b := newBroker(store, interval, 1000, 0, quietLog())
		s := mustSubscribe(t, b, 1)
		synctest.Wait()
		b.close()
		<-s.done
		if code := ticketrush.ErrorCode(s.err); code != ticketrush.EUnavailable {
			t.Fatalf("err = %v, want %s", s.err, ticketrush.EUnavailable)
		}
		b.unsubscribe(s)
		if _, err := b.subscribe(context.Background(), 1, testIP); ticketrush.ErrorCode(err) != ticketrush.EUnavailable {
			t.Fatalf("subscribe after close: %v, want %s", err, ticketrush.EUnavailable)
		}
	})
}

func TestBrokerMaxStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFakeStore(event(1, 10, 10))
		b := newBroker(store, interval, 2, 0, quietLog())
		defer b.close()
		a := mustSubscribe(t, b, 1)
		mustSubscribe(t, b, 1)
		if _, err := b.subscribe(context.Background(), 1, testIP); ticketrush.ErrorCode(err) != ticketrush.EOverloaded {
			t.Fatalf("third subscribe: %v, want %s", err, ticketrush.EOverloaded)
		}
		b.unsubscribe(a)
		mustSubscribe(t, b, 1)
	})
}
