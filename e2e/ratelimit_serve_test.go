package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestServeRateLimit runs "ticketrush serve --rate-limit" and checks the
// wiring: 429 JSON with Retry-After past the burst, X-Forwarded-For from a
// peer outside --trusted-proxies ignored, probes exempt, refusals counted.
func TestServeRateLimit(t *testing.T) {
	db, _ := sqliteBackend.newDB(t)
	srv := startServe(t, db, "--rate-limit", "0.01", "--rate-burst", "3", "--trusted-proxies", "10.0.0.0/8")
	c := newClient(t, srv.URL, 4, 10*time.Second)
	var created, limited int
	for i := range 10 {
		h := visitor(uuid.NewString())
		h.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
		r, err := c.do(context.Background(), "POST", "/api/reserve", h, `{"event_id":1,"amount":1}`)
		if err != nil {
			t.Fatal(err)
		}
		countLimited(t, r, http.StatusCreated, &created, &limited)
	}
	if created != 3 || limited != 7 {
		t.Errorf("%d created, %d limited; want 3 and 7", created, limited)
	}
	for range 20 {
		c.must(t, http.StatusOK, "GET", "/healthz", nil, "", nil)
	}
	m := c.must(t, http.StatusOK, "GET", "/metrics", nil, "", nil)
	if !strings.Contains(string(m.body), `ticketrush_rate_limited_total{by="ip"} 7`) {
		t.Errorf("/metrics does not count the 7 refusals by ip")
	}
}
