package bench

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/ticketrush/ticketrush"
)

// Two shapes of reserve load beyond one plain hot event: the same load
// spread uniformly over several events (Config.Events), where group commit
// must batch across events to keep its rate, and events with a per-visitor
// cap (Config.MaxPerVisitor), where every reserve must also read what its
// visitor holds.

// wrkEventsScript is the wrk script of a load spread over several events.
//
//go:embed wrk_events.lua
var wrkEventsScript []byte

// MaxEvents bounds Config.Events.
const MaxEvents = 1000

// createEvents creates the run's n events, each with the cap asked for.
func createEvents(ctx context.Context, tr http.RoundTripper, base, token string, n int, maxPerVisitor int64) ([]int64, error) {
	ids := make([]int64, 0, n)
	for i := range max(1, n) {
		body := fmt.Sprintf(`{"name":"bench %d","ticket_quantity":%d,"hold_seconds":%d,"max_per_visitor":%d}`,
			i+1, eventTickets, ticketrush.MaxHoldSeconds, maxPerVisitor)
		var ev struct {
			Data struct {
				ID int64 `json:"id"`
			} `json:"data"`
		}
		if err := benchAdmin(ctx, tr, http.MethodPost, base+"/api/admin/events", token, body, http.StatusCreated, &ev); err != nil {
			return nil, fmt.Errorf("create event: %w", err)
		}
		ids = append(ids, ev.Data.ID)
	}
	return ids, nil
}

// eventsStats adds up the stats of every event of the run: the checks
// after a run hold for the sum as they hold for each event.
func eventsStats(ctx context.Context, tr http.RoundTripper, base, token string, ids []int64) (*Stats, error) {
	sum := &Stats{EventID: ids[0]}
	for _, id := range ids {
		st, err := benchEventStats(ctx, tr, base, token, id)
		if err != nil {
			return nil, err
		}
		sum.Capacity += st.Capacity
		sum.Available += st.Available
		sum.Held += st.Held
		sum.Purchased += st.Purchased
		sum.Expired += st.Expired
		sum.Cancelled += st.Cancelled
	}
	return sum, nil
}

// reserveBody is the body of a one-ticket reserve of event id.
func reserveBody(id int64) []byte {
	return []byte(`{"event_id":` + strconv.FormatInt(id, 10) + `,"amount":1}`)
}

// forClient is the target client i of the in-process load repeats: with
// several events, client i reserves event i mod n, which spreads the
// clients uniformly.
func (t *loadTarget) forClient(i int) *loadTarget {
	if len(t.events) < 2 {
		return t
	}
	c := *t
	c.body = reserveBody(t.events[i%len(t.events)])
	return &c
}

// wrkArgs is what follows wrk's "--" for t: the spread script takes the
// token prefix, the events and the amount; the plain one the method, the
// body and the prefix.
func (t *loadTarget) wrkArgs(prefix string) []string {
	if len(t.events) < 2 {
		return []string{t.method, string(t.body), prefix}
	}
	ids := make([]string, len(t.events))
	for i, id := range t.events {
		ids[i] = strconv.FormatInt(id, 10)
	}
	return []string{prefix, strings.Join(ids, ","), "1"}
}
