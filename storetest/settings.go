package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// queuesOf returns the waiting-room half of a store, or stops the test: every
// backend must implement it.
func queuesOf(t *testing.T, s ticketrush.Store) ticketrush.Queues {
	t.Helper()
	q, ok := s.(ticketrush.Queues)
	if !ok {
		t.Fatalf("%T does not implement ticketrush.Queues", s)
	}
	return q
}

// update applies u to event id or stops the test.
func update(t *testing.T, s ticketrush.Store, id int64, u ticketrush.EventUpdate) *ticketrush.Event {
	t.Helper()
	ev, err := queuesOf(t, s).UpdateEvent(t.Context(), id, u)
	if err != nil {
		t.Fatalf("UpdateEvent(%d, %+v): %v", id, u, err)
	}
	return ev
}

func ptr[T any](v T) *T { return &v }

// testSettings covers the event settings an organiser changes after
// creating an event: max_per_order, hidden, sale_closed, the waiting room,
// and deleting an event.
func testSettings(t *testing.T, s suite) {
	e := s.env(t)
	t.Run("DefaultMaxPerOrder", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(100))
		if ev.MaxPerOrder != ticketrush.DefaultMaxPerOrder {
			t.Fatalf("max_per_order = %d, want the default %d", ev.MaxPerOrder, ticketrush.DefaultMaxPerOrder)
		}
		reserveErr(t, e.r, req(ev.ID, ticketrush.DefaultMaxPerOrder+1, visitor()), ticketrush.EOrderLimit)
		reserve(t, e.r, req(ev.ID, ticketrush.DefaultMaxPerOrder, visitor()))
		checkInvariant(t, e.store, ev.ID)
		wantAvailable(t, e.store, ev.ID, 100-ticketrush.DefaultMaxPerOrder)
	})
	t.Run("OrderLimitBeforeVisitorLimit", func(t *testing.T) {
		ne := concert(100)
		ne.MaxPerOrder = 3
		ne.MaxPerVisitor = 2
		ev := createEvent(t, e.store, ne)
		reserveErr(t, e.r, req(ev.ID, 4, visitor()), ticketrush.EOrderLimit)
		reserveErr(t, e.r, req(ev.ID, 3, visitor()), ticketrush.EVisitorLimit)
		wantAvailable(t, e.store, ev.ID, 100)
	})
	t.Run("Update", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		e.clock.Advance(time.Second)
		now := e.clock.Now()
		room := &ticketrush.WaitingRoom{AdmitPerMinute: 60, MaxActive: 5, PassSeconds: 120,
			PrequeueOpensAt: ptr(now.Add(time.Hour + 500*time.Nanosecond)), ChallengeBits: 12}
		got := update(t, e.store, ev.ID, ticketrush.EventUpdate{
			Name: ptr("Yeni Ad"), Hidden: ptr(true), SaleClosed: ptr(true), MaxPerOrder: ptr(int64(4)),
			SetWaitingRoom: true, WaitingRoom: room,
		})
		wantRoom := *room
		wantRoom.PrequeueOpensAt = ptr(room.PrequeueOpensAt.Truncate(time.Microsecond))
		want := *ev
		want.Name, want.Hidden, want.SaleClosed, want.MaxPerOrder = "Yeni Ad", true, true, 4
		want.WaitingRoom = &wantRoom
		want.UpdatedAt = now
		sameEvent(t, "UpdateEvent", got, &want)
		read, err := e.store.Event(t.Context(), ev.ID)
		ok(t, "Event", err)
		sameEvent(t, "Event after UpdateEvent", read, &want)

		// Fields left nil stay as they are; the room changes as a whole.
		e.clock.Advance(time.Second)
		got = update(t, e.store, ev.ID, ticketrush.EventUpdate{Hidden: ptr(false)})
		want.Hidden, want.UpdatedAt = false, e.clock.Now()
		sameEvent(t, "UpdateEvent hidden only", got, &want)
		paused := wantRoom
		paused.Paused = true
		got = update(t, e.store, ev.ID, ticketrush.EventUpdate{SetWaitingRoom: true, WaitingRoom: &paused})
		want.WaitingRoom = &paused
		sameEvent(t, "UpdateEvent paused", got, &want)
		got = update(t, e.store, ev.ID, ticketrush.EventUpdate{SetWaitingRoom: true})
		want.WaitingRoom = nil
		sameEvent(t, "UpdateEvent removing the room", got, &want)
		read, err = e.store.Event(t.Context(), ev.ID)
		ok(t, "Event", err)
		sameEvent(t, "Event after removing the room", read, &want)
	})
	t.Run("UpdateErrors", func(t *testing.T) {
		q := queuesOf(t, e.store)
		ev := createEvent(t, e.store, concert(10))
		_, err := q.UpdateEvent(t.Context(), 1<<40, ticketrush.EventUpdate{Name: ptr("x")})
		wantCode(t, "UpdateEvent of a missing event", err, ticketrush.EEventNotFound)
		for _, u := range []ticketrush.EventUpdate{
			{Name: ptr("  ")},
			{MaxPerOrder: ptr(int64(0))},
			{MaxPerOrder: ptr(int64(ticketrush.MaxAmount + 1))},
			{SetWaitingRoom: true, WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 0, PassSeconds: 300}},
		} {
			_, err := q.UpdateEvent(t.Context(), ev.ID, u)
			wantCode(t, "UpdateEvent with a bad field", err, ticketrush.EValidation)
		}
		read, err := e.store.Event(t.Context(), ev.ID)
		ok(t, "Event", err)
		sameEvent(t, "Event after refused updates", read, ev)
	})
	t.Run("SaleClosed", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		held := reserve(t, e.r, req(ev.ID, 2, visitor()))
		cancelled := reserve(t, e.r, req(ev.ID, 1, visitor()))
		update(t, e.store, ev.ID, ticketrush.EventUpdate{SaleClosed: ptr(true)})
		reserveErr(t, e.r, req(ev.ID, 1, visitor()), ticketrush.ESaleClosed)
		// Holds made before the close can still be bought or given back.
		purchase(t, e.store, held)
		cancel(t, e.store, cancelled)
		update(t, e.store, ev.ID, ticketrush.EventUpdate{SaleClosed: ptr(false)})
		reserve(t, e.r, req(ev.ID, 1, visitor()))
		checkInvariant(t, e.store, ev.ID)
	})
	t.Run("Hidden", func(t *testing.T) {
		ne := concert(10)
		ne.Hidden = true
		ev := createEvent(t, e.store, ne)
		if !ev.Hidden {
			t.Fatalf("created hidden, got %s", fmtEvent(ev))
		}
		// The store lists hidden events (the public listing filters them),
		// and they can be reserved like any other: hiding is about the list.
		all, err := e.store.Events(t.Context())
		ok(t, "Events", err)
		if !slices.ContainsFunc(all, func(x *ticketrush.Event) bool { return x.ID == ev.ID && x.Hidden }) {
			t.Errorf("Events does not list hidden event %d as hidden", ev.ID)
		}
		reserve(t, e.r, req(ev.ID, 1, visitor()))
	})
	t.Run("Delete", func(t *testing.T) {
		q := queuesOf(t, e.store)
		ne := concert(10)
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 60, PassSeconds: 300}
		unused := createEvent(t, e.store, ne)
		join(t, q, unused.ID, visitor())
		ok(t, "DeleteEvent", q.DeleteEvent(t.Context(), unused.ID))
		_, err := e.store.Event(t.Context(), unused.ID)
		wantCode(t, "Event after DeleteEvent", err, ticketrush.EEventNotFound)
		all, err := e.store.Events(t.Context())
		ok(t, "Events", err)
		if slices.ContainsFunc(all, func(x *ticketrush.Event) bool { return x.ID == unused.ID }) {
			t.Errorf("Events still lists deleted event %d", unused.ID)
		}
		_, err = q.QueueStats(t.Context(), unused.ID)
		wantCode(t, "QueueStats after DeleteEvent", err, ticketrush.EEventNotFound)
		wantCode(t, "DeleteEvent twice", q.DeleteEvent(t.Context(), unused.ID), ticketrush.EEventNotFound)
		// A deleted event's id is never given again: links, challenges
		// and passes made for it must not name another event.
		if next := createEvent(t, e.store, concert(10)); next.ID <= unused.ID {
			t.Errorf("an event created after deleting event %d got id %d", unused.ID, next.ID)
		}

		// Any reservation, even one given back, keeps the event: its
		// history is the organiser's record.
		used := createEvent(t, e.store, concert(10))
		cancel(t, e.store, reserve(t, e.r, req(used.ID, 1, visitor())))
		wantCode(t, "DeleteEvent with a reservation", q.DeleteEvent(t.Context(), used.ID), ticketrush.EEventHasReservations)
		if _, err := e.store.Event(t.Context(), used.ID); err != nil {
			t.Errorf("Event after a refused DeleteEvent: %v", err)
		}
	})
	t.Run("DeleteWhileReserving", func(t *testing.T) {
		// Deleting an event races its first reserves: either the delete
		// wins and no reserve is acknowledged, or a reserve wins and the
		// delete is refused. A deleted event never keeps a reservation
		// (a backend may not lean on a foreign key for this: it is the
		// event row's lock, which every reserve holds, that decides).
		q := queuesOf(t, e.store)
		deleted := 0
		for range 10 {
			ev := createEvent(t, e.store, concert(100))
			var wg sync.WaitGroup
			var mu sync.Mutex
			var acked []*ticketrush.Reservation
			start := make(chan struct{})
			for range 4 {
				wg.Go(func() {
					<-start
					for range 5 {
						res, err := e.r.Reserve(t.Context(), req(ev.ID, 1, visitor()))
						if err != nil {
							if ticketrush.ErrorCode(err) != ticketrush.EEventNotFound {
								t.Errorf("Reserve while deleting: %v", err)
							}
							return
						}
						mu.Lock()
						acked = append(acked, res)
						mu.Unlock()
					}
				})
			}
			var delErr error
			wg.Go(func() {
				<-start
				delErr = q.DeleteEvent(t.Context(), ev.ID)
			})
			close(start)
			wg.Wait()
			switch {
			case delErr == nil && len(acked) > 0:
				t.Fatalf("event %d deleted, yet %d reserves for it were acknowledged (first: %s)",
					ev.ID, len(acked), fmtReservation(acked[0]))
			case delErr == nil:
				deleted++
				_, err := e.store.Event(t.Context(), ev.ID)
				wantCode(t, "Event after DeleteEvent", err, ticketrush.EEventNotFound)
			default:
				wantCode(t, "DeleteEvent while reserving", delErr, ticketrush.EEventHasReservations)
				for _, r := range acked {
					readBack(t, e.store, r)
				}
				checkInvariant(t, e.store, ev.ID)
			}
		}
		t.Logf("the delete won %d of 10 races", deleted)
	})
}
