package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The tests below turn the rate limit off: the cut must fall on the
// request's own statement, not on a limiter's.

// TestInDoubtCommit cuts the connection between PostgreSQL's COMMIT and
// its answer while a reserve commits, for each strategy. The reservation
// exists, so the answer must not be "unavailable" (which promises nothing
// was applied) but 503 outcome_unknown with Retry-After; a retry with the
// same Visitor-Token and Idempotency-Key returns that reservation and holds
// nothing more.
func TestInDoubtCommit(t *testing.T) {
	for _, strategy := range []string{"lock", "batch"} {
		t.Run(strategy, func(t *testing.T) {
			db, hostport := postgresBackend.newDB(t)
			p := startProxy(t, hostport)
			srv := startServe(t, withHost(t, db, p.Addr()), "--strategy", strategy, "--sweep-interval", "1h", "--rate-limit", "0")
			c := newClient(t, srv.URL, 4, 10*time.Second)
			ev := c.createEvent(t, "In doubt "+strategy, 10)

			h := visitor(uuid.NewString())
			h.Set("Idempotency-Key", "in-doubt-1")
			body := fmt.Sprintf(`{"event_id":%d,"amount":2}`, ev.ID)
			cut := p.cutNextCommit()
			r := c.must(t, http.StatusServiceUnavailable, "POST", "/api/reserve", h, body, nil)
			select {
			case <-cut:
			default:
				t.Fatal("the reserve answered without its COMMIT being cut")
			}
			if code := errorCode(r.body); code != "outcome_unknown" {
				t.Fatalf("answer after a lost COMMIT reply: code %q (%s), want outcome_unknown", code, short(r.body))
			}
			if r.header.Get("Retry-After") == "" {
				t.Fatal("503 outcome_unknown without Retry-After")
			}
			if st := c.checkInvariant(t, ev.ID); st.Held != 2 {
				t.Fatalf("held %d after the cut commit, want 2 (it committed)", st.Held)
			}

			var again struct{ Data wireReservation }
			rr, err := c.do(t.Context(), "POST", "/api/reserve", h, body)
			if err != nil {
				t.Fatal(err)
			}
			if rr.status != http.StatusCreated && rr.status != http.StatusOK {
				t.Fatalf("retry: status %d: %s", rr.status, short(rr.body))
			}
			c.must(t, rr.status, "POST", "/api/reserve", h, body, &again)
			if again.Data.Amount != 2 || again.Data.Status != "reserved" {
				t.Fatalf("retry returned %+v", again.Data)
			}
			if st := c.checkInvariant(t, ev.ID); st.Held != 2 {
				t.Fatalf("held %d after the retry, want 2: the retry held again", st.Held)
			}
		})
	}
}

// TestInDoubtPurchase cuts the answer of a purchase's UPDATE, which
// commits on its own: the hold is sold, so the answer must be 503
// outcome_unknown, not unavailable; the retry tells the truth (409
// reservation_already_purchased) and the sale counts once.
func TestInDoubtPurchase(t *testing.T) {
	db, hostport := postgresBackend.newDB(t)
	p := startProxy(t, hostport)
	srv := startServe(t, withHost(t, db, p.Addr()), "--sweep-interval", "1h", "--rate-limit", "0")
	c := newClient(t, srv.URL, 4, 10*time.Second)
	ev := c.createEvent(t, "In doubt purchase", 10)
	h := visitor(uuid.NewString())
	var res struct{ Data wireReservation }
	c.must(t, http.StatusCreated, "POST", "/api/reserve", h, fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID), &res)

	body := fmt.Sprintf(`{"reservation_id":%d}`, res.Data.ID)
	cut := p.cutNextTag("UPDATE 1")
	r := c.must(t, http.StatusServiceUnavailable, "POST", "/api/purchase", h, body, nil)
	select {
	case <-cut:
	default:
		t.Fatal("the purchase answered without its UPDATE being cut")
	}
	if code := errorCode(r.body); code != "outcome_unknown" || r.header.Get("Retry-After") == "" {
		t.Fatalf("answer after a lost purchase reply: code %q, Retry-After %q, want outcome_unknown with Retry-After", code, r.header.Get("Retry-After"))
	}
	r = c.must(t, http.StatusConflict, "POST", "/api/purchase", h, body, nil)
	if code := errorCode(r.body); code != "reservation_already_purchased" {
		t.Fatalf("retry: %s", short(r.body))
	}
	if st := c.checkInvariant(t, ev.ID); st.Purchased != 1 || st.Held != 0 {
		t.Fatalf("stats %+v, want 1 purchased", st)
	}
}
