package storetest

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
)

// settledStore is a Store whose Purchase and Cancel go through a group
// commit batcher (batch.Settler over Store.SettleBatch), so that the
// suite's purchase and cancel cases run unchanged against the batch path.
type settledStore struct {
	ticketrush.Store
	settler *batch.Settler
}

func (s *settledStore) Purchase(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	return s.settler.Purchase(ctx, id, visitor)
}

func (s *settledStore) Cancel(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	return s.settler.Cancel(ctx, id, visitor)
}

func (s *settledStore) Close() error {
	s.settler.Close()
	return s.Store.Close()
}

// settleThroughBatches wraps newStore so every store it opens purchases
// and cancels through a batch.Settler.
func settleThroughBatches(newStore NewStore) NewStore {
	return func(t *testing.T, clock ticketrush.Clock) func() ticketrush.Store {
		open := newStore(t, clock)
		return func() ticketrush.Store {
			s := open()
			if s == nil {
				return nil
			}
			// As the batch strategy's Timeout: the suite checks outcomes,
			// not serving latency.
			return &settledStore{Store: s, settler: batch.NewSettler(s, batch.Options{Timeout: time.Minute})}
		}
	}
}

// settleGroups are the groups that purchase or cancel: run again, under
// both reserve strategies, with purchases and cancels group-committed.
var settleGroups = []group{
	{"Purchase", testPurchase},
	{"Cancel", testCancel},
	{"Reservation", testReservation},
	{"Stats", testStats},
	{"Expiry", testExpiry},
	{"ReleaseExpired", testReleaseExpired},
	{"Mixed", testMixed},
	{"Settings", testSettings},
	{"Queue", testQueue},
	{"Messages", testMessages},
}

// runSettle runs settleGroups through batch.Settler as <strategy>-settle/…,
// and the SettleBatch cases as SettleBatch/….
func runSettle(t *testing.T, newStore NewStore) {
	t.Run("SettleBatch", func(t *testing.T) {
		t.Parallel()
		testSettleBatch(t, suite{newStore: newStore, strategy: strategies[0]})
	})
	wrapped := settleThroughBatches(newStore)
	for _, st := range strategies {
		t.Run(st.name+"-settle", func(t *testing.T) {
			t.Parallel()
			s := suite{newStore: wrapped, strategy: st}
			for _, g := range settleGroups {
				t.Run(g.name, func(t *testing.T) {
					t.Parallel()
					g.run(t, s)
				})
			}
		})
	}
}

// op is one request of a SettleBatch case with the outcome it must have:
// code "" for a success with status.
type op struct {
	cancel bool
	r      *ticketrush.Reservation
	as     string // the visitor asking; "" means the hold's own
	code   string
	status string
}

func buy(r *ticketrush.Reservation, code, status string) op {
	return op{r: r, code: code, status: status}
}

func drop(r *ticketrush.Reservation, code, status string) op {
	return op{cancel: true, r: r, code: code, status: status}
}

// settleBatch runs ops as one SettleBatch, which must succeed as a
// transaction, and checks each result.
func settleBatch(t *testing.T, s ticketrush.Store, now time.Time, ops ...op) []ticketrush.SettleResult {
	t.Helper()
	reqs := make([]ticketrush.SettleRequest, len(ops))
	for i, o := range ops {
		v := o.as
		if v == "" {
			v = o.r.UserUID
		}
		reqs[i] = ticketrush.SettleRequest{Cancel: o.cancel, ID: o.r.ID, Visitor: v}
	}
	results, err := s.SettleBatch(t.Context(), reqs)
	if err != nil {
		t.Fatalf("SettleBatch(%d requests): %v", len(reqs), err)
	}
	if len(results) != len(reqs) {
		t.Fatalf("SettleBatch: %d results for %d requests", len(results), len(reqs))
	}
	for i, res := range results {
		o := ops[i]
		if (res.Reservation == nil) == (res.Err == nil) {
			t.Errorf("result %d: reservation %+v and error %v; want exactly one", i, res.Reservation, res.Err)
			continue
		}
		if code := ticketrush.ErrorCode(res.Err); code != o.code {
			t.Errorf("result %d (%+v): error %v (code %q), want code %q", i, reqs[i], res.Err, code, o.code)
			continue
		}
		if res.Reservation == nil {
			continue
		}
		want := *o.r
		want.Status = o.status
		if o.status != o.r.Status {
			want.UpdatedAt = now
		}
		sameReservation(t, "result "+itoa(int64(i)), res.Reservation, &want)
	}
	return results
}

func testSettleBatch(t *testing.T, s suite) {
	e := s.env(t)
	const ok = "" // the code of a success
	P, C, X, R := ticketrush.StatusPurchased, ticketrush.StatusCancelled, ticketrush.StatusExpired, ticketrush.StatusReserved

	t.Run("Empty", func(t *testing.T) {
		res, err := e.store.SettleBatch(t.Context(), nil)
		if err != nil || len(res) != 0 {
			t.Fatalf("SettleBatch(nil) = %v, %v; want no results, no error", res, err)
		}
	})

	t.Run("SameHoldInOrder", func(t *testing.T) {
		// Requests on one hold see what the earlier ones of their batch
		// did, as consecutive single calls would.
		ev := createEvent(t, e.store, concert(20))
		a := reserve(t, e.store, req(ev.ID, 2, visitor()))
		b := reserve(t, e.store, req(ev.ID, 3, visitor()))
		c := reserve(t, e.store, req(ev.ID, 1, visitor()))
		d := reserve(t, e.store, req(ev.ID, 4, visitor()))
		now := e.clock.Advance(time.Second)
		settleBatch(t, e.store, now,
			buy(a, ok, P), drop(a, ticketrush.EAlreadyPurchased, ""), buy(a, ticketrush.EAlreadyPurchased, ""),
			drop(b, ok, C), buy(b, ticketrush.ECancelled, ""), drop(b, ok, C),
			op{r: c, as: visitor(), code: ticketrush.EReservationNotFound}, buy(c, ok, P),
			drop(d, ok, C))
		wantStatus(t, e.store, a, P)
		wantStatus(t, e.store, b, C)
		wantStatus(t, e.store, c, P)
		wantStatus(t, e.store, d, C)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 20, Available: 17, Purchased: 3, Cancelled: 7})
		// Settled holds stay settled in later batches.
		settleBatch(t, e.store, now, buy(b, ticketrush.ECancelled, ""), drop(c, ticketrush.EAlreadyPurchased, ""),
			drop(d, ok, C), drop(a, ticketrush.EAlreadyPurchased, ""))
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 20, Available: 17, Purchased: 3, Cancelled: 7})
	})

	t.Run("Expired", func(t *testing.T) {
		// A hold past its expiry is released as expired by the batch,
		// for a purchase and a cancel alike, once.
		ne := concert(10)
		ne.HoldSeconds = 60
		ev := createEvent(t, e.store, ne)
		a := reserve(t, e.store, req(ev.ID, 2, visitor()))
		b := reserve(t, e.store, req(ev.ID, 3, visitor()))
		e.clock.Set(a.ExpiresAt.Add(-time.Microsecond))
		c := reserve(t, e.store, req(ev.ID, 1, visitor()))
		now := a.ExpiresAt
		e.clock.Set(now)
		settleBatch(t, e.store, now,
			buy(a, ticketrush.EExpired, ""), drop(a, ticketrush.EExpired, ""),
			drop(b, ticketrush.EExpired, ""), buy(b, ticketrush.EExpired, ""),
			buy(c, ok, P))
		wantStatus(t, e.store, a, X)
		wantStatus(t, e.store, b, X)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 9, Purchased: 1, Expired: 5})
		if n := releaseAll(t, e.store); n != 0 {
			t.Errorf("the sweep released %d holds the batch had released", n)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		a := reserve(t, e.store, req(ev.ID, 2, visitor()))
		ghost := *a
		ghost.ID = a.ID + 1000
		far := *a
		far.ID = 1 << 40
		now := e.clock.Advance(time.Second)
		settleBatch(t, e.store, now,
			op{r: a, as: visitor(), code: ticketrush.EReservationNotFound},
			op{cancel: true, r: a, as: visitor(), code: ticketrush.EReservationNotFound},
			buy(&ghost, ticketrush.EReservationNotFound, ""), drop(&far, ticketrush.EReservationNotFound, ""))
		sameReservation(t, "Reservation", readBack(t, e.store, a), a)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Held: 2})
	})

	t.Run("ManyEvents", func(t *testing.T) {
		// One batch settles holds of several events, each event's stock
		// as its own holds say.
		var events []*ticketrush.Event
		var ops []op
		for i := range 5 {
			ev := createEvent(t, e.store, concert(50))
			events = append(events, ev)
			for j := range 6 {
				r := reserve(t, e.store, req(ev.ID, int64(1+(i+j)%3), visitor()))
				if j%2 == 0 {
					ops = append(ops, buy(r, ok, P))
				} else {
					ops = append(ops, drop(r, ok, C))
				}
			}
		}
		rand.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		now := e.clock.Advance(time.Second)
		settleBatch(t, e.store, now, ops...)
		for _, ev := range events {
			var bought, dropped int64
			for _, o := range ops {
				if o.r.EventID != ev.ID {
					continue
				}
				if o.cancel {
					dropped += o.r.Amount
				} else {
					bought += o.r.Amount
				}
			}
			wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 50, Available: 50 - bought,
				Purchased: bought, Cancelled: dropped})
		}
	})

	t.Run("CancelledStockSellsAtOnce", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(3))
		a := reserve(t, e.store, req(ev.ID, 3, visitor()))
		reserveErr(t, e.store, req(ev.ID, 1, visitor()), ticketrush.ENotEnoughTickets)
		now := e.clock.Advance(time.Second)
		settleBatch(t, e.store, now, drop(a, ok, C))
		reserve(t, e.store, req(ev.ID, 3, visitor()))
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 3, Available: 0, Held: 3, Cancelled: 3})
	})

	t.Run("OnlyRefusals", func(t *testing.T) {
		// A batch that changes nothing leaves everything as it was.
		ev := createEvent(t, e.store, concert(10))
		a := reserve(t, e.store, req(ev.ID, 2, visitor()))
		b := reserve(t, e.store, req(ev.ID, 2, visitor()))
		now := e.clock.Advance(time.Second)
		settleBatch(t, e.store, now, buy(a, ok, P), drop(b, ok, C))
		settleBatch(t, e.store, now, buy(a, ticketrush.EAlreadyPurchased, ""), drop(a, ticketrush.EAlreadyPurchased, ""),
			buy(b, ticketrush.ECancelled, ""))
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Purchased: 2, Cancelled: 2})
	})

	t.Run("Unavailable", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(10))
		a := reserve(t, e.store, req(ev.ID, 2, visitor()))
		call := func(ctx context.Context) error {
			_, err := e.store.SettleBatch(ctx, []ticketrush.SettleRequest{{ID: a.ID, Visitor: a.UserUID}})
			return err
		}
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		wantCode(t, "SettleBatch past its deadline", call(ctx), ticketrush.EUnavailable)
		cancel()
		ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		e.clock.stallUntil(ctx.Done())
		err := call(ctx)
		if e.clock.stallUntil(nil) == 0 {
			t.Fatal("SettleBatch never read the store's clock: the case cannot block it")
		}
		wantCode(t, "SettleBatch whose deadline fired inside the store", err, ticketrush.EUnavailable)
		sameReservation(t, "Reservation", readBack(t, e.store, a), a)
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 10, Available: 8, Held: 2})
	})

	t.Run("TwoStores", func(t *testing.T) {
		// Two processes, each with its own batcher, purchase and cancel
		// the same holds at once: each hold ends in exactly one state,
		// every answer agrees with it, and the stock adds up.
		other := e.openStore(t)
		settlers := []*batch.Settler{
			batch.NewSettler(e.store, batch.Options{Timeout: time.Minute}),
			batch.NewSettler(other, batch.Options{Timeout: time.Minute}),
		}
		for _, st := range settlers {
			t.Cleanup(st.Close)
		}
		ev := createEvent(t, e.store, concert(400))
		l := newLedger()
		var holds []*ticketrush.Reservation
		for i := range 120 {
			r := reserve(t, e.store, req(ev.ID, int64(1+i%3), visitor()))
			l.add(t, r)
			holds = append(holds, r)
		}
		e.clock.Advance(time.Second)
		type answer struct {
			cancel bool
			status string
			code   string
		}
		answers := make([][]answer, len(holds))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 11))
				for _, i := range rng.Perm(len(holds)) {
					h := holds[i]
					cancel := rng.IntN(2) == 0
					st := settlers[rng.IntN(2)]
					var got *ticketrush.Reservation
					var err error
					if cancel {
						got, err = st.Cancel(t.Context(), h.ID, h.UserUID)
					} else {
						got, err = st.Purchase(t.Context(), h.ID, h.UserUID)
					}
					a := answer{cancel: cancel, code: ticketrush.ErrorCode(err)}
					if got != nil {
						a.status = got.Status
					}
					mu.Lock()
					answers[i] = append(answers[i], a)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for i, h := range holds {
			final := readBack(t, e.store, h).Status
			for _, a := range answers[i] {
				var good bool
				switch final {
				case P:
					good = (!a.cancel && a.code == "" && a.status == P) || a.code == ticketrush.EAlreadyPurchased
				case C:
					good = (a.cancel && a.code == "" && a.status == C) || (!a.cancel && a.code == ticketrush.ECancelled)
				}
				if !good {
					t.Errorf("hold %d ended %s, but a request (cancel %v) was answered status %q code %q",
						h.ID, final, a.cancel, a.status, a.code)
				}
			}
			if final == R {
				t.Errorf("hold %d still reserved after every request settled", h.ID)
			}
		}
		checkLedger(t, e.store, ev.ID, l)
		checkLedger(t, other, ev.ID, l)
	})
}
