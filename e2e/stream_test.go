package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// liveStream is one open availability stream of a serve process.
type liveStream struct {
	res *http.Response
	c   chan int64 // ticket_quantity of each availability event
}

// openLive opens GET /api/events/{id}/stream and reads its events.
func openLive(t *testing.T, base string, eventID int64) (*liveStream, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", fmt.Sprintf("%s/api/events/%d/stream", base, eventID), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, res
	}
	ls := &liveStream{res: res, c: make(chan int64, 64)}
	go func() {
		defer close(ls.c)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var a struct {
					TicketQuantity int64 `json:"ticket_quantity"`
				}
				if json.Unmarshal([]byte(data), &a) == nil {
					ls.c <- a.TicketQuantity
				}
			}
		}
	}()
	t.Cleanup(func() { res.Body.Close() })
	return ls, res
}

// until waits for an availability of want tickets.
func (ls *liveStream) until(t *testing.T, want int64, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case got, ok := <-ls.c:
			if !ok {
				t.Fatalf("stream ended before showing %d tickets", want)
			}
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("stream did not show %d tickets within %v", want, within)
		}
	}
}

// TestLiveStreamThroughServe runs the live availability stream through the
// whole serve process and its middleware: an update follows a reserve, an
// unknown event is 404, one client's streams are capped with 429
// too_many_streams and Retry-After, the rest of the API is unaffected, and
// a graceful stop ends open streams instead of waiting for them.
func TestLiveStreamThroughServe(t *testing.T) {
	db, _ := sqliteBackend.newDB(t)
	srv := startServe(t, db, "--max-streams-per-ip", "2")
	c := newClient(t, srv.URL, 4, 10*time.Second)
	ev := c.createEvent(t, "Canlı Yayın", 20)

	first, res := openLive(t, srv.URL, ev.ID)
	if first == nil {
		t.Fatalf("stream: %d", res.StatusCode)
	}
	first.until(t, 20, 5*time.Second)
	c.must(t, http.StatusCreated, "POST", "/api/reserve", visitor(uuid.NewString()), fmt.Sprintf(`{"event_id":%d,"amount":3}`, ev.ID), nil)
	first.until(t, 17, 5*time.Second)

	if _, res := openLive(t, srv.URL, 987654); res.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown event: %d, want 404", res.StatusCode)
	} else {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if errorCode(b) != "event_not_found" {
			t.Fatalf("unknown event: %s", short(b))
		}
	}

	second, res := openLive(t, srv.URL, ev.ID)
	if second == nil {
		t.Fatalf("second stream: %d", res.StatusCode)
	}
	second.until(t, 17, 5*time.Second)
	_, res = openLive(t, srv.URL, ev.ID)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || errorCode(b) != "too_many_streams" || res.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream: %d Retry-After %q %s; want 429 too_many_streams with Retry-After", res.StatusCode, res.Header.Get("Retry-After"), short(b))
	}
	c.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/events/%d", ev.ID), nil, "", nil)

	// SIGTERM ends the streams at once: the process exits well before
	// its 30 s drain limit.
	start := time.Now()
	srv.stop()
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("serve took %v to stop with two open streams", d)
	}
	for _, ls := range []*liveStream{first, second} {
		select {
		case _, ok := <-ls.c:
			for ok {
				_, ok = <-ls.c
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a stream stayed open after the server stopped")
		}
	}
}
