package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestLockSaturation: with --strategy lock on PostgreSQL, a rush on one
// event whose row is held (a slow transaction) keeps every reserve of that
// event waiting on the row until its deadline. /readyz, purchases and other
// events must stay usable meanwhile: the waits may not take the whole
// connection pool. Once the row is free the event sells again.
func TestLockSaturation(t *testing.T) {
	db, _ := postgresBackend.newDB(t)
	srv := startServe(t, db, "--strategy", "lock", "--sweep-interval", "1h", "--rate-limit", "0")
	c := newClient(t, srv.URL, 96, 10*time.Second)
	hot := c.createEvent(t, "Hot", 1_000_000)
	other := c.createEvent(t, "Other", 1_000)

	release := lockEvent(t, postgresBackend, db, hot.ID)
	var releaseOnce sync.Once
	defer releaseOnce.Do(release)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for range 64 {
		wg.Go(func() {
			for ctx.Err() == nil {
				r, err := c.do(ctx, "POST", "/api/reserve", visitor(uuid.NewString()), fmt.Sprintf(`{"event_id":%d,"amount":1}`, hot.ID))
				if err == nil && r.status != http.StatusServiceUnavailable {
					t.Errorf("reserve of the held event: status %d: %s", r.status, short(r.body))
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // the rush fills whatever it can
	for i := range 20 {
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		r, err := c.do(pctx, "GET", "/readyz", nil, "")
		if err != nil || r.status != http.StatusOK {
			cancel()
			t.Fatalf("round %d: /readyz during the rush: %v %d %s after %v", i, err, r.status, short(r.body), time.Since(start))
		}
		token := uuid.NewString()
		r, err = c.do(pctx, "POST", "/api/reserve", visitor(token), fmt.Sprintf(`{"event_id":%d,"amount":1}`, other.ID))
		if err != nil || r.status != http.StatusCreated {
			cancel()
			t.Fatalf("round %d: reserve of another event during the rush: %v %d %s after %v", i, err, r.status, short(r.body), time.Since(start))
		}
		var res struct{ Data wireReservation }
		if err := json.Unmarshal(r.body, &res); err != nil {
			t.Fatal(err)
		}
		r, err = c.do(pctx, "POST", "/api/purchase", visitor(token), fmt.Sprintf(`{"reservation_id":%d}`, res.Data.ID))
		cancel()
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("round %d: purchase during the rush: %v %d %s after %v", i, err, r.status, short(r.body), time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	wg.Wait()
	releaseOnce.Do(release)
	c.must(t, http.StatusCreated, "POST", "/api/reserve", visitor(uuid.NewString()), fmt.Sprintf(`{"event_id":%d,"amount":1}`, hot.ID), nil)
	c.checkInvariant(t, hot.ID)
	if st := c.checkInvariant(t, other.ID); st.Purchased != 20 {
		t.Fatalf("other event: %+v, want 20 purchased", st)
	}
}
