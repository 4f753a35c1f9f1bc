package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// TestChallengeWorksOnce: a solved challenge makes at most one entry. The
// store refuses a new entry with the challenge of the visitor's previous
// entry, but that alone let a visitor alternate two solved challenges (A,
// then B, then A again) for as long as they lasted.
func TestChallengeWorksOnce(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		ev := e.createEvent(t, `{"name":"Once","ticket_quantity":10,"waiting_room":{"admit_per_minute":100,"challenge_bits":4,"pass_seconds":60}}`)
		body := func(c, n string) string { return fmt.Sprintf(`{"challenge":%q,"nonce":%q}`, c, n) }
		fetch := func() (string, string) {
			ch := decode[Challenge](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d/queue/challenge", ev.ID), headers: visitor(tokenA)}, http.StatusOK))
			return ch.Challenge, solveChallenge(ch.Challenge, tokenA, 4)
		}
		expire := func() {
			t.Helper()
			e.advance(t, ev.ID)
			e.clock.Advance(61 * time.Second)
			if s := e.poll(t, ev.ID, tokenA); s.State != "expired" {
				t.Fatalf("after the pass = %+v", s)
			}
		}
		a, na := fetch()
		e.join(t, ev.ID, tokenA, body(a, na), http.StatusCreated)
		expire()
		b, nb := fetch()
		e.join(t, ev.ID, tokenA, body(b, nb), http.StatusCreated)
		// While the entry B made is live, B still answers with its place.
		e.join(t, ev.ID, tokenA, body(b, nb), http.StatusOK)
		expire()
		_, r := e.join(t, ev.ID, tokenA, body(a, na), 422)
		wantCode(t, r, ticketrush.EChallengeFailed)
		_, r = e.join(t, ev.ID, tokenA, body(b, nb), 422)
		wantCode(t, r, ticketrush.EChallengeFailed)
		c, nc := fetch()
		if s, _ := e.join(t, ev.ID, tokenA, body(c, nc), http.StatusCreated); s.State != "waiting" || deref(s.Position) != int64(3) {
			t.Errorf("third entry = %+v", s)
		}
	})
}

// TestQueueNotOpenRetryAfter: a join before the queue opens says when to
// come back, like every other queue answer, instead of leaving clients to
// guess (and hammer the join until it opens).
func TestQueueNotOpenRetryAfter(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		now := e.clock.Now()
		sale := now.Add(100 * time.Second)
		opens := now.Add(40 * time.Second)
		pre := e.createEvent(t, fmt.Sprintf(`{"name":"Pre","ticket_quantity":1,"sale_starts_at":%q,"waiting_room":{"admit_per_minute":10,"prequeue_opens_at":%q}}`,
			sale.Format(time.RFC3339Nano), opens.Format(time.RFC3339Nano)))
		plain := e.createEvent(t, fmt.Sprintf(`{"name":"No pre-queue","ticket_quantity":1,"sale_starts_at":%q,"waiting_room":{"admit_per_minute":10}}`,
			sale.Format(time.RFC3339Nano)))
		for _, c := range []struct {
			id   int64
			want string
		}{{pre.ID, "40"}, {plain.ID, "100"}} {
			_, r := e.join(t, c.id, tokenA, "", http.StatusConflict)
			wantCode(t, r, ticketrush.EQueueNotOpen)
			if got := r.header.Get("Retry-After"); got != c.want {
				t.Errorf("event %d: Retry-After %q, want %q (seconds until the queue opens)", c.id, got, c.want)
			}
		}
	})
}

// TestAdmittedSoldOut: once the last ticket is bought and no hold can come
// back, a visitor admitted with an unused pass is told sold_out, like
// everyone still waiting, instead of admitted with a pass that can only
// meet not_enough_tickets.
func TestAdmittedSoldOut(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		ev := e.createEvent(t, `{"name":"Last one","ticket_quantity":1,"waiting_room":{"admit_per_minute":100}}`)
		e.join(t, ev.ID, tokenA, "", http.StatusCreated)
		e.join(t, ev.ID, tokenB, "", http.StatusCreated)
		e.advance(t, ev.ID)
		a, b := e.poll(t, ev.ID, tokenA), e.poll(t, ev.ID, tokenB)
		if a.Pass == nil || b.Pass == nil {
			t.Fatalf("A = %+v, B = %+v, want both admitted", a, b)
		}
		res := decode[Reservation](t, e.reserveWithPass(t, ev.ID, 1, tokenA, *a.Pass, "", http.StatusCreated))
		e.must(t, request{method: "POST", path: "/api/purchase", headers: visitor(tokenA), body: fmt.Sprintf(`{"reservation_id":%d}`, res.ID)}, 200)
		if s := e.poll(t, ev.ID, tokenB); s.State != "sold_out" || s.Pass != nil || s.PassExpiresAt != nil {
			t.Errorf("B with an unused pass after the last ticket sold = %+v, want sold_out without a pass", s)
		}
		// The buyer keeps seeing its own admission.
		if s := e.poll(t, ev.ID, tokenA); s.State != "admitted" {
			t.Errorf("A after buying = %+v, want admitted", s)
		}
	})
}

// TestPassForUnknownEvent: a reserve for an event that does not exist is
// 404 event_not_found whatever Admission-Pass it carries, as without one;
// the pass was judged first and answered 403 admission_invalid.
func TestPassForUnknownEvent(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		for _, key := range []string{"", "k1"} {
			res := e.reserveWithPass(t, 424242, 1, tokenA, "garbage", key, http.StatusNotFound)
			wantCode(t, res, ticketrush.EEventNotFound)
		}
	})
}

// TestPrequeueAfterSaleStart: a pre-queue that would open after the sale
// starts is refused (the queue would stay shut, with every reserve needing
// a pass, from the sale's start until then), on create and on PATCH.
func TestPrequeueAfterSaleStart(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		sale := e.clock.Now().Add(time.Hour)
		late := sale.Add(time.Minute).Format(time.RFC3339Nano)
		res := e.must(t, request{method: "POST", path: "/api/admin/events", headers: admin(), body: fmt.Sprintf(
			`{"name":"Late","ticket_quantity":1,"sale_starts_at":%q,"waiting_room":{"admit_per_minute":10,"prequeue_opens_at":%q}}`,
			sale.Format(time.RFC3339Nano), late)}, 422)
		if f := errorOf(t, res).Fields; f["waiting_room.prequeue_opens_at"] == "" {
			t.Errorf("create: fields %v, want waiting_room.prequeue_opens_at named", f)
		}
		ev := e.createEvent(t, fmt.Sprintf(`{"name":"Later","ticket_quantity":1,"sale_starts_at":%q,"waiting_room":{"admit_per_minute":10}}`, sale.Format(time.RFC3339Nano)))
		res = e.must(t, request{method: "PATCH", path: fmt.Sprintf("/api/admin/events/%d", ev.ID), headers: admin(),
			body: fmt.Sprintf(`{"waiting_room":{"prequeue_opens_at":%q}}`, late)}, 422)
		if f := errorOf(t, res).Fields; f["waiting_room.prequeue_opens_at"] == "" {
			t.Errorf("patch: fields %v, want waiting_room.prequeue_opens_at named", f)
		}
		if got := decode[Event](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/admin/events/%d", ev.ID), headers: admin()}, 200)); got.WaitingRoom == nil || got.WaitingRoom.PrequeueOpensAt != nil {
			t.Errorf("a refused patch changed the room: %+v", got.WaitingRoom)
		}
		// Before the sale start it is a pre-queue.
		e.must(t, request{method: "PATCH", path: fmt.Sprintf("/api/admin/events/%d", ev.ID), headers: admin(),
			body: fmt.Sprintf(`{"waiting_room":{"prequeue_opens_at":%q}}`, sale.Add(-time.Minute).Format(time.RFC3339Nano))}, 200)
	})
}

// TestJoinQuotaLogsToServerLog: the join quota's warnings go to the
// server's logger (its level and format), not to the process default.
func TestJoinQuotaLogsToServerLog(t *testing.T) {
	forEachRoomBackendWith(t, func(c *WaitingRoomConfig) {
		c.CacheTTL = -1
		c.JoinsPerSecond, c.JoinBurst = 100, 100
	}, func(t *testing.T, e *env) {
		ev := e.createEvent(t, `{"name":"Proxied","ticket_quantity":10,"waiting_room":{"admit_per_minute":10}}`)
		e.must(t, request{method: "POST", path: fmt.Sprintf("/api/events/%d/queue", ev.ID),
			headers: map[string]string{"X-Forwarded-For": "203.0.113.9"}}, http.StatusCreated)
		if !strings.Contains(e.log.String(), "no proxy is trusted") {
			t.Errorf("the join quota's warning is not in the server's log: %q", e.log.String())
		}
	})
}

// TestQueueSeesNewEvent: a node that was asked about an event id before
// the event existed lets visitors join it as soon as it is created (a
// checker that probes the next id, then creates the event, must not meet a
// remembered event_not_found).
func TestQueueSeesNewEvent(t *testing.T) {
	forEachRoomBackendWith(t, func(c *WaitingRoomConfig) { c.CacheTTL = time.Second }, func(t *testing.T, e *env) {
		probe := e.createEvent(t, `{"name":"Before","ticket_quantity":1}`)
		next := probe.ID + 1
		res := e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d/queue", next), headers: visitor(tokenA)}, http.StatusNotFound)
		wantCode(t, res, ticketrush.EEventNotFound)
		ev := e.createEvent(t, `{"name":"New","ticket_quantity":1,"waiting_room":{"admit_per_minute":10}}`)
		if ev.ID != next {
			t.Fatalf("the backend gave id %d, not the probed %d", ev.ID, next)
		}
		e.join(t, ev.ID, tokenA, "", http.StatusCreated)
		e.poll(t, ev.ID, tokenA)
	})
}
