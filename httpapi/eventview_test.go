package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ticketrush/ticketrush"
)

// listingStore counts the store's event reads.
type listingStore struct {
	ticketrush.Store
	lists, reads atomic.Int64
}

func (s *listingStore) Events(ctx context.Context) ([]*ticketrush.Event, error) {
	s.lists.Add(1)
	return s.Store.Events(ctx)
}

func (s *listingStore) Event(ctx context.Context, id int64) (*ticketrush.Event, error) {
	s.reads.Add(1)
	return s.Store.Event(ctx, id)
}

func viewEnv(t *testing.T, maxAge time.Duration) (*env, *listingStore) {
	var ls *listingStore
	e := sqliteEnv(t, func(c *Config) {
		ls = &listingStore{Store: c.Store}
		c.Store = ls
		c.EventsMaxAge = maxAge
	})
	return e, ls
}

func publicList(t testing.TB, e *env) []Event {
	t.Helper()
	return decode[[]Event](t, e.must(t, request{method: "GET", path: "/api/events"}, 200))
}

func publicEvent(t testing.TB, e *env, id int64) Event {
	t.Helper()
	return decode[Event](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d", id)}, 200))
}

// TestEventViewCoalesces: a crowd reading the events costs a store read
// per snapshot, not per request.
func TestEventViewCoalesces(t *testing.T) {
	e, ls := viewEnv(t, time.Hour)
	var ids []int64
	for i := range 20 {
		ids = append(ids, e.createEvent(t, fmt.Sprintf(`{"name":"E%d","ticket_quantity":10}`, i)).ID)
	}
	ls.lists.Store(0)
	ls.reads.Store(0)
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 20 {
				if (g+i)%2 == 0 {
					if n := len(publicList(t, e)); n != 20 {
						t.Errorf("listed %d events, want 20", n)
					}
				} else if ev := publicEvent(t, e, ids[i]); ev.ID != ids[i] || ev.Name != fmt.Sprintf("E%d", i) {
					t.Errorf("event %d: %+v", ids[i], ev)
				}
			}
		})
	}
	wg.Wait()
	if n := ls.lists.Load(); n != 1 {
		t.Errorf("%d store listings for 1280 reads, want 1", n)
	}
	if n := ls.reads.Load(); n != 0 {
		t.Errorf("%d store reads of single events, want 0 (all in the snapshot)", n)
	}
}

// TestEventViewAnswers: the view answers as the store would: hidden events
// out of the list and readable by id, unknown ids 404, an event created
// elsewhere readable by id at once, writes through this server visible at
// once, and admin answers exact.
func TestEventViewAnswers(t *testing.T) {
	e, ls := viewEnv(t, time.Hour)
	shown := e.createEvent(t, `{"name":"Shown","ticket_quantity":10}`)
	hidden := e.createEvent(t, `{"name":"Hidden","ticket_quantity":10,"hidden":true}`)
	list := publicList(t, e)
	if len(list) != 1 || list[0].ID != shown.ID {
		t.Fatalf("list %+v, want only %d", list, shown.ID)
	}
	if got := publicEvent(t, e, hidden.ID); got.ID != hidden.ID || got.Hidden != nil {
		t.Errorf("hidden event by id: %+v (the public form has no hidden field)", got)
	}
	res := e.must(t, request{method: "GET", path: "/api/events/999999"}, 404)
	if got := errorOf(t, res); got.Code != ticketrush.EEventNotFound {
		t.Errorf("unknown id: code %q", got.Code)
	}

	// Another process creates an event: the snapshot does not have it, the
	// store does.
	other, err := ls.Store.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "Elsewhere", TicketQuantity: 5, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	if got := publicEvent(t, e, other.ID); got.ID != other.ID || got.TicketQuantity != 5 {
		t.Errorf("event created elsewhere: %+v", got)
	}

	// A patch through this server shows at once, in the list and by id.
	e.must(t, request{method: "PATCH", path: fmt.Sprintf("/api/admin/events/%d", hidden.ID), headers: admin(),
		body: `{"hidden":false,"name":"Unhidden"}`}, 200)
	e.must(t, request{method: "PATCH", path: fmt.Sprintf("/api/admin/events/%d", shown.ID), headers: admin(),
		body: `{"hidden":true}`}, 200)
	list = publicList(t, e)
	ids := map[int64]string{}
	for _, ev := range list {
		ids[ev.ID] = ev.Name
	}
	if len(list) != 2 || ids[hidden.ID] != "Unhidden" || ids[other.ID] != "Elsewhere" {
		t.Errorf("list after patches: %+v", list)
	}
	if got := publicEvent(t, e, hidden.ID); got.Name != "Unhidden" {
		t.Errorf("by id after patch: %+v", got)
	}
	// A delete through this server too.
	e.must(t, request{method: "DELETE", path: fmt.Sprintf("/api/admin/events/%d", other.ID), headers: admin()}, 204)
	e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d", other.ID)}, 404)
	if list := publicList(t, e); len(list) != 1 || list[0].ID != hidden.ID {
		t.Errorf("list after delete: %+v", list)
	}

	// Admin answers come from the store, with the hidden field, exact.
	adm := decode[Event](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/admin/events/%d", shown.ID), headers: admin()}, 200))
	if adm.Hidden == nil || !*adm.Hidden {
		t.Errorf("admin event: %+v, want hidden true", adm)
	}
	all := decode[[]Event](t, e.must(t, request{method: "GET", path: "/api/admin/events", headers: admin()}, 200))
	if len(all) != 2 {
		t.Errorf("admin list has %d events, want 2", len(all))
	}
}

// TestEventViewStaleness: a change this server did not make (another
// process's reserve) shows in the public answers within EventsMaxAge, and
// reserve decides on the store's stock, never the view's.
func TestEventViewStaleness(t *testing.T) {
	const maxAge = 300 * time.Millisecond
	e, ls := viewEnv(t, maxAge)
	ev := e.createEvent(t, `{"name":"Stale","ticket_quantity":10}`)
	if got := publicEvent(t, e, ev.ID); got.TicketQuantity != 10 {
		t.Fatalf("before: %+v", got)
	}
	changed := time.Now()
	if _, err := ls.Store.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 10, VisitorToken: uuid.NewString()}); err != nil {
		t.Fatal(err)
	}
	// Reserve is authoritative: sold out now, whatever the view says.
	res := e.must(t, request{method: "POST", path: "/api/reserve", headers: visitor(tokenA), body: fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID)}, 409)
	if got := errorOf(t, res); got.Code != ticketrush.ENotEnoughTickets {
		t.Errorf("reserve: code %q", got.Code)
	}
	for {
		list, one := publicList(t, e), publicEvent(t, e, ev.ID)
		if len(list) == 1 && list[0].TicketQuantity == 0 && one.TicketQuantity == 0 {
			break
		}
		if age := time.Since(changed); age > maxAge+500*time.Millisecond {
			t.Fatalf("the view still shows the old stock %v after the change (max age %v)", age, maxAge)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEventViewOff: a negative EventsMaxAge reads the store for every
// answer.
func TestEventViewOff(t *testing.T) {
	e, ls := viewEnv(t, -1)
	ev := e.createEvent(t, `{"name":"Live","ticket_quantity":10}`)
	if _, err := ls.Store.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 3, VisitorToken: uuid.NewString()}); err != nil {
		t.Fatal(err)
	}
	if got := publicEvent(t, e, ev.ID); got.TicketQuantity != 7 {
		t.Errorf("event: %+v", got)
	}
	if got := publicList(t, e); len(got) != 1 || got[0].TicketQuantity != 7 {
		t.Errorf("list: %+v", got)
	}
}

// TestEventViewDown: when the store cannot be read and the snapshot is too
// old, the answer is 503, never an older snapshot.
func TestEventViewDown(t *testing.T) {
	var ds *downStore
	e := sqliteEnv(t, func(c *Config) {
		ds = &downStore{Store: c.Store}
		c.Store = ds
		c.EventsMaxAge = 50 * time.Millisecond
	})
	e.createEvent(t, `{"name":"Down","ticket_quantity":10}`)
	publicList(t, e)
	ds.down.Store(true)
	time.Sleep(60 * time.Millisecond)
	res := e.must(t, request{method: "GET", path: "/api/events"}, http.StatusServiceUnavailable)
	if got := errorOf(t, res); got.Code != ticketrush.EUnavailable {
		t.Errorf("code %q", got.Code)
	}
	ds.down.Store(false)
	if n := len(publicList(t, e)); n != 1 {
		t.Errorf("listed %d after the store came back", n)
	}
}
