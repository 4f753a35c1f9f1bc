package postgres

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ticketrush/ticketrush"
)

// TestSettleSkipsHotEventRow: a batch of purchases before expiry changes no
// stock, so it does not wait for the event row a reserve batch holds; a
// batch with a cancel does, and settles once the row is free.
func TestSettleSkipsHotEventRow(t *testing.T) {
	t.Parallel()
	s, url := openInternal(t, nil, Options{})
	ctx := context.Background()
	e, err := s.CreateEvent(ctx, ticketrush.NewEvent{Name: "Hot", TicketQuantity: 100, HoldSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}
	var holds []*ticketrush.Reservation
	for range 3 {
		r, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: e.ID, Amount: 1, VisitorToken: uuid.NewString()})
		if err != nil {
			t.Fatal(err)
		}
		holds = append(holds, r)
	}
	release := holdEventRow(t, url, e.ID)

	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, err := s.SettleBatch(pctx, []ticketrush.SettleRequest{{ID: holds[0].ID, Visitor: holds[0].UserUID}})
	if err != nil || res[0].Err != nil || res[0].Reservation.Status != ticketrush.StatusPurchased {
		t.Fatalf("purchase beside a locked event row: %+v, %v", res, err)
	}

	done := make(chan []ticketrush.SettleResult, 1)
	go func() {
		res, err := s.SettleBatch(ctx, []ticketrush.SettleRequest{
			{ID: holds[1].ID, Visitor: holds[1].UserUID},
			{Cancel: true, ID: holds[2].ID, Visitor: holds[2].UserUID},
		})
		if err != nil {
			t.Errorf("cancel batch: %v", err)
		}
		done <- res
	}()
	waitWaiters(t, s, 1)
	select {
	case <-done:
		t.Fatal("a cancel restocked the event while another transaction held its row")
	default:
	}
	release()
	res = <-done
	if res == nil || res[0].Err != nil || res[1].Err != nil || res[1].Reservation.Status != ticketrush.StatusCancelled {
		t.Fatalf("cancel batch after the row was freed: %+v", res)
	}
	st, err := s.Stats(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Available != 98 || st.Purchased != 2 || st.Cancelled != 1 || st.Held != 0 {
		t.Errorf("stats %+v", *st)
	}
}

// TestSettleWithReservesAndSweeps: settle batches of purchases and cancels
// (some of expired holds, over several events, in opposite orders) run
// beside reserve batches, single cancels and sweeps: no deadlock, no
// error, and the stock adds up.
func TestSettleWithReservesAndSweeps(t *testing.T) {
	t.Parallel()
	clock := &hardClock{now: time.Now().UTC().Truncate(time.Microsecond)}
	s, _ := openInternal(t, clock.Now, Options{})
	ctx := context.Background()
	var events []int64
	for range 3 {
		e, err := s.CreateEvent(ctx, ticketrush.NewEvent{Name: "Hot", TicketQuantity: 100_000, HoldSeconds: 60})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e.ID)
	}
	// Holds made a minute apart: the first half expire when the clock
	// moves on.
	var holds []*ticketrush.Reservation
	for half := range 2 {
		for _, ev := range events {
			reqs := make([]ticketrush.ReserveRequest, 100)
			for i := range reqs {
				reqs[i] = ticketrush.ReserveRequest{EventID: ev, Amount: 1 + int64(i%3), VisitorToken: uuid.NewString()}
			}
			res, err := s.ReserveBatch(ctx, ev, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				holds = append(holds, r.Reservation)
			}
		}
		if half == 0 {
			clock.Advance(40 * time.Second)
		}
	}
	clock.Advance(30 * time.Second)

	before := deadlocks.Load()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			order := rng.Perm(len(holds))
			if w%2 == 1 {
				for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
					order[i], order[j] = order[j], order[i]
				}
			}
			for from := 0; from < len(order); from += 50 {
				var reqs []ticketrush.SettleRequest
				for _, i := range order[from:min(from+50, len(order))] {
					reqs = append(reqs, ticketrush.SettleRequest{Cancel: rng.IntN(2) == 0, ID: holds[i].ID, Visitor: holds[i].UserUID})
				}
				if _, err := s.SettleBatch(ctx, reqs); err != nil {
					t.Errorf("settle batch: %v", err)
					return
				}
			}
		})
	}
	for _, ev := range events {
		wg.Go(func() {
			for range 10 {
				reqs := make([]ticketrush.ReserveRequest, 50)
				for i := range reqs {
					reqs[i] = ticketrush.ReserveRequest{EventID: ev, Amount: 1, VisitorToken: uuid.NewString()}
				}
				if _, err := s.ReserveBatch(ctx, ev, reqs); err != nil {
					t.Errorf("reserve batch: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := s.ReleaseExpired(ctx, 40); err != nil {
				t.Errorf("sweep: %v", err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := 0; i < len(holds); i += 7 {
			_, err := s.Cancel(ctx, holds[i].ID, holds[i].UserUID)
			switch ticketrush.ErrorCode(err) {
			case "", ticketrush.EAlreadyPurchased, ticketrush.EExpired:
			default:
				t.Errorf("cancel: %v", err)
				return
			}
		}
	})
	wg.Wait()
	if n := deadlocks.Load() - before; n > 0 {
		t.Errorf("%d deadlocks", n)
	}
	for _, ev := range events {
		st, err := s.Stats(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if st.Capacity != st.Available+st.Held+st.Purchased {
			t.Errorf("event %d: %+v does not add up", ev, *st)
		}
	}
	for _, h := range holds {
		r, err := s.Reservation(ctx, h.ID, h.UserUID)
		if err != nil {
			t.Fatal(err)
		}
		expired := !h.ExpiresAt.After(clock.Now())
		switch {
		case r.Status == ticketrush.StatusReserved:
			t.Errorf("hold %d still reserved after settling", h.ID)
		case expired && r.Status != ticketrush.StatusExpired:
			t.Errorf("expired hold %d ended %s", h.ID, r.Status)
		case !expired && r.Status == ticketrush.StatusExpired:
			t.Errorf("unexpired hold %d ended expired", h.ID)
		}
	}
}
