package storetest

import (
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

func testReserve(t *testing.T, s suite) {
	e := s.env(t)

	t.Run("OK", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		e.clock.Advance(1500 * time.Millisecond)
		now := e.clock.Now()
		v := visitor()
		res := reserve(t, e.r, req(ev.ID, 3, v))
		want := &ticketrush.Reservation{
			ID: res.ID, EventID: ev.ID, UserUID: v, Status: ticketrush.StatusReserved, Amount: 3,
			ExpiresAt: now.Add(300 * time.Second), CreatedAt: now, UpdatedAt: now,
		}
		sameReservation(t, "Reserve", res, want)
		sameReservation(t, "Reservation", readBack(t, e.store, res), want)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 7, Held: 3})

		// A second hold gets its own id and its own expiry.
		e.clock.Advance(time.Second)
		res2 := reserve(t, e.r, req(ev.ID, 7, visitor()))
		if res2.ID == res.ID {
			t.Errorf("two reservations share id %d", res.ID)
		}
		if want := e.clock.Now().Add(300 * time.Second); !res2.ExpiresAt.Equal(want) {
			t.Errorf("expires_at %v, want %v", res2.ExpiresAt, want)
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 0, Held: 10})
	})

	t.Run("ErrNotEnoughTickets", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(5))
		reserve(t, e.r, req(ev.ID, 4, visitor()))
		reserveErr(t, e.r, req(ev.ID, 2, visitor()), ticketrush.ENotEnoughTickets)
		wantAvailable(t, e.store, ev.ID, 1)
		// A smaller request still fits after a refused one.
		reserve(t, e.r, req(ev.ID, 1, visitor()))
		reserveErr(t, e.r, req(ev.ID, 1, visitor()), ticketrush.ENotEnoughTickets)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 5, Available: 0, Held: 5})

		big := createEvent(t, e.store, concert(3))
		reserveErr(t, e.r, req(big.ID, 4, visitor()), ticketrush.ENotEnoughTickets)
		wantStats(t, e.store, ticketrush.Stats{EventID: big.ID, Capacity: 3, Available: 3})
	})

	t.Run("ErrEventNotFound", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(5))
		reserveErr(t, e.r, req(ev.ID+1000, 1, visitor()), ticketrush.EEventNotFound)
		reserveErr(t, e.r, req(1<<40, 1, visitor()), ticketrush.EEventNotFound)
		wantAvailable(t, e.store, ev.ID, 5)
	})

	t.Run("ErrSaleNotStarted", func(t *testing.T) {
		sale := e.clock.Now().Add(time.Hour)
		ne := concert(5)
		ne.SaleStartsAt = &sale
		ev := createEvent(t, e.store, ne)
		reserveErr(t, e.r, req(ev.ID, 1, visitor()), ticketrush.ESaleNotStarted)
		e.clock.Set(sale.Add(-time.Microsecond))
		reserveErr(t, e.r, req(ev.ID, 1, visitor()), ticketrush.ESaleNotStarted)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 5, Available: 5})
		// The sale is open from sale_starts_at itself.
		e.clock.Set(sale)
		reserve(t, e.r, req(ev.ID, 2, visitor()))
		e.clock.Advance(time.Minute)
		reserve(t, e.r, req(ev.ID, 3, visitor()))
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 5, Available: 0, Held: 5})
	})

	t.Run("ErrVisitorLimit", func(t *testing.T) {
		ne := concert(20)
		ne.MaxPerVisitor = 4
		ev := createEvent(t, e.store, ne)
		a, b := visitor(), visitor()
		first := reserve(t, e.r, req(ev.ID, 3, a))
		reserveErr(t, e.r, req(ev.ID, 2, a), ticketrush.EVisitorLimit)
		reserve(t, e.r, req(ev.ID, 1, a))
		reserveErr(t, e.r, req(ev.ID, 1, a), ticketrush.EVisitorLimit)
		// Purchased tickets count too.
		_, err := e.store.Purchase(t.Context(), first.ID, a)
		ok(t, "Purchase", err)
		reserveErr(t, e.r, req(ev.ID, 1, a), ticketrush.EVisitorLimit)
		// Another visitor has a limit of their own; one request above the
		// limit is refused even with stock left.
		reserveErr(t, e.r, req(ev.ID, 5, b), ticketrush.EVisitorLimit)
		reserve(t, e.r, req(ev.ID, 4, b))
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 20, Available: 12, Held: 5, Purchased: 3})
	})

	t.Run("VisitorLimitAfterExpiry", func(t *testing.T) {
		ne := concert(20)
		ne.MaxPerVisitor = 4
		ne.HoldSeconds = 60
		ev := createEvent(t, e.store, ne)
		a := visitor()
		reserve(t, e.r, req(ev.ID, 4, a))
		e.clock.Advance(time.Minute - time.Microsecond)
		reserveErr(t, e.r, req(ev.ID, 1, a), ticketrush.EVisitorLimit)
		// At expires_at the hold no longer counts, swept or not.
		e.clock.Advance(time.Microsecond)
		reserve(t, e.r, req(ev.ID, 4, a))
		reserveErr(t, e.r, req(ev.ID, 1, a), ticketrush.EVisitorLimit)
		checkInvariant(t, e.store, ev.ID)
	})

	t.Run("VisitorLimitAfterCancel", func(t *testing.T) {
		ne := concert(20)
		ne.MaxPerVisitor = 4
		ev := createEvent(t, e.store, ne)
		a := visitor()
		res := reserve(t, e.r, req(ev.ID, 4, a))
		reserveErr(t, e.r, req(ev.ID, 1, a), ticketrush.EVisitorLimit)
		_, err := e.store.Cancel(t.Context(), res.ID, a)
		ok(t, "Cancel", err)
		reserve(t, e.r, req(ev.ID, 4, a))
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 20, Available: 16, Held: 4, Cancelled: 4})
	})

	t.Run("ErrorOrder", func(t *testing.T) {
		// The rules apply in the order of ticketrush.Decide: sale start,
		// then the visitor limit, then stock.
		sale := e.clock.Now().Add(time.Hour)
		ne := concert(2)
		ne.MaxPerVisitor = 3
		ne.SaleStartsAt = &sale
		ev := createEvent(t, e.store, ne)
		reserveErr(t, e.r, req(ev.ID, 5, visitor()), ticketrush.ESaleNotStarted)
		e.clock.Set(sale)
		reserveErr(t, e.r, req(ev.ID, 4, visitor()), ticketrush.EVisitorLimit)
		reserveErr(t, e.r, req(ev.ID, 3, visitor()), ticketrush.ENotEnoughTickets)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 2, Available: 2})
	})

	t.Run("EventsAreIndependent", func(t *testing.T) {
		ev1 := createEvent(t, e.store, concert(3))
		ev2 := createEvent(t, e.store, concert(3))
		reserve(t, e.r, req(ev1.ID, 3, visitor()))
		reserveErr(t, e.r, req(ev1.ID, 1, visitor()), ticketrush.ENotEnoughTickets)
		reserve(t, e.r, req(ev2.ID, 2, visitor()))
		wantStats(t, e.store, ticketrush.Stats{EventID: ev1.ID, Capacity: 3, Available: 0, Held: 3})
		wantStats(t, e.store, ticketrush.Stats{EventID: ev2.ID, Capacity: 3, Available: 1, Held: 2})
	})
}

func testIdempotency(t *testing.T, s suite) {
	e := s.env(t)

	t.Run("SameBody", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		v := visitor()
		first := reserve(t, e.r, keyed(ev.ID, 2, v, "key-1"))
		e.clock.Advance(time.Second)
		again := reserve(t, e.r, keyed(ev.ID, 2, v, "key-1"))
		sameReservation(t, "repeated Reserve", again, first)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Held: 2})
	})

	t.Run("ErrIdempotencyKeyReused", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		other := createEvent(t, e.store, concert(10))
		v := visitor()
		reserve(t, e.r, keyed(ev.ID, 2, v, "key-2"))
		reserveErr(t, e.r, keyed(ev.ID, 3, v, "key-2"), ticketrush.EIdempotencyKeyReused)
		// The key belongs to the visitor, not to the event: the body
		// includes the event.
		reserveErr(t, e.r, keyed(other.ID, 2, v, "key-2"), ticketrush.EIdempotencyKeyReused)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Held: 2})
		wantStats(t, e.store, ticketrush.Stats{EventID: other.ID, Capacity: 10, Available: 10})
	})

	t.Run("OtherVisitor", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		a := reserve(t, e.r, keyed(ev.ID, 2, visitor(), "key-3"))
		b := reserve(t, e.r, keyed(ev.ID, 3, visitor(), "key-3"))
		if a.ID == b.ID {
			t.Errorf("two visitors using one key got the same reservation %d", a.ID)
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 5, Held: 5})
	})

	t.Run("WithoutKey", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		v := visitor()
		a := reserve(t, e.r, req(ev.ID, 2, v))
		b := reserve(t, e.r, req(ev.ID, 2, v))
		if a.ID == b.ID {
			t.Errorf("two reserves without a key got the same reservation %d", a.ID)
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 6, Held: 4})
	})

	t.Run("SoldOutAndAtLimit", func(t *testing.T) {
		// A repeat returns the first reservation even though the same
		// request would now be refused.
		ne := concert(4)
		ne.MaxPerVisitor = 4
		ev := createEvent(t, e.store, ne)
		v := visitor()
		first := reserve(t, e.r, keyed(ev.ID, 4, v, "key-4"))
		again := reserve(t, e.r, keyed(ev.ID, 4, v, "key-4"))
		sameReservation(t, "repeated Reserve", again, first)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 4, Available: 0, Held: 4})
	})

	t.Run("AfterExpiry", func(t *testing.T) {
		ne := concert(10)
		ne.HoldSeconds = 60
		ev := createEvent(t, e.store, ne)
		v := visitor()
		first := reserve(t, e.r, keyed(ev.ID, 2, v, "key-5"))
		e.clock.Advance(61 * time.Second)
		again := reserve(t, e.r, keyed(ev.ID, 2, v, "key-5"))
		// The status may be expired or still reserved (not yet swept); it
		// is the same hold either way and takes nothing more.
		if again.ID != first.ID || again.Amount != first.Amount {
			t.Errorf("repeat after expiry = %s, want reservation %d", fmtReservation(again), first.ID)
		}
		reserveErr(t, e.r, keyed(ev.ID, 3, v, "key-5"), ticketrush.EIdempotencyKeyReused)
		st := checkInvariant(t, e.store, ev.ID)
		if total := st.Held + st.Purchased + st.Expired + st.Cancelled; total != 2 {
			t.Errorf("stats %+v count %d tickets in reservations, want 2", *st, total)
		}
	})

	t.Run("AfterPurchase", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		v := visitor()
		first := reserve(t, e.r, keyed(ev.ID, 2, v, "key-6"))
		bought, err := e.store.Purchase(t.Context(), first.ID, v)
		ok(t, "Purchase", err)
		again := reserve(t, e.r, keyed(ev.ID, 2, v, "key-6"))
		sameReservation(t, "repeat after purchase", again, bought)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Purchased: 2})
	})
}
