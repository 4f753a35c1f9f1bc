package storetest

import (
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// purchase buys a hold that must be purchasable.
func purchase(t *testing.T, s ticketrush.Store, r *ticketrush.Reservation) *ticketrush.Reservation {
	t.Helper()
	got, err := s.Purchase(t.Context(), r.ID, r.UserUID)
	if err != nil {
		t.Fatalf("Purchase(%d): %v", r.ID, err)
	}
	return got
}

// cancel cancels a hold that must be cancellable.
func cancel(t *testing.T, s ticketrush.Store, r *ticketrush.Reservation) *ticketrush.Reservation {
	t.Helper()
	got, err := s.Cancel(t.Context(), r.ID, r.UserUID)
	if err != nil {
		t.Fatalf("Cancel(%d): %v", r.ID, err)
	}
	return got
}

// purchaseErr tries to buy a hold as visitor, which must fail with code.
func purchaseErr(t *testing.T, s ticketrush.Store, id int64, visitor, code string) {
	t.Helper()
	got, err := s.Purchase(t.Context(), id, visitor)
	wantCode(t, "Purchase("+itoa(id)+")", err, code)
	if err != nil && got != nil {
		t.Errorf("Purchase(%d) returned %+v along with %v", id, got, err)
	}
}

// cancelErr tries to cancel a hold as visitor, which must fail with code.
func cancelErr(t *testing.T, s ticketrush.Store, id int64, visitor, code string) {
	t.Helper()
	got, err := s.Cancel(t.Context(), id, visitor)
	wantCode(t, "Cancel("+itoa(id)+")", err, code)
	if err != nil && got != nil {
		t.Errorf("Cancel(%d) returned %+v along with %v", id, got, err)
	}
}

// with returns a copy of r with another status and update time.
func with(r *ticketrush.Reservation, status string, updated time.Time) *ticketrush.Reservation {
	c := *r
	c.Status = status
	c.UpdatedAt = updated
	return &c
}

func testPurchase(t *testing.T, s suite) {
	e := s.env(t)
	shortHold := func(t *testing.T, quantity int64) *ticketrush.Event {
		ne := concert(quantity)
		ne.HoldSeconds = 60
		return createEvent(t, e.store, ne)
	}

	t.Run("OK", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		res := reserve(t, e.r, req(ev.ID, 2, visitor()))
		now := e.clock.Advance(10 * time.Second)
		got := purchase(t, e.store, res)
		want := with(res, ticketrush.StatusPurchased, now)
		sameReservation(t, "Purchase", got, want)
		sameReservation(t, "Reservation", readBack(t, e.store, res), want)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Purchased: 2})
	})

	t.Run("JustBeforeExpiry", func(t *testing.T) {
		ev := shortHold(t, 10)
		res := reserve(t, e.r, req(ev.ID, 2, visitor()))
		e.clock.Set(res.ExpiresAt.Add(-time.Microsecond))
		got := purchase(t, e.store, res)
		if got.Status != ticketrush.StatusPurchased {
			t.Errorf("status %q, want purchased", got.Status)
		}
		// A purchase is final: time passing and sweeps leave it alone.
		e.clock.Advance(time.Hour)
		releaseAll(t, e.store)
		wantStatus(t, e.store, res, ticketrush.StatusPurchased)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Purchased: 2})
	})

	t.Run("ErrAlreadyPurchased", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		res := reserve(t, e.r, req(ev.ID, 2, visitor()))
		bought := purchase(t, e.store, res)
		e.clock.Advance(time.Second)
		purchaseErr(t, e.store, res.ID, res.UserUID, ticketrush.EAlreadyPurchased)
		// Still so after the hold time has passed.
		e.clock.Advance(time.Hour)
		purchaseErr(t, e.store, res.ID, res.UserUID, ticketrush.EAlreadyPurchased)
		sameReservation(t, "Reservation", readBack(t, e.store, res), bought)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Purchased: 2})
	})

	t.Run("ErrReservationNotFound", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		res := reserve(t, e.r, req(ev.ID, 2, visitor()))
		purchaseErr(t, e.store, res.ID, visitor(), ticketrush.EReservationNotFound)
		purchaseErr(t, e.store, res.ID+1000, res.UserUID, ticketrush.EReservationNotFound)
		purchaseErr(t, e.store, 1<<40, res.UserUID, ticketrush.EReservationNotFound)
		sameReservation(t, "Reservation", readBack(t, e.store, res), res)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Held: 2})
	})

	t.Run("ErrCancelled", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		res := reserve(t, e.r, req(ev.ID, 2, visitor()))
		cancelled := cancel(t, e.store, res)
		purchaseErr(t, e.store, res.ID, res.UserUID, ticketrush.ECancelled)
		// A cancelled hold stays cancelled, not expired, after its time.
		e.clock.Advance(time.Hour)
		purchaseErr(t, e.store, res.ID, res.UserUID, ticketrush.ECancelled)
		sameReservation(t, "Reservation", readBack(t, e.store, res), cancelled)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 10, Cancelled: 2})
	})

	t.Run("ErrExpired", func(t *testing.T) {
		ev := shortHold(t, 10)
		res := reserve(t, e.r, req(ev.ID, 3, visitor()))
		keep := reserve(t, e.r, req(ev.ID, 2, visitor()))
		// At expires_at exactly the hold is over; the failed purchase
		// releases it without any sweep.
		e.clock.Set(res.ExpiresAt)
		now := e.clock.Now()
		purchaseErr(t, e.store, res.ID, res.UserUID, ticketrush.EExpired)
		got := readBack(t, e.store, res)
		if got.Status != ticketrush.StatusExpired {
			t.Errorf("after a late purchase the status is %q, want expired", got.Status)
		}
		if got.UpdatedAt.Before(res.UpdatedAt) || got.UpdatedAt.After(now) {
			t.Errorf("updated_at %v outside [%v, %v]", got.UpdatedAt, res.UpdatedAt, now)
		}
		// keep expired at the same moment but nobody touched it, and stock
		// was not short, so it may still be held: only res is certain.
		st := checkInvariant(t, e.store, ev.ID)
		if st.Expired < 3 || st.Held+st.Expired != 5 || st.Purchased != 0 {
			t.Errorf("stats %+v, want expired to include the 3 released tickets", *st)
		}
		purchaseErr(t, e.store, res.ID, res.UserUID, ticketrush.EExpired)
		purchaseErr(t, e.store, keep.ID, keep.UserUID, ticketrush.EExpired)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 10, Expired: 5})
	})

	t.Run("ErrExpiredAfterSweep", func(t *testing.T) {
		ev := shortHold(t, 10)
		res := reserve(t, e.r, req(ev.ID, 3, visitor()))
		e.clock.Set(res.ExpiresAt.Add(time.Second))
		releaseAll(t, e.store)
		purchaseErr(t, e.store, res.ID, res.UserUID, ticketrush.EExpired)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 10, Expired: 3})
	})
}

func testCancel(t *testing.T, s suite) {
	e := s.env(t)

	t.Run("OK", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(5))
		res := reserve(t, e.r, req(ev.ID, 5, visitor()))
		reserveErr(t, e.r, req(ev.ID, 1, visitor()), ticketrush.ENotEnoughTickets)
		now := e.clock.Advance(5 * time.Second)
		got := cancel(t, e.store, res)
		want := with(res, ticketrush.StatusCancelled, now)
		sameReservation(t, "Cancel", got, want)
		sameReservation(t, "Reservation", readBack(t, e.store, res), want)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 5, Available: 5, Cancelled: 5})
		// The tickets are on sale again at once.
		reserve(t, e.r, req(ev.ID, 5, visitor()))
	})

	t.Run("Twice", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(5))
		res := reserve(t, e.r, req(ev.ID, 2, visitor()))
		first := cancel(t, e.store, res)
		e.clock.Advance(time.Second)
		sameReservation(t, "second Cancel", cancel(t, e.store, res), first)
		// Even once its hold time has passed, a cancelled hold is not
		// expired, and its tickets come back only once.
		e.clock.Advance(time.Hour)
		sameReservation(t, "late Cancel", cancel(t, e.store, res), first)
		releaseAll(t, e.store)
		sameReservation(t, "Reservation", readBack(t, e.store, res), first)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 5, Available: 5, Cancelled: 2})
	})

	t.Run("ErrAlreadyPurchased", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(5))
		res := reserve(t, e.r, req(ev.ID, 2, visitor()))
		bought := purchase(t, e.store, res)
		cancelErr(t, e.store, res.ID, res.UserUID, ticketrush.EAlreadyPurchased)
		e.clock.Advance(time.Hour)
		cancelErr(t, e.store, res.ID, res.UserUID, ticketrush.EAlreadyPurchased)
		sameReservation(t, "Reservation", readBack(t, e.store, res), bought)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 5, Available: 3, Purchased: 2})
	})

	t.Run("ErrReservationNotFound", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(5))
		res := reserve(t, e.r, req(ev.ID, 2, visitor()))
		cancelErr(t, e.store, res.ID, visitor(), ticketrush.EReservationNotFound)
		cancelErr(t, e.store, res.ID+1000, res.UserUID, ticketrush.EReservationNotFound)
		cancelErr(t, e.store, 1<<40, res.UserUID, ticketrush.EReservationNotFound)
		sameReservation(t, "Reservation", readBack(t, e.store, res), res)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 5, Available: 3, Held: 2})
	})

	t.Run("ErrExpired", func(t *testing.T) {
		ne := concert(5)
		ne.HoldSeconds = 60
		ev := createEvent(t, e.store, ne)
		res := reserve(t, e.r, req(ev.ID, 2, visitor()))
		e.clock.Set(res.ExpiresAt)
		cancelErr(t, e.store, res.ID, res.UserUID, ticketrush.EExpired)
		wantStatus(t, e.store, res, ticketrush.StatusExpired)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 5, Available: 5, Expired: 2})
		// Again, and after a sweep: still expired, released only once.
		cancelErr(t, e.store, res.ID, res.UserUID, ticketrush.EExpired)
		releaseAll(t, e.store)
		cancelErr(t, e.store, res.ID, res.UserUID, ticketrush.EExpired)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 5, Available: 5, Expired: 2})
	})
}

func testReservation(t *testing.T, s suite) {
	e := s.env(t)
	ev := createEvent(t, e.store, concert(5))
	res := reserve(t, e.r, keyed(ev.ID, 2, visitor(), "read-1"))

	t.Run("OK", func(t *testing.T) {
		sameReservation(t, "Reservation", readBack(t, e.store, res), res)
	})
	t.Run("ErrReservationNotFound", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			id      int64
			visitor string
		}{
			{"OtherVisitor", res.ID, visitor()},
			{"Unknown", res.ID + 1000, res.UserUID},
			{"Zero", 0, res.UserUID},
			{"Negative", -1, res.UserUID},
		} {
			got, err := e.store.Reservation(t.Context(), tc.id, tc.visitor)
			wantCode(t, tc.name, err, ticketrush.EReservationNotFound)
			if got != nil {
				t.Errorf("%s: Reservation returned %+v along with %v", tc.name, got, err)
			}
		}
	})
	t.Run("SecondStore", func(t *testing.T) {
		// Another process on the same database reads the same row.
		other := e.openStore(t)
		sameReservation(t, "Reservation", readBack(t, other, res), res)
	})
}

// releaseAll sweeps until nothing expired is left and returns how many holds
// were released.
func releaseAll(t *testing.T, s ticketrush.Store) int {
	t.Helper()
	total := 0
	for {
		n, err := s.ReleaseExpired(t.Context(), 100)
		ok(t, "ReleaseExpired", err)
		if n < 0 || n > 100 {
			t.Fatalf("ReleaseExpired(100) = %d", n)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}
