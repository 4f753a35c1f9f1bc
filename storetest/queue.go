package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// roomEvent creates an event of quantity tickets with a waiting room that
// admits perMinute visitors a minute, no active cap, 5-minute passes and no
// challenge, on sale at once.
func roomEvent(t *testing.T, s ticketrush.Store, quantity, perMinute int64) *ticketrush.Event {
	t.Helper()
	ne := concert(quantity)
	ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: perMinute, PassSeconds: 300}
	return createEvent(t, s, ne)
}

// joinAll joins visitors to the event's queue in one batch; every join must
// succeed.
func joinAll(t *testing.T, q ticketrush.Queues, eventID int64, visitors ...string) []ticketrush.JoinResult {
	t.Helper()
	reqs := make([]ticketrush.JoinRequest, len(visitors))
	for i, v := range visitors {
		reqs[i] = ticketrush.JoinRequest{Visitor: v}
	}
	res, err := q.JoinQueue(t.Context(), eventID, reqs)
	if err != nil {
		t.Fatalf("JoinQueue(%d, %d visitors): %v", eventID, len(visitors), err)
	}
	if len(res) != len(reqs) {
		t.Fatalf("JoinQueue: %d results for %d requests", len(res), len(reqs))
	}
	for i, r := range res {
		if r.Err != nil || r.Entry == nil {
			t.Fatalf("JoinQueue result %d = %+v, want an entry", i, r)
		}
		if r.Entry.EventID != eventID || r.Entry.Visitor != visitors[i] {
			t.Fatalf("JoinQueue result %d is for event %d visitor %s, want %d %s",
				i, r.Entry.EventID, r.Entry.Visitor, eventID, visitors[i])
		}
		checkTimes(t, "queue entry", r.Entry.JoinedAt)
	}
	return res
}

// join joins one visitor, which must succeed.
func join(t *testing.T, q ticketrush.Queues, eventID int64, v string) ticketrush.JoinResult {
	t.Helper()
	return joinAll(t, q, eventID, v)[0]
}

// joinErr joins one visitor, which must fail with code.
func joinErr(t *testing.T, q ticketrush.Queues, eventID int64, jr ticketrush.JoinRequest, code string) {
	t.Helper()
	res, err := q.JoinQueue(t.Context(), eventID, []ticketrush.JoinRequest{jr})
	if err != nil {
		t.Fatalf("JoinQueue: %v", err)
	}
	if len(res) != 1 {
		t.Fatalf("JoinQueue: %d results for 1 request", len(res))
	}
	wantCode(t, "JoinQueue", res[0].Err, code)
	if res[0].Entry != nil {
		t.Errorf("JoinQueue returned %+v along with %v", res[0].Entry, res[0].Err)
	}
}

// entryOf reads a visitor's entry, which must exist.
func entryOf(t *testing.T, q ticketrush.Queues, eventID int64, v string) *ticketrush.QueueEntry {
	t.Helper()
	en, err := q.QueueEntry(t.Context(), eventID, v)
	if err != nil {
		t.Fatalf("QueueEntry(%d, %s): %v", eventID, v, err)
	}
	if en.EventID != eventID || en.Visitor != v {
		t.Fatalf("QueueEntry(%d, %s) = %+v, want that visitor's entry", eventID, v, en)
	}
	return en
}

// wantState checks a visitor's entry state.
func wantState(t *testing.T, q ticketrush.Queues, eventID int64, v, state string) *ticketrush.QueueEntry {
	t.Helper()
	en := entryOf(t, q, eventID, v)
	if en.State != state {
		t.Errorf("entry of %s: state %q (position %d), want %q", v, en.State, en.Position, state)
	}
	return en
}

// advance does one queue step, which must succeed.
func advance(t *testing.T, q ticketrush.Queues, eventID int64) *ticketrush.QueueAdvance {
	t.Helper()
	a, err := q.AdvanceQueue(t.Context(), eventID)
	if err != nil {
		t.Fatalf("AdvanceQueue(%d): %v", eventID, err)
	}
	return a
}

// settleQueue advances the queue at the current instant until a step admits,
// shuffles and expires nothing and has no more work, and returns how many
// it admitted in all.
func settleQueue(t *testing.T, q ticketrush.Queues, eventID int64) int {
	t.Helper()
	admitted := 0
	for range 10_000 {
		a := advance(t, q, eventID)
		admitted += a.Admitted
		if !a.More && a.Admitted == 0 && a.Shuffled == 0 && a.Expired == 0 {
			return admitted
		}
	}
	t.Fatalf("AdvanceQueue(%d) never settled", eventID)
	return 0
}

func queueStats(t *testing.T, q ticketrush.Queues, eventID int64) *ticketrush.QueueStats {
	t.Helper()
	st, err := q.QueueStats(t.Context(), eventID)
	if err != nil {
		t.Fatalf("QueueStats(%d): %v", eventID, err)
	}
	if st.EventID != eventID {
		t.Fatalf("QueueStats(%d) is for event %d", eventID, st.EventID)
	}
	return st
}

// withPass is a reserve request that carries the pass of entry en.
func withPass(en *ticketrush.QueueEntry, amount int64) ticketrush.ReserveRequest {
	return ticketrush.ReserveRequest{EventID: en.EventID, Amount: amount, VisitorToken: en.Visitor, Admission: en.Attempt}
}

func visitors(n int) []string {
	vs := make([]string, n)
	for i := range vs {
		vs[i] = visitor()
	}
	return vs
}

// testQueue covers the waiting room: joins, positions, the pre-queue's
// shuffle, admission by rate and by active cap, passes used by reserves, and
// several processes advancing one queue.
func testQueue(t *testing.T, s suite) {
	e := s.env(t)
	q := queuesOf(t, e.store)

	t.Run("NoWaitingRoom", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		joinErr(t, q, ev.ID, ticketrush.JoinRequest{Visitor: visitor()}, ticketrush.EWaitingRoomNotFound)
		_, err := q.QueueEntry(t.Context(), ev.ID, visitor())
		wantCode(t, "QueueEntry", err, ticketrush.EWaitingRoomNotFound)
		_, err = q.QueueStats(t.Context(), ev.ID)
		wantCode(t, "QueueStats", err, ticketrush.EWaitingRoomNotFound)
		_, err = q.AdvanceQueue(t.Context(), ev.ID)
		wantCode(t, "AdvanceQueue", err, ticketrush.EWaitingRoomNotFound)
		// Without a room a reserve needs no pass.
		reserve(t, e.r, req(ev.ID, 1, visitor()))

		missing := int64(1 << 40)
		joinErr(t, q, missing, ticketrush.JoinRequest{Visitor: visitor()}, ticketrush.EEventNotFound)
		_, err = q.QueueEntry(t.Context(), missing, visitor())
		wantCode(t, "QueueEntry of a missing event", err, ticketrush.EEventNotFound)
		_, err = q.QueueStats(t.Context(), missing)
		wantCode(t, "QueueStats of a missing event", err, ticketrush.EEventNotFound)
		_, err = q.AdvanceQueue(t.Context(), missing)
		wantCode(t, "AdvanceQueue of a missing event", err, ticketrush.EEventNotFound)
	})

	t.Run("JoinInOrder", func(t *testing.T) {
		ev := roomEvent(t, e.store, 10, 60)
		vs := visitors(3)
		now := e.clock.Now()
		res := joinAll(t, q, ev.ID, vs...)
		res = append(res, join(t, q, ev.ID, visitor()))
		for i, r := range res {
			en := r.Entry
			if !r.Created || en.State != ticketrush.QueueWaiting || en.Position != int64(i+1) ||
				en.Attempt != 1 || !en.JoinedAt.Equal(now) || en.AdmittedAt != nil || en.ReservationID != 0 {
				t.Errorf("join %d = %+v created %v; want a new waiting entry at position %d joined at %v",
					i, en, r.Created, i+1, now)
			}
		}
		// A repeat join keeps the place, in a later batch or the same one.
		e.clock.Advance(time.Second)
		again := joinAll(t, q, ev.ID, vs[1], vs[1], vs[0])
		for i, want := range []int64{2, 2, 1} {
			if again[i].Created || again[i].Entry.Position != want || !again[i].Entry.JoinedAt.Equal(now) {
				t.Errorf("repeat join %d = %+v created %v, want the place %d from the first join",
					i, again[i].Entry, again[i].Created, want)
			}
		}
		fresh := join(t, q, ev.ID, visitor())
		if !fresh.Created || fresh.Entry.Position != 5 {
			t.Errorf("a new visitor after repeats got %+v, want position 5", fresh.Entry)
		}
		en := wantState(t, q, ev.ID, vs[2], ticketrush.QueueWaiting)
		if en.Position != 3 {
			t.Errorf("QueueEntry position %d, want 3", en.Position)
		}
		_, err := q.QueueEntry(t.Context(), ev.ID, visitor())
		wantCode(t, "QueueEntry of a visitor who never joined", err, ticketrush.ENotInQueue)

		st := queueStats(t, q, ev.ID)
		if st.Waiting != 5 || st.Tail != 5 || st.Serving != 0 || !st.Shuffled || st.Prequeue != 0 ||
			st.Admitted != 0 || st.Active != 0 || st.Available != 10 || st.Held != 0 {
			t.Errorf("QueueStats = %+v, want 5 waiting, tail 5, nothing admitted, 10 available", st)
		}
	})

	t.Run("NotOpen", func(t *testing.T) {
		sale := e.clock.Now().Add(time.Hour)
		ne := concert(10)
		ne.SaleStartsAt = &sale
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 60, PassSeconds: 300}
		noPre := createEvent(t, e.store, ne)
		joinErr(t, q, noPre.ID, ticketrush.JoinRequest{Visitor: visitor()}, ticketrush.EQueueNotOpen)

		opens := e.clock.Now().Add(time.Minute)
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 60, PassSeconds: 300, PrequeueOpensAt: &opens}
		pre := createEvent(t, e.store, ne)
		joinErr(t, q, pre.ID, ticketrush.JoinRequest{Visitor: visitor()}, ticketrush.EQueueNotOpen)

		closed := roomEvent(t, e.store, 10, 60)
		update(t, e.store, closed.ID, ticketrush.EventUpdate{SaleClosed: ptr(true)})
		joinErr(t, q, closed.ID, ticketrush.JoinRequest{Visitor: visitor()}, ticketrush.ESaleClosed)
	})

	t.Run("AdmitByRate", func(t *testing.T) {
		ev := roomEvent(t, e.store, 100, 5)
		vs := visitors(12)
		joinAll(t, q, ev.ID, vs...)
		t0 := e.clock.Now()
		// However often the queue is advanced at one instant, a minute's
		// window holds at most admit_per_minute admissions.
		if n := settleQueue(t, q, ev.ID); n != 5 {
			t.Fatalf("admitted %d at one instant, want 5 (admit_per_minute)", n)
		}
		for i, v := range vs {
			en := entryOf(t, q, ev.ID, v)
			if i < 5 {
				if en.State != ticketrush.QueueAdmitted || en.AdmittedAt == nil || !en.AdmittedAt.Equal(t0) ||
					en.PassExpiresAt == nil || !en.PassExpiresAt.Equal(t0.Add(300*time.Second)) {
					t.Errorf("position %d = %+v, want admitted at %v with a pass to %v", i+1, en, t0, t0.Add(300*time.Second))
				}
				checkTimes(t, "admission", *en.AdmittedAt, *en.PassExpiresAt)
			} else if en.State != ticketrush.QueueWaiting {
				t.Errorf("position %d: state %q, want waiting (admission follows position)", i+1, en.State)
			}
		}
		st := queueStats(t, q, ev.ID)
		if st.Serving != 5 || st.Waiting != 7 || st.Admitted != 5 || st.AdmittedLastMinute != 5 || st.Active != 5 {
			t.Errorf("QueueStats = %+v, want serving 5, 7 waiting, 5 admitted in the last minute and active", st)
		}
		// The window slides: a microsecond before t0+60s it is still full.
		e.clock.Set(t0.Add(time.Minute - time.Microsecond))
		if n := settleQueue(t, q, ev.ID); n != 0 {
			t.Fatalf("admitted %d while the window still held 5", n)
		}
		e.clock.Set(t0.Add(time.Minute))
		if n := settleQueue(t, q, ev.ID); n != 5 {
			t.Fatalf("admitted %d once the first admissions left the window, want 5", n)
		}
		wantState(t, q, ev.ID, vs[9], ticketrush.QueueAdmitted)
		wantState(t, q, ev.ID, vs[10], ticketrush.QueueWaiting)
	})

	t.Run("AdmitSmoothly", func(t *testing.T) {
		// 600 a minute is 10 a second: one step a second later admits
		// about ten, never the whole minute's allowance at once.
		ev := roomEvent(t, e.store, 1000, 600)
		joinAll(t, q, ev.ID, visitors(100)...)
		advance(t, q, ev.ID)
		e.clock.Advance(time.Second)
		before := queueStats(t, q, ev.ID).Admitted
		a := advance(t, q, ev.ID)
		if a.Admitted < 1 || a.Admitted > 12 {
			t.Errorf("a step one second after the last admitted %d, want about 10", a.Admitted)
		}
		if got := queueStats(t, q, ev.ID).Admitted; got != before+int64(a.Admitted) {
			t.Errorf("QueueStats.Admitted = %d, want %d + %d", got, before, a.Admitted)
		}
	})

	t.Run("MaxActive", func(t *testing.T) {
		ne := concert(100)
		ne.HoldSeconds = 600
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 1000, MaxActive: 2, PassSeconds: 60}
		ev := createEvent(t, e.store, ne)
		vs := visitors(6)
		joinAll(t, q, ev.ID, vs...)
		if n := settleQueue(t, q, ev.ID); n != 2 {
			t.Fatalf("admitted %d with max_active 2", n)
		}
		// The first holds tickets with its pass: still active.
		first := wantState(t, q, ev.ID, vs[0], ticketrush.QueueAdmitted)
		res := reserve(t, e.r, withPass(first, 2))
		if en := entryOf(t, q, ev.ID, vs[0]); en.ReservationID != res.ID || en.State != ticketrush.QueueAdmitted {
			t.Errorf("entry after its reserve = %+v, want admitted with reservation %d", en, res.ID)
		}
		if n := settleQueue(t, q, ev.ID); n != 0 {
			t.Fatalf("admitted %d while two were active", n)
		}
		// The second's pass runs out unused: it reads expired at once, and
		// its place goes to the next in line.
		e.clock.Advance(60 * time.Second)
		wantState(t, q, ev.ID, vs[1], ticketrush.QueueExpired)
		if n := settleQueue(t, q, ev.ID); n != 1 {
			t.Fatalf("admitted %d after one pass ran out, want 1", n)
		}
		wantState(t, q, ev.ID, vs[2], ticketrush.QueueAdmitted)
		if st := queueStats(t, q, ev.ID); st.Active != 2 {
			t.Errorf("QueueStats.Active = %d, want 2", st.Active)
		}
		// A purchase ends the first's turn: done, no longer active, still
		// reading admitted.
		purchase(t, e.store, res)
		wantState(t, q, ev.ID, vs[0], ticketrush.QueueAdmitted)
		if n := settleQueue(t, q, ev.ID); n != 1 {
			t.Fatalf("admitted %d after a purchase, want 1", n)
		}
		third := wantState(t, q, ev.ID, vs[2], ticketrush.QueueAdmitted)
		fourth := wantState(t, q, ev.ID, vs[3], ticketrush.QueueAdmitted)
		// A cancelled hold ends a turn too, and the entry reads expired.
		h := reserve(t, e.r, withPass(third, 1))
		cancel(t, e.store, h)
		wantState(t, q, ev.ID, vs[2], ticketrush.QueueExpired)
		if n := settleQueue(t, q, ev.ID); n != 1 {
			t.Fatalf("admitted %d after a cancel, want 1", n)
		}
		wantState(t, q, ev.ID, vs[4], ticketrush.QueueAdmitted)
		if fourth.Position != 4 {
			t.Errorf("fourth admitted entry at position %d, want 4", fourth.Position)
		}
		checkInvariant(t, e.store, ev.ID)
	})

	t.Run("Pass", func(t *testing.T) {
		ne := concert(100)
		ne.HoldSeconds = 120
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 1000, PassSeconds: 60}
		ev := createEvent(t, e.store, ne)
		vs := visitors(4)
		joinAll(t, q, ev.ID, vs...)
		// Not yet admitted: a pass naming attempt 1 is not valid yet.
		reserveErr(t, e.r, ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: vs[0], Admission: 1},
			ticketrush.EAdmissionInvalid)
		settleQueue(t, q, ev.ID)
		a := wantState(t, q, ev.ID, vs[0], ticketrush.QueueAdmitted)
		reserveErr(t, e.r, req(ev.ID, 1, vs[0]), ticketrush.EAdmissionRequired)
		reserveErr(t, e.r, req(ev.ID, 1, visitor()), ticketrush.EAdmissionRequired)
		wrong := withPass(a, 1)
		wrong.Admission = 2
		reserveErr(t, e.r, wrong, ticketrush.EAdmissionInvalid)
		stranger := withPass(a, 1)
		stranger.VisitorToken = visitor()
		reserveErr(t, e.r, stranger, ticketrush.EAdmissionInvalid)
		// The order limit still applies to an admitted visitor.
		reserveErr(t, e.r, withPass(a, ticketrush.DefaultMaxPerOrder+1), ticketrush.EOrderLimit)

		rq := withPass(a, 2)
		rq.IdempotencyKey = "pass-once"
		first := reserve(t, e.r, rq)
		// A retry with the same key answers with the same hold; any other
		// use of the pass is refused.
		again, err := e.r.Reserve(t.Context(), rq)
		ok(t, "retry with the same Idempotency-Key", err)
		if again.ID != first.ID {
			t.Errorf("retry got reservation %d, want %d", again.ID, first.ID)
		}
		reserveErr(t, e.r, withPass(a, 1), ticketrush.EAdmissionInvalid)
		other := withPass(a, 1)
		other.IdempotencyKey = "another"
		reserveErr(t, e.r, other, ticketrush.EAdmissionInvalid)

		// A pass that ran out: expired, and the visitor reads expired.
		b := wantState(t, q, ev.ID, vs[1], ticketrush.QueueAdmitted)
		e.clock.Advance(60 * time.Second)
		reserveErr(t, e.r, withPass(b, 1), ticketrush.EAdmissionExpired)
		wantState(t, q, ev.ID, vs[1], ticketrush.QueueExpired)
		// The first visitor's hold is still live (120 s): admitted.
		wantState(t, q, ev.ID, vs[0], ticketrush.QueueAdmitted)
		wantAvailable(t, e.store, ev.ID, 98)
		checkInvariant(t, e.store, ev.ID)
	})

	t.Run("PassOncePerBatch", func(t *testing.T) {
		ev := roomEvent(t, e.store, 100, 1000)
		v := visitor()
		join(t, q, ev.ID, v)
		settleQueue(t, q, ev.ID)
		en := wantState(t, q, ev.ID, v, ticketrush.QueueAdmitted)
		k1, k2 := withPass(en, 1), withPass(en, 2)
		k1.IdempotencyKey, k2.IdempotencyKey = "one", "two"
		res, err := e.store.ReserveBatch(t.Context(), ev.ID, []ticketrush.ReserveRequest{k1, k2, k1})
		ok(t, "ReserveBatch", err)
		if res[0].Err != nil || res[0].Reservation == nil {
			t.Fatalf("first use of the pass in a batch: %+v", res[0])
		}
		wantCode(t, "second use of the pass in the same batch", res[1].Err, ticketrush.EAdmissionInvalid)
		if res[2].Err != nil || res[2].Reservation == nil || res[2].Reservation.ID != res[0].Reservation.ID {
			t.Errorf("a repeat of the first request in the batch = %+v, want reservation %d", res[2], res[0].Reservation.ID)
		}
		wantAvailable(t, e.store, ev.ID, 99)
	})

	t.Run("Rejoin", func(t *testing.T) {
		ne := concert(100)
		ne.HoldSeconds = 30
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 1000, PassSeconds: 300}
		ev := createEvent(t, e.store, ne)
		v := visitor()
		first := join(t, q, ev.ID, v).Entry
		joinAll(t, q, ev.ID, visitors(3)...)
		settleQueue(t, q, ev.ID)
		en := wantState(t, q, ev.ID, v, ticketrush.QueueAdmitted)
		reserve(t, e.r, withPass(en, 1))
		// A live entry keeps its place on a repeat join.
		if r := join(t, q, ev.ID, v); r.Created || r.Entry.Attempt != 1 || r.Entry.Position != first.Position {
			t.Errorf("repeat join while admitted = %+v created %v, want the same entry", r.Entry, r.Created)
		}
		// The hold expires: the entry reads expired before any step, and a
		// join queues again at the back with a new attempt.
		e.clock.Advance(30 * time.Second)
		wantState(t, q, ev.ID, v, ticketrush.QueueExpired)
		r := join(t, q, ev.ID, v)
		if !r.Created || r.Entry.Attempt != 2 || r.Entry.Position != 5 || r.Entry.State != ticketrush.QueueWaiting ||
			r.Entry.ReservationID != 0 || r.Entry.AdmittedAt != nil || !r.Entry.JoinedAt.Equal(e.clock.Now()) {
			t.Errorf("join after expiry = %+v created %v, want attempt 2 waiting at position 5", r.Entry, r.Created)
		}
		// The old pass names attempt 1: not valid for the new entry.
		reserveErr(t, e.r, withPass(en, 1), ticketrush.EAdmissionInvalid)
		settleQueue(t, q, ev.ID)
		en2 := wantState(t, q, ev.ID, v, ticketrush.QueueAdmitted)
		reserve(t, e.r, withPass(en2, 1))
		checkInvariant(t, e.store, ev.ID)
	})

	t.Run("ChallengeOnce", func(t *testing.T) {
		ne := concert(100)
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 1000, PassSeconds: 10, ChallengeBits: 4}
		ev := createEvent(t, e.store, ne)
		v := visitor()
		res, err := q.JoinQueue(t.Context(), ev.ID, []ticketrush.JoinRequest{{Visitor: v, Challenge: "c1"}})
		ok(t, "JoinQueue", err)
		if res[0].Err != nil || !res[0].Created {
			t.Fatalf("first join with a challenge = %+v", res[0])
		}
		// A repeat join of a live entry with the same challenge is a
		// retry, not a second use.
		res, err = q.JoinQueue(t.Context(), ev.ID, []ticketrush.JoinRequest{{Visitor: v, Challenge: "c1"}})
		ok(t, "JoinQueue", err)
		if res[0].Err != nil || res[0].Created {
			t.Fatalf("repeat join with the same challenge = %+v, want the same entry", res[0])
		}
		settleQueue(t, q, ev.ID)
		e.clock.Advance(10 * time.Second)
		wantState(t, q, ev.ID, v, ticketrush.QueueExpired)
		joinErr(t, q, ev.ID, ticketrush.JoinRequest{Visitor: v, Challenge: "c1"}, ticketrush.EChallengeFailed)
		res, err = q.JoinQueue(t.Context(), ev.ID, []ticketrush.JoinRequest{{Visitor: v, Challenge: "c2"}})
		ok(t, "JoinQueue", err)
		if res[0].Err != nil || !res[0].Created || res[0].Entry.Attempt != 2 {
			t.Fatalf("join with a fresh challenge = %+v, want attempt 2", res[0])
		}
	})

	t.Run("Paused", func(t *testing.T) {
		ne := concert(100)
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 1000, PassSeconds: 300, Paused: true}
		ev := createEvent(t, e.store, ne)
		vs := visitors(3)
		joinAll(t, q, ev.ID, vs...)
		if n := settleQueue(t, q, ev.ID); n != 0 {
			t.Fatalf("a paused room admitted %d", n)
		}
		room := *ne.WaitingRoom
		room.Paused = false
		update(t, e.store, ev.ID, ticketrush.EventUpdate{SetWaitingRoom: true, WaitingRoom: &room})
		if n := settleQueue(t, q, ev.ID); n != 3 {
			t.Fatalf("admitted %d after resuming, want 3", n)
		}
	})

	t.Run("SoldOutKeepsOrder", func(t *testing.T) {
		ne := concert(2)
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 1, PassSeconds: 300}
		ev := createEvent(t, e.store, ne)
		vs := visitors(3)
		joinAll(t, q, ev.ID, vs...)
		settleQueue(t, q, ev.ID)
		first := wantState(t, q, ev.ID, vs[0], ticketrush.QueueAdmitted)
		h := reserve(t, e.r, withPass(first, 2))
		// No stock: no admission, whatever the rate allows, and the
		// queue keeps its order.
		room := *ne.WaitingRoom
		room.AdmitPerMinute = 1000
		update(t, e.store, ev.ID, ticketrush.EventUpdate{SetWaitingRoom: true, WaitingRoom: &room})
		if n := settleQueue(t, q, ev.ID); n != 0 {
			t.Fatalf("admitted %d with no stock on sale", n)
		}
		st := queueStats(t, q, ev.ID)
		if st.Available != 0 || st.Held != 2 || st.Waiting != 2 {
			t.Errorf("QueueStats = %+v, want 0 available, 2 held, 2 waiting", st)
		}
		cancel(t, e.store, h)
		if n := settleQueue(t, q, ev.ID); n != 2 {
			t.Fatalf("admitted %d once the hold came back, want 2", n)
		}
		wantState(t, q, ev.ID, vs[1], ticketrush.QueueAdmitted)
	})

	t.Run("RemoveRoom", func(t *testing.T) {
		ev := roomEvent(t, e.store, 10, 60)
		v := visitor()
		join(t, q, ev.ID, v)
		update(t, e.store, ev.ID, ticketrush.EventUpdate{SetWaitingRoom: true})
		_, err := q.QueueEntry(t.Context(), ev.ID, v)
		wantCode(t, "QueueEntry after removing the room", err, ticketrush.EWaitingRoomNotFound)
		reserve(t, e.r, req(ev.ID, 1, v))
		// A new room starts empty: the old entries went with the old one.
		update(t, e.store, ev.ID, ticketrush.EventUpdate{SetWaitingRoom: true,
			WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 60, PassSeconds: 300}})
		_, err = q.QueueEntry(t.Context(), ev.ID, v)
		wantCode(t, "QueueEntry in a new room", err, ticketrush.ENotInQueue)
	})

	t.Run("Prequeue", func(t *testing.T) {
		sale := e.clock.Now().Add(10 * time.Minute)
		opens := e.clock.Now().Add(time.Minute)
		ne := concert(5000)
		ne.SaleStartsAt = &sale
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 1000, PassSeconds: 300, PrequeueOpensAt: &opens}
		ev := createEvent(t, e.store, ne)
		e.clock.Set(opens)
		early := visitors(50)
		for _, r := range joinAll(t, q, ev.ID, early...) {
			if !r.Created || r.Entry.State != ticketrush.QueuePrequeue || r.Entry.Position != 0 {
				t.Fatalf("pre-queue join = %+v, want a new pre-queue entry without a position", r.Entry)
			}
		}
		if st := queueStats(t, q, ev.ID); st.Prequeue != 50 || st.Shuffled || st.Waiting != 0 {
			t.Errorf("QueueStats before the sale = %+v, want 50 in the pre-queue, not shuffled", st)
		}
		// Before the sale starts nothing is shuffled or admitted.
		if n := settleQueue(t, q, ev.ID); n != 0 {
			t.Fatalf("admitted %d before the sale", n)
		}
		wantState(t, q, ev.ID, early[0], ticketrush.QueuePrequeue)
		reserveErr(t, e.r, req(ev.ID, 1, early[0]), ticketrush.ESaleNotStarted)

		// At the start a late joiner queues behind the whole pre-queue,
		// even before the shuffle has run.
		e.clock.Set(sale)
		late := join(t, q, ev.ID, visitor()).Entry
		if late.State != ticketrush.QueueWaiting || late.Position != 51 {
			t.Errorf("join at the sale start = %+v, want waiting at 51", late)
		}
		settleQueue(t, q, ev.ID)
		st := queueStats(t, q, ev.ID)
		if !st.Shuffled || st.Prequeue != 0 || st.Tail != 51 {
			t.Errorf("QueueStats after the shuffle = %+v, want shuffled, tail 51", st)
		}
		positions := make([]int64, len(early))
		for i, v := range early {
			positions[i] = entryOf(t, q, ev.ID, v).Position
		}
		checkPermutation(t, positions)
		if slices.IsSorted(positions) {
			t.Errorf("the pre-queue kept join order after the shuffle: %v", positions)
		}
		// Admission follows the shuffled positions.
		for _, v := range early {
			if en := entryOf(t, q, ev.ID, v); en.Position <= st.Serving && en.State != ticketrush.QueueAdmitted {
				t.Errorf("entry %+v is within serving %d but not admitted", en, st.Serving)
			}
		}
	})

	t.Run("ShuffleInChunks", func(t *testing.T) {
		sale := e.clock.Now().Add(time.Hour)
		opens := e.clock.Now()
		ne := concert(10)
		ne.SaleStartsAt = &sale
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 1, PassSeconds: 300, PrequeueOpensAt: &opens}
		ev := createEvent(t, e.store, ne)
		n := ticketrush.QueueChunk*2 + 17
		all := visitors(n)
		for i := 0; i < n; i += 500 {
			joinAll(t, q, ev.ID, all[i:min(i+500, n)]...)
		}
		e.clock.Set(sale)
		steps := 0
		for {
			a := advance(t, q, ev.ID)
			steps++
			if !a.More {
				break
			}
			if a.Shuffled > ticketrush.QueueChunk {
				t.Fatalf("one step shuffled %d, more than QueueChunk", a.Shuffled)
			}
			if steps > 100 {
				t.Fatal("the shuffle never finished")
			}
		}
		if steps < 3 {
			t.Errorf("%d pre-queue entries shuffled in %d steps; each step may do at most %d", n, steps, ticketrush.QueueChunk)
		}
		if st := queueStats(t, q, ev.ID); !st.Shuffled || st.Waiting+st.Admitted != int64(n) {
			t.Errorf("QueueStats = %+v, want %d shuffled", st, n)
		}
		positions := make([]int64, n)
		for i, v := range all {
			positions[i] = entryOf(t, q, ev.ID, v).Position
		}
		checkPermutation(t, positions)
	})

	t.Run("TwoProcesses", func(t *testing.T) {
		// Two stores on one database, like two server processes, join,
		// shuffle and admit one queue at once: every position is given once
		// and the window holds exactly admit_per_minute.
		other := queuesOf(t, e.openStore(t))
		sale := e.clock.Now().Add(time.Hour)
		opens := e.clock.Now()
		ne := concert(1000)
		ne.SaleStartsAt = &sale
		ne.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 100, PassSeconds: 300, PrequeueOpensAt: &opens}
		ev := createEvent(t, e.store, ne)
		all := visitors(600)
		var wg sync.WaitGroup
		for i, qq := range []ticketrush.Queues{q, other} {
			wg.Go(func() {
				for j := i * 300; j < (i+1)*300; j += 20 {
					reqs := make([]ticketrush.JoinRequest, 20)
					for k := range reqs {
						reqs[k] = ticketrush.JoinRequest{Visitor: all[j+k]}
					}
					if _, err := qq.JoinQueue(t.Context(), ev.ID, reqs); err != nil {
						t.Errorf("JoinQueue: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		e.clock.Set(sale)
		var admitted, unavailable [2]int
		for i, qq := range []ticketrush.Queues{q, other} {
			wg.Go(func() {
				for range 200 {
					a, err := qq.AdvanceQueue(t.Context(), ev.ID)
					if ticketrush.ErrorCode(err) == ticketrush.EUnavailable {
						// The other process held the queue's lock too
						// long: nothing was applied, and the keeper
						// tries again at its next tick, as this does.
						unavailable[i]++
						continue
					}
					if err != nil {
						t.Errorf("AdvanceQueue: %v", err)
						return
					}
					admitted[i] += a.Admitted
				}
			})
		}
		wg.Wait()
		if unavailable[0]+unavailable[1] > 100 {
			t.Errorf("%d of 400 steps found the queue's lock busy too long", unavailable[0]+unavailable[1])
		}
		settleQueue(t, q, ev.ID)
		st := queueStats(t, q, ev.ID)
		if admitted[0]+admitted[1] != 100 || st.Admitted != 100 || st.Serving != 100 {
			t.Errorf("two processes admitted %d+%d (stats %+v), want 100 in all", admitted[0], admitted[1], st)
		}
		positions := make([]int64, len(all))
		for i, v := range all {
			positions[i] = entryOf(t, other, ev.ID, v).Position
		}
		checkPermutation(t, positions)
	})
}

// checkPermutation checks that positions are 1…len(positions), each once.
func checkPermutation(t *testing.T, positions []int64) {
	t.Helper()
	sorted := slices.Clone(positions)
	slices.Sort(sorted)
	for i, p := range sorted {
		if p != int64(i+1) {
			t.Fatalf("positions are not 1…%d each once: sorted %v", len(positions), head(sorted))
		}
	}
}

func head(s []int64) string {
	if len(s) > 20 {
		return fmt.Sprint(s[:20]) + "…"
	}
	return fmt.Sprint(s)
}
