package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

func testStats(t *testing.T, s suite) {
	e := s.env(t)

	t.Run("Empty", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(7))
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 7, Available: 7})
	})

	t.Run("EveryState", func(t *testing.T) {
		ne := concert(20)
		ne.HoldSeconds = 60
		ev := createEvent(t, e.store, ne)
		l := newLedger()
		late := reserve(t, e.r, req(ev.ID, 5, visitor()))
		l.add(t, late)
		e.clock.Advance(30 * time.Second)
		held := reserve(t, e.r, req(ev.ID, 2, visitor()))
		bought := reserve(t, e.r, req(ev.ID, 3, visitor()))
		dropped := reserve(t, e.r, req(ev.ID, 4, visitor()))
		for _, r := range []*ticketrush.Reservation{held, bought, dropped} {
			l.add(t, r)
		}
		purchase(t, e.store, bought)
		cancel(t, e.store, dropped)
		e.clock.Advance(30 * time.Second)
		purchaseErr(t, e.store, late.ID, late.UserUID, ticketrush.EExpired)
		wantStats(t, e.store, ticketrush.Stats{
			EventID: ev.ID, Capacity: 20, Available: 15, Held: 2, Purchased: 3, Expired: 5, Cancelled: 4,
		})
		checkLedger(t, e.store, ev.ID, l)
	})
}

func testExpiry(t *testing.T, s suite) {
	e := s.env(t)
	shortHold := func(t *testing.T, quantity int64) *ticketrush.Event {
		ne := concert(quantity)
		ne.HoldSeconds = 60
		return createEvent(t, e.store, ne)
	}

	t.Run("ReserveReleasesExpired", func(t *testing.T) {
		ev := shortHold(t, 10)
		l := newLedger()
		l.add(t, reserve(t, e.r, req(ev.ID, 6, visitor())))
		l.add(t, reserve(t, e.r, req(ev.ID, 4, visitor())))
		reserveErr(t, e.r, req(ev.ID, 1, visitor()), ticketrush.ENotEnoughTickets)
		e.clock.Advance(time.Minute - time.Microsecond)
		reserveErr(t, e.r, req(ev.ID, 1, visitor()), ticketrush.ENotEnoughTickets)
		// At expires_at, with no sweep, the sold-out event has all its
		// tickets again: the reserve releases the expired holds itself.
		e.clock.Advance(time.Microsecond)
		l.add(t, reserve(t, e.r, req(ev.ID, 10, visitor())))
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 0, Held: 10, Expired: 10})
		checkLedger(t, e.store, ev.ID, l)
	})

	t.Run("ReserveReleasesOnlyExpired", func(t *testing.T) {
		ev := shortHold(t, 10)
		l := newLedger()
		old := reserve(t, e.r, req(ev.ID, 6, visitor()))
		l.add(t, old)
		e.clock.Advance(30 * time.Second)
		young := reserve(t, e.r, req(ev.ID, 4, visitor()))
		l.add(t, young)
		e.clock.Advance(30 * time.Second)
		reserveErr(t, e.r, req(ev.ID, 7, visitor()), ticketrush.ENotEnoughTickets)
		l.add(t, reserve(t, e.r, req(ev.ID, 6, visitor())))
		wantStatus(t, e.store, old, ticketrush.StatusExpired)
		wantStatus(t, e.store, young, ticketrush.StatusReserved)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 0, Held: 10, Expired: 6})
		checkLedger(t, e.store, ev.ID, l)
	})

	t.Run("OtherEventsUntouched", func(t *testing.T) {
		// A reserve releases only its own event's expired holds, and a
		// sweep releases everybody's.
		ev := shortHold(t, 2)
		other := shortHold(t, 2)
		a := reserve(t, e.r, req(ev.ID, 2, visitor()))
		b := reserve(t, e.r, req(other.ID, 2, visitor()))
		e.clock.Advance(time.Minute)
		reserve(t, e.r, req(ev.ID, 2, visitor()))
		wantStatus(t, e.store, a, ticketrush.StatusExpired)
		wantStats(t, e.store, ticketrush.Stats{EventID: other.ID, Capacity: 2, Available: 0, Held: 2})
		releaseAll(t, e.store)
		wantStatus(t, e.store, b, ticketrush.StatusExpired)
		wantStats(t, e.store, ticketrush.Stats{EventID: other.ID, Capacity: 2, Available: 2, Expired: 2})
	})

	t.Run("ExpiredHoldReadsBack", func(t *testing.T) {
		ev := shortHold(t, 3)
		res := reserve(t, e.r, req(ev.ID, 3, visitor()))
		e.clock.Advance(2 * time.Minute)
		releaseAll(t, e.store)
		got := readBack(t, e.store, res)
		if got.Status != ticketrush.StatusExpired || got.Amount != 3 || !got.ExpiresAt.Equal(res.ExpiresAt) ||
			!got.CreatedAt.Equal(res.CreatedAt) {
			t.Errorf("expired hold reads back as %s, was %s", fmtReservation(got), fmtReservation(res))
		}
	})
}

func testReleaseExpired(t *testing.T, s suite) {
	t.Run("OK", func(t *testing.T) {
		// A database of its own: ReleaseExpired counts across all events.
		e := s.env(t)
		n, err := e.store.ReleaseExpired(t.Context(), 100)
		ok(t, "ReleaseExpired", err)
		if n != 0 {
			t.Errorf("ReleaseExpired on an empty database = %d", n)
		}
		ne := concert(20)
		ne.HoldSeconds = 60
		ev := createEvent(t, e.store, ne)
		other := createEvent(t, e.store, ne)
		l := newLedger()
		at := func(d time.Duration, eventID, amount int64) *ticketrush.Reservation {
			e.clock.Set(start.Add(d))
			r := reserve(t, e.r, req(eventID, amount, visitor()))
			l.add(t, r)
			return r
		}
		a := at(0, ev.ID, 1)
		bought := at(0, ev.ID, 1)
		dropped := at(0, ev.ID, 1)
		o := at(5*time.Second, other.ID, 2)
		b := at(10*time.Second, ev.ID, 2)
		c := at(20*time.Second, ev.ID, 3)
		d := at(30*time.Second, ev.ID, 4)
		purchase(t, e.store, bought)
		cancel(t, e.store, dropped)

		// a, o and b have expired (b exactly now); c and d have not, and
		// purchased and cancelled holds never expire.
		e.clock.Set(start.Add(70 * time.Second))
		n, err = e.store.ReleaseExpired(t.Context(), 2)
		ok(t, "ReleaseExpired(2)", err)
		if n != 2 {
			t.Errorf("ReleaseExpired(2) = %d, want 2", n)
		}
		n, err = e.store.ReleaseExpired(t.Context(), 100)
		ok(t, "ReleaseExpired(100)", err)
		if n != 1 {
			t.Errorf("second ReleaseExpired(100) = %d, want 1", n)
		}
		n, err = e.store.ReleaseExpired(t.Context(), 100)
		ok(t, "ReleaseExpired(100)", err)
		if n != 0 {
			t.Errorf("third ReleaseExpired(100) = %d, want 0", n)
		}
		for r, status := range map[*ticketrush.Reservation]string{
			a: ticketrush.StatusExpired, o: ticketrush.StatusExpired, b: ticketrush.StatusExpired,
			c: ticketrush.StatusReserved, d: ticketrush.StatusReserved,
			bought: ticketrush.StatusPurchased, dropped: ticketrush.StatusCancelled,
		} {
			wantStatus(t, e.store, r, status)
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 20, Available: 12, Held: 7, Purchased: 1, Expired: 3, Cancelled: 1})
		wantStats(t, e.store, ticketrush.Stats{EventID: other.ID, Capacity: 20, Available: 20, Expired: 2})
		checkLedger(t, e.store, ev.ID, l)
		checkLedger(t, e.store, other.ID, l)

		// One microsecond before c's expiry it still counts; at it, it goes.
		e.clock.Set(c.ExpiresAt.Add(-time.Microsecond))
		if n := releaseAll(t, e.store); n != 0 {
			t.Errorf("released %d holds before their expiry", n)
		}
		e.clock.Set(c.ExpiresAt)
		if n := releaseAll(t, e.store); n != 1 {
			t.Errorf("released %d holds at c's expiry, want 1", n)
		}
		wantStatus(t, e.store, c, ticketrush.StatusExpired)
		wantStatus(t, e.store, d, ticketrush.StatusReserved)
	})

	t.Run("ExactlyOnce", func(t *testing.T) {
		// Several sweepers in two processes release the same expired
		// holds at once; each hold must be released exactly once.
		e := s.env(t)
		ne := concert(400)
		ne.HoldSeconds = 60
		events := []*ticketrush.Event{createEvent(t, e.store, ne), createEvent(t, e.store, ne), createEvent(t, e.store, ne)}
		l := newLedger()
		const expiring = 120
		reserveMany(t, e.r, l, events, expiring)
		e.clock.Advance(30 * time.Second)
		reserveMany(t, e.r, l, events, 15) // still held after the sweep
		e.clock.Advance(30 * time.Second)

		stores := []ticketrush.Store{e.store, e.openStore(t)}
		var released atomic.Int64
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				s := stores[i%2]
				for {
					n, err := s.ReleaseExpired(t.Context(), 7)
					if err != nil {
						t.Errorf("ReleaseExpired: %v", err)
						return
					}
					if n < 0 || n > 7 {
						t.Errorf("ReleaseExpired(7) = %d", n)
						return
					}
					if n == 0 {
						return
					}
					released.Add(int64(n))
				}
			})
		}
		wg.Wait()
		// A sweeper that found every remaining row locked may stop early;
		// the rest is released now, and the total must still be exact.
		total := released.Load() + int64(releaseAll(t, e.store))
		if total != expiring {
			t.Errorf("released %d holds in total, want exactly %d", total, expiring)
		}
		var expiredTickets int64
		for _, ev := range events {
			st := checkLedger(t, e.store, ev.ID, l)
			expiredTickets += st.Expired
		}
		var want int64
		for _, r := range l.all() {
			if !r.ExpiresAt.After(e.clock.Now()) {
				want += r.Amount
			}
		}
		if expiredTickets != want {
			t.Errorf("%d tickets expired, want %d", expiredTickets, want)
		}
	})
	t.Run("Contended", func(t *testing.T) {
		// Expired holds are released at once by their owners' purchases
		// and cancels, by sweepers and by reserves that need the stock,
		// from two processes. Each must come back on sale exactly once.
		e := s.env(t)
		ne := concert(300)
		ne.HoldSeconds = 60
		// Late reserves take 30 and then the rest at once.
		ne.MaxPerOrder = ticketrush.MaxAmount
		ev := createEvent(t, e.store, ne)
		l := newLedger()
		reserveMany(t, e.r, l, []*ticketrush.Event{ev}, 100)
		holds := l.all()
		e.clock.Advance(time.Minute)

		stores := []ticketrush.Store{e.store, e.openStore(t)}
		reservers := []ticketrush.Reserver{e.r, e.reserver(t, stores[1])}
		var granted atomic.Int64
		var wg sync.WaitGroup
		for i, h := range holds {
			wg.Go(func() {
				s := stores[i%2]
				var err error
				if i%3 == 0 {
					_, err = s.Cancel(t.Context(), h.ID, h.UserUID)
				} else {
					_, err = s.Purchase(t.Context(), h.ID, h.UserUID)
				}
				wantCode(t, "settling an expired hold", err, ticketrush.EExpired)
			})
		}
		for i := range 4 {
			wg.Go(func() {
				for {
					n, err := stores[i%2].ReleaseExpired(t.Context(), 5)
					if err != nil {
						t.Errorf("ReleaseExpired: %v", err)
						return
					}
					if n == 0 {
						return
					}
				}
			})
		}
		for i := range 10 {
			wg.Go(func() {
				rq := req(ev.ID, 30, visitor())
				res, err := reservers[i%2].Reserve(t.Context(), rq)
				switch {
				case err == nil:
					if checkGranted(t, rq, res) {
						l.add(t, res)
						granted.Add(res.Amount)
					}
				case ticketrush.ErrorCode(err) != ticketrush.ENotEnoughTickets:
					t.Errorf("Reserve(%+v): %v", rq, err)
				}
			})
		}
		wg.Wait()
		// Whatever the race left, every expired hold is releasable now:
		// the rest of the capacity must be for sale.
		if rest := ne.TicketQuantity - granted.Load(); rest > 0 {
			l.add(t, reserve(t, e.r, req(ev.ID, rest, visitor())))
		}
		releaseAll(t, e.store)
		for _, h := range holds {
			wantStatus(t, e.store, h, ticketrush.StatusExpired)
		}
		var expired int64
		for _, h := range holds {
			expired += h.Amount
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 300, Available: 0, Held: 300, Expired: expired})
		checkLedger(t, e.store, ev.ID, l)
	})
}

// reserveMany makes n holds of amounts 1…3 spread over events, from eight
// goroutines, and records them in l.
func reserveMany(t *testing.T, r ticketrush.Reserver, l *ledger, events []*ticketrush.Event, n int) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				rq := req(events[i%int64(len(events))].ID, 1+i%3, visitor())
				res, err := r.Reserve(t.Context(), rq)
				if err != nil {
					t.Errorf("Reserve(%+v): %v", rq, err)
					return
				}
				if checkGranted(t, rq, res) {
					l.add(t, res)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}
