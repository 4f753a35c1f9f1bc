package redis_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/redis"
)

// releaseWatch records, for every script call a store sends, how many
// tickets of one event expired during it (read from the event hash with a
// client of its own), so a test can see how work is split between calls.
type releaseWatch struct {
	c     *goredis.Client
	key   string
	mu    sync.Mutex
	calls []int64 // expired tickets released by each script call
}

func watchReleases(t *testing.T, s *redis.Store, prefix string, eventID int64) *releaseWatch {
	t.Helper()
	o, _ := goredis.ParseURL(serverURL(t))
	w := &releaseWatch{c: goredis.NewClient(o), key: prefix + ":{e:" + strconv.FormatInt(eventID, 10) + "}"}
	t.Cleanup(func() { w.c.Close() })
	s.AddHook(w)
	return w
}

func (w *releaseWatch) expired() int64 {
	n, _ := w.c.HGet(context.Background(), w.key, "expired").Int64()
	return n
}

func (w *releaseWatch) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (w *releaseWatch) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if cmd.Name() != "evalsha" && cmd.Name() != "eval" {
			return next(ctx, cmd)
		}
		before := w.expired()
		err := next(ctx, cmd)
		if err == nil {
			w.mu.Lock()
			w.calls = append(w.calls, w.expired()-before)
			w.mu.Unlock()
		}
		return err
	}
}

func (w *releaseWatch) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// take returns the calls recorded since the last take.
func (w *releaseWatch) take() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.calls
	w.calls = nil
	return c
}

// expiredHolds creates an event of n tickets held by n one-ticket holds
// that have all expired, none released yet.
func expiredHolds(t *testing.T, s *redis.Store, clock *fixedClock, n int) *ticketrush.Event {
	t.Helper()
	ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: int64(n),
		HoldSeconds: 60, MaxPerOrder: ticketrush.MaxAmount})
	if err != nil {
		t.Fatal(err)
	}
	reqs := make([]ticketrush.ReserveRequest, n)
	for i := range reqs {
		reqs[i] = ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()}
	}
	res, err := s.ReserveBatch(t.Context(), ev.ID, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	clock.Advance(2 * time.Minute)
	return ev
}

func wantStats(t *testing.T, s *redis.Store, want ticketrush.Stats) {
	t.Helper()
	st, err := s.Stats(t.Context(), want.EventID)
	if err != nil {
		t.Fatal(err)
	}
	if *st != want {
		t.Errorf("stats %+v, want %+v", *st, want)
	}
}

// wantChunks checks that each script call released at most ReleaseChunk
// tickets and that they add up to total.
func wantChunks(t *testing.T, what string, calls []int64, total int64, wantCalls int) {
	t.Helper()
	sum := int64(0)
	for _, n := range calls {
		if n > redis.ReleaseChunk {
			t.Errorf("%s: one script call released %d holds, more than %d: %v", what, n, redis.ReleaseChunk, calls)
		}
		sum += n
	}
	if sum != total || len(calls) != wantCalls {
		t.Errorf("%s: script calls released %v (%d in %d calls), want %d in %d calls", what, calls, sum, len(calls), total, wantCalls)
	}
}

// TestReserveReleasesWhatItNeeds: a reserve that finds the stock short
// releases the event's expired holds only until the stock covers it, at
// most ReleaseChunk per script call, each chunk its own call, instead of
// every expired hold of the event in one script that blocks Redis.
func TestReserveReleasesWhatItNeeds(t *testing.T) {
	s, clock, prefix := testStore(t)
	ev := expiredHolds(t, s, clock, 1000)
	w := watchReleases(t, s, prefix, ev.ID)

	if _, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()}); err != nil {
		t.Fatal(err)
	}
	wantChunks(t, "reserve of 1", w.take(), 1, 1)
	wantStats(t, s, ticketrush.Stats{EventID: ev.ID, Capacity: 1000, Held: 1000, Expired: 1})

	r, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 250, VisitorToken: uuid.NewString()})
	if err != nil || r.Amount != 250 {
		t.Fatalf("Reserve of 250 = %+v, %v", r, err)
	}
	wantChunks(t, "reserve of 250", w.take(), 250, 3)
	wantStats(t, s, ticketrush.Stats{EventID: ev.ID, Capacity: 1000, Held: 1000, Expired: 251})
}

// TestReserveBatchReleasesWhatItNeeds is the same for a batch: the script
// stops at the request that needs another chunk, and the rest of the batch
// goes on in the next call, decided in order.
func TestReserveBatchReleasesWhatItNeeds(t *testing.T) {
	s, clock, prefix := testStore(t)
	ev := expiredHolds(t, s, clock, 1000)
	w := watchReleases(t, s, prefix, ev.ID)

	v := uuid.NewString()
	reqs := []ticketrush.ReserveRequest{
		{EventID: ev.ID, Amount: 150, VisitorToken: uuid.NewString()},
		{EventID: ev.ID, Amount: 1, VisitorToken: v, IdempotencyKey: "k"},
		{EventID: ev.ID, Amount: 100, VisitorToken: uuid.NewString()},
		{EventID: ev.ID, Amount: 1, VisitorToken: v, IdempotencyKey: "k"},
	}
	res, err := s.ReserveBatch(t.Context(), ev.ID, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Reservation.Amount != reqs[i].Amount {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	if res[1].Reservation.ID != res[3].Reservation.ID {
		t.Errorf("a repeated key in the batch got reservations %d and %d", res[1].Reservation.ID, res[3].Reservation.ID)
	}
	if res[0].Reservation.ID >= res[1].Reservation.ID || res[1].Reservation.ID >= res[2].Reservation.ID {
		t.Errorf("the batch was not decided in order: %d, %d, %d", res[0].Reservation.ID, res[1].Reservation.ID, res[2].Reservation.ID)
	}
	wantChunks(t, "batch", w.take(), 251, 3)
	wantStats(t, s, ticketrush.Stats{EventID: ev.ID, Capacity: 1000, Held: 1000, Expired: 251})
}

// TestSweepReleasesInChunks: the sweep releases an event's expired holds
// at most ReleaseChunk per script call.
func TestSweepReleasesInChunks(t *testing.T) {
	s, clock, prefix := testStore(t)
	ev := expiredHolds(t, s, clock, 1000)
	w := watchReleases(t, s, prefix, ev.ID)
	n, err := s.ReleaseExpired(t.Context(), ticketrush.SweepBatch)
	if err != nil || n != ticketrush.SweepBatch {
		t.Fatalf("ReleaseExpired = %d, %v; want %d", n, err, ticketrush.SweepBatch)
	}
	wantChunks(t, "sweep", w.take(), ticketrush.SweepBatch, ticketrush.SweepBatch/redis.ReleaseChunk)
	wantStats(t, s, ticketrush.Stats{EventID: ev.ID, Capacity: 1000, Available: 500, Held: 500, Expired: 500})
}
