package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
)

// reserveBatches calls ReserveBatches and checks that it returns one
// well-formed result per request of each batch, in order. want holds the
// expected error code of each request, "" for a grant, or "?" where either
// a grant or EIdempotencyKeyReused is right (two events racing for one
// key where the backend decides events independently).
func reserveBatches(t *testing.T, s ticketrush.Store, batches []ticketrush.EventBatch, want [][]string) [][]*ticketrush.Reservation {
	t.Helper()
	results, err := s.ReserveBatches(t.Context(), batches)
	if err != nil {
		t.Fatalf("ReserveBatches(%d events): %v", len(batches), err)
	}
	if len(results) != len(batches) {
		t.Fatalf("ReserveBatches: %d result lists for %d events", len(results), len(batches))
	}
	out := make([][]*ticketrush.Reservation, len(batches))
	for k, b := range batches {
		if len(results[k]) != len(b.Reqs) {
			t.Fatalf("event %d: %d results for %d requests", b.EventID, len(results[k]), len(b.Reqs))
		}
		out[k] = make([]*ticketrush.Reservation, len(b.Reqs))
		for i, res := range results[k] {
			if (res.Reservation == nil) == (res.Err == nil) {
				t.Errorf("event %d result %d: reservation %+v and error %v; want exactly one", b.EventID, i, res.Reservation, res.Err)
				continue
			}
			code := ticketrush.ErrorCode(res.Err)
			if want[k][i] == "?" {
				if code != "" && code != ticketrush.EIdempotencyKeyReused {
					t.Errorf("event %d result %d for %+v: error %v, want a grant or %s", b.EventID, i, b.Reqs[i], res.Err, ticketrush.EIdempotencyKeyReused)
				}
			} else if code != want[k][i] {
				t.Errorf("event %d result %d for %+v: error %v (code %q), want code %q", b.EventID, i, b.Reqs[i], res.Err, code, want[k][i])
				continue
			}
			if res.Reservation != nil && checkGranted(t, b.Reqs[i], res.Reservation) {
				out[k][i] = res.Reservation
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// testReserveBatches is group commit over several events at once: each
// event's requests are decided as its own batch would be, whatever the
// other events of the call and their order.
func testReserveBatches(t *testing.T, s suite) {
	e := s.env(t)
	const granted = ""

	t.Run("ManyEvents", func(t *testing.T) {
		plain := createEvent(t, e.store, concert(10))
		cappedEvent := concert(50)
		cappedEvent.MaxPerVisitor = 4
		capped := createEvent(t, e.store, cappedEvent)
		sale := e.clock.Now().Add(time.Hour)
		later := concert(10)
		later.SaleStartsAt = &sale
		notYet := createEvent(t, e.store, later)
		short := concert(3)
		short.HoldSeconds = 60
		expiring := createEvent(t, e.store, short)
		old := reserve(t, e.store, req(expiring.ID, 3, visitor()))
		e.clock.Advance(time.Minute)
		missing := expiring.ID + 1000

		v1, v2 := visitor(), visitor()
		// Given out of id order: the store must not depend on it.
		batches := []ticketrush.EventBatch{
			{EventID: expiring.ID, Reqs: []ticketrush.ReserveRequest{
				req(expiring.ID, 2, visitor()), req(expiring.ID, 1, visitor()), req(expiring.ID, 1, visitor()),
			}},
			{EventID: missing, Reqs: []ticketrush.ReserveRequest{req(missing, 1, visitor())}},
			{EventID: capped.ID, Reqs: []ticketrush.ReserveRequest{
				req(capped.ID, 3, v1), req(capped.ID, 2, v1), keyed(capped.ID, 1, v1, "k"), keyed(capped.ID, 1, v1, "k"),
			}},
			{EventID: plain.ID, Reqs: []ticketrush.ReserveRequest{
				req(plain.ID, 3, v1), req(plain.ID, 8, visitor()), req(plain.ID, 7, visitor()),
			}},
			{EventID: notYet.ID, Reqs: []ticketrush.ReserveRequest{req(notYet.ID, 1, v2)}},
		}
		got := reserveBatches(t, e.store, batches, [][]string{
			{granted, granted, ticketrush.ENotEnoughTickets},
			{ticketrush.EEventNotFound},
			{granted, ticketrush.EVisitorLimit, granted, granted},
			{granted, ticketrush.ENotEnoughTickets, granted},
			{ticketrush.ESaleNotStarted},
		})
		// The key's repeat in the batch is the same reservation.
		sameReservation(t, "repeat in batch", got[2][3], got[2][2])
		// v1's hold of 3 on the plain event does not count on the capped
		// one: caps are per event.
		ids := map[int64]bool{}
		for _, rs := range got {
			for _, r := range rs {
				if r == nil || r == got[2][3] {
					continue
				}
				if ids[r.ID] {
					t.Errorf("id %d given twice", r.ID)
				}
				ids[r.ID] = true
				sameReservation(t, "read back", readBack(t, e.store, r), r)
			}
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: plain.ID, Capacity: 10, Available: 0, Held: 10})
		wantStats(t, e.store, ticketrush.Stats{EventID: capped.ID, Capacity: 50, Available: 46, Held: 4})
		wantStats(t, e.store, ticketrush.Stats{EventID: notYet.ID, Capacity: 10, Available: 10})
		wantStats(t, e.store, ticketrush.Stats{EventID: expiring.ID, Capacity: 3, Available: 0, Held: 3, Expired: 3})
		wantStatus(t, e.store, old, ticketrush.StatusExpired)
	})

	t.Run("KeyAcrossEvents", func(t *testing.T) {
		// An Idempotency-Key belongs to its visitor across events: used
		// for two events in one call, one of them gets it and the other is
		// refused, and a later call agrees with whichever got it.
		a := createEvent(t, e.store, concert(10))
		b := createEvent(t, e.store, concert(10))
		v := visitor()
		got := reserveBatches(t, e.store, []ticketrush.EventBatch{
			{EventID: a.ID, Reqs: []ticketrush.ReserveRequest{keyed(a.ID, 1, v, "shared")}},
			{EventID: b.ID, Reqs: []ticketrush.ReserveRequest{keyed(b.ID, 1, v, "shared")}},
		}, [][]string{{"?"}, {"?"}})
		winner, loser := got[0][0], b
		if winner == nil {
			winner, loser = got[1][0], a
		} else if got[1][0] != nil {
			t.Fatalf("one key granted for two events: %s and %s", fmtReservation(got[0][0]), fmtReservation(got[1][0]))
		}
		if winner == nil {
			t.Fatal("neither event got the key")
		}
		reserveErr(t, e.store, keyed(loser.ID, 1, v, "shared"), ticketrush.EIdempotencyKeyReused)
		sameReservation(t, "repeat", reserve(t, e.store, keyed(winner.EventID, 1, v, "shared")), winner)
		wantAvailable(t, e.store, winner.EventID, 9)
		wantAvailable(t, e.store, loser.ID, 10)
	})

	t.Run("ErrTwoBatchesOneEvent", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		_, err := e.store.ReserveBatches(t.Context(), []ticketrush.EventBatch{
			{EventID: ev.ID, Reqs: []ticketrush.ReserveRequest{req(ev.ID, 1, visitor())}},
			{EventID: ev.ID, Reqs: []ticketrush.ReserveRequest{req(ev.ID, 1, visitor())}},
		})
		if err == nil {
			t.Error("ReserveBatches with one event twice succeeded")
		}
		wantAvailable(t, e.store, ev.ID, 10)
	})

	t.Run("TwoProcesses", func(t *testing.T) {
		// Two processes, each with its batcher, reserve across the same
		// events at once, each event's stock short of the demand: every
		// event ends exactly sold out, never oversold, and each
		// acknowledged hold is stored.
		const events, stock = 5, 40
		var evs []*ticketrush.Event
		for range events {
			evs = append(evs, createEvent(t, e.store, concert(stock)))
		}
		l := newLedger()
		var wg sync.WaitGroup
		for p, s := range []ticketrush.Store{e.store, e.openStore(t)} {
			b := batch.New(s, batch.Options{Timeout: time.Minute})
			t.Cleanup(b.Close)
			for g := range 60 {
				wg.Go(func() {
					ev := evs[(g+p)%events]
					rq := req(ev.ID, int64(1+g%4), visitor())
					res, err := b.Reserve(context.Background(), rq)
					switch code := ticketrush.ErrorCode(err); {
					case err == nil:
						if checkGranted(t, rq, res) {
							l.add(t, res)
						}
					case code != ticketrush.ENotEnoughTickets:
						t.Errorf("Reserve(%+v): %v", rq, err)
					}
				})
			}
		}
		wg.Wait()
		for _, ev := range evs {
			if sum := l.sum(ev.ID); sum > stock {
				t.Errorf("event %d: %d tickets granted of %d", ev.ID, sum, stock)
			}
			checkLedger(t, e.store, ev.ID, l)
		}
	})
}

// testBatcherEvents is the batcher over several events: what is queued
// for any event while a transaction runs goes into the next one together.
func testBatcherEvents(t *testing.T, s suite) {
	e := s.env(t)

	t.Run("OneTransaction", func(t *testing.T) {
		g := newGatedStore(e.store)
		defer g.open()
		reg := prometheus.NewRegistry()
		b := batch.New(g, batch.Options{Metrics: batch.NewMetrics(reg), Timeout: time.Minute})
		var evs []*ticketrush.Event
		for range 4 {
			evs = append(evs, createEvent(t, e.store, concert(10)))
		}
		first := make(chan reserved, 1)
		go func() {
			res, err := b.Reserve(t.Context(), req(evs[0].ID, 1, visitor()))
			first <- reserved{res, err}
		}()
		<-g.entered
		done := make(chan reserved, 6)
		var rqs []ticketrush.ReserveRequest
		for i, ev := range []*ticketrush.Event{evs[3], evs[1], evs[2], evs[1], evs[0], evs[3]} {
			rq := req(ev.ID, int64(1+i%3), visitor())
			rqs = append(rqs, rq)
			go func() {
				res, err := b.Reserve(t.Context(), rq)
				done <- reserved{res, err}
			}()
			// In turn, so that each event's arrival order is known.
			waitQueued(t, reg, i+1)
		}
		g.release <- nil
		l := newLedger()
		if got := <-first; got.err != nil {
			t.Fatalf("first batch: %v", got.err)
		} else {
			l.add(t, got.res)
		}
		next := <-g.entered
		if len(next) != len(rqs) {
			t.Errorf("the second transaction has %d requests, want all %d queued for 4 events", len(next), len(rqs))
		}
		g.open()
		for range rqs {
			got := <-done
			if got.err != nil {
				t.Fatalf("Reserve: %v", got.err)
			}
			l.add(t, got.res)
		}
		b.Close()
		for _, ev := range evs {
			checkLedger(t, e.store, ev.ID, l)
		}
	})
}
