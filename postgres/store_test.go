package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/postgres"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2025, 11, 18, 7, 49, 23, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openStores opens n stores on one fresh database, as n processes would.
func openStores(t testing.TB, clock ticketrush.Clock, n int) []*postgres.Store {
	t.Helper()
	url := postgres.NewTestDatabase(t)
	stores := make([]*postgres.Store, n)
	for i := range stores {
		s, err := postgres.Open(context.Background(), url, postgres.Options{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	return stores
}

func createEvent(t testing.TB, s ticketrush.Store, ne ticketrush.NewEvent) *ticketrush.Event {
	t.Helper()
	if ne.Name == "" {
		ne.Name = "Örnek Etkinlik"
	}
	if ne.HoldSeconds == 0 {
		ne.HoldSeconds = 300
	}
	e, err := s.CreateEvent(context.Background(), ne)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := ticketrush.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

// checkInvariant checks capacity == ticket_quantity + held + purchased.
func checkInvariant(t testing.TB, s ticketrush.Store, eventID int64) *ticketrush.Stats {
	t.Helper()
	st, err := s.Stats(context.Background(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Capacity != st.Available+st.Held+st.Purchased {
		t.Fatalf("invariant broken: %+v", st)
	}
	return st
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := postgres.Open(context.Background(), "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable", postgres.Options{})
	wantCode(t, err, ticketrush.EUnavailable)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("open took %v", d)
	}
}

func TestContextDone(t *testing.T) {
	t.Parallel()
	s := openStores(t, nil, 1)[0]
	e := createEvent(t, s, ticketrush.NewEvent{TicketQuantity: 10})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: e.ID, Amount: 1, VisitorToken: uuid.NewString()})
	wantCode(t, err, ticketrush.EUnavailable)
	_, err = s.ReserveBatch(ctx, e.ID, []ticketrush.ReserveRequest{{EventID: e.ID, Amount: 1, VisitorToken: uuid.NewString()}})
	wantCode(t, err, ticketrush.EUnavailable)
	_, err = s.Events(ctx)
	wantCode(t, err, ticketrush.EUnavailable)
	if st := checkInvariant(t, s, e.ID); st.Available != 10 {
		t.Fatalf("stock = %d, want 10", st.Available)
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	s := openStores(t, clock.Now, 1)[0]
	ctx := context.Background()
	starts := clock.Now().Add(time.Hour + 1234*time.Nanosecond)
	a := createEvent(t, s, ticketrush.NewEvent{TicketQuantity: 5, MaxPerVisitor: 2, SaleStartsAt: &starts})
	clock.Advance(time.Second)
	b := createEvent(t, s, ticketrush.NewEvent{Name: "B", TicketQuantity: 7})
	if a.SaleStartsAt.Nanosecond()%1000 != 0 {
		t.Fatalf("sale_starts_at not truncated: %v", a.SaleStartsAt)
	}
	got, err := s.Event(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt != a.CreatedAt || got.Capacity != 5 || got.MaxPerVisitor != 2 || !got.SaleStartsAt.Equal(*a.SaleStartsAt) {
		t.Fatalf("Event = %+v, want %+v", got, a)
	}
	all, err := s.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != b.ID || all[1].ID != a.ID {
		t.Fatalf("Events not newest first: %+v", all)
	}
	_, err = s.Event(ctx, 999)
	wantCode(t, err, ticketrush.EEventNotFound)
	_, err = s.Stats(ctx, 999)
	wantCode(t, err, ticketrush.EEventNotFound)
	_, err = s.CreateEvent(ctx, ticketrush.NewEvent{Name: " ", TicketQuantity: 0, HoldSeconds: 1})
	wantCode(t, err, ticketrush.EValidation)

	// Sale not started, in both strategies.
	r := ticketrush.ReserveRequest{EventID: a.ID, Amount: 1, VisitorToken: uuid.NewString()}
	_, err = s.Reserve(ctx, r)
	wantCode(t, err, ticketrush.ESaleNotStarted)
	res, err := s.ReserveBatch(ctx, a.ID, []ticketrush.ReserveRequest{r})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, res[0].Err, ticketrush.ESaleNotStarted)
	res, err = s.ReserveBatch(ctx, 999, []ticketrush.ReserveRequest{{EventID: 999, Amount: 1, VisitorToken: r.VisitorToken}})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, res[0].Err, ticketrush.EEventNotFound)
}

// TestReserveBatchInOrder checks that a batch decides each request as if it
// were a Reserve of its own, in order.
func TestReserveBatchInOrder(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	s := openStores(t, clock.Now, 1)[0]
	ctx := context.Background()
	e := createEvent(t, s, ticketrush.NewEvent{TicketQuantity: 10, MaxPerVisitor: 4})
	alice, bob, carol := uuid.NewString(), uuid.NewString(), uuid.NewString()
	req := func(visitor string, amount int64, key string) ticketrush.ReserveRequest {
		return ticketrush.ReserveRequest{EventID: e.ID, Amount: amount, VisitorToken: visitor, IdempotencyKey: key}
	}
	reqs := []ticketrush.ReserveRequest{
		req(alice, 3, "k"), // 0: ok, stock 7
		req(alice, 3, "k"), // 1: same key, same body: request 0's reservation
		req(alice, 2, "k"), // 2: same key, other body
		req(alice, 2, ""),  // 3: alice would hold 5 > 4
		req(alice, 1, ""),  // 4: ok, alice holds 4, stock 6
		req(bob, 4, "k"),   // 5: same key, other visitor: ok, stock 2
		req(carol, 3, ""),  // 6: not enough
		req(carol, 2, ""),  // 7: a later, smaller one fits, stock 0
		req(bob, 0, ""),    // 8: invalid
	}
	res, err := s.ReserveBatch(ctx, e.ID, reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "", ticketrush.EIdempotencyKeyReused, ticketrush.EVisitorLimit, "", "", ticketrush.ENotEnoughTickets, "", ticketrush.EValidation}
	for i, w := range want {
		if got := ticketrush.ErrorCode(res[i].Err); got != w {
			t.Errorf("request %d: code %q (%v), want %q", i, got, res[i].Err, w)
		}
		if (res[i].Err == nil) == (res[i].Reservation == nil) {
			t.Errorf("request %d: want exactly one of reservation and error: %+v", i, res[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if res[0].Reservation.ID != res[1].Reservation.ID {
		t.Fatalf("repeated key got reservations %d and %d", res[0].Reservation.ID, res[1].Reservation.ID)
	}
	ids := map[int64]bool{}
	for _, i := range []int{0, 4, 5, 7} {
		r := res[i].Reservation
		got, err := s.Reservation(ctx, r.ID, r.UserUID)
		if err != nil {
			t.Fatal(err)
		}
		if *got != *r {
			t.Fatalf("stored %+v, returned %+v", got, r)
		}
		if r.Amount != reqs[i].Amount || r.UserUID != reqs[i].VisitorToken || r.IdempotencyKey != reqs[i].IdempotencyKey {
			t.Fatalf("request %d got %+v", i, r)
		}
		if !r.ExpiresAt.Equal(clock.Now().Add(300 * time.Second)) {
			t.Fatalf("expires_at = %v", r.ExpiresAt)
		}
		ids[r.ID] = true
	}
	if len(ids) != 4 {
		t.Fatalf("ids not distinct: %v", ids)
	}
	if st := checkInvariant(t, s, e.ID); st.Available != 0 || st.Held != 10 {
		t.Fatalf("stats = %+v", st)
	}

	// The key is remembered across batches and strategies.
	again, err := s.ReserveBatch(ctx, e.ID, []ticketrush.ReserveRequest{req(alice, 3, "k"), req(alice, 1, "k")})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Err != nil || again[0].Reservation.ID != res[0].Reservation.ID {
		t.Fatalf("repeat in a later batch: %+v", again[0])
	}
	wantCode(t, again[1].Err, ticketrush.EIdempotencyKeyReused)
	one, err := s.Reserve(ctx, req(alice, 3, "k"))
	if err != nil || one.ID != res[0].Reservation.ID {
		t.Fatalf("repeat through Reserve: %+v, %v", one, err)
	}
	_, err = s.Reserve(ctx, req(alice, 2, "k"))
	wantCode(t, err, ticketrush.EIdempotencyKeyReused)
}

// TestExpiry checks that expired holds stop counting at expires_at, are
// released by a reserve that finds stock short (both strategies), and that
// purchase and cancel treat them as expired.
func TestExpiry(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	s := openStores(t, clock.Now, 1)[0]
	ctx := context.Background()
	e := createEvent(t, s, ticketrush.NewEvent{TicketQuantity: 4, HoldSeconds: 60, MaxPerVisitor: 4})
	alice, bob := uuid.NewString(), uuid.NewString()
	a, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: e.ID, Amount: 2, VisitorToken: alice})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: e.ID, Amount: 2, VisitorToken: alice})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Reserve(ctx, ticketrush.ReserveRequest{EventID: e.ID, Amount: 1, VisitorToken: bob})
	wantCode(t, err, ticketrush.ENotEnoughTickets)

	clock.Advance(60 * time.Second) // exactly at expires_at: released
	c, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: e.ID, Amount: 3, VisitorToken: alice})
	if err != nil {
		t.Fatal(err)
	}
	if st := checkInvariant(t, s, e.ID); st.Available != 1 || st.Held != 3 || st.Expired != 4 {
		t.Fatalf("stats = %+v", st)
	}
	_, err = s.Purchase(ctx, a.ID, alice)
	wantCode(t, err, ticketrush.EExpired)
	_, err = s.Cancel(ctx, b.ID, alice)
	wantCode(t, err, ticketrush.EExpired)

	clock.Advance(60 * time.Second)
	res, err := s.ReserveBatch(ctx, e.ID, []ticketrush.ReserveRequest{
		{EventID: e.ID, Amount: 4, VisitorToken: bob},
		{EventID: e.ID, Amount: 1, VisitorToken: alice},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil {
		t.Fatalf("batch did not release expired holds: %v", res[0].Err)
	}
	wantCode(t, res[1].Err, ticketrush.ENotEnoughTickets)
	_, err = s.Purchase(ctx, c.ID, alice)
	wantCode(t, err, ticketrush.EExpired)
	if st := checkInvariant(t, s, e.ID); st.Available != 0 || st.Held != 4 || st.Expired != 7 {
		t.Fatalf("stats = %+v", st)
	}

	// Purchase releases an expired hold the sweeper has not seen.
	clock.Advance(61 * time.Second)
	_, err = s.Purchase(ctx, res[0].Reservation.ID, bob)
	wantCode(t, err, ticketrush.EExpired)
	if st := checkInvariant(t, s, e.ID); st.Available != 4 || st.Held != 0 {
		t.Fatalf("stats = %+v", st)
	}
	n, err := s.ReleaseExpired(ctx, 100)
	if err != nil || n != 0 {
		t.Fatalf("ReleaseExpired = %d, %v", n, err)
	}
}

func TestPurchaseCancel(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	s := openStores(t, clock.Now, 1)[0]
	ctx := context.Background()
	e := createEvent(t, s, ticketrush.NewEvent{TicketQuantity: 10})
	alice, bob := uuid.NewString(), uuid.NewString()
	a, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: e.ID, Amount: 3, VisitorToken: alice})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: e.ID, Amount: 2, VisitorToken: alice})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Purchase(ctx, a.ID, bob)
	wantCode(t, err, ticketrush.EReservationNotFound)
	_, err = s.Reservation(ctx, a.ID, "not-a-uuid")
	wantCode(t, err, ticketrush.EReservationNotFound)
	_, err = s.Cancel(ctx, a.ID, bob)
	wantCode(t, err, ticketrush.EReservationNotFound)
	_, err = s.Purchase(ctx, 999, alice)
	wantCode(t, err, ticketrush.EReservationNotFound)

	clock.Advance(time.Second)
	p, err := s.Purchase(ctx, a.ID, alice)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != ticketrush.StatusPurchased || !p.UpdatedAt.Equal(clock.Now()) || !p.CreatedAt.Equal(a.CreatedAt) {
		t.Fatalf("purchased = %+v", p)
	}
	_, err = s.Purchase(ctx, a.ID, alice)
	wantCode(t, err, ticketrush.EAlreadyPurchased)
	_, err = s.Cancel(ctx, a.ID, alice)
	wantCode(t, err, ticketrush.EAlreadyPurchased)

	c, err := s.Cancel(ctx, b.ID, alice)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != ticketrush.StatusCancelled {
		t.Fatalf("cancelled = %+v", c)
	}
	c2, err := s.Cancel(ctx, b.ID, alice)
	if err != nil || *c2 != *c {
		t.Fatalf("second cancel = %+v, %v; want %+v", c2, err, c)
	}
	_, err = s.Purchase(ctx, b.ID, alice)
	wantCode(t, err, ticketrush.ECancelled)
	st := checkInvariant(t, s, e.ID)
	if st.Available != 7 || st.Purchased != 3 || st.Cancelled != 2 || st.Held != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestRace sends 4× the capacity in mixed amounts from 64 goroutines through
// both strategies on two stores sharing one database, then checks that
// exactly the capacity was sold.
func TestRace(t *testing.T) {
	t.Parallel()
	const (
		capacity   = 200
		goroutines = 64
	)
	stores := openStores(t, nil, 2)
	ctx := context.Background()
	e := createEvent(t, stores[0], ticketrush.NewEvent{TicketQuantity: capacity})

	var (
		sold, demand atomic.Int64
		wg           sync.WaitGroup
		errs         = make(chan error, goroutines)
	)
	for g := range goroutines {
		wg.Go(func() {
			s := stores[g%2]
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			// Mixed amounts first, then single tickets until one fails:
			// stock only falls, so that failure means sold out.
			for n := 0; ; n++ {
				amount := int64(1)
				if n < 8 {
					amount = 1 + rng.Int64N(6)
				}
				var batch []ticketrush.ReserveRequest
				size := 1
				if g%4 >= 2 {
					size = 1 + rng.IntN(8)
				}
				for range size {
					batch = append(batch, ticketrush.ReserveRequest{EventID: e.ID, Amount: amount, VisitorToken: uuid.NewString()})
					demand.Add(amount)
				}
				var results []ticketrush.ReserveResult
				if g%4 < 2 {
					r, err := s.Reserve(ctx, batch[0])
					results = []ticketrush.ReserveResult{{Reservation: r, Err: err}}
				} else {
					var err error
					if results, err = s.ReserveBatch(ctx, e.ID, batch); err != nil {
						errs <- err
						return
					}
				}
				soldOut := false
				for _, r := range results {
					switch {
					case r.Err == nil:
						sold.Add(r.Reservation.Amount)
					case ticketrush.ErrorCode(r.Err) == ticketrush.ENotEnoughTickets:
						soldOut = soldOut || amount == 1
					default:
						errs <- r.Err
						return
					}
				}
				if soldOut && demand.Load() >= 4*capacity {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if sold.Load() != capacity {
		t.Fatalf("sold %d, capacity %d", sold.Load(), capacity)
	}
	for _, s := range stores {
		if st := checkInvariant(t, s, e.ID); st.Available != 0 || st.Held != capacity {
			t.Fatalf("stats = %+v", st)
		}
	}
}

// TestReleaseExpiredConcurrent checks that sweepers in two processes release
// each expired hold exactly once.
func TestReleaseExpiredConcurrent(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	stores := openStores(t, clock.Now, 2)
	ctx := context.Background()
	var events []*ticketrush.Event
	for range 3 {
		events = append(events, createEvent(t, stores[0], ticketrush.NewEvent{TicketQuantity: 1000, HoldSeconds: 10}))
	}
	holds, tickets := 0, map[int64]int64{}
	for i := range 120 {
		e := events[i%len(events)]
		var batch []ticketrush.ReserveRequest
		for j := range 1 + i%3 {
			batch = append(batch, ticketrush.ReserveRequest{EventID: e.ID, Amount: int64(1 + j), VisitorToken: uuid.NewString()})
		}
		res, err := stores[i%2].ReserveBatch(ctx, e.ID, batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			holds++
			tickets[e.ID] += r.Reservation.Amount
		}
		if i == 60 {
			clock.Advance(5 * time.Second) // the later half expires later
		}
	}
	clock.Advance(5 * time.Second) // only the first half has expired
	firstHalf := releaseAll(t, stores)
	clock.Advance(5 * time.Second)
	secondHalf := releaseAll(t, stores)
	if firstHalf == 0 || secondHalf == 0 || firstHalf+secondHalf != holds {
		t.Fatalf("released %d + %d holds, made %d", firstHalf, secondHalf, holds)
	}
	for _, e := range events {
		st := checkInvariant(t, stores[1], e.ID)
		if st.Available != 1000 || st.Expired != tickets[e.ID] || st.Held != 0 {
			t.Fatalf("stats = %+v, want %d expired", st, tickets[e.ID])
		}
	}
}

// releaseAll sweeps from eight goroutines over the stores until nothing is
// left and returns how many holds they released together.
func releaseAll(t *testing.T, stores []*postgres.Store) int {
	var (
		total atomic.Int64
		wg    sync.WaitGroup
	)
	for g := range 8 {
		wg.Go(func() {
			for {
				n, err := stores[g%len(stores)].ReleaseExpired(context.Background(), 7)
				if err != nil {
					t.Error(err)
					return
				}
				total.Add(int64(n))
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	return int(total.Load())
}

// TestMixedLoad runs every writing path at once, on two stores, with the
// clock moving so holds expire under load: nothing may deadlock, fail, or
// break the invariant.
func TestMixedLoad(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	stores := openStores(t, clock.Now, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var events []*ticketrush.Event
	for range 2 {
		events = append(events, createEvent(t, stores[0], ticketrush.NewEvent{TicketQuantity: 40, HoldSeconds: 2, MaxPerVisitor: 6}))
	}
	visitors := []string{uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	report := func(err error) {
		switch ticketrush.ErrorCode(err) {
		case "", ticketrush.ENotEnoughTickets, ticketrush.EVisitorLimit, ticketrush.EExpired,
			ticketrush.EAlreadyPurchased, ticketrush.ECancelled, ticketrush.EIdempotencyKeyReused:
		default:
			select {
			case errs <- err:
			default:
			}
		}
	}
	for g := range 16 {
		wg.Go(func() {
			s := stores[g%2]
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for n := range 60 {
				e := events[rng.IntN(len(events))]
				v := visitors[rng.IntN(len(visitors))]
				req := ticketrush.ReserveRequest{EventID: e.ID, Amount: 1 + rng.Int64N(3), VisitorToken: v}
				if rng.IntN(4) == 0 {
					req.IdempotencyKey = fmt.Sprintf("k%d", rng.IntN(5))
				}
				var held []*ticketrush.Reservation
				switch g % 4 {
				case 0:
					r, err := s.Reserve(ctx, req)
					report(err)
					if err == nil {
						held = append(held, r)
					}
				case 1, 2:
					reqs := []ticketrush.ReserveRequest{req, req}
					reqs[1].VisitorToken = visitors[rng.IntN(len(visitors))]
					res, err := s.ReserveBatch(ctx, e.ID, reqs)
					report(err)
					for _, r := range res {
						report(r.Err)
						if r.Err == nil {
							held = append(held, r.Reservation)
						}
					}
				case 3:
					_, err := s.ReleaseExpired(ctx, 5)
					report(err)
				}
				for _, r := range held {
					switch rng.IntN(3) {
					case 0:
						_, err := s.Purchase(ctx, r.ID, r.UserUID)
						report(err)
					case 1:
						_, err := s.Cancel(ctx, r.ID, r.UserUID)
						report(err)
					}
				}
				if n%10 == 0 {
					clock.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	releaseAll(t, stores)
	for _, e := range events {
		if st := checkInvariant(t, stores[0], e.ID); st.Held != 0 {
			t.Fatalf("holds left after the sweep: %+v", st)
		}
	}
}
