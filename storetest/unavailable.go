package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// testUnavailable checks that every method whose deadline passes before it
// can do its work fails with EUnavailable (the client sees 503 and may
// retry) and changes nothing: given a context already past its deadline,
// and, for the methods that read the store's clock, with a deadline that
// fires while the call is stuck inside the store (the clock stalls until
// then).
func testUnavailable(t *testing.T, s suite) {
	e := s.env(t)
	ev := createEvent(t, e.store, concert(10))
	res := reserve(t, e.store, keyed(ev.ID, 2, visitor(), "late"))

	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
		// clocked methods read the clock: the blocked case applies.
		clocked bool
	}{
		{"CreateEvent", func(ctx context.Context) error { _, err := e.store.CreateEvent(ctx, concert(5)); return err }, true},
		{"Events", func(ctx context.Context) error { _, err := e.store.Events(ctx); return err }, false},
		{"Event", func(ctx context.Context) error { _, err := e.store.Event(ctx, ev.ID); return err }, false},
		{"Reserve", func(ctx context.Context) error { _, err := e.store.Reserve(ctx, req(ev.ID, 1, visitor())); return err }, true},
		{"ReserveBatch", func(ctx context.Context) error {
			_, err := e.store.ReserveBatch(ctx, ev.ID, []ticketrush.ReserveRequest{req(ev.ID, 1, visitor())})
			return err
		}, true},
		{"Reservation", func(ctx context.Context) error { _, err := e.store.Reservation(ctx, res.ID, res.UserUID); return err }, false},
		{"Purchase", func(ctx context.Context) error { _, err := e.store.Purchase(ctx, res.ID, res.UserUID); return err }, true},
		{"Cancel", func(ctx context.Context) error { _, err := e.store.Cancel(ctx, res.ID, res.UserUID); return err }, true},
		{"Stats", func(ctx context.Context) error { _, err := e.store.Stats(ctx, ev.ID); return err }, false},
		{"ReleaseExpired", func(ctx context.Context) error { _, err := e.store.ReleaseExpired(ctx, 10); return err }, true},
		{"Ping", func(ctx context.Context) error { return e.store.Ping(ctx) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
			defer cancel()
			wantCode(t, tc.name+" past its deadline", tc.call(ctx), ticketrush.EUnavailable)
		})
		if !tc.clocked {
			continue
		}
		t.Run(tc.name+"Blocked", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			e.clock.stallUntil(ctx.Done())
			err := tc.call(ctx)
			if e.clock.stallUntil(nil) == 0 {
				t.Fatalf("%s never read the store's clock: the case cannot block it", tc.name)
			}
			wantCode(t, tc.name+" whose deadline fired inside the store", err, ticketrush.EUnavailable)
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
