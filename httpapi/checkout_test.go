package httpapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
)

// countingStore counts the calls of each purchase and cancel path; fail,
// when set, answers every SettleBatch.
type countingStore struct {
	ticketrush.Store
	purchases, cancels, batches, batched atomic.Int64
	fail                                 error
}

func (s *countingStore) Purchase(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	s.purchases.Add(1)
	return s.Store.Purchase(ctx, id, visitor)
}

func (s *countingStore) Cancel(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	s.cancels.Add(1)
	return s.Store.Cancel(ctx, id, visitor)
}

func (s *countingStore) SettleBatch(ctx context.Context, reqs []ticketrush.SettleRequest) ([]ticketrush.SettleResult, error) {
	s.batches.Add(1)
	s.batched.Add(int64(len(reqs)))
	if s.fail != nil {
		return nil, s.fail
	}
	return s.Store.SettleBatch(ctx, reqs)
}

// TestCheckoutPaths: with Checkout set (the batch strategy) purchases and
// cancels go through SettleBatch and never the per-request methods, with
// the same answers; without it (lock) each is one Purchase or Cancel.
func TestCheckoutPaths(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run(fmt.Sprint("batched=", batched), func(t *testing.T) {
			var cs *countingStore
			e := sqliteEnv(t, func(c *Config) {
				cs = &countingStore{Store: c.Store}
				c.Store = cs
				if batched {
					c.Checkout = &batch.Options{}
				}
			})
			t.Cleanup(e.srv.Close)
			ev := e.createEvent(t, `{"name":"Checkout","ticket_quantity":100}`)
			const n = 24
			tokens := make([]string, n)
			holds := make([]Reservation, n)
			for i := range holds {
				tokens[i] = uuid.NewString()
				holds[i] = e.reserve(t, ev.ID, 2, tokens[i])
			}
			var wg sync.WaitGroup
			for i := range holds {
				wg.Go(func() {
					if i%2 == 0 {
						got := decode[Reservation](t, e.must(t, request{method: "POST", path: "/api/purchase",
							headers: visitor(tokens[i]), body: fmt.Sprintf(`{"reservation_id":%d}`, holds[i].ID)}, 200))
						if got.Status != ticketrush.StatusPurchased || got.ID != holds[i].ID {
							t.Errorf("purchase: %+v", got)
						}
					} else {
						got := decode[Reservation](t, e.must(t, request{method: "DELETE",
							path: fmt.Sprintf("/api/reservations/%d", holds[i].ID), headers: visitor(tokens[i])}, 200))
						if got.Status != ticketrush.StatusCancelled || got.ID != holds[i].ID {
							t.Errorf("cancel: %+v", got)
						}
					}
				})
			}
			wg.Wait()
			// The rules hold on either path.
			res := e.must(t, request{method: "DELETE", path: fmt.Sprintf("/api/reservations/%d", holds[0].ID), headers: visitor(tokens[0])}, 409)
			if got := errorOf(t, res); got.Code != ticketrush.EAlreadyPurchased {
				t.Errorf("cancel of a purchase: code %q", got.Code)
			}
			res = e.must(t, request{method: "POST", path: "/api/purchase", headers: visitor(tokens[1]),
				body: fmt.Sprintf(`{"reservation_id":%d}`, holds[1].ID)}, 409)
			if got := errorOf(t, res); got.Code != ticketrush.ECancelled {
				t.Errorf("purchase of a cancelled hold: code %q", got.Code)
			}
			res = e.must(t, request{method: "POST", path: "/api/purchase", headers: visitor(tokens[1]),
				body: fmt.Sprintf(`{"reservation_id":%d}`, holds[0].ID)}, 404)
			if got := errorOf(t, res); got.Code != ticketrush.EReservationNotFound {
				t.Errorf("purchase of another visitor's hold: code %q", got.Code)
			}
			st, err := e.store.Stats(t.Context(), ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Purchased != n || st.Cancelled != n || st.Available != 100-n {
				t.Errorf("stats %+v", *st)
			}
			p, c, b, r := cs.purchases.Load(), cs.cancels.Load(), cs.batches.Load(), cs.batched.Load()
			if batched && (p != 0 || c != 0 || r != n+3 || b < 1 || b > r) {
				t.Errorf("batched: %d Purchase, %d Cancel, %d SettleBatch of %d requests; want only batches of %d", p, c, b, r, n+3)
			}
			if !batched && (p != n/2+2 || c != n/2+1 || b != 0) {
				t.Errorf("lock: %d Purchase, %d Cancel, %d SettleBatch; want %d, %d, 0", p, c, b, n/2+2, n/2+1)
			}
		})
	}
}

// TestCheckoutBatchFails: a batch whose transaction fails answers every
// request in it as the single calls would: 503 unavailable when nothing was
// applied, 503 outcome_unknown when the store had the requests and cannot
// say how far it got (a deadline inside the store), and nothing is sold.
func TestCheckoutBatchFails(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{ticketrush.Unavailable(errors.New("connection refused")), ticketrush.EUnavailable},
		{ticketrush.OutcomeUnknown(errors.New("commit: connection reset")), ticketrush.EOutcomeUnknown},
		{fmt.Errorf("settle: %w", context.DeadlineExceeded), ticketrush.EOutcomeUnknown},
	} {
		t.Run(tc.code, func(t *testing.T) {
			e := sqliteEnv(t, func(c *Config) {
				c.Store = &countingStore{Store: c.Store, fail: tc.err}
				c.Checkout = &batch.Options{}
			})
			t.Cleanup(e.srv.Close)
			ev := e.createEvent(t, `{"name":"Fails","ticket_quantity":10}`)
			h := e.reserve(t, ev.ID, 2, tokenA)
			res := e.must(t, request{method: "POST", path: "/api/purchase", headers: visitor(tokenA),
				body: fmt.Sprintf(`{"reservation_id":%d}`, h.ID)}, 503)
			if got := errorOf(t, res); got.Code != tc.code {
				t.Errorf("purchase: code %q, want %q", got.Code, tc.code)
			}
			res = e.must(t, request{method: "DELETE", path: fmt.Sprintf("/api/reservations/%d", h.ID), headers: visitor(tokenA)}, 503)
			if got := errorOf(t, res); got.Code != tc.code {
				t.Errorf("cancel: code %q, want %q", got.Code, tc.code)
			}
			st, err := e.store.Stats(t.Context(), ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Held != 2 || st.Purchased != 0 {
				t.Errorf("stats %+v after failed batches", *st)
			}
		})
	}
}
