package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	rushsim "github.com/ticketrush/ticketrush/rush"
)

// TestServeWaitingRoom runs serve as the README tells a rehearsal to
// (--rate-limit 0, one machine sending every visitor) on each backend: a
// crowd from one address joins a room with a proof of work, every join
// answered 201; and a solved challenge makes one entry only, however a
// visitor alternates the challenges it solved.
func TestServeWaitingRoom(t *testing.T) {
	for _, b := range []backend{sqliteBackend, postgresBackend, redisBackend} {
		t.Run(b.name, func(t *testing.T) {
			db, _ := b.newDB(t)
			srv := startServe(t, db, "--queue-interval", "50ms")
			c := newClient(t, srv.URL, 8, 10*time.Second)
			var created struct{ Data wireEvent }
			c.must(t, http.StatusCreated, "POST", "/api/admin/events", admin(),
				`{"name":"Crowd","ticket_quantity":100,"waiting_room":{"admit_per_minute":1000000,"challenge_bits":4}}`, &created)
			ev := created.Data
			queue := fmt.Sprintf("/api/events/%d/queue", ev.ID)
			join := func(token string, want int) (challenge, nonce string) {
				t.Helper()
				var ch struct {
					Data struct {
						Challenge string `json:"challenge"`
						Bits      int    `json:"bits"`
					} `json:"data"`
				}
				c.must(t, http.StatusOK, "GET", queue+"/challenge", visitor(token), "", &ch)
				nonce, _ = rushsim.SolveChallenge(context.Background(), ch.Data.Challenge, token, ch.Data.Bits)
				c.must(t, want, "POST", queue, visitor(token), fmt.Sprintf(`{"challenge":%q,"nonce":%q}`, ch.Data.Challenge, nonce), nil)
				return ch.Data.Challenge, nonce
			}
			// More joins than the join quota's burst (20), all from here.
			for range 40 {
				join(uuid.NewString(), http.StatusCreated)
			}

			token := uuid.NewString()
			// cycle waits for the visitor's admission, reserves with the
			// pass and cancels, which ends the entry.
			cycle := func() {
				t.Helper()
				var q struct {
					Data struct {
						State string  `json:"state"`
						Pass  *string `json:"pass"`
					} `json:"data"`
				}
				deadline := time.Now().Add(10 * time.Second)
				for c.must(t, http.StatusOK, "GET", queue, visitor(token), "", &q); q.Data.State != "admitted"; c.must(t, http.StatusOK, "GET", queue, visitor(token), "", &q) {
					if time.Now().After(deadline) {
						t.Fatalf("not admitted: %+v", q.Data)
					}
					time.Sleep(50 * time.Millisecond)
				}
				h := visitor(token)
				h.Set("Admission-Pass", *q.Data.Pass)
				var res struct {
					Data struct {
						ID int64 `json:"id"`
					} `json:"data"`
				}
				c.must(t, http.StatusCreated, "POST", "/api/reserve", h, fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID), &res)
				c.must(t, http.StatusOK, "DELETE", fmt.Sprintf("/api/reservations/%d", res.Data.ID), visitor(token), "", nil)
			}
			a, na := join(token, http.StatusCreated)
			cycle()
			join(token, http.StatusCreated) // a new challenge, a new entry
			cycle()
			r := c.must(t, http.StatusUnprocessableEntity, "POST", queue, visitor(token), fmt.Sprintf(`{"challenge":%q,"nonce":%q}`, a, na), nil)
			if code := errorCode(r.body); code != "challenge_failed" {
				t.Errorf("the first challenge again: %s, want challenge_failed", code)
			}
		})
	}
}
