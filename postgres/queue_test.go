package postgres_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/postgres"
)

func TestEventSettings(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	s := openStores(t, clock.Now, 1)[0]
	ctx := context.Background()
	opens := clock.Now().Add(-time.Minute + 777*time.Nanosecond)
	e := createEvent(t, s, ticketrush.NewEvent{TicketQuantity: 50, Hidden: true,
		WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 60, MaxActive: 5, PassSeconds: 120, PrequeueOpensAt: &opens, ChallengeBits: 3}})
	if e.MaxPerOrder != ticketrush.DefaultMaxPerOrder || !e.Hidden || e.WaitingRoom == nil {
		t.Fatalf("created %+v", e)
	}
	got, err := s.Event(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	gw, ew := *got.WaitingRoom, *e.WaitingRoom
	gw.PrequeueOpensAt, ew.PrequeueOpensAt = nil, nil
	if got.MaxPerOrder != 10 || !got.Hidden || got.SaleClosed || gw != ew ||
		!got.WaitingRoom.PrequeueOpensAt.Equal(*e.WaitingRoom.PrequeueOpensAt) ||
		e.WaitingRoom.PrequeueOpensAt.Nanosecond()%1000 != 0 {
		t.Fatalf("Event = %+v / %+v, want %+v / %+v", got, got.WaitingRoom, e, e.WaitingRoom)
	}
	if all, err := s.Events(ctx); err != nil || len(all) != 1 || !all[0].Hidden {
		t.Fatalf("Events = %v, %v; want the hidden event listed", all, err)
	}

	name, closed, limit := "Neu", true, int64(4)
	u, err := s.UpdateEvent(ctx, e.ID, ticketrush.EventUpdate{Name: &name, SaleClosed: &closed, MaxPerOrder: &limit})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.Event(ctx, e.ID)
	if u.Name != "Neu" || got.Name != "Neu" || !got.SaleClosed || got.MaxPerOrder != 4 || got.WaitingRoom == nil {
		t.Fatalf("after update: %+v", got)
	}
	_, err = s.Reserve(ctx, ticketrush.ReserveRequest{EventID: e.ID, Amount: 1, VisitorToken: uuid.NewString()})
	wantCode(t, err, ticketrush.ESaleClosed)
	bad := int64(0)
	_, err = s.UpdateEvent(ctx, e.ID, ticketrush.EventUpdate{MaxPerOrder: &bad})
	wantCode(t, err, ticketrush.EValidation)
	_, err = s.UpdateEvent(ctx, 999, ticketrush.EventUpdate{Name: &name})
	wantCode(t, err, ticketrush.EEventNotFound)

	// Removing the room drops its queue.
	open := false
	if _, err := s.UpdateEvent(ctx, e.ID, ticketrush.EventUpdate{SaleClosed: &open}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.JoinQueue(ctx, e.ID, []ticketrush.JoinRequest{{Visitor: uuid.NewString()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateEvent(ctx, e.ID, ticketrush.EventUpdate{SetWaitingRoom: true}); err != nil {
		t.Fatal(err)
	}
	_, err = s.QueueStats(ctx, e.ID)
	wantCode(t, err, ticketrush.EWaitingRoomNotFound)
	room := ticketrush.WaitingRoom{AdmitPerMinute: 1, PassSeconds: 60}
	if _, err := s.UpdateEvent(ctx, e.ID, ticketrush.EventUpdate{SetWaitingRoom: true, WaitingRoom: &room}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.QueueStats(ctx, e.ID); err != nil || st.Waiting != 0 || st.Tail != 0 {
		t.Fatalf("stats of a new room: %+v, %v", st, err)
	}

	// Delete: only an event that never had a reservation.
	if err := s.DeleteEvent(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.DeleteEvent(ctx, e.ID), ticketrush.EEventNotFound)
	f := createEvent(t, s, ticketrush.NewEvent{TicketQuantity: 5})
	r, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: f.ID, Amount: 1, VisitorToken: uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, r.ID, r.UserUID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.DeleteEvent(ctx, f.ID), ticketrush.EEventHasReservations)
}

// TestQueueTwoProcesses has two stores on one database (two processes)
// shuffle and admit one queue at once: every pre-queue entry gets exactly
// one of positions 1…P, later joins follow, and admissions keep to the
// window and to max_active.
func TestQueueTwoProcesses(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	stores := openStores(t, clock.Now, 2)
	ctx := context.Background()
	start := clock.Now().Add(time.Hour)
	opens := clock.Now()
	e := createEvent(t, stores[0], ticketrush.NewEvent{TicketQuantity: 1000, SaleStartsAt: &start,
		WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 600, MaxActive: 0, PassSeconds: 60, PrequeueOpensAt: &opens}})

	const pre = 2500 // more than two chunks
	var visitors []string
	for i := 0; i < pre; i += 500 {
		var reqs []ticketrush.JoinRequest
		for range 500 {
			v := uuid.NewString()
			visitors = append(visitors, v)
			reqs = append(reqs, ticketrush.JoinRequest{Visitor: v, Challenge: "c-" + v})
		}
		res, err := stores[i/500%2].JoinQueue(ctx, e.ID, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil || !r.Created || r.Entry.State != ticketrush.QueuePrequeue || r.Entry.Position != 0 {
				t.Fatalf("pre-queue join: %+v %+v", r, r.Entry)
			}
		}
	}
	// A repeat join keeps the entry.
	res, err := stores[1].JoinQueue(ctx, e.ID, []ticketrush.JoinRequest{{Visitor: visitors[0]}, {Visitor: visitors[0]}})
	if err != nil || res[0].Created || res[1].Created || res[0].Entry.Attempt != 1 {
		t.Fatalf("repeat join: %+v, %v", res, err)
	}
	// Before the sale nothing is shuffled or admitted.
	if a, err := stores[0].AdvanceQueue(ctx, e.ID); err != nil || a.Shuffled != 0 || a.Admitted != 0 {
		t.Fatalf("advance before the sale: %+v, %v", a, err)
	}

	clock.Advance(time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total ticketrush.QueueAdvance
	for _, s := range stores {
		wg.Go(func() {
			for range 40 {
				a, err := s.AdvanceQueue(ctx, e.ID)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				total.Shuffled += a.Shuffled
				total.Admitted += a.Admitted
				mu.Unlock()
			}
		})
	}
	// Joins after the start queue behind the pre-queue, while the shuffle
	// runs.
	late := make([]string, 50)
	for i := range late {
		late[i] = uuid.NewString()
	}
	lres, err := stores[1].JoinQueue(ctx, e.ID, joins(late))
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, r := range lres {
		if r.Err != nil || r.Entry.State != ticketrush.QueueWaiting || r.Entry.Position != int64(pre+1+i) {
			t.Fatalf("late join %d: %+v %+v", i, r, r.Entry)
		}
	}
	// Keys are drawn once (pass 1) and positions given once (pass 2).
	if total.Shuffled != 2*pre {
		t.Fatalf("shuffled %d, want %d keys and %d positions", total.Shuffled, pre, pre)
	}
	positions := map[int64]bool{}
	var order []int64
	for _, v := range visitors {
		en, err := stores[0].QueueEntry(ctx, e.ID, v)
		if err != nil {
			t.Fatal(err)
		}
		if en.Position < 1 || en.Position > pre || positions[en.Position] {
			t.Fatalf("entry %+v: position not unique in 1…%d", en, pre)
		}
		positions[en.Position] = true
		order = append(order, en.Position)
	}
	// The order is not join order: a sorted sequence of 2,500 would be a
	// one in 2500! chance.
	if sort.SliceIsSorted(order, func(i, j int) bool { return order[i] < order[j] }) {
		t.Fatal("positions follow join order")
	}
	// The first advance after the shuffle may admit at most one second's
	// share of 600 a minute... and the window caps it over the minute.
	st, err := stores[0].QueueStats(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Shuffled || st.Tail != pre+50 || st.Admitted != int64(total.Admitted) || st.Admitted > 600 || st.Admitted == 0 {
		t.Fatalf("stats %+v after %+v", st, total)
	}
	for range 70 {
		clock.Advance(time.Second)
		for _, s := range stores {
			if _, err := s.AdvanceQueue(ctx, e.ID); err != nil {
				t.Fatal(err)
			}
		}
		st, err := stores[1].QueueStats(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.AdmittedLastMinute > 600 {
			t.Fatalf("%d admitted in the last minute, cap 600", st.AdmittedLastMinute)
		}
	}
	st, _ = stores[1].QueueStats(ctx, e.ID)
	if st.Serving != st.Admitted {
		t.Fatalf("serving %d, admitted %d: admission skipped a position", st.Serving, st.Admitted)
	}
}

func joins(visitors []string) []ticketrush.JoinRequest {
	reqs := make([]ticketrush.JoinRequest, len(visitors))
	for i, v := range visitors {
		reqs[i] = ticketrush.JoinRequest{Visitor: v}
	}
	return reqs
}

// TestQueueAdmission follows one visitor through the room: queue, admit,
// reserve with the pass (once), max_active, expiry and rejoin.
func TestQueueAdmission(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	s := openStores(t, clock.Now, 1)[0]
	ctx := context.Background()
	e := createEvent(t, s, ticketrush.NewEvent{TicketQuantity: 100, HoldSeconds: 60,
		WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 1000, MaxActive: 2, PassSeconds: 30}})
	vs := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}
	_, err := s.QueueEntry(ctx, e.ID, vs[0])
	wantCode(t, err, ticketrush.ENotInQueue)
	res, err := s.JoinQueue(ctx, e.ID, []ticketrush.JoinRequest{{Visitor: vs[0], Challenge: "a"}, {Visitor: vs[1]}, {Visitor: vs[2]}})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Entry.Position != int64(i+1) || r.Entry.State != ticketrush.QueueWaiting {
			t.Fatalf("join %d: %+v", i, r)
		}
	}
	req := func(v string, admission int64, key string) ticketrush.ReserveRequest {
		return ticketrush.ReserveRequest{EventID: e.ID, Amount: 2, VisitorToken: v, Admission: admission, IdempotencyKey: key}
	}
	_, err = s.Reserve(ctx, req(vs[0], 0, ""))
	wantCode(t, err, ticketrush.EAdmissionRequired)
	_, err = s.Reserve(ctx, req(vs[0], 1, ""))
	wantCode(t, err, ticketrush.EAdmissionInvalid) // not admitted yet

	a, err := s.AdvanceQueue(ctx, e.ID)
	if err != nil || a.Admitted != 2 {
		t.Fatalf("advance: %+v, %v; want 2 admitted (max_active)", a, err)
	}
	en, _ := s.QueueEntry(ctx, e.ID, vs[0])
	if en.State != ticketrush.QueueAdmitted || en.AdmittedAt == nil || !en.PassExpiresAt.Equal(en.AdmittedAt.Add(30*time.Second)) {
		t.Fatalf("entry %+v", en)
	}
	r0, err := s.Reserve(ctx, req(vs[0], 1, "k"))
	if err != nil {
		t.Fatal(err)
	}
	// A retry with the key answers; another reserve with the pass does not.
	if again, err := s.Reserve(ctx, req(vs[0], 1, "k")); err != nil || again.ID != r0.ID {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	_, err = s.Reserve(ctx, req(vs[0], 1, ""))
	wantCode(t, err, ticketrush.EAdmissionInvalid)
	// In one batch, the second use of a pass is refused.
	br, err := s.ReserveBatch(ctx, e.ID, []ticketrush.ReserveRequest{req(vs[1], 1, ""), req(vs[1], 1, "")})
	if err != nil || br[0].Err != nil || ticketrush.ErrorCode(br[1].Err) != ticketrush.EAdmissionInvalid {
		t.Fatalf("batch: %+v, %v", br, err)
	}
	if en, _ := s.QueueEntry(ctx, e.ID, vs[1]); en.ReservationID != br[0].Reservation.ID {
		t.Fatalf("entry %+v does not name its hold %d", en, br[0].Reservation.ID)
	}
	// Both admitted visitors hold tickets: max_active keeps the third out.
	clock.Advance(time.Second)
	if a, _ := s.AdvanceQueue(ctx, e.ID); a.Admitted != 0 {
		t.Fatalf("admitted %d past max_active", a.Admitted)
	}
	// A cancelled hold ends the admission at once; the place goes on.
	if _, err := s.Cancel(ctx, r0.ID, vs[0]); err != nil {
		t.Fatal(err)
	}
	if en, _ := s.QueueEntry(ctx, e.ID, vs[0]); en.State != ticketrush.QueueExpired {
		t.Fatalf("after cancel: %+v", en)
	}
	clock.Advance(time.Second)
	if a, _ := s.AdvanceQueue(ctx, e.ID); a.Admitted != 1 || a.Expired != 1 {
		t.Fatalf("after cancel: %+v, want one expired and one admitted", a)
	}
	// Rejoin: same challenge refused, a new one queues at the back.
	res, _ = s.JoinQueue(ctx, e.ID, []ticketrush.JoinRequest{{Visitor: vs[0], Challenge: "a"}})
	wantCode(t, res[0].Err, ticketrush.EChallengeFailed)
	res, _ = s.JoinQueue(ctx, e.ID, []ticketrush.JoinRequest{{Visitor: vs[0], Challenge: "b"}})
	if r := res[0]; r.Err != nil || !r.Created || r.Entry.Attempt != 2 || r.Entry.Position != 4 {
		t.Fatalf("rejoin: %+v %+v", r, r.Entry)
	}
	// The old pass is no good for the new attempt.
	_, err = s.Reserve(ctx, req(vs[0], 1, ""))
	wantCode(t, err, ticketrush.EAdmissionInvalid)
	// An unused pass runs out.
	clock.Advance(31 * time.Second)
	_, err = s.Reserve(ctx, req(vs[2], 1, ""))
	wantCode(t, err, ticketrush.EAdmissionExpired)
	checkInvariant(t, s, e.ID)

	// Joins of an event without a room, or one not open.
	plain := createEvent(t, s, ticketrush.NewEvent{TicketQuantity: 1})
	res, _ = s.JoinQueue(ctx, plain.ID, joins(vs[:1]))
	wantCode(t, res[0].Err, ticketrush.EWaitingRoomNotFound)
	later := clock.Now().Add(time.Hour)
	soon := createEvent(t, s, ticketrush.NewEvent{TicketQuantity: 1, SaleStartsAt: &later,
		WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 1, PassSeconds: 1}})
	res, _ = s.JoinQueue(ctx, soon.ID, joins(vs[:1]))
	wantCode(t, res[0].Err, ticketrush.EQueueNotOpen)
	res, _ = s.JoinQueue(ctx, 999, joins(vs[:1]))
	wantCode(t, res[0].Err, ticketrush.EEventNotFound)
	_, err = s.AdvanceQueue(ctx, plain.ID)
	wantCode(t, err, ticketrush.EWaitingRoomNotFound)
}

// BenchmarkJoinQueue measures a batch of 1,000 joins.
func BenchmarkJoinQueue(b *testing.B) {
	s := openStores(b, nil, 1)[0]
	e := createEvent(b, s, ticketrush.NewEvent{TicketQuantity: 10,
		WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 1, PassSeconds: 1}})
	for i := 0; b.Loop(); i++ {
		vs := make([]string, 1000)
		for j := range vs {
			vs[j] = fmt.Sprintf("%08d-0000-4000-8000-%012d", i, j)
		}
		if _, err := s.JoinQueue(context.Background(), e.ID, joins(vs)); err != nil {
			b.Fatal(err)
		}
	}
}

var _ ticketrush.Queues = (*postgres.Store)(nil)
