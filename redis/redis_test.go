package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/redis"
	"github.com/ticketrush/ticketrush/storetest"
)

// serverURL returns the test Redis' URL, or skips the test when that Redis
// does not answer (fails it when TICKETRUSH_REQUIRE_SERVERS=1).
func serverURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("TICKETRUSH_TEST_REDIS")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("TICKETRUSH_TEST_REDIS: %v", err)
	}
	c := goredis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("TICKETRUSH_REQUIRE_SERVERS") == "1" {
			t.Fatalf("Redis at %s does not answer and TICKETRUSH_REQUIRE_SERVERS=1: %v", url, err)
		}
		t.Skipf("Redis at %s does not answer (%v); set TICKETRUSH_TEST_REDIS, or TICKETRUSH_REQUIRE_SERVERS=1 to fail instead", url, err)
	}
	return url
}

// uniquePrefix returns a key prefix no other test uses.
func uniquePrefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "trtest-" + hex.EncodeToString(b)
}

// deleteKeys removes every key under prefix from c (one node).
func deleteKeys(ctx context.Context, c *goredis.Client, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, k := range keys {
			p.Unlink(ctx, k) // one key per command: they span slots on a cluster
		}
		return nil
	})
	return err
}

// cleanupPrefix deletes the test's keys when it ends.
func cleanupPrefix(t testing.TB, url, prefix string) {
	t.Cleanup(func() {
		o, _ := goredis.ParseURL(url)
		c := goredis.NewClient(o)
		defer c.Close()
		if err := deleteKeys(context.Background(), c, prefix); err != nil {
			t.Errorf("deleting test keys: %v", err)
		}
	})
}

// open opens a store on the test Redis under prefix.
func open(t testing.TB, url, prefix string, clock ticketrush.Clock) *redis.Store {
	t.Helper()
	s, err := redis.Open(context.Background(), url, redis.Options{Now: clock, Prefix: prefix})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// newStore gives each storetest database its own prefix in the test Redis.
func newStore(url string) storetest.NewStore {
	return func(t *testing.T, clock ticketrush.Clock) func() ticketrush.Store {
		prefix := uniquePrefix()
		cleanupPrefix(t, url, prefix)
		s := open(t, url, prefix, clock)
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		s.Close()
		return func() ticketrush.Store { return open(t, url, prefix, clock) }
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newStore(serverURL(t)))
}

// fixedClock is a clock tests move by hand.
type fixedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fixedClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testStore opens a store with its own prefix and a clock set to a fixed time.
func testStore(t *testing.T) (*redis.Store, *fixedClock, string) {
	t.Helper()
	url := serverURL(t)
	prefix := uniquePrefix()
	cleanupPrefix(t, url, prefix)
	clock := &fixedClock{now: time.Date(2025, 11, 18, 7, 54, 23, 123456000, time.UTC)}
	s := open(t, url, prefix, clock.Now)
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, clock, prefix
}

func TestReservationIDsNameTheirEvent(t *testing.T) {
	s, _, _ := testStore(t)
	var ids []int64
	for range 3 {
		ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 10, HoldSeconds: 60})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			r, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := r.ID, ev.ID<<28|int64(i+1); got != want {
				t.Errorf("reservation %d of event %d has id %d, want %d", i+1, ev.ID, got, want)
			}
			if r.ID >= 1<<53 {
				t.Errorf("id %d is not exact in JavaScript", r.ID)
			}
			ids = append(ids, r.ID)
		}
	}
	// Ids that decode to no reservation, or to no event, are not found.
	v := uuid.NewString()
	for _, id := range []int64{0, -1, 1, 1 << 28, ids[0] + 100, 1 << 53, 1<<63 - 1} {
		if _, err := s.Reservation(t.Context(), id, v); ticketrush.ErrorCode(err) != ticketrush.EReservationNotFound {
			t.Errorf("Reservation(%d) = %v, want %s", id, err, ticketrush.EReservationNotFound)
		}
		if _, err := s.Purchase(t.Context(), id, v); ticketrush.ErrorCode(err) != ticketrush.EReservationNotFound {
			t.Errorf("Purchase(%d) = %v, want %s", id, err, ticketrush.EReservationNotFound)
		}
		if _, err := s.Cancel(t.Context(), id, v); ticketrush.ErrorCode(err) != ticketrush.EReservationNotFound {
			t.Errorf("Cancel(%d) = %v, want %s", id, err, ticketrush.EReservationNotFound)
		}
	}
}

// TestServerClock runs with no injected clock: the scripts read Redis' own
// TIME, so times come from the server, not from this process.
func TestServerClock(t *testing.T) {
	url := serverURL(t)
	prefix := uniquePrefix()
	cleanupPrefix(t, url, prefix)
	s := open(t, url, prefix, nil)
	defer s.Close()
	o, _ := goredis.ParseURL(url)
	c := goredis.NewClient(o)
	defer c.Close()

	before, err := c.Time(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 5, HoldSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 5, VisitorToken: uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	after, err := c.Time(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []time.Time{ev.CreatedAt, r.CreatedAt} {
		if x.Before(before.Truncate(time.Microsecond)) || x.After(after) || x.Location() != time.UTC {
			t.Errorf("time %v is not Redis' time between %v and %v", x, before, after)
		}
	}
	if want := r.CreatedAt.Add(time.Second); !r.ExpiresAt.Equal(want) {
		t.Errorf("expires_at %v, want %v", r.ExpiresAt, want)
	}
}

func TestUnavailable(t *testing.T) {
	// Nothing listens on port 1.
	_, err := redis.Open(t.Context(), "redis://127.0.0.1:1/0", redis.Options{})
	if ticketrush.ErrorCode(err) != ticketrush.EUnavailable {
		t.Errorf("Open on a closed port = %v, want %s", err, ticketrush.EUnavailable)
	}

	s, _, _ := testStore(t)
	ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 5, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = s.Reserve(ctx, ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
	if ticketrush.ErrorCode(err) != ticketrush.EUnavailable {
		t.Errorf("Reserve with a dead context = %v, want %s", err, ticketrush.EUnavailable)
	}
	_, err = s.ReserveBatch(ctx, ev.ID, []ticketrush.ReserveRequest{{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()}})
	if ticketrush.ErrorCode(err) != ticketrush.EUnavailable {
		t.Errorf("ReserveBatch with a dead context = %v, want %s", err, ticketrush.EUnavailable)
	}
	st, err := s.Stats(t.Context(), ev.ID)
	if err != nil || st.Available != 5 {
		t.Errorf("after failed reserves: %+v, %v; want 5 available", st, err)
	}
}

func TestOptions(t *testing.T) {
	url := serverURL(t)
	if _, err := redis.Open(t.Context(), url, redis.Options{Prefix: "a{b}"}); err == nil {
		t.Error("Open accepted a prefix with braces")
	}
	if _, err := redis.Open(t.Context(), "http://127.0.0.1/", redis.Options{}); err == nil {
		t.Error("Open accepted an http URL")
	}
	s, _, prefix := testStore(t)
	if _, err := s.AOFEnabled(t.Context()); err != nil {
		t.Errorf("AOFEnabled: %v", err)
	}
	// Migrate is idempotent and records the layout version.
	if err := s.Migrate(t.Context()); err != nil {
		t.Errorf("second Migrate: %v", err)
	}
	o, _ := goredis.ParseURL(url)
	c := goredis.NewClient(o)
	defer c.Close()
	if v, err := c.Get(t.Context(), prefix+":schema").Int(); err != nil || v != redis.SchemaVersion {
		t.Errorf("schema version %d, %v; want %d", v, err, redis.SchemaVersion)
	}
	if err := c.Set(t.Context(), prefix+":schema", redis.SchemaVersion+1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err == nil {
		t.Error("Migrate accepted data from a newer layout")
	}
}

// TestCrashAfterIndex checks that an event id left in the index by a crash
// between CreateEvent's two steps is invisible.
func TestCrashAfterIndex(t *testing.T) {
	s, _, prefix := testStore(t)
	url := serverURL(t)
	o, _ := goredis.ParseURL(url)
	c := goredis.NewClient(o)
	defer c.Close()
	ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 5, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ZAdd(t.Context(), prefix+":events", goredis.Z{Score: 99, Member: 99}).Err(); err != nil {
		t.Fatal(err)
	}
	all, err := s.Events(t.Context())
	if err != nil || len(all) != 1 || all[0].ID != ev.ID {
		t.Errorf("Events = %v, %v; want only event %d", all, err, ev.ID)
	}
	if _, err := s.Event(t.Context(), 99); ticketrush.ErrorCode(err) != ticketrush.EEventNotFound {
		t.Errorf("Event(99) = %v, want %s", err, ticketrush.EEventNotFound)
	}
	if n, err := s.ReleaseExpired(t.Context(), 10); err != nil || n != 0 {
		t.Errorf("ReleaseExpired = %d, %v", n, err)
	}
}

// TestConcurrentSweepers releases many expired holds of several events with
// four sweepers on two stores: each hold is released once.
func TestConcurrentSweepers(t *testing.T) {
	s, clock, prefix := testStore(t)
	other := open(t, serverURL(t), prefix, clock.Now)
	defer other.Close()
	var events []*ticketrush.Event
	for range 3 {
		ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 400, HoldSeconds: 60})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
		reqs := make([]ticketrush.ReserveRequest, 200)
		for i := range reqs {
			reqs[i] = ticketrush.ReserveRequest{EventID: ev.ID, Amount: int64(1 + i%2), VisitorToken: uuid.NewString()}
		}
		if _, err := s.ReserveBatch(t.Context(), ev.ID, reqs); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Minute)
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for g := range 4 {
		st := []*redis.Store{s, other}[g%2]
		wg.Go(func() {
			for {
				n, err := st.ReleaseExpired(t.Context(), 7)
				if err != nil {
					t.Error(err)
					return
				}
				if n > 7 {
					t.Errorf("ReleaseExpired(7) = %d", n)
				}
				mu.Lock()
				total += n
				mu.Unlock()
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if total != 600 {
		t.Errorf("released %d holds, want 600", total)
	}
	for _, ev := range events {
		st, err := s.Stats(t.Context(), ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if *st != (ticketrush.Stats{EventID: ev.ID, Capacity: 400, Available: 400, Expired: 300}) {
			t.Errorf("stats %+v", *st)
		}
	}
}

// TestIdempotencyAcrossEventsIsAtomic races one visitor's key over two
// events: exactly one event gets the reservation.
func TestIdempotencyAcrossEventsIsAtomic(t *testing.T) {
	s, _, _ := testStore(t)
	raceKeyAcrossEvents(t, s)
}

func raceKeyAcrossEvents(t *testing.T, s ticketrush.Store) {
	t.Helper()
	var evs [2]*ticketrush.Event
	for i := range evs {
		ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 1000, HoldSeconds: 60})
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	for round := range 20 {
		v := uuid.NewString()
		key := "k" + string(rune('a'+round))
		var wg sync.WaitGroup
		var mu sync.Mutex
		got := map[int64]bool{}
		for g := range 8 {
			wg.Go(func() {
				ev := evs[g%2]
				r, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: v, IdempotencyKey: key})
				switch {
				case err == nil:
					mu.Lock()
					got[r.ID] = true
					mu.Unlock()
				case ticketrush.ErrorCode(err) != ticketrush.EIdempotencyKeyReused:
					t.Errorf("Reserve: %v", err)
				}
			})
		}
		wg.Wait()
		if len(got) != 1 {
			t.Errorf("round %d: one key gave %d reservations: %v", round, len(got), got)
		}
	}
	var held int64
	for _, ev := range evs {
		st, err := s.Stats(t.Context(), ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		held += st.Held
	}
	if held != 20 {
		t.Errorf("%d tickets held over both events, want 20", held)
	}
}

func TestErrorsAreDomainErrors(t *testing.T) {
	s, _, _ := testStore(t)
	_, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: 1, Amount: 0, VisitorToken: uuid.NewString()})
	var de *ticketrush.Error
	if !errors.As(err, &de) || de.Code != ticketrush.EValidation {
		t.Errorf("Reserve of 0 tickets = %v, want %s", err, ticketrush.EValidation)
	}
}

// TestRefusedKeyIsFree checks that a refused reserve stores nothing under
// its Idempotency-Key, as in the SQL backends: the key may then be used for
// another event.
func TestRefusedKeyIsFree(t *testing.T) {
	s, _, _ := testStore(t)
	refusedKeyIsFree(t, s)
}

func refusedKeyIsFree(t *testing.T, s ticketrush.Store) {
	t.Helper()
	small, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "small", TicketQuantity: 1, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	big, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "big", TicketQuantity: 10, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	v := uuid.NewString()
	_, err = s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: small.ID, Amount: 2, VisitorToken: v, IdempotencyKey: "k"})
	if ticketrush.ErrorCode(err) != ticketrush.ENotEnoughTickets {
		t.Fatalf("Reserve beyond stock = %v, want %s", err, ticketrush.ENotEnoughTickets)
	}
	none := big.ID + 1000
	res, err := s.ReserveBatch(t.Context(), none, []ticketrush.ReserveRequest{{EventID: none, Amount: 1, VisitorToken: v, IdempotencyKey: "k"}})
	if err != nil || ticketrush.ErrorCode(res[0].Err) != ticketrush.EEventNotFound {
		t.Fatalf("ReserveBatch on no event = %+v, %v; want %s", res, err, ticketrush.EEventNotFound)
	}
	r, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: big.ID, Amount: 2, VisitorToken: v, IdempotencyKey: "k"})
	if err != nil {
		t.Fatalf("Reserve with a key only refused before: %v", err)
	}
	// Now the key is taken, for every event.
	_, err = s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: small.ID, Amount: 1, VisitorToken: v, IdempotencyKey: "k"})
	if ticketrush.ErrorCode(err) != ticketrush.EIdempotencyKeyReused {
		t.Errorf("key reused on another event = %v, want %s", err, ticketrush.EIdempotencyKeyReused)
	}
	again, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: big.ID, Amount: 2, VisitorToken: v, IdempotencyKey: "k"})
	if err != nil || again.ID != r.ID {
		t.Errorf("repeat = %+v, %v; want reservation %d", again, err, r.ID)
	}
}

func (c *fixedClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
