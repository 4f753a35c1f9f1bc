package storetest

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// rushAmounts are the amounts a rush asks for, in turn. Because 1 is among
// them and stock only falls during a rush, an event ends exactly sold out
// once it has had more requests for 1 ticket than its capacity: a request
// for 1 is refused only when stock is already 0.
var rushAmounts = []int64{1, 2, 3, 5}

// rush sends perG reserves from each of goroutines goroutines; goroutine g
// uses reservers[g%len(reservers)] and events[g%len(events)]. Half the
// requests come from a new visitor, half from visitors shared by all
// goroutines. Every refusal must be not_enough_tickets; every grant goes in l.
func rush(t *testing.T, reservers []ticketrush.Reserver, events []*ticketrush.Event, goroutines, perG int, l *ledger) {
	t.Helper()
	for i, ev := range events {
		var ones, demand int64
		for g := i; g < goroutines; g += len(events) {
			for j := range perG {
				a := rushAmounts[j%len(rushAmounts)]
				demand += a
				if a == 1 {
					ones++
				}
			}
		}
		if ones <= ev.Capacity || demand < 4*ev.Capacity {
			t.Fatalf("rush too small for event %d: %d requests for 1 ticket and %d tickets asked for a capacity of %d",
				ev.ID, ones, demand, ev.Capacity)
		}
	}
	shared := make([]string, 16)
	for i := range shared {
		shared[i] = visitor()
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := reservers[g%len(reservers)]
			ev := events[g%len(events)]
			for j := range perG {
				v := shared[(g+j)%len(shared)]
				if j%2 == 0 {
					v = visitor()
				}
				rq := req(ev.ID, rushAmounts[j%len(rushAmounts)], v)
				res, err := r.Reserve(t.Context(), rq)
				switch {
				case err == nil:
					if checkGranted(t, rq, res) {
						l.add(t, res)
					}
				case ticketrush.ErrorCode(err) != ticketrush.ENotEnoughTickets:
					t.Errorf("Reserve(%+v) during a rush: %v", rq, err)
				}
			}
		})
	}
	wg.Wait()
}

// checkSoldOut checks that exactly capacity tickets were acknowledged and
// are held.
func checkSoldOut(t *testing.T, s ticketrush.Store, ev *ticketrush.Event, l *ledger) {
	t.Helper()
	if sold := l.sum(ev.ID); sold != ev.Capacity {
		t.Errorf("event %d: %d tickets acknowledged, capacity %d", ev.ID, sold, ev.Capacity)
	}
	wantStats(t, s, ticketrush.Stats{EventID: ev.ID, Capacity: ev.Capacity, Held: ev.Capacity})
	checkLedger(t, s, ev.ID, l)
}

func testRace(t *testing.T, s suite) {
	// The rushes share a database: each checks only its own events.
	e := s.env(t)

	t.Run("OneEvent", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(250))
		l := newLedger()
		rush(t, []ticketrush.Reserver{e.r}, []*ticketrush.Event{ev}, 64, 20, l)
		checkSoldOut(t, e.store, ev, l)
	})

	t.Run("TwoStores", func(t *testing.T) {
		// Two processes on one database sell one event.
		other := e.openStore(t)
		ev := createEvent(t, e.store, concert(100))
		l := newLedger()
		rush(t, []ticketrush.Reserver{e.r, e.reserver(t, other)}, []*ticketrush.Event{ev}, 64, 8, l)
		checkSoldOut(t, e.store, ev, l)
		checkSoldOut(t, other, ev, l)
	})

	t.Run("Events", func(t *testing.T) {
		var events []*ticketrush.Event
		for range 4 {
			events = append(events, createEvent(t, e.store, concert(40)))
		}
		l := newLedger()
		rush(t, []ticketrush.Reserver{e.r}, events, 64, 12, l)
		for _, ev := range events {
			checkSoldOut(t, e.store, ev, l)
		}
	})

	t.Run("IdempotencyKey", func(t *testing.T) {
		// Retries of one request race each other: one reservation each.
		other := e.openStore(t)
		reservers := []ticketrush.Reserver{e.r, e.reserver(t, other)}
		ev := createEvent(t, e.store, concert(1000))
		const clients, copies = 16, 4
		visitors := make([]string, clients)
		for i := range visitors {
			visitors[i] = visitor()
		}
		ids := make([][]int64, clients)
		var mu sync.Mutex
		l := newLedger()
		var wg sync.WaitGroup
		for g := range clients * copies {
			wg.Go(func() {
				c := g % clients
				rq := keyed(ev.ID, int64(1+c%3), visitors[c], "retry-"+strconv.Itoa(c))
				res, err := reservers[g%2].Reserve(t.Context(), rq)
				if err != nil {
					t.Errorf("Reserve(%+v): %v", rq, err)
					return
				}
				if checkGranted(t, rq, res) {
					l.add(t, res)
					mu.Lock()
					ids[c] = append(ids[c], res.ID)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		var want int64
		for c, got := range ids {
			want += int64(1 + c%3)
			for _, id := range got {
				if id != got[0] {
					t.Errorf("client %d got reservations %v for one idempotency key", c, got)
					break
				}
			}
		}
		wantStats(t, e.store, ticketrush.Stats{EventID: ev.ID, Capacity: 1000, Available: 1000 - want, Held: want})
		checkLedger(t, e.store, ev.ID, l)
	})
}

// owned is a reservation a mixed-race worker made, with the state its own
// acknowledged operations imply.
type owned struct {
	r     *ticketrush.Reservation
	state string
}

// testMixed runs reserves, purchases, cancels, reads, clock moves and sweeps
// concurrently from two stores, checking every answer against what the
// worker knows, then checks that the stats add up.
func testMixed(t *testing.T, s suite) {
	e := s.env(t)
	stores := []ticketrush.Store{e.store, e.openStore(t)}
	reservers := []ticketrush.Reserver{e.r, e.reserver(t, stores[1])}
	ne := concert(120)
	ne.HoldSeconds = 30
	ev := createEvent(t, e.store, ne)
	holdFor := 30 * time.Second
	l := newLedger()
	const workers, ops = 16, 125

	var mu sync.Mutex
	counts := map[string]int{}
	count := func(k string) {
		mu.Lock()
		counts[k]++
		mu.Unlock()
	}
	var all []*owned
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			st, rv := stores[w%2], reservers[w%2]
			visitors := []string{visitor(), visitor(), visitor()}
			var own []*owned
			for range ops {
				x := rng.IntN(100)
				if len(own) == 0 && x >= 50 && x < 86 {
					x = 0 // nothing of its own to buy, cancel or read yet
				}
				var m *owned
				if len(own) > 0 {
					m = own[rng.IntN(len(own))]
				}
				switch {
				case x < 50:
					rq := req(ev.ID, 1+rng.Int64N(3), visitors[rng.IntN(len(visitors))])
					before := e.clock.Now()
					res, err := rv.Reserve(t.Context(), rq)
					after := e.clock.Now()
					if err != nil {
						if ticketrush.ErrorCode(err) != ticketrush.ENotEnoughTickets {
							t.Errorf("Reserve(%+v): %v", rq, err)
						}
						count("reserve " + ticketrush.ErrorCode(err))
						continue
					}
					if !checkGranted(t, rq, res) {
						continue
					}
					if res.Status != ticketrush.StatusReserved || res.CreatedAt.Before(before) || res.CreatedAt.After(after) ||
						!res.ExpiresAt.Equal(res.CreatedAt.Add(holdFor)) {
						t.Errorf("reserve between %v and %v gave %s", before, after, fmtReservation(res))
					}
					l.add(t, res)
					own = append(own, &owned{r: res, state: ticketrush.StatusReserved})
					count("reserve ok")
				case x < 58:
					before := e.clock.Now()
					got, err := st.Purchase(t.Context(), m.r.ID, m.r.UserUID)
					after := e.clock.Now()
					count("purchase " + settle(t, "Purchase", m, got, err, before, after, ticketrush.StatusPurchased))
				case x < 72:
					before := e.clock.Now()
					got, err := st.Cancel(t.Context(), m.r.ID, m.r.UserUID)
					after := e.clock.Now()
					count("cancel " + settle(t, "Cancel", m, got, err, before, after, ticketrush.StatusCancelled))
				case x < 86:
					got, err := st.Reservation(t.Context(), m.r.ID, m.r.UserUID)
					after := e.clock.Now()
					if err != nil {
						t.Errorf("Reservation(%d): %v", m.r.ID, err)
						continue
					}
					checkStatus(t, m, got.Status, after)
					count("read")
				case x < 93:
					e.clock.Advance(7 * time.Second)
					count("advance")
				default:
					if _, err := st.ReleaseExpired(t.Context(), 10); err != nil {
						t.Errorf("ReleaseExpired: %v", err)
					}
					count("sweep")
				}
			}
			mu.Lock()
			all = append(all, own...)
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("operations: %v", counts)
	if t.Failed() {
		return
	}

	releaseAll(t, e.store)
	now := e.clock.Now()
	for _, m := range all {
		got := readBack(t, stores[1], m.r)
		want := m.state
		if want == ticketrush.StatusReserved && !m.r.ExpiresAt.After(now) {
			want = ticketrush.StatusExpired
		}
		if got.Status != want {
			t.Errorf("after the race reservation %d is %q, want %q (%s)", m.r.ID, got.Status, want, fmtReservation(got))
		}
	}
	checkLedger(t, e.store, ev.ID, l)
}

// settle checks the answer to a purchase or cancel (to is the status it
// aims for) against what the worker knows of the hold, updates that, and
// returns the outcome's name. before and after bracket the call on the
// clock, which only moves forward.
func settle(t *testing.T, op string, m *owned, got *ticketrush.Reservation, err error, before, after time.Time, to string) string {
	t.Helper()
	code := ticketrush.ErrorCode(err)
	var want []string // acceptable codes; "" is success
	switch m.state {
	case ticketrush.StatusPurchased:
		want = []string{ticketrush.EAlreadyPurchased}
	case ticketrush.StatusExpired:
		want = []string{ticketrush.EExpired}
	case ticketrush.StatusCancelled:
		if to == ticketrush.StatusCancelled {
			want = []string{""}
		} else {
			want = []string{ticketrush.ECancelled}
		}
	default:
		switch {
		case !before.Before(m.r.ExpiresAt):
			want = []string{ticketrush.EExpired}
		case after.Before(m.r.ExpiresAt):
			want = []string{""}
		default:
			want = []string{"", ticketrush.EExpired}
		}
	}
	if !slices.Contains(want, code) {
		t.Errorf("%s(%d) of a hold known %s, between %v and %v (expires %v): error %v, want one of %q",
			op, m.r.ID, m.state, before, after, m.r.ExpiresAt, err, want)
		return "unexpected"
	}
	switch code {
	case "":
		if got == nil || got.Status != to || got.ID != m.r.ID || got.Amount != m.r.Amount {
			t.Errorf("%s(%d) = %+v, want status %s", op, m.r.ID, got, to)
		}
		m.state = to
		return "ok"
	case ticketrush.EExpired:
		m.state = ticketrush.StatusExpired
	}
	return code
}

// checkStatus checks a status read at or before after against what the
// worker knows of the hold.
func checkStatus(t *testing.T, m *owned, status string, after time.Time) {
	t.Helper()
	switch {
	case status == m.state:
	case m.state == ticketrush.StatusReserved && status == ticketrush.StatusExpired && !after.Before(m.r.ExpiresAt):
		m.state = ticketrush.StatusExpired
	default:
		t.Errorf("reservation %d reads %q, known %q (expires %v, read by %v)", m.r.ID, status, m.state, m.r.ExpiresAt, after)
	}
}
