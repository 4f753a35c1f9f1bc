package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
)

// reserveBatch calls ReserveBatch, which must succeed as a transaction, and
// checks that it returns one well-formed result per request, in order. want
// holds the expected error code of each request, "" for a grant.
func reserveBatch(t *testing.T, s ticketrush.Store, eventID int64, reqs []ticketrush.ReserveRequest, want []string) []*ticketrush.Reservation {
	t.Helper()
	results, err := s.ReserveBatch(t.Context(), eventID, reqs)
	if err != nil {
		t.Fatalf("ReserveBatch(%d, %d requests): %v", eventID, len(reqs), err)
	}
	if len(results) != len(reqs) {
		t.Fatalf("ReserveBatch: %d results for %d requests", len(results), len(reqs))
	}
	out := make([]*ticketrush.Reservation, len(reqs))
	for i, res := range results {
		if (res.Reservation == nil) == (res.Err == nil) {
			t.Errorf("result %d: reservation %+v and error %v; want exactly one", i, res.Reservation, res.Err)
			continue
		}
		if code := ticketrush.ErrorCode(res.Err); code != want[i] {
			t.Errorf("result %d for %+v: error %v (code %q), want code %q", i, reqs[i], res.Err, code, want[i])
			continue
		}
		if res.Reservation != nil && checkGranted(t, reqs[i], res.Reservation) {
			out[i] = res.Reservation
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

func testReserveBatch(t *testing.T, s suite) {
	e := s.env(t)
	const granted = ""

	t.Run("OK", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(100))
		now := e.clock.Advance(time.Second)
		var reqs []ticketrush.ReserveRequest
		for i := range 10 {
			reqs = append(reqs, req(ev.ID, int64(1+i%4), visitor()))
		}
		got := reserveBatch(t, e.store, ev.ID, reqs, make([]string, len(reqs)))
		seen := map[int64]bool{}
		var sum int64
		for i, res := range got {
			// checkGranted already matched each result to its request,
			// which proves the results are in request order.
			if seen[res.ID] {
				t.Errorf("result %d repeats id %d", i, res.ID)
			}
			seen[res.ID] = true
			sum += res.Amount
			want := &ticketrush.Reservation{
				ID: res.ID, EventID: ev.ID, UserUID: reqs[i].VisitorToken, Status: ticketrush.StatusReserved,
				Amount: reqs[i].Amount, ExpiresAt: now.Add(300 * time.Second), CreatedAt: now, UpdatedAt: now,
			}
			sameReservation(t, "result "+itoa(int64(i)), res, want)
			sameReservation(t, "Reservation", readBack(t, e.store, res), want)
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 100, Available: 100 - sum, Held: sum})
	})

	t.Run("ArrivalOrder", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(5))
		reserveBatch(t, e.store, ev.ID, []ticketrush.ReserveRequest{
			req(ev.ID, 3, visitor()),
			req(ev.ID, 3, visitor()), // does not fit
			req(ev.ID, 2, visitor()), // a later, smaller one does
			req(ev.ID, 1, visitor()),
		}, []string{granted, ticketrush.ENotEnoughTickets, granted, ticketrush.ENotEnoughTickets})
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 5, Available: 0, Held: 5})
	})

	t.Run("VisitorLimit", func(t *testing.T) {
		ne := concert(50)
		ne.MaxPerVisitor = 4
		ev := createEvent(t, e.store, ne)
		a, b, c := visitor(), visitor(), visitor()
		reserve(t, e.store, req(ev.ID, 2, c))
		reserveBatch(t, e.store, ev.ID, []ticketrush.ReserveRequest{
			req(ev.ID, 3, a),
			req(ev.ID, 2, a), // 5 > 4 with the one before it
			req(ev.ID, 1, a),
			req(ev.ID, 4, b),
			req(ev.ID, 3, c), // 5 > 4 with the hold from before the batch
			req(ev.ID, 2, c),
			req(ev.ID, 1, a),
		}, []string{granted, ticketrush.EVisitorLimit, granted, granted, ticketrush.EVisitorLimit, granted, ticketrush.EVisitorLimit})
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 50, Available: 38, Held: 12})
	})

	t.Run("IdempotencyKey", func(t *testing.T) {
		ne := concert(50)
		ne.MaxPerVisitor = 4
		ev := createEvent(t, e.store, ne)
		a, b := visitor(), visitor()
		got := reserveBatch(t, e.store, ev.ID, []ticketrush.ReserveRequest{
			keyed(ev.ID, 3, a, "k"),
			keyed(ev.ID, 3, a, "k"), // the same reservation, not counted twice against the limit
			keyed(ev.ID, 2, a, "k"), // another body
			keyed(ev.ID, 3, b, "k"), // another visitor
			keyed(ev.ID, 1, a, "k2"),
		}, []string{granted, granted, ticketrush.EIdempotencyKeyReused, granted, granted})
		if got[0].ID != got[1].ID {
			t.Errorf("one key in one batch gave reservations %d and %d", got[0].ID, got[1].ID)
		}
		sameReservation(t, "repeat in batch", got[1], got[0])
		if got[3].ID == got[0].ID || got[4].ID == got[0].ID || got[3].ID == got[4].ID {
			t.Errorf("distinct requests share an id: %d, %d, %d", got[0].ID, got[3].ID, got[4].ID)
		}
		// A later batch, and a single reserve, see the key too.
		again := reserveBatch(t, e.store, ev.ID, []ticketrush.ReserveRequest{
			keyed(ev.ID, 3, a, "k"), keyed(ev.ID, 1, a, "k"),
		}, []string{granted, ticketrush.EIdempotencyKeyReused})
		sameReservation(t, "repeat in next batch", again[0], got[0])
		sameReservation(t, "repeat as Reserve", reserve(t, e.store, keyed(ev.ID, 3, a, "k")), got[0])
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 50, Available: 43, Held: 7})
	})

	t.Run("ErrSaleNotStarted", func(t *testing.T) {
		sale := e.clock.Now().Add(time.Hour)
		ne := concert(10)
		ne.SaleStartsAt = &sale
		ev := createEvent(t, e.store, ne)
		reserveBatch(t, e.store, ev.ID, []ticketrush.ReserveRequest{req(ev.ID, 1, visitor()), req(ev.ID, 2, visitor())},
			[]string{ticketrush.ESaleNotStarted, ticketrush.ESaleNotStarted})
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 10})
		e.clock.Set(sale)
		reserveBatch(t, e.store, ev.ID, []ticketrush.ReserveRequest{req(ev.ID, 1, visitor()), req(ev.ID, 2, visitor())},
			[]string{granted, granted})
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 7, Held: 3})
	})

	t.Run("ErrEventNotFound", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		id := ev.ID + 1000
		reserveBatch(t, e.store, id, []ticketrush.ReserveRequest{req(id, 1, visitor()), keyed(id, 2, visitor(), "k"), req(id, 3, visitor())},
			[]string{ticketrush.EEventNotFound, ticketrush.EEventNotFound, ticketrush.EEventNotFound})
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 10})
	})

	t.Run("ReleasesExpired", func(t *testing.T) {
		ne := concert(10)
		ne.HoldSeconds = 60
		ev := createEvent(t, e.store, ne)
		l := newLedger()
		for _, r := range reserveBatch(t, e.store, ev.ID, []ticketrush.ReserveRequest{req(ev.ID, 6, visitor()), req(ev.ID, 4, visitor())},
			[]string{granted, granted}) {
			l.add(t, r)
		}
		e.clock.Advance(time.Minute)
		for _, r := range reserveBatch(t, e.store, ev.ID, []ticketrush.ReserveRequest{
			req(ev.ID, 5, visitor()), req(ev.ID, 5, visitor()), req(ev.ID, 1, visitor()),
		}, []string{granted, granted, ticketrush.ENotEnoughTickets}) {
			if r != nil {
				l.add(t, r)
			}
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 0, Held: 10, Expired: 10})
		checkLedger(t, e.store, ev.ID, l)
	})
}

func testBatcher(t *testing.T, s suite) {
	e := s.env(t)

	t.Run("Concurrent", func(t *testing.T) {
		b := batch.New(e.store, batch.Options{})
		t.Cleanup(b.Close)
		ev := createEvent(t, e.store, concert(1000))
		l := newLedger()
		var wg sync.WaitGroup
		for g := range 64 {
			wg.Go(func() {
				rq := req(ev.ID, int64(1+g%3), visitor())
				res, err := b.Reserve(t.Context(), rq)
				if err != nil {
					t.Errorf("Reserve(%+v): %v", rq, err)
					return
				}
				if checkGranted(t, rq, res) {
					l.add(t, res)
				}
			})
		}
		wg.Wait()
		var want int64
		for g := range 64 {
			want += int64(1 + g%3)
		}
		if got := l.sum(ev.ID); got != want {
			t.Errorf("%d tickets granted, want %d", got, want)
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 1000, Available: 1000 - want, Held: want})
		checkLedger(t, e.store, ev.ID, l)
	})

	t.Run("CancelledBeforeBatch", func(t *testing.T) {
		// A client that went away before its batch started is never
		// applied. Its context is cancelled before Reserve is called, so
		// the test does not depend on timing.
		b := batch.New(e.store, batch.Options{})
		t.Cleanup(b.Close)
		ev := createEvent(t, e.store, concert(10))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res, err := b.Reserve(ctx, req(ev.ID, 3, visitor()))
		if err == nil {
			t.Fatalf("Reserve with a cancelled context = %+v, want an error", res)
		}
		if res != nil {
			t.Errorf("Reserve returned %+v along with %v", res, err)
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 10})
		// The batcher still serves the next client.
		reserve(t, b, req(ev.ID, 2, visitor()))
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Held: 2})
	})

	t.Run("Errors", func(t *testing.T) {
		// Domain errors reach each waiter unchanged.
		b := batch.New(e.store, batch.Options{})
		t.Cleanup(b.Close)
		ne := concert(3)
		ne.MaxPerVisitor = 2
		ev := createEvent(t, e.store, ne)
		v := visitor()
		reserveErr(t, b, req(ev.ID+1000, 1, v), ticketrush.EEventNotFound)
		reserve(t, b, req(ev.ID, 2, v))
		reserveErr(t, b, req(ev.ID, 1, v), ticketrush.EVisitorLimit)
		reserveErr(t, b, req(ev.ID, 2, visitor()), ticketrush.ENotEnoughTickets)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 3, Available: 1, Held: 2})
	})

	t.Run("CancelledWhileQueued", func(t *testing.T) {
		// The first batch is held inside its transaction while a second
		// client queues behind it and gives up: that client is never
		// applied. The first client gives up too, but its batch had
		// started, so its reservation stands and is returned.
		g := newGatedStore(e.store)
		defer g.open()
		reg := prometheus.NewRegistry()
		// A held batch must not run into the batcher's own deadline.
		b := batch.New(g, batch.Options{Metrics: batch.NewMetrics(reg), Timeout: time.Minute})
		ev := createEvent(t, e.store, concert(10))

		aCtx, aCancel := context.WithCancel(t.Context())
		defer aCancel()
		a := req(ev.ID, 2, visitor())
		aDone := make(chan reserved, 1)
		go func() {
			res, err := b.Reserve(aCtx, a)
			aDone <- reserved{res, err}
		}()
		<-g.entered

		bCtx, bCancel := context.WithCancel(t.Context())
		bDone := make(chan reserved, 1)
		go func() {
			res, err := b.Reserve(bCtx, req(ev.ID, 3, visitor()))
			bDone <- reserved{res, err}
		}()
		waitQueued(t, reg, 1)
		bCancel()
		if got := <-bDone; got.err == nil || got.res != nil {
			t.Errorf("Reserve cancelled while queued = %+v, %v; want only an error", got.res, got.err)
		}

		aCancel()
		g.release <- nil
		got := <-aDone
		if got.err != nil {
			t.Fatalf("Reserve whose batch had started = %v, want its reservation", got.err)
		}
		checkGranted(t, a, got.res)
		sameReservation(t, "Reservation", readBack(t, e.store, got.res), got.res)

		g.open()
		b.Close()
		if n := len(g.entered); n != 0 {
			t.Errorf("%d more batches reached the store; the cancelled client's must not", n)
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Held: 2})
	})

	t.Run("FailedBatch", func(t *testing.T) {
		// When a batch's transaction fails, every client in it gets the
		// error and none of it is applied.
		g := newGatedStore(e.store)
		defer g.open()
		reg := prometheus.NewRegistry()
		// A held batch must not run into the batcher's own deadline.
		b := batch.New(g, batch.Options{Metrics: batch.NewMetrics(reg), Timeout: time.Minute})
		ev := createEvent(t, e.store, concert(10))

		a := req(ev.ID, 2, visitor())
		aDone := make(chan reserved, 1)
		go func() {
			res, err := b.Reserve(t.Context(), a)
			aDone <- reserved{res, err}
		}()
		<-g.entered
		done := make(chan reserved, 2)
		for _, amount := range []int64{1, 3} {
			go func() {
				res, err := b.Reserve(t.Context(), req(ev.ID, amount, visitor()))
				done <- reserved{res, err}
			}()
		}
		waitQueued(t, reg, 2)
		g.release <- nil
		if got := <-aDone; got.err != nil {
			t.Fatalf("first batch: %v", got.err)
		}
		if reqs := <-g.entered; len(reqs) != 2 {
			t.Errorf("second batch has %d requests, want the 2 queued", len(reqs))
		}
		lost := errors.New("connection lost")
		g.release <- lost
		for range 2 {
			if got := <-done; !errors.Is(got.err, lost) || got.res != nil {
				t.Errorf("client of a failed batch got %+v, %v; want the batch's error", got.res, got.err)
			}
		}
		g.open()
		b.Close()
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Held: 2})
	})
}

// reserved is the outcome of one Reserve call made in a goroutine.
type reserved struct {
	res *ticketrush.Reservation
	err error
}

// gatedStore holds every ReserveBatches until the test releases it, so a
// test can queue clients behind a batch in flight without depending on
// timing.
type gatedStore struct {
	ticketrush.Store
	// entered receives each transaction's requests (of every event) as it
	// starts.
	entered chan []ticketrush.ReserveRequest
	// release lets one batch go on: nil runs it, an error fails it
	// without touching the database.
	release chan error
	opened  chan struct{}
	once    sync.Once
}

func newGatedStore(s ticketrush.Store) *gatedStore {
	return &gatedStore{
		Store:   s,
		entered: make(chan []ticketrush.ReserveRequest, 64),
		release: make(chan error),
		opened:  make(chan struct{}),
	}
}

// ReserveBatches waits for the test's word, then runs or fails the
// transaction.
func (g *gatedStore) ReserveBatches(ctx context.Context, batches []ticketrush.EventBatch) ([][]ticketrush.ReserveResult, error) {
	select {
	case <-g.opened:
		return g.Store.ReserveBatches(ctx, batches)
	default:
	}
	var reqs []ticketrush.ReserveRequest
	for _, b := range batches {
		reqs = append(reqs, b.Reqs...)
	}
	g.entered <- reqs
	select {
	case err := <-g.release:
		if err != nil {
			return nil, err
		}
	case <-g.opened:
	}
	return g.Store.ReserveBatches(ctx, batches)
}

// open lets every later batch through.
func (g *gatedStore) open() { g.once.Do(func() { close(g.opened) }) }

// waitQueued waits until n clients wait in the batcher's queues, as its
// queue depth metric reports.
func waitQueued(t *testing.T, reg *prometheus.Registry, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		families, err := reg.Gather()
		ok(t, "Gather", err)
		for _, f := range families {
			if f.GetName() == "ticketrush_batch_queue_depth" && len(f.GetMetric()) == 1 &&
				f.GetMetric()[0].GetGauge().GetValue() == float64(n) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients never queued", n)
		}
		time.Sleep(time.Millisecond)
	}
}
