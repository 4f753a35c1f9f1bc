package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestCrash kills "ticketrush serve" with SIGKILL in the middle of a rush,
// restarts it on the same database and checks that every reservation a
// client got a 201 for is there with its amount, and that the stock
// invariant holds: an acknowledgement is only sent after the commit that
// made it durable.
func TestCrash(t *testing.T) {
	for _, b := range []backend{sqliteBackend, postgresBackend, redisBackend} {
		for _, strategy := range []string{"lock", "batch"} {
			t.Run(b.name+"/"+strategy, func(t *testing.T) {
				db, _ := b.newDB(t)
				testCrash(t, db, strategy)
			})
		}
	}
}

// crashAfter is how many acknowledged reservations the rush collects before
// the kill, so the kill lands mid-rush with requests and commits in flight.
const crashAfter = 300

func testCrash(t *testing.T, db, strategy string) {
	const tickets = 1_000_000 // ample: every reserve before the kill fits
	srv := startServe(t, db, "--strategy", strategy)
	c := newClient(t, srv.URL, 64, 10*time.Second)
	ev := c.createEvent(t, "Crash "+strategy, tickets)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &rush{c: c, eventID: ev.ID}
	r.start(ctx, 64, 100_000)
	if !waitFor(30*time.Second, func() bool { return r.acked() >= crashAfter }) {
		cancel()
		r.wait()
		t.Fatalf("only %d reservations acknowledged in 30s", r.acked())
	}
	killAt := time.Now()
	srv.kill()
	fault("kill -9 mid-rush", 1)
	cancel()
	r.wait()
	acks, ops := r.snapshot()

	// Before the kill the service was healthy with ample stock: every
	// reserve and purchase must have succeeded.
	var before, cut int
	for _, o := range ops {
		if o.end.Before(killAt) {
			before++
			if o.err != nil || (o.status != http.StatusCreated && o.status != http.StatusOK) {
				t.Errorf("%s before the kill: status %d code %q err %v", o.kind, o.status, o.code, o.err)
			}
		} else if o.err != nil {
			cut++
		}
	}

	srv2 := startServe(t, db, "--strategy", strategy)
	c2 := newClient(t, srv2.URL, 16, 30*time.Second)
	held, purchased := verifyAcks(t, c2, acks)
	s := c2.checkInvariant(t, ev.ID)
	if s.Capacity != tickets || s.Expired != 0 || s.Cancelled != 0 {
		t.Errorf("stats %+v: want capacity %d, nothing expired or cancelled", s, tickets)
	}
	if s.Held+s.Purchased < sumAcked(acks) || s.Purchased < purchased || s.Held+s.Purchased-purchased < held {
		t.Errorf("stats %+v account for fewer tickets than the %d acknowledged (%d held, %d bought)",
			s, sumAcked(acks), held, purchased)
	}

	// The restarted service sells again.
	var res struct{ Data wireReservation }
	c2.must(t, http.StatusCreated, "POST", "/api/reserve", visitor(uuid.NewString()),
		fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID), &res)
	c2.checkInvariant(t, ev.ID)

	t.Logf("%d requests, %d answered before the kill, %d cut by it; %d acknowledged reservations (%d tickets) all found after restart; stats %+v",
		len(ops), before, cut, len(acks), sumAcked(acks), s)
}
