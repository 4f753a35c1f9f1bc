package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestRateLimitSharedByNodes runs two serve processes on one PostgreSQL
// database and on one Redis, each with the default-on limit set low, and
// sends one client's requests to both in turn: the client gets one budget
// in all, not one per node.
func TestRateLimitSharedByNodes(t *testing.T) {
	for _, b := range []backend{postgresBackend, redisBackend} {
		t.Run(b.name, func(t *testing.T) {
			db, _ := b.newDB(t)
			args := []string{"--rate-limit", "0.01", "--rate-burst", "6"}
			nodes := []*client{
				newClient(t, startServe(t, db, args...).URL, 4, 10*time.Second),
				newClient(t, startServe(t, db, args...).URL, 4, 10*time.Second),
			}
			// Per address: fresh visitors, one IP, both nodes.
			created, limited := 0, 0
			for i := range 12 {
				r, err := nodes[i%2].do(context.Background(), "GET", "/api/events", visitor(uuid.NewString()), "")
				if err != nil {
					t.Fatal(err)
				}
				countLimited(t, r, http.StatusOK, &created, &limited)
			}
			if created != 6 || limited != 6 {
				t.Fatalf("over two nodes: %d answered, %d limited; want the burst of 6 in all, then 429", created, limited)
			}
			// Probes stay exempt on both nodes.
			for _, n := range nodes {
				for range 10 {
					n.must(t, http.StatusOK, "GET", "/healthz", nil, "", nil)
					n.must(t, http.StatusOK, "GET", "/readyz", nil, "", nil)
				}
				n.must(t, http.StatusOK, "GET", "/metrics", nil, "", nil)
			}
		})
	}
}

// TestJoinQuotaSharedByNodes: the join quota, like the rate limit, is one
// budget across nodes on PostgreSQL and Redis, and its buckets are its own:
// with the rate limit on beside it (a large burst), a client gets exactly
// the join burst, not less because its requests also counted against the
// rate limit's bucket for the same address.
func TestJoinQuotaSharedByNodes(t *testing.T) {
	for _, b := range []backend{postgresBackend, redisBackend} {
		t.Run(b.name, func(t *testing.T) {
			db, _ := b.newDB(t)
			args := []string{"--rate-limit", "0.01", "--rate-burst", "100", "--join-rate", "0.01", "--join-burst", "4"}
			nodes := []*client{
				newClient(t, startServe(t, db, args...).URL, 4, 10*time.Second),
				newClient(t, startServe(t, db, args...).URL, 4, 10*time.Second),
			}
			var created struct{ Data wireEvent }
			nodes[0].must(t, http.StatusCreated, "POST", "/api/admin/events", admin(),
				`{"name":"Quota","ticket_quantity":10,"waiting_room":{"admit_per_minute":60}}`, &created)
			queue := fmt.Sprintf("/api/events/%d/queue", created.Data.ID)
			joined, limited := 0, 0
			for i := range 10 {
				r, err := nodes[i%2].do(context.Background(), "POST", queue, visitor(uuid.NewString()), "")
				if err != nil {
					t.Fatal(err)
				}
				countLimited(t, r, http.StatusCreated, &joined, &limited)
			}
			if joined != 4 || limited != 6 {
				t.Fatalf("joins over two nodes: %d created, %d limited; want the join burst of 4 in all, then 429", joined, limited)
			}
			// The rate limit's own bucket still has room for other requests.
			nodes[1].must(t, http.StatusOK, "GET", "/api/events", nil, "", nil)
		})
	}
}

// countLimited tallies one answer of a rate-limit test: status ok counts
// as answered; a 429 counts as limited and must carry Retry-After and the
// code rate_limited in a JSON body; any other status fails the test.
func countLimited(t *testing.T, r reply, ok int, answered, limited *int) {
	t.Helper()
	switch r.status {
	case ok:
		*answered++
	case http.StatusTooManyRequests:
		*limited++
		if r.header.Get("Retry-After") == "" || errorCode(r.body) != "rate_limited" || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("429 without Retry-After or JSON code: %v %s", r.header, short(r.body))
		}
	default:
		t.Fatalf("status %d: %s", r.status, short(r.body))
	}
}
