package rush_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/httpapi"
	"github.com/ticketrush/ticketrush/rush"
)

// fake is a ticket server with switchable faults, to show that rush
// catches each kind of violation. Without faults it sells correctly.
type fake struct {
	oversell     bool  // acknowledge every reserve, stock or not
	statsSkew    int64 // added to the available count of the stats
	fail5xx      bool  // every other purchase answers 500
	losePurchase bool  // purchase answers 200 but changes nothing
	shed         bool  // every other reserve is shed with 503 + Retry-After
	stockSkew    int64 // added to the event's ticket_quantity by node 2

	mu        sync.Mutex
	capacity  int64
	available int64
	held      int64
	purchased int64
	cancelled int64
	calls     int
	res       map[int64]*httpapi.Reservation
}

func (f *fake) event(skew int64) httpapi.Event {
	now := httpapi.Time{Time: time.Now().UTC()}
	return httpapi.Event{ID: 1, Name: "Fake", TicketQuantity: f.available + skew, Capacity: f.capacity,
		HoldSeconds: 300, CreatedAt: now, UpdatedAt: now}
}

func writeData(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(httpapi.Envelope[any]{Data: v})
}

func writeErr(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: code, Message: code}})
}

// handler serves node n (1 or 2) of the fake.
func (f *fake) handler(n int) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/admin/events", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			TicketQuantity int64 `json:"ticket_quantity"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.capacity, f.available = body.TicketQuantity, body.TicketQuantity
		writeData(w, http.StatusCreated, f.event(0))
	})
	mux.HandleFunc("GET /api/events/1", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		skew := int64(0)
		if n == 2 {
			skew = f.stockSkew
		}
		writeData(w, http.StatusOK, f.event(skew))
	})
	mux.HandleFunc("GET /api/admin/events/1/stats", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeData(w, http.StatusOK, httpapi.Stats{EventID: 1, Capacity: f.capacity, Available: f.available + f.statsSkew,
			Held: f.held, Purchased: f.purchased, Cancelled: f.cancelled})
	})
	mux.HandleFunc("POST /api/reserve", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			EventID int64 `json:"event_id"`
			Amount  int64 `json:"amount"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls++
		if f.shed && f.calls%2 == 0 {
			w.Header().Set("Retry-After", "0")
			writeErr(w, http.StatusServiceUnavailable, ticketrush.EOverloaded)
			return
		}
		if f.available < body.Amount && !f.oversell {
			writeErr(w, http.StatusConflict, ticketrush.ENotEnoughTickets)
			return
		}
		f.available = max(f.available-body.Amount, 0)
		f.held += body.Amount
		now := httpapi.Time{Time: time.Now().UTC()}
		res := &httpapi.Reservation{ID: int64(len(f.res) + 1), EventID: 1, UserUID: r.Header.Get("Visitor-Token"),
			Amount: body.Amount, Status: ticketrush.StatusReserved, ExpiresAt: httpapi.Time{Time: now.Add(5 * time.Minute)},
			CreatedAt: now, UpdatedAt: now}
		f.res[res.ID] = res
		writeData(w, http.StatusCreated, res)
	})
	mux.HandleFunc("POST /api/purchase", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ID int64 `json:"reservation_id"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls++
		res := f.res[body.ID]
		switch {
		case res == nil || res.UserUID != r.Header.Get("Visitor-Token"):
			writeErr(w, http.StatusNotFound, ticketrush.EReservationNotFound)
			return
		case f.fail5xx && f.calls%2 == 0:
			writeErr(w, http.StatusInternalServerError, ticketrush.EInternal)
			return
		}
		if f.losePurchase {
			cp := *res
			cp.Status = ticketrush.StatusPurchased
			writeData(w, http.StatusOK, cp)
			return
		}
		res.Status = ticketrush.StatusPurchased
		f.held -= res.Amount
		f.purchased += res.Amount
		writeData(w, http.StatusOK, res)
	})
	onReservation := func(w http.ResponseWriter, r *http.Request, cancel bool) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		f.mu.Lock()
		defer f.mu.Unlock()
		res := f.res[id]
		if res == nil || res.UserUID != r.Header.Get("Visitor-Token") {
			writeErr(w, http.StatusNotFound, ticketrush.EReservationNotFound)
			return
		}
		if cancel && res.Status == ticketrush.StatusReserved {
			res.Status = ticketrush.StatusCancelled
			f.held -= res.Amount
			f.cancelled += res.Amount
			f.available += res.Amount
		}
		writeData(w, http.StatusOK, res)
	}
	mux.HandleFunc("GET /api/reservations/{id}", func(w http.ResponseWriter, r *http.Request) { onReservation(w, r, false) })
	mux.HandleFunc("DELETE /api/reservations/{id}", func(w http.ResponseWriter, r *http.Request) { onReservation(w, r, true) })
	return mux
}

// runFake rushes a two-node fake.
func runFake(t *testing.T, f *fake) *rush.Report {
	t.Helper()
	f.res = map[int64]*httpapi.Reservation{}
	a := httptest.NewServer(f.handler(1))
	t.Cleanup(a.Close)
	b := httptest.NewServer(f.handler(2))
	t.Cleanup(b.Close)
	rep, err := rush.Run(t.Context(), rush.Config{
		URLs: []string{a.URL, b.URL}, Create: 40, Visitors: 120, Concurrency: 8,
		Purchase: 0.6, Cancel: 0.1, AdminToken: "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRushCatchesViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		fake *fake
		fail []string // checks that must fail
	}{
		{"oversell", &fake{oversell: true},
			[]string{"acknowledged ≤ capacity", "capacity == available + held + purchased"}},
		{"stats miscount", &fake{statsSkew: 3},
			[]string{"capacity == available + held + purchased"}},
		{"5xx", &fake{fail5xx: true},
			[]string{"no 5xx"}},
		{"purchase lost", &fake{losePurchase: true},
			[]string{"every acknowledged reservation readable with the right status"}},
		{"nodes disagree", &fake{stockSkew: 1},
			[]string{"every node reports the same stock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := runFake(t, tc.fake)
			if rep.OK {
				logReport(t, rep)
				t.Fatal("report OK on a broken server")
			}
			got := checkResults(rep)
			for _, name := range tc.fail {
				if c, ok := got[name]; !ok || c.Result != rush.Fail {
					t.Errorf("%s: %+v, want FAIL", name, c)
				}
			}
			var text strings.Builder
			rep.WriteText(&text)
			if !strings.Contains(text.String(), "FAIL  "+tc.fail[0]) {
				t.Errorf("text report lacks the failure:\n%s", text.String())
			}
		})
	}
}

// TestRushCountsShedLoad checks that 503 with Retry-After is shed load: the
// visitor tries again, and nothing fails.
func TestRushCountsShedLoad(t *testing.T) {
	rep := runFake(t, &fake{shed: true})
	if !rep.OK {
		logReport(t, rep)
		t.Fatal("shed load failed the rush")
	}
	for _, e := range rep.Endpoints {
		if e.Name == rush.EndpointReserve && (e.Shed == 0 || e.Statuses["503"] != e.Shed || e.ServerErrors != 0) {
			t.Errorf("reserve %+v: want every 503 counted as shed, none as a failure", e)
		}
	}
}

// A correct fake passes: the faults above are what fail the others.
func TestRushPassesOnCorrectFake(t *testing.T) {
	if rep := runFake(t, &fake{}); !rep.OK {
		logReport(t, rep)
		t.Fatal("a correct server failed")
	}
}

// TestRushDeadNode: a node that refuses connections fails the rush, but a
// refused connection certainly did nothing, so no reserve is left in doubt.
func TestRushDeadNode(t *testing.T) {
	f := &fake{res: map[int64]*httpapi.Reservation{}}
	live := httptest.NewServer(f.handler(1))
	defer live.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	rep, err := rush.Run(t.Context(), rush.Config{
		URLs: []string{live.URL, dead.URL}, Create: 40, Visitors: 60, Concurrency: 4, AdminToken: "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := checkResults(rep)
	if rep.OK || got["every request answered"].Result != rush.Fail || got["every node reports the same stock"].Result != rush.Fail {
		logReport(t, rep)
		t.Fatal("a dead node passed")
	}
	if rep.Outcomes.InDoubt != 0 || rep.Tickets.InDoubt != 0 {
		t.Errorf("outcomes %+v: refused connections left reserves in doubt", rep.Outcomes)
	}
	if c := got["held + purchased + expired == acknowledged − cancelled"]; c.Result != rush.Pass {
		t.Errorf("%+v: the live node's counts are still exact", c)
	}
}
