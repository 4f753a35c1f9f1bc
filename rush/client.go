package rush

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ticketrush/ticketrush/httpapi"
)

// Endpoint names, as the report shows them.
const (
	EndpointReserve  = "reserve"  // POST /api/reserve
	EndpointPurchase = "purchase" // POST /api/purchase
	EndpointCancel   = "cancel"   // DELETE /api/reservations/{id}
	EndpointRead     = "read"     // GET /api/reservations/{id}, verification
	EndpointEvent    = "event"    // GET /api/events/{id}
	EndpointCreate   = "create"   // POST /api/admin/events
	EndpointStats    = "stats"    // GET /api/admin/events/{id}/stats
)

// endpointOrder is the order of the report's table.
var endpointOrder = []string{EndpointReserve, EndpointPurchase, EndpointCancel,
	EndpointRead, EndpointEvent, EndpointCreate, EndpointStats}

// maxBody bounds what is read of an answer; every answer of the API is far
// smaller, and a broken server must not make the simulator run out of
// memory.
const maxBody = 1 << 20

// endpoint collects the answers of one endpoint. Every field is updated
// atomically, so all visitors share it.
type endpoint struct {
	name     string
	latency  Histogram
	statuses [1000]atomic.Uint64 // [0] counts requests that got no answer
	shed     atomic.Uint64
	failed   atomic.Uint64 // 5xx answers other than shed load
}

func (e *endpoint) record(start time.Time, status int, shed bool) {
	e.latency.Record(time.Since(start))
	if status < 0 || status >= len(e.statuses) {
		status = 0
	}
	e.statuses[status].Add(1)
	if shed {
		e.shed.Add(1)
	} else if status >= 500 {
		e.failed.Add(1)
	}
}

// answer is what one request got back.
type answer struct {
	status     int // 0: no answer (err says why)
	err        error
	body       []byte
	code       string // the error code of an error answer
	retryAfter time.Duration
	shed       bool // 429 or 503 with Retry-After: the server chose not to serve it now
	url        string
	header     http.Header
}

func (a answer) String() string {
	switch {
	case a.status == 0:
		return "no answer: " + a.err.Error()
	case a.code != "":
		return fmt.Sprintf("%d %s", a.status, a.code)
	default:
		return strconv.Itoa(a.status)
	}
}

// decode reads a {"data": …} answer into v.
func (a answer) decode(v any) error {
	env := httpapi.Envelope[json.RawMessage]{}
	if err := json.Unmarshal(a.body, &env); err != nil {
		return fmt.Errorf("answer %d from %s is not JSON: %w", a.status, a.url, err)
	}
	if len(env.Data) == 0 {
		return fmt.Errorf("answer %d from %s has no data", a.status, a.url)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return fmt.Errorf("answer %d from %s: %w", a.status, a.url, err)
	}
	return nil
}

// request is one API call.
type request struct {
	ep      *endpoint
	method  string
	base    string // a --url
	path    string
	body    any
	visitor string
	idemKey string
	admin   bool
	// header holds further request headers (Admission-Pass,
	// X-Forwarded-For).
	header http.Header
}

// do sends q and reads its answer within the per-request timeout.
func (r *runner) do(ctx context.Context, q request) answer {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	a := answer{url: q.base}
	var body io.Reader
	if q.body != nil {
		b, err := json.Marshal(q.body)
		if err != nil {
			a.err = err
			return a
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, q.method, q.base+q.path, body)
	if err != nil {
		a.err = err
		return a
	}
	if q.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if q.visitor != "" {
		req.Header.Set("Visitor-Token", q.visitor)
	}
	if q.idemKey != "" {
		req.Header.Set("Idempotency-Key", q.idemKey)
	}
	if q.admin {
		req.Header.Set("Authorization", "Bearer "+r.cfg.AdminToken)
	}
	for k, v := range q.header {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := r.client.Do(req)
	if err == nil {
		a.body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
	}
	if err != nil {
		if q.ep != nil {
			q.ep.record(start, 0, false)
		}
		a.err = err
		return a
	}
	a.status = resp.StatusCode
	a.header = resp.Header
	if a.status >= 400 {
		var eb httpapi.ErrorBody
		if json.Unmarshal(a.body, &eb) == nil {
			a.code = eb.Error.Code
		}
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" && (a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable) {
		a.shed = true
		a.retryAfter = parseRetryAfter(ra, start)
	}
	if q.ep != nil {
		q.ep.record(start, a.status, a.shed)
	}
	return a
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return time.Duration(min(n, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return time.Second
}

// pick returns the next base URL, round robin: consecutive requests, even
// one visitor's reserve and purchase, go to different nodes, which is what
// shows the nodes share their state.
func (r *runner) pick() string {
	n := r.rr.Add(1) - 1
	return r.cfg.URLs[n%uint64(len(r.cfg.URLs))]
}

// fetchEvent reads an event from one node.
func (r *runner) fetchEvent(ctx context.Context, base string, id int64) (*httpapi.Event, error) {
	a := r.do(ctx, request{ep: r.eps[EndpointEvent], method: http.MethodGet, base: base,
		path: "/api/events/" + strconv.FormatInt(id, 10)})
	if a.status != http.StatusOK {
		return nil, fmt.Errorf("get event %d from %s: %s", id, base, a)
	}
	var e httpapi.Event
	if err := a.decode(&e); err != nil {
		return nil, err
	}
	if e.ID != id {
		return nil, fmt.Errorf("get event %d from %s: answered event %d", id, base, e.ID)
	}
	return &e, nil
}

// fetchStats reads an event's stats through the admin API.
func (r *runner) fetchStats(ctx context.Context, id int64) (*httpapi.Stats, error) {
	base := r.cfg.URLs[0]
	a := r.do(ctx, request{ep: r.eps[EndpointStats], method: http.MethodGet, base: base,
		path: "/api/admin/events/" + strconv.FormatInt(id, 10) + "/stats", admin: true})
	if a.status != http.StatusOK {
		return nil, fmt.Errorf("get stats of event %d from %s: %s", id, base, a)
	}
	var s httpapi.Stats
	if err := a.decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// createEvent creates the event of the rehearsal.
func (r *runner) createEvent(ctx context.Context) (*httpapi.Event, error) {
	body := map[string]any{
		"name":            "Rush rehearsal " + time.Now().UTC().Format(time.DateTime),
		"ticket_quantity": r.cfg.Create,
		"hidden":          !r.cfg.Listed,
	}
	if r.cfg.Hold > 0 {
		body["hold_seconds"] = int64(r.cfg.Hold / time.Second)
	}
	base := r.cfg.URLs[0]
	a := r.do(ctx, request{ep: r.eps[EndpointCreate], method: http.MethodPost, base: base,
		path: "/api/admin/events", body: body, admin: true})
	if a.status != http.StatusCreated {
		if a.status == http.StatusUnauthorized {
			return nil, errors.New("create event: the server refused the admin token")
		}
		return nil, fmt.Errorf("create event on %s: %s", base, a)
	}
	var e httpapi.Event
	if err := a.decode(&e); err != nil {
		return nil, err
	}
	return &e, nil
}
