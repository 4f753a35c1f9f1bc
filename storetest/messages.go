package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// testMessages checks that every refusal carries the code and the exact
// words of the root package's constructor for it, so that a visitor reads
// the same sentence whichever backend and strategy serve the request.
func testMessages(t *testing.T, s suite) {
	e := s.env(t)
	ctx := t.Context()
	// same checks err against the canonical error want.
	same := func(t *testing.T, what string, err error, want *ticketrush.Error) {
		t.Helper()
		got, ok := errors.AsType[*ticketrush.Error](err)
		if !ok {
			t.Errorf("%s: error %v, want %q %q", what, err, want.Code, want.Message)
			return
		}
		if got.Code != want.Code || got.Message != want.Message {
			t.Errorf("%s: %q %q, want %q %q", what, got.Code, got.Message, want.Code, want.Message)
		}
	}
	hold := func(t *testing.T, ev *ticketrush.Event) *ticketrush.Reservation {
		return reserve(t, e.r, req(ev.ID, 1, visitor()))
	}

	t.Run("PurchaseTwice", func(t *testing.T) {
		res := hold(t, createEvent(t, e.store, concert(10)))
		purchase(t, e.store, res)
		_, err := e.store.Purchase(ctx, res.ID, res.UserUID)
		same(t, "second Purchase", err, ticketrush.ErrAlreadyPurchased())
	})
	t.Run("CancelAfterPurchase", func(t *testing.T) {
		res := hold(t, createEvent(t, e.store, concert(10)))
		purchase(t, e.store, res)
		_, err := e.store.Cancel(ctx, res.ID, res.UserUID)
		same(t, "Cancel of a purchase", err, ticketrush.ErrAlreadyPurchased())
	})
	t.Run("CancelTwice", func(t *testing.T) {
		// Not a refusal: a repeated cancel answers the cancelled hold.
		res := hold(t, createEvent(t, e.store, concert(10)))
		cancel(t, e.store, res)
		if got := cancel(t, e.store, res); got.Status != ticketrush.StatusCancelled {
			t.Errorf("second Cancel: status %q, want cancelled", got.Status)
		}
	})
	t.Run("PurchaseAfterCancel", func(t *testing.T) {
		res := hold(t, createEvent(t, e.store, concert(10)))
		cancel(t, e.store, res)
		_, err := e.store.Purchase(ctx, res.ID, res.UserUID)
		same(t, "Purchase of a cancelled hold", err, ticketrush.ErrCancelled())
	})
	t.Run("OthersReservation", func(t *testing.T) {
		res := hold(t, createEvent(t, e.store, concert(10)))
		other := visitor()
		_, err := e.store.Purchase(ctx, res.ID, other)
		same(t, "Purchase by another visitor", err, ticketrush.ErrReservationNotFound())
		_, err = e.store.Cancel(ctx, res.ID, other)
		same(t, "Cancel by another visitor", err, ticketrush.ErrReservationNotFound())
		_, err = e.store.Reservation(ctx, res.ID, other)
		same(t, "Reservation by another visitor", err, ticketrush.ErrReservationNotFound())
		_, err = e.store.Purchase(ctx, 1<<40, res.UserUID)
		same(t, "Purchase of an unknown id", err, ticketrush.ErrReservationNotFound())
	})
	t.Run("Expired", func(t *testing.T) {
		ne := concert(10)
		ne.HoldSeconds = 60
		ev := createEvent(t, e.store, ne)
		bought, cancelled := hold(t, ev), hold(t, ev)
		e.clock.Set(bought.ExpiresAt.Add(time.Second))
		_, err := e.store.Purchase(ctx, bought.ID, bought.UserUID)
		same(t, "Purchase after expiry", err, ticketrush.ErrExpired())
		_, err = e.store.Cancel(ctx, cancelled.ID, cancelled.UserUID)
		same(t, "Cancel after expiry", err, ticketrush.ErrExpired())
	})
	t.Run("Reserve", func(t *testing.T) {
		capped := concert(3)
		capped.MaxPerVisitor = 2
		ev := createEvent(t, e.store, capped)
		_, err := e.r.Reserve(ctx, req(ev.ID, 3, visitor()))
		same(t, "Reserve past the visitor limit", err, ticketrush.ErrVisitorLimit(2))
		reserve(t, e.r, req(ev.ID, 2, visitor()))
		_, err = e.r.Reserve(ctx, req(ev.ID, 2, visitor()))
		same(t, "Reserve past the stock", err, ticketrush.ErrNotEnoughTickets())
		_, err = e.r.Reserve(ctx, req(1<<40, 1, visitor()))
		same(t, "Reserve of an unknown event", err, ticketrush.ErrEventNotFound())

		later := concert(10)
		starts := e.clock.Now().Add(time.Hour)
		later.SaleStartsAt = &starts
		ev = createEvent(t, e.store, later)
		_, err = e.r.Reserve(ctx, req(ev.ID, 1, visitor()))
		same(t, "Reserve before the sale", err, ticketrush.ErrSaleNotStarted())
	})
	t.Run("EventNotFound", func(t *testing.T) {
		_, err := e.store.Event(ctx, 1<<40)
		same(t, "Event", err, ticketrush.ErrEventNotFound())
		_, err = e.store.Stats(ctx, 1<<40)
		same(t, "Stats", err, ticketrush.ErrEventNotFound())
	})
}
