package bench

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestRunEvents spreads the load over several capped events, with each
// load generator: every event gets reserves, and the stats of all of them
// together are checked.
func TestRunEvents(t *testing.T) {
	loads := []string{LoadGo}
	if _, err := exec.LookPath("wrk"); err == nil {
		loads = append(loads, LoadWrk)
	}
	for _, load := range loads {
		t.Run(load, func(t *testing.T) {
			c := testConfig(t)
			c.Load = load
			c.Clients = []int{10}
			c.Strategies = []string{"batch"}
			c.Events = 5
			c.MaxPerVisitor = 4
			rep, err := Run(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK || len(rep.Runs) != 1 {
				t.Fatalf("problems %q, %d runs", rep.Problems, len(rep.Runs))
			}
			r := rep.Runs[0]
			if r.Events != 5 || r.MaxPerVisitor != 4 {
				t.Errorf("run over %d events capped at %d, want 5 and 4", r.Events, r.MaxPerVisitor)
			}
			if r.Stats.Capacity != 5*eventTickets || r.Stats.Held < r.Acknowledged || r.Acknowledged == 0 {
				t.Errorf("stats %+v for %d acknowledged over 5 events", r.Stats, r.Acknowledged)
			}
			var out bytes.Buffer
			rep.WriteMarkdown(&out)
			if !strings.Contains(out.String(), "spread uniformly over 5 events, each with max_per_visitor 4") {
				t.Errorf("the report does not say how the load was spread:\n%s", &out)
			}
		})
	}
}

// TestWrkEventsScript checks the spread script's arguments as the bench
// gives them: the events in turn, one ticket each.
func TestWrkEventsScript(t *testing.T) {
	tg := &loadTarget{method: "POST", body: reserveBody(7), events: []int64{7, 8, 9}}
	args := tg.wrkArgs("p")
	if strings.Join(args, " ") != "p 7,8,9 1" {
		t.Errorf("args = %q", args)
	}
	for i, want := range []string{`{"event_id":7,"amount":1}`, `{"event_id":8,"amount":1}`, `{"event_id":7,"amount":1}`} {
		n := []int{0, 1, 3}[i]
		if got := string(tg.forClient(n).body); got != want {
			t.Errorf("client %d body %s, want %s", n, got, want)
		}
	}
	if !bytes.Contains(wrkEventsScript, []byte(`'{"event_id":%s,"amount":%s}'`)) {
		t.Error("wrk_events.lua no longer builds bodies as the bench expects")
	}
}
