package e2e

import (
	"context"
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
				switch r.status {
				case http.StatusOK:
					created++
				case http.StatusTooManyRequests:
					limited++
					if r.header.Get("Retry-After") == "" || errorCode(r.body) != "rate_limited" {
						t.Errorf("429 without Retry-After or code: %v %s", r.header, short(r.body))
					}
				default:
					t.Fatalf("status %d: %s", r.status, short(r.body))
				}
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
