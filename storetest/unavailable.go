package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// testUnavailable checks that every method, given a context whose deadline
// has passed, fails with EUnavailable (the client sees 503 and may retry)
// and changes nothing.
func testUnavailable(t *testing.T, s suite) {
	e := s.env(t)
	ev := createEvent(t, e.store, concert(10))
	res := reserve(t, e.store, keyed(ev.ID, 2, visitor(), "late"))

	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"CreateEvent", func() error { _, err := e.store.CreateEvent(ctx, concert(5)); return err }},
		{"Events", func() error { _, err := e.store.Events(ctx); return err }},
		{"Event", func() error { _, err := e.store.Event(ctx, ev.ID); return err }},
		{"Reserve", func() error { _, err := e.store.Reserve(ctx, req(ev.ID, 1, visitor())); return err }},
		{"ReserveBatch", func() error {
			_, err := e.store.ReserveBatch(ctx, ev.ID, []ticketrush.ReserveRequest{req(ev.ID, 1, visitor())})
			return err
		}},
		{"Reservation", func() error { _, err := e.store.Reservation(ctx, res.ID, res.UserUID); return err }},
		{"Purchase", func() error { _, err := e.store.Purchase(ctx, res.ID, res.UserUID); return err }},
		{"Cancel", func() error { _, err := e.store.Cancel(ctx, res.ID, res.UserUID); return err }},
		{"Stats", func() error { _, err := e.store.Stats(ctx, ev.ID); return err }},
		{"ReleaseExpired", func() error { _, err := e.store.ReleaseExpired(ctx, 10); return err }},
		{"Ping", func() error { return e.store.Ping(ctx) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.name+" past its deadline", tc.call(), ticketrush.EUnavailable)
		})
	}

	all, err := e.store.Events(t.Context())
	ok(t, "Events", err)
	if len(all) != 1 {
		t.Errorf("%d events after failed calls, want 1", len(all))
	}
	sameReservation(t, "Reservation", readBack(t, e.store, res), res)
	wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Held: 2})
}
