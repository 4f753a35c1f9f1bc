package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ticketrush/ticketrush"
)

// The conformance suite (sqlite_test.go) checks the Store contract. These
// tests check what is particular to SQLite: the file, its settings, the
// stored forms, the write lock shared by several processes, and what a busy
// database answers.

var start = time.Date(2025, 11, 18, 7, 54, 23, 123456000, time.UTC)

// clock is a test clock that moves only when told to.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newDB creates a migrated database file and returns its path and clock.
func newDB(t testing.TB) (string, *clock) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ticketrush.db")
	c := &clock{now: start}
	s := open(t, path, c)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return path, c
}

// open opens a store on path, closed when t ends.
func open(t testing.TB, path string, c *clock) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func createEvent(t testing.TB, s *Store, ne ticketrush.NewEvent) *ticketrush.Event {
	t.Helper()
	e, err := s.CreateEvent(context.Background(), ne)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func concert(n int64) ticketrush.NewEvent {
	return ticketrush.NewEvent{Name: "Örnek Etkinlik", TicketQuantity: n, HoldSeconds: 300}
}

func checkInvariant(t *testing.T, s *Store, eventID int64) *ticketrush.Stats {
	t.Helper()
	st, err := s.Stats(t.Context(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Capacity != st.Available+st.Held+st.Purchased {
		t.Errorf("invariant broken: %+v", *st)
	}
	return st
}

func TestOpenDoesNotMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ticketrush.db")
	s := open(t, path, &clock{now: start})
	if _, err := s.Events(t.Context()); err == nil {
		t.Fatal("Events on a database never migrated: no error")
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Statements that failed to prepare before are prepared now.
	if _, err := s.Events(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A second Migrate, by this or another process, finds nothing to do.
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := open(t, path, &clock{now: start}).Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestPath checks that a path with characters that mean something in a DSN
// names the file it says.
func TestPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a?b#c%20 d.db")
	s := open(t, path, &clock{now: start})
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	var file string
	if err := s.rdb.QueryRowContext(t.Context(), "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		t.Fatal(err)
	}
	if file != path {
		t.Errorf("database file %q, want %q", file, path)
	}
}

// TestPragmas checks the durability settings on both pools: an acknowledged
// reservation must survive a power cut.
func TestPragmas(t *testing.T) {
	path, c := newDB(t)
	s := open(t, path, c)
	for name, db := range map[string]*sql.DB{"write": s.wdb, "read": s.rdb} {
		busy := "10000"
		if db == s.wdb {
			busy = "1" // begin waits for the lock, see lockRetry
		}
		for pragma, want := range map[string]string{
			"journal_mode": "wal",
			"synchronous":  "2", // FULL
			"foreign_keys": "1",
			"busy_timeout": busy,
		} {
			var got string
			if err := db.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s pool: %s = %s, want %s", name, pragma, got, want)
			}
		}
	}
	// The read pool cannot write, so a write can never slip past the
	// single writer.
	if _, err := s.rdb.ExecContext(t.Context(), "DELETE FROM events"); err == nil {
		t.Error("the read pool accepted a write")
	}
}

// TestStoredTimes checks the stored form of times: fixed-width UTC text, so
// that the index on expires_at orders holds by time.
func TestStoredTimes(t *testing.T) {
	path, c := newDB(t)
	s := open(t, path, c)
	sale := time.Date(2025, 11, 18, 10, 0, 0, 0, time.FixedZone("TRT", 3*3600))
	ne := concert(10)
	ne.SaleStartsAt = &sale
	ev := createEvent(t, s, ne)
	c.Advance(7 * time.Hour)
	res, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	var saleStarts, created, expires string
	if err := s.rdb.QueryRowContext(t.Context(), `SELECT e.sale_starts_at, r.created_at, r.expires_at
		FROM reservations r JOIN events e ON e.id = r.event_id WHERE r.id = ?`, res.ID).
		Scan(&saleStarts, &created, &expires); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{saleStarts, "2025-11-18T07:00:00.000000Z"},
		{created, "2025-11-18T14:54:23.123456Z"},
		{expires, "2025-11-18T14:59:23.123456Z"},
	} {
		if c.got != c.want {
			t.Errorf("stored %q, want %q", c.got, c.want)
		}
	}
}

// TestUnavailable checks that a database that cannot take a write before the
// caller's deadline, here because another process holds the write lock,
// answers EUnavailable and applies nothing.
func TestUnavailable(t *testing.T) {
	path, c := newDB(t)
	s := open(t, path, c)
	ev := createEvent(t, s, concert(10))
	visitor := uuid.NewString()
	if _, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: visitor}); err != nil {
		t.Fatal(err)
	}

	other := open(t, path, c)
	conn, err := other.wdb.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}

	short := func() context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	rq := ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: visitor}
	_, err = s.Reserve(short(), rq)
	if code := ticketrush.ErrorCode(err); code != ticketrush.EUnavailable {
		t.Errorf("Reserve while locked: %v (code %q), want %q", err, code, ticketrush.EUnavailable)
	}
	results, err := s.ReserveBatch(short(), ev.ID, []ticketrush.ReserveRequest{rq, rq})
	if code := ticketrush.ErrorCode(err); code != ticketrush.EUnavailable || results != nil {
		t.Errorf("ReserveBatch while locked: %v, %v (code %q), want no results and %q", results, err, code, ticketrush.EUnavailable)
	}
	_, err = s.Cancel(short(), 1, visitor)
	if code := ticketrush.ErrorCode(err); code != ticketrush.EUnavailable {
		t.Errorf("Cancel while locked: %v (code %q), want %q", err, code, ticketrush.EUnavailable)
	}

	// Reads do not wait for the writer.
	if st := checkInvariant(t, s, ev.ID); st.Held != 1 {
		t.Errorf("held %d, want 1: a failed call applied something", st.Held)
	}
	if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(t.Context(), rq); err != nil {
		t.Fatalf("Reserve after the lock was released: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Ping(ctx); ticketrush.ErrorCode(err) != ticketrush.EUnavailable {
		t.Errorf("Ping with a cancelled context: %v, want %s", err, ticketrush.EUnavailable)
	}
}

// TestRace sends 4× the capacity, in mixed amounts, from 64 goroutines
// through two stores on one file (two processes), half through ReserveBatch
// and half through Reserve: exactly the capacity is sold.
func TestRace(t *testing.T) {
	path, c := newDB(t)
	stores := []*Store{open(t, path, c), open(t, path, c)}
	const capacity = 500
	ev := createEvent(t, stores[0], concert(capacity))

	var (
		mu      sync.Mutex
		granted int64
		ids     = map[int64]bool{}
		wg      sync.WaitGroup
	)
	grant := func(r *ticketrush.Reservation) {
		mu.Lock()
		defer mu.Unlock()
		if ids[r.ID] {
			t.Errorf("id %d granted twice", r.ID)
		}
		ids[r.ID] = true
		granted += r.Amount
	}
	for g := range 64 {
		wg.Go(func() {
			s := stores[g%2]
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			demand := int64(0)
			for demand < 4*capacity/64 {
				if g%4 < 2 {
					reqs := make([]ticketrush.ReserveRequest, 1+rng.IntN(8))
					for i := range reqs {
						reqs[i] = ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1 + rng.Int64N(4), VisitorToken: uuid.NewString()}
						demand += reqs[i].Amount
					}
					results, err := s.ReserveBatch(t.Context(), ev.ID, reqs)
					if err != nil {
						t.Error(err)
						return
					}
					for _, r := range results {
						if r.Err == nil {
							grant(r.Reservation)
						} else if ticketrush.ErrorCode(r.Err) != ticketrush.ENotEnoughTickets {
							t.Error(r.Err)
						}
					}
					continue
				}
				rq := ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1 + rng.Int64N(4), VisitorToken: uuid.NewString()}
				demand += rq.Amount
				r, err := s.Reserve(t.Context(), rq)
				switch {
				case err == nil:
					grant(r)
				case ticketrush.ErrorCode(err) != ticketrush.ENotEnoughTickets:
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := checkInvariant(t, stores[1], ev.ID)
	if granted != capacity || st.Held != capacity || st.Available != 0 {
		t.Errorf("granted %d, stats %+v; want exactly %d held", granted, *st, capacity)
	}
}

// TestBatchReleasesOnlyWhenShort checks that a batch releases the event's
// expired holds when, and only when, it asks for more than the stock.
func TestBatchReleasesOnlyWhenShort(t *testing.T) {
	path, c := newDB(t)
	s := open(t, path, c)
	ev := createEvent(t, s, concert(10))
	batch := func(amounts ...int64) []ticketrush.ReserveResult {
		t.Helper()
		reqs := make([]ticketrush.ReserveRequest, len(amounts))
		for i, a := range amounts {
			reqs[i] = ticketrush.ReserveRequest{EventID: ev.ID, Amount: a, VisitorToken: uuid.NewString()}
		}
		results, err := s.ReserveBatch(t.Context(), ev.ID, reqs)
		if err != nil {
			t.Fatal(err)
		}
		return results
	}
	batch(6)
	c.Advance(300 * time.Second) // the hold of 6 ends now: exactly at ExpiresAt
	batch(2, 2)
	if st := checkInvariant(t, s, ev.ID); st.Expired != 0 || st.Available != 0 || st.Held != 10 {
		t.Errorf("after a batch that fits: %+v, want the expired hold untouched", *st)
	}
	results := batch(5, 1)
	for i, r := range results {
		if r.Err != nil {
			t.Errorf("result %d: %v", i, r.Err)
		}
	}
	if st := checkInvariant(t, s, ev.ID); st.Expired != 6 || st.Available != 0 || st.Held != 10 {
		t.Errorf("after a batch that was short: %+v, want the hold of 6 expired and reused", *st)
	}
}

// TestBatchIDs checks that the ids a batch chooses follow those made one at
// a time, and are the ones stored, whatever number of INSERTs the batch's
// size takes (one per power of two in it, at most 1024 rows each).
func TestBatchIDs(t *testing.T) {
	path, c := newDB(t)
	s := open(t, path, c)
	ev := createEvent(t, s, concert(3000))
	for round, size := range []int{5, 1, 3, 1024 + 37} {
		one, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
		if err != nil {
			t.Fatal(err)
		}
		reqs := make([]ticketrush.ReserveRequest, size)
		for i := range reqs {
			reqs[i] = ticketrush.ReserveRequest{EventID: ev.ID, Amount: 2, VisitorToken: uuid.NewString(),
				IdempotencyKey: fmt.Sprintf("round-%d", round)}
		}
		results, err := s.ReserveBatch(t.Context(), ev.ID, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range results {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if want := one.ID + 1 + int64(i); r.Reservation.ID != want {
				t.Errorf("round %d result %d: id %d, want %d", round, i, r.Reservation.ID, want)
			}
			got, err := s.Reservation(t.Context(), r.Reservation.ID, reqs[i].VisitorToken)
			if err != nil {
				t.Fatal(err)
			}
			if *got != *r.Reservation {
				t.Errorf("stored %+v, returned %+v", *got, *r.Reservation)
			}
		}
	}
}
