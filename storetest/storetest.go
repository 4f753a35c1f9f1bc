// Package storetest is the conformance suite every ticketrush.Store backend
// passes. A backend's own test file calls Run with a function that creates a
// fresh, empty, migrated database for one test:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, clock ticketrush.Clock) func() ticketrush.Store {
//			path := filepath.Join(t.TempDir(), "test.db")
//			// create and migrate the database at path here
//			return func() ticketrush.Store {
//				s, err := sqlite.Open(t.Context(), path, sqlite.Options{Now: clock})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			}
//		})
//	}
//
// Every case that reserves runs twice: with the "lock" strategy (the Store's
// own Reserve, the original's transaction per request) and with the "batch"
// strategy (group commit through package batch). Time moves only when a case
// moves its Clock, so hold expiry is tested to the microsecond without
// sleeping.
package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
)

// NewStore creates a fresh, empty, migrated database for the test t and
// removes it when t ends (through t.Cleanup). It returns a function that
// opens a Store on that database with the given clock; calling it twice gives
// two independent stores, like two server processes sharing one database.
// The suite closes every store it opens. NewStore is called from parallel
// tests.
type NewStore func(t *testing.T, clock ticketrush.Clock) (open func() ticketrush.Store)

// Clock is a test clock that moves only when told to. It is safe for
// concurrent use; pass its Now method as a ticketrush.Clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
	// stall, when set, makes Now wait until it is closed; stalled counts
	// the reads that waited.
	stall   <-chan struct{}
	stalled int
}

// NewClock returns a Clock set to t, in UTC with microsecond precision like
// every time a Store keeps.
func NewClock(t time.Time) *Clock {
	return &Clock{now: t.UTC().Truncate(time.Microsecond)}
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	stall := c.stall
	if stall != nil {
		c.stalled++
	}
	c.mu.Unlock()
	if stall != nil {
		<-stall
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// stallUntil makes every read of the clock wait until done is closed, so a
// store that reads it inside a call is stuck there, like one waiting for a
// lock or a slow disk; nil ends the stall. It returns how many reads waited
// since the previous call.
func (c *Clock) stallUntil(done <-chan struct{}) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.stalled
	c.stall, c.stalled = done, 0
	return n
}

// Advance moves the clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d).Truncate(time.Microsecond)
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t.UTC().Truncate(time.Microsecond)
}

// start is where every case's clock begins: the seed's sample timestamp, with
// a fractional part so that truncation bugs show.
var start = time.Date(2025, 11, 18, 7, 54, 23, 123456000, time.UTC)

// Run runs the whole suite against one backend, each case as a subtest:
// Event/…, ReserveBatch/…, Batcher/…, ReserveBatches/…, BatcherEvents/… and
// Unavailable/… once, and every group that reserves as lock/<group>/… and
// batch/<group>/…. Groups run in
// parallel on databases of their own; within a group, cases that look only
// at their own events share one database and run in turn.
func Run(t *testing.T, newStore NewStore) {
	plain := suite{newStore: newStore, strategy: strategies[0]}
	for _, g := range []group{
		{"Event", testEvent},
		{"ReserveBatch", testReserveBatch},
		{"Batcher", testBatcher},
		{"ReserveBatches", testReserveBatches},
		{"BatcherEvents", testBatcherEvents},
		{"Unavailable", testUnavailable},
	} {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, plain)
		})
	}
	for _, st := range strategies {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			s := suite{newStore: newStore, strategy: st}
			for _, g := range strategyGroups {
				t.Run(g.name, func(t *testing.T) {
					t.Parallel()
					g.run(t, s)
				})
			}
		})
	}
	runSettle(t, newStore)
}

// strategyGroups are the cases that reserve, run once per strategy.
var strategyGroups = []group{
	{"Reserve", testReserve},
	{"Idempotency", testIdempotency},
	{"Purchase", testPurchase},
	{"Cancel", testCancel},
	{"Reservation", testReservation},
	{"Stats", testStats},
	{"Expiry", testExpiry},
	{"ReleaseExpired", testReleaseExpired},
	{"Race", testRace},
	{"Mixed", testMixed},
	{"Settings", testSettings},
	{"Queue", testQueue},
	{"Messages", testMessages},
}

// group is a set of cases; a group decides which of its cases share a
// database (cases that only look at their own event may).
type group struct {
	name string
	run  func(t *testing.T, s suite)
}

// strategy is one way to reserve: the Store itself or a batcher over it.
type strategy struct {
	name string
	new  func(t *testing.T, s ticketrush.Store) ticketrush.Reserver
}

var strategies = []strategy{
	{"lock", func(t *testing.T, s ticketrush.Store) ticketrush.Reserver { return s }},
	{"batch", func(t *testing.T, s ticketrush.Store) ticketrush.Reserver {
		// The default deadline of a batch is a latency bound for serving;
		// the suite checks outcomes, and under the race detector on a busy
		// machine (two SQLite processes taking turns at the write lock) a
		// correct batch can take longer than that to get its turn.
		b := batch.New(s, batch.Options{Timeout: time.Minute})
		t.Cleanup(b.Close)
		return b
	}},
}

// suite is what a group needs to make its databases.
type suite struct {
	newStore NewStore
	strategy strategy
}

// env is one database with its clock, a store on it and the strategy's
// reserver over that store.
type env struct {
	clock *Clock
	open  func() ticketrush.Store
	store ticketrush.Store
	r     ticketrush.Reserver
	strat strategy
}

// env creates a fresh database for t.
func (s suite) env(t *testing.T) *env {
	t.Helper()
	clock := NewClock(start)
	e := &env{clock: clock, open: s.newStore(t, clock.Now), strat: s.strategy}
	e.store = e.openStore(t)
	e.r = e.strat.new(t, e.store)
	return e
}

// openStore opens one more store on the database, another "process", for
// the test t.
func (e *env) openStore(t *testing.T) ticketrush.Store {
	t.Helper()
	s := e.open()
	if s == nil {
		t.Fatal("open returned a nil store")
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reserver returns the strategy's reserver over another store of the env.
func (e *env) reserver(t *testing.T, s ticketrush.Store) ticketrush.Reserver {
	return e.strat.new(t, s)
}
