package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ticketrush/ticketrush"
)

// hardClock is a clock tests move by hand.
type hardClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *hardClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *hardClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openInternal(t *testing.T, clock ticketrush.Clock, opts Options) (*Store, string) {
	t.Helper()
	url := NewTestDatabase(t)
	opts.Now = clock
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, url
}

// lockWaiters counts the test database's backends waiting for a lock.
func lockWaiters(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE application_name = current_setting('application_name') AND wait_event_type = 'Lock'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitWaiters(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for lockWaiters(t, s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d backends waiting for a lock after 10s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holdEventRow locks the event row on a connection of its own, as a slow
// transaction would, until the returned function is called.
func holdEventRow(t *testing.T, url string, eventID int64) func() {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT id FROM events WHERE id = $1 FOR UPDATE`, eventID); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			tx.Commit(ctx)
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// TestReserveDuringSweep: a reserve that meets the sweeper (or a cancel or
// purchase of an expired hold) on the same expired holds is never told sold
// out while they exist. The reserve queues for the event row first, then
// the other starts; when the row is free the reserve decides while the
// other still waits. One that locked the holds before queueing for the
// event row made the reserve's SKIP LOCKED pass over them:
// not_enough_tickets with every ticket releasable.
func TestReserveDuringSweep(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{"lock", "batch"} {
		for _, other := range []string{"sweep", "cancel", "purchase"} {
			t.Run(strategy+"/"+other, func(t *testing.T) {
				t.Parallel()
				testReserveBeside(t, strategy, other)
			})
		}
	}
}

func testReserveBeside(t *testing.T, strategy, other string) {
	clock := &hardClock{now: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	s, url := openInternal(t, clock.Now, Options{})
	ctx := context.Background()
	e, err := s.CreateEvent(ctx, ticketrush.NewEvent{Name: "Sweep", TicketQuantity: 4, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	var holds []*ticketrush.Reservation
	for range 4 {
		h, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: e.ID, Amount: 1, VisitorToken: uuid.NewString()})
		if err != nil {
			t.Fatal(err)
		}
		holds = append(holds, h)
	}
	clock.Advance(2 * time.Minute)

	release := holdEventRow(t, url, e.ID)
	reserved := make(chan error, 1)
	go func() {
		r := ticketrush.ReserveRequest{EventID: e.ID, Amount: 4, VisitorToken: uuid.NewString()}
		if strategy == "lock" {
			_, err := s.Reserve(ctx, r)
			reserved <- err
			return
		}
		res, err := s.ReserveBatch(ctx, e.ID, []ticketrush.ReserveRequest{r})
		if err == nil {
			err = res[0].Err
		}
		reserved <- err
	}()
	waitWaiters(t, s, 1)
	done := make(chan error, 1)
	go func() {
		var err error
		switch other {
		case "sweep":
			_, err = s.ReleaseExpired(ctx, 100)
		case "cancel":
			_, err = s.Cancel(ctx, holds[0].ID, holds[0].UserUID)
		case "purchase":
			_, err = s.Purchase(ctx, holds[0].ID, holds[0].UserUID)
		}
		done <- err
	}()
	waitWaiters(t, s, 2)
	release()
	if err := <-reserved; err != nil {
		t.Fatalf("reserve of 4 beside a %s of expired holds of 4: %v", other, err)
	}
	if err := <-done; err != nil && ticketrush.ErrorCode(err) != ticketrush.EExpired {
		t.Fatalf("%s: %v", other, err)
	}
	st, err := s.Stats(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Held != 4 || st.Available != 0 || st.Expired != 4 || st.Capacity != st.Available+st.Held+st.Purchased {
		t.Fatalf("stats %+v", st)
	}
}

// TestReleaseBounded: a reserve short of stock releases only the expired
// holds it needs, oldest first, not every expired hold of the event.
func TestReleaseBounded(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{"lock", "batch"} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			clock := &hardClock{now: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
			s, _ := openInternal(t, clock.Now, Options{})
			ctx := context.Background()
			const holds = 600 // more than two chunks
			e, err := s.CreateEvent(ctx, ticketrush.NewEvent{Name: "Bounded", TicketQuantity: holds, HoldSeconds: 60})
			if err != nil {
				t.Fatal(err)
			}
			reqs := make([]ticketrush.ReserveRequest, holds)
			for i := range reqs {
				reqs[i] = ticketrush.ReserveRequest{EventID: e.ID, Amount: 1, VisitorToken: uuid.NewString()}
			}
			if _, err := s.ReserveBatch(ctx, e.ID, reqs); err != nil {
				t.Fatal(err)
			}
			clock.Advance(2 * time.Minute)
			reserve := func(amount int64) {
				t.Helper()
				r := ticketrush.ReserveRequest{EventID: e.ID, Amount: amount, VisitorToken: uuid.NewString()}
				if strategy == "lock" {
					_, err = s.Reserve(ctx, r)
				} else {
					var res []ticketrush.ReserveResult
					res, err = s.ReserveBatch(ctx, e.ID, []ticketrush.ReserveRequest{r})
					if err == nil {
						err = res[0].Err
					}
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			reserve(3)
			st, _ := s.Stats(ctx, e.ID)
			if st.Expired != 3 || st.Held != holds || st.Available != 0 {
				t.Fatalf("a reserve of 3 released %d expired holds: %+v", st.Expired, st)
			}
			// A large shortfall takes several bounded chunks, still only
			// what it needs.
			var big []ticketrush.ReserveRequest
			for range 40 {
				big = append(big, ticketrush.ReserveRequest{EventID: e.ID, Amount: 10, VisitorToken: uuid.NewString()})
			}
			res, err := s.ReserveBatch(ctx, e.ID, big)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil {
					t.Fatal(r.Err)
				}
			}
			st, _ = s.Stats(ctx, e.ID)
			if st.Expired != 403 || st.Available != 0 || st.Capacity != st.Available+st.Held+st.Purchased {
				t.Fatalf("after a batch of 400 tickets: %+v, want 403 released", st)
			}
		})
	}
}

// TestCrosswiseKeys: one visitor's Idempotency-Keys used crosswise on two
// events by two concurrent batches never deadlock, and the key keeps its
// meaning: the second event's use answers idempotency_key_reused.
func TestCrosswiseKeys(t *testing.T) {
	t.Parallel()
	s, _ := openInternal(t, nil, Options{})
	ctx := context.Background()
	var events [2]int64
	for i := range events {
		e, err := s.CreateEvent(ctx, ticketrush.NewEvent{Name: "Hot", TicketQuantity: 1_000_000, HoldSeconds: 60})
		if err != nil {
			t.Fatal(err)
		}
		events[i] = e.ID
	}
	before := deadlocks.Load()
	const keys = 300
	for round := range 5 {
		visitor := uuid.NewString()
		var wg sync.WaitGroup
		results := make([][]ticketrush.ReserveResult, 2)
		for side := range 2 {
			reqs := make([]ticketrush.ReserveRequest, keys)
			for i := range reqs {
				k := i
				if side == 1 {
					k = keys - 1 - i // the other order
				}
				reqs[i] = ticketrush.ReserveRequest{EventID: events[side], Amount: 1, VisitorToken: visitor,
					IdempotencyKey: fmt.Sprintf("r%d-k%03d", round, k)}
			}
			wg.Go(func() {
				res, err := s.ReserveBatch(ctx, events[side], reqs)
				if err != nil {
					t.Errorf("batch: %v (code %s)", err, ticketrush.ErrorCode(err))
					return
				}
				results[side] = res
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		// Each key went to exactly one event; the other got reused.
		won := map[string]int{}
		for side, res := range results {
			for _, r := range res {
				switch {
				case r.Err == nil:
					won[r.Reservation.IdempotencyKey]++
				case ticketrush.ErrorCode(r.Err) != ticketrush.EIdempotencyKeyReused:
					t.Fatalf("side %d: %v", side, r.Err)
				}
			}
		}
		if len(won) != keys {
			t.Fatalf("%d keys reserved, want %d", len(won), keys)
		}
	}
	if n := deadlocks.Load() - before; n > 0 {
		t.Fatalf("%d deadlocks between batches of two events", n)
	}
}

// TestLeftoverAbortsAreUnavailable: a deadlock or serialization failure
// that outlives the retries is 503 unavailable (nothing applied), not an
// internal error.
func TestLeftoverAbortsAreUnavailable(t *testing.T) {
	t.Parallel()
	s, _ := openInternal(t, nil, Options{})
	for _, code := range []string{"40P01", "40001"} {
		err := s.fail("reserve", fmt.Errorf("wrapped: %w", pgconnError(code)))
		if got := ticketrush.ErrorCode(err); got != ticketrush.EUnavailable {
			t.Errorf("%s: code %s (%v), want unavailable", code, got, err)
		}
	}
}

// pgconnError builds a server error with a given SQLSTATE.
func pgconnError(code string) *pgconn.PgError { return &pgconn.PgError{Code: code} }

// TestLockStrategySaturated: with the lock strategy, one event whose row
// is held (a rush on a slow transaction) neither starves readiness checks,
// other events and purchases of connections, nor leaves backends queued on
// its row after the requests that sent them have timed out.
func TestLockStrategySaturated(t *testing.T) {
	t.Parallel()
	s, url := openInternal(t, nil, Options{MaxConns: 4})
	ctx := context.Background()
	var limits [2]string
	if err := s.pool.QueryRow(ctx, "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')").Scan(&limits[0], &limits[1]); err != nil {
		t.Fatal(err)
	}
	if limits != [2]string{"30s", "5s"} {
		t.Fatalf("statement_timeout, lock_timeout = %v, want server-side limits", limits)
	}
	hot, err := s.CreateEvent(ctx, ticketrush.NewEvent{Name: "Hot", TicketQuantity: 1000, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateEvent(ctx, ticketrush.NewEvent{Name: "Other", TicketQuantity: 1000, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	release := holdEventRow(t, url, hot.ID)

	rushCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }() // before the row is freed, on failure too
	for range 16 {
		wg.Go(func() {
			for rushCtx.Err() == nil {
				rctx, cancel := context.WithTimeout(rushCtx, 2*time.Second)
				_, err := s.Reserve(rctx, ticketrush.ReserveRequest{EventID: hot.ID, Amount: 1, VisitorToken: uuid.NewString()})
				cancel()
				if code := ticketrush.ErrorCode(err); code != ticketrush.EUnavailable {
					t.Errorf("reserve of the held event: %v (code %s), want unavailable", err, code)
					return
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	for i := range 15 {
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := s.Ping(pctx)
		if err == nil {
			var r *ticketrush.Reservation
			r, err = s.Reserve(pctx, ticketrush.ReserveRequest{EventID: other.ID, Amount: 1, VisitorToken: uuid.NewString()})
			if err == nil {
				_, err = s.Purchase(pctx, r.ID, r.UserUID)
			}
		}
		cancel()
		if err != nil {
			t.Fatalf("round %d, %v: ping, reserve and purchase elsewhere: %v", i, time.Since(start), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()
	// A reserve that times out on the row is cancelled on the server and
	// its connection kept: timeouts open no replacement connections.
	opened := s.pool.Stat().NewConnsCount()
	for range 8 {
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := s.Reserve(rctx, ticketrush.ReserveRequest{EventID: hot.ID, Amount: 1, VisitorToken: uuid.NewString()})
		cancel()
		if code := ticketrush.ErrorCode(err); code != ticketrush.EUnavailable {
			t.Fatalf("reserve of the held event: %v, want unavailable", err)
		}
	}
	if n := s.pool.Stat().NewConnsCount() - opened; n > 0 {
		t.Errorf("8 timed-out reserves opened %d new connections", n)
	}
	// None still waits for the row.
	deadline := time.Now().Add(2 * time.Second)
	for lockWaiters(t, s) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d backends still queued on the event row after their requests timed out", lockWaiters(t, s))
		}
		time.Sleep(20 * time.Millisecond)
	}
	release()
}
