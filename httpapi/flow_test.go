package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// client talks to a real HTTP server and checks every answer against the
// OpenAPI document.
type client struct {
	t    testing.TB
	base string
}

func (e *env) httpServer(t *testing.T) *client {
	ts := httptest.NewServer(e.srv)
	t.Cleanup(ts.Close)
	return &client{t: t, base: ts.URL}
}

func (c *client) do(method, path string, header http.Header, body string) response {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	checkResponse(c.t, req, resp.StatusCode, resp.Header, b)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// wireTime is the wire format of every time: UTC, six fractional digits.
var wireTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$`)

// testSeedRequests replays the original's curl examples over real HTTP:
// list events, reserve without a token (the token comes back as user_uid
// and in a header), purchase with that token.
func testSeedRequests(t *testing.T, e *env) {
	ev := e.createEvent(t, `{"name":"Örnek Etkinlik","ticket_quantity":2000}`)
	c := e.httpServer(t)

	// curl http://localhost:8080/api/events
	res := c.do("GET", "/api/events", nil, "")
	if res.status != 200 {
		t.Fatalf("events: %d %s", res.status, res.body)
	}
	events := decode[[]Event](t, res)
	if len(events) == 0 || events[0].ID != ev.ID || events[0].Name != "Örnek Etkinlik" || events[0].TicketQuantity != 2000 {
		t.Fatalf("events, newest first: %+v", events)
	}

	// curl -X POST -H 'Content-Type: application/json' -d '{"event_id":1,"amount":10}' …/api/reserve
	res = c.do("POST", "/api/reserve", http.Header{"Content-Type": {"application/json"}},
		fmt.Sprintf(`{"event_id":%d,"amount":10}`, ev.ID))
	if res.status != 201 {
		t.Fatalf("reserve: %d %s", res.status, res.body)
	}
	r := decode[Reservation](t, res)
	token := res.header.Get("Visitor-Token")
	if token == "" || token != r.UserUID {
		t.Fatalf("Visitor-Token header %q, user_uid %q", token, r.UserUID)
	}
	if _, err := ticketrush.ParseVisitorToken(token); err != nil || token != strings.ToLower(token) {
		t.Fatalf("token %q is not a lower-case UUID: %v", token, err)
	}
	if r.Status != "reserved" || r.Amount != 10 || r.EventID != ev.ID {
		t.Fatalf("reservation: %+v", r)
	}
	if !r.ExpiresAt.Equal(r.CreatedAt.Add(ticketrush.DefaultHold)) || !r.CreatedAt.Equal(e.clock.Now()) {
		t.Errorf("created %v, expires %v, clock %v", r.CreatedAt, r.ExpiresAt, e.clock.Now())
	}
	checkWireTimes(t, res.body)

	// curl -X POST -H 'Visitor-Token: …' -d '{"reservation_id":1}' …/api/purchase
	// without a Content-Type is refused: a body without one is what a
	// cross-site form or no-cors fetch sends.
	res = c.do("POST", "/api/purchase", http.Header{"Visitor-Token": {token}},
		fmt.Sprintf(`{"reservation_id":%d}`, r.ID))
	if res.status != http.StatusUnsupportedMediaType {
		t.Fatalf("purchase without Content-Type: %d %s", res.status, res.body)
	}
	res = c.do("POST", "/api/purchase", http.Header{"Visitor-Token": {token}, "Content-Type": {"application/json"}},
		fmt.Sprintf(`{"reservation_id":%d}`, r.ID))
	if res.status != 200 {
		t.Fatalf("purchase: %d %s", res.status, res.body)
	}
	if p := decode[Reservation](t, res); p.Status != "purchased" || p.ID != r.ID {
		t.Fatalf("purchase: %+v", p)
	}

	// The admin answer is the store's own, at once; the public one comes
	// from the server's event view and shows the sale within
	// DefaultEventsMaxAge.
	res = c.do("GET", "/api/admin/events/"+strconv.FormatInt(ev.ID, 10), http.Header{"Authorization": {"Bearer " + adminToken}}, "")
	if got := decode[Event](t, res); got.TicketQuantity != 1990 || got.Capacity != 2000 {
		t.Fatalf("admin event after purchase: %+v", got)
	}
	for deadline := time.Now().Add(DefaultEventsMaxAge + time.Second); ; time.Sleep(10 * time.Millisecond) {
		res = c.do("GET", "/api/events/"+strconv.FormatInt(ev.ID, 10), nil, "")
		got := decode[Event](t, res)
		if got.TicketQuantity == 1990 && got.Capacity == 2000 {
			break
		}
		if time.Now().After(deadline) || got.Capacity != 2000 || got.TicketQuantity != 2000 {
			t.Fatalf("event after purchase: %+v", got)
		}
	}
	res = c.do("GET", fmt.Sprintf("/api/admin/events/%d/stats", ev.ID), http.Header{"Authorization": {"Bearer " + adminToken}}, "")
	if st := decode[Stats](t, res); st != (Stats{EventID: ev.ID, Capacity: 2000, Available: 1990, Purchased: 10}) {
		t.Fatalf("stats: %+v", st)
	}

	// HEAD is answered like GET, without a body.
	if res := c.do("HEAD", "/api/events", nil, ""); res.status != 200 || len(res.body) != 0 {
		t.Fatalf("HEAD: %d %q", res.status, res.body)
	}
}

// checkWireTimes fails t unless every *_at string in body is in the wire
// format.
func checkWireTimes(t *testing.T, body []byte) {
	t.Helper()
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && strings.HasSuffix(k, "_at") && !wireTime.MatchString(s) {
					t.Errorf("%s = %q, not in the wire format", k, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	walk(v)
}

func testTimesOnTheWire(t *testing.T, e *env) {
	// The clock's fraction ends in zeros, which a careless format drops.
	e.clock.Set(time.Date(2025, 11, 18, 8, 0, 0, 120000000, time.UTC))
	ev := e.createEvent(t, `{"name":"Times","ticket_quantity":10,"sale_starts_at":"2025-11-18T09:49:23.5+02:00"}`)
	if ev.SaleStartsAt == nil || !ev.SaleStartsAt.Equal(time.Date(2025, 11, 18, 7, 49, 23, 500000000, time.UTC)) {
		t.Fatalf("sale_starts_at %v", ev.SaleStartsAt)
	}
	res := e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d", ev.ID)}, 200)
	checkWireTimes(t, res.body)
	if !bytes.Contains(res.body, []byte(`"sale_starts_at":"2025-11-18T07:49:23.500000Z"`)) ||
		!bytes.Contains(res.body, []byte(`"created_at":"2025-11-18T08:00:00.120000Z"`)) {
		t.Errorf("times not in the wire format: %s", res.body)
	}
	r := e.must(t, request{method: "POST", path: "/api/reserve", body: fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID)}, 201)
	if !bytes.Contains(r.body, []byte(`"expires_at":"2025-11-18T08:05:00.120000Z"`)) {
		t.Errorf("expires_at not five minutes later in the wire format: %s", r.body)
	}
}

// testIdempotentRepeat: the same key and visitor get the first reservation
// back and no more tickets are taken; another visitor may use the same key.
func testIdempotentRepeat(t *testing.T, e *env) {
	ev := e.createEvent(t, `{"name":"Idem","ticket_quantity":100}`)
	body := fmt.Sprintf(`{"event_id":%d,"amount":3}`, ev.ID)
	h := map[string]string{"Visitor-Token": tokenA, "Idempotency-Key": "order-42"}
	first := decode[Reservation](t, e.must(t, request{method: "POST", path: "/api/reserve", headers: h, body: body}, 201))
	before := e.snapshot(t)
	for range 3 {
		again := decode[Reservation](t, e.must(t, request{method: "POST", path: "/api/reserve", headers: h, body: body}, 201))
		if again.ID != first.ID || again.Amount != 3 {
			t.Fatalf("repeat: %+v, first %+v", again, first)
		}
	}
	if after := e.snapshot(t); after != before {
		t.Fatalf("a repeat changed state:\n%s\n%s", before, after)
	}
	other := decode[Reservation](t, e.must(t, request{method: "POST", path: "/api/reserve",
		headers: map[string]string{"Visitor-Token": tokenB, "Idempotency-Key": "order-42"}, body: body}, 201))
	if other.ID == first.ID {
		t.Fatal("another visitor's key returned the first visitor's reservation")
	}
	st, _ := e.store.Stats(context.Background(), ev.ID)
	if st.Held != 6 {
		t.Fatalf("held %d, want 6", st.Held)
	}
}

// testExpiry moves the clock past a hold: purchase answers 410, the hold is
// released as expired and its tickets are back on sale at once.
func testExpiry(t *testing.T, e *env) {
	ev := e.createEvent(t, `{"name":"Expiry","ticket_quantity":10,"hold_seconds":60}`)
	r := e.reserve(t, ev.ID, 10, tokenA)
	e.must(t, request{method: "POST", path: "/api/reserve", body: fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID)}, 409)

	e.clock.Advance(59 * time.Second)
	e.must(t, request{method: "POST", path: "/api/reserve", body: fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID)}, 409)
	e.clock.Advance(time.Second) // exactly expires_at: the hold no longer counts

	purchase := request{method: "POST", path: "/api/purchase", headers: visitor(tokenA), body: fmt.Sprintf(`{"reservation_id":%d}`, r.ID)}
	if got := errorOf(t, e.must(t, purchase, 410)); got.Code != ticketrush.EExpired {
		t.Fatalf("code %q", got.Code)
	}
	got := decode[Reservation](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/reservations/%d", r.ID), headers: visitor(tokenA)}, 200))
	if got.Status != ticketrush.StatusExpired {
		t.Fatalf("status %q after expiry", got.Status)
	}
	st := decode[Stats](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/admin/events/%d/stats", ev.ID), headers: admin()}, 200))
	if st != (Stats{EventID: ev.ID, Capacity: 10, Available: 10, Expired: 10}) {
		t.Fatalf("stats %+v", st)
	}
	// A second purchase of the released hold is still 410.
	e.must(t, purchase, 410)
	e.reserve(t, ev.ID, 10, tokenB)
}

// testCancel: a cancelled hold's tickets go back on sale at once.
func testCancel(t *testing.T, e *env) {
	ev := e.createEvent(t, `{"name":"Cancel","ticket_quantity":4}`)
	r := e.reserve(t, ev.ID, 4, tokenA)
	path := fmt.Sprintf("/api/reservations/%d", r.ID)
	c := decode[Reservation](t, e.must(t, request{method: "DELETE", path: path, headers: visitor(strings.ToUpper(tokenA))}, 200))
	if c.Status != ticketrush.StatusCancelled || c.ID != r.ID {
		t.Fatalf("cancel: %+v", c)
	}
	e.reserve(t, ev.ID, 4, tokenB)
	st, _ := e.store.Stats(context.Background(), ev.ID)
	if st.Held != 4 || st.Cancelled != 4 || st.Available != 0 {
		t.Fatalf("stats %+v", *st)
	}
}

// testVisitorLimit: max_per_visitor counts held plus purchased tickets of
// one visitor; another visitor is not affected.
func testVisitorLimit(t *testing.T, e *env) {
	ev := e.createEvent(t, `{"name":"Limit","ticket_quantity":100,"max_per_visitor":3}`)
	r := e.reserve(t, ev.ID, 2, tokenA)
	e.must(t, request{method: "POST", path: "/api/purchase", headers: visitor(tokenA), body: fmt.Sprintf(`{"reservation_id":%d}`, r.ID)}, 200)
	e.reserve(t, ev.ID, 1, tokenA)
	res := e.must(t, request{method: "POST", path: "/api/reserve", headers: visitor(tokenA), body: fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID)}, 409)
	if got := errorOf(t, res); got.Code != ticketrush.EVisitorLimit {
		t.Fatalf("code %q", got.Code)
	}
	e.reserve(t, ev.ID, 3, tokenB)
}

// testBodyLimit: a body of exactly 64 KiB is read, one byte more is 413.
func testBodyLimit(t *testing.T, e *env) {
	ev := e.createEvent(t, `{"name":"Limit","ticket_quantity":10}`)
	body := fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID)
	pad := strings.Repeat(" ", MaxBodyBytes-len(body))
	e.must(t, request{method: "POST", path: "/api/reserve", body: body + pad}, 201)
	res := e.must(t, request{method: "POST", path: "/api/reserve", body: body + pad + " "}, 413)
	if got := errorOf(t, res); got.Code != ticketrush.EBodyTooLarge {
		t.Fatalf("code %q", got.Code)
	}
	// Without a Content-Length the limit holds as well.
	c := e.httpServer(t)
	req, _ := http.NewRequestWithContext(t.Context(), "POST", c.base+"/api/reserve",
		io.MultiReader(strings.NewReader(body), strings.NewReader(pad+"  ")))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkResponse(t, req, resp.StatusCode, resp.Header, b)
	if resp.StatusCode != 413 {
		t.Fatalf("chunked body over the limit: %d %s", resp.StatusCode, b)
	}
	st, _ := e.store.Stats(context.Background(), ev.ID)
	if st.Held != 1 {
		t.Fatalf("held %d, want 1", st.Held)
	}
}

// testRushOverHTTP: many clients over real HTTP ask for far more than the
// capacity; exactly the capacity is sold and the invariant holds.
func testRushOverHTTP(t *testing.T, e *env) {
	const capacity = 100
	ev := e.createEvent(t, fmt.Sprintf(`{"name":"Rush","ticket_quantity":%d}`, capacity))
	ts := httptest.NewServer(e.srv)
	defer ts.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	var mu sync.Mutex
	var held int64
	codes := map[int]int{}
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 4 {
				amount := 1 + (g+i)%3
				req, _ := http.NewRequest("POST", ts.URL+"/api/reserve",
					strings.NewReader(fmt.Sprintf(`{"event_id":%d,"amount":%d}`, ev.ID, amount)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				checkResponse(t, req, resp.StatusCode, resp.Header, b)
				mu.Lock()
				codes[resp.StatusCode]++
				if resp.StatusCode == 201 {
					held += int64(amount)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st, err := e.store.Stats(context.Background(), ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Held != held || st.Available != capacity-held {
		t.Fatalf("acknowledged %d, stats %+v, codes %v", held, *st, codes)
	}
	// What is left (a request may not have fit the last few tickets)
	// sells one by one, and not one ticket more.
	for left := capacity - held; left > 0; left-- {
		e.reserve(t, ev.ID, 1, "")
	}
	e.must(t, request{method: "POST", path: "/api/reserve", body: fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID)}, 409)
	for code := range codes {
		if code != 201 && code != 409 {
			t.Errorf("unexpected status %d (%d times)", code, codes[code])
		}
	}
	checkInvariant(t, e)
}
