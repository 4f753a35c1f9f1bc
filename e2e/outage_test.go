package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/ticketrush/ticketrush/httpapi"
)

// Bounds the outage tests hold the service to.
const (
	// answerWithin bounds every request end to end, outage or not.
	answerWithin = 2 * time.Second
	// outageFor is how long the database stays cut off.
	outageFor = 4 * time.Second
	// recoverWithin bounds the time from the database's return to the
	// first successful reserve.
	recoverWithin = 10 * time.Second
)

// TestDatabaseOutage cuts the connection between a running "ticketrush
// serve" and its database mid-rush, through a proxy in the test. While the
// database is gone, every request that needs it is answered 503 with
// Retry-After within 2 s (no request hangs), /readyz answers 503 and
// /healthz 200; when it is back, the same process sells again within
// seconds; no acknowledged reservation is lost and the invariant holds.
//
// "sever" resets every connection and refuses new ones (a crashed or
// restarting database); "blackhole" forwards nothing and leaves new
// connections unanswered (a network partition), where only the service's
// own deadlines end a wait.
func TestDatabaseOutage(t *testing.T) {
	for _, b := range []backend{postgresBackend, redisBackend} {
		for _, strategy := range []string{"lock", "batch"} {
			for _, mode := range []string{"sever", "blackhole"} {
				t.Run(b.name+"/"+strategy+"/"+mode, func(t *testing.T) {
					db, hostport := b.newDB(t)
					p := startProxy(t, hostport)
					testOutage(t, b.via(t, db, p.Addr()), p, strategy, mode)
				})
			}
		}
	}
}

func testOutage(t *testing.T, db string, p *proxy, strategy, mode string) {
	srv := startServe(t, db, "--strategy", strategy)
	c := newClient(t, srv.URL, 128, 10*time.Second)
	ev := c.createEvent(t, "Outage "+strategy, 1_000_000)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &rush{c: c, eventID: ev.ID, mix: true, pause: 50 * time.Millisecond}
	r.start(ctx, 16, 100_000)
	ready := pollReady(ctx, c, 100*time.Millisecond)

	if !waitFor(20*time.Second, func() bool { return r.acked() >= 100 }) {
		cancel()
		r.wait()
		t.Fatalf("only %d reservations acknowledged in 20s before the outage", r.acked())
	}
	known, _ := r.snapshot()
	cutAt := time.Now()
	if mode == "sever" {
		p.sever()
	} else {
		p.blackhole()
	}
	fault("database cut mid-rush ("+mode+")", 1)
	// Besides the rush, whose clients fall into step with the outage's
	// timeouts, probes arrive at a steady pace, each kind of request in
	// turn, so that requests start at every moment of the outage and
	// queue behind each other. They stop in time to be answered before
	// the database returns.
	probes := probe(c, ev.ID, known, cutAt.Add(outageFor-answerWithin-100*time.Millisecond), 25*time.Millisecond)
	time.Sleep(time.Until(cutAt.Add(outageFor)))
	healAt := time.Now()
	p.heal()

	// Recovered: a reserve sent after the database came back succeeded.
	recovered := func() (time.Time, bool) {
		_, ops := r.snapshot()
		for _, o := range ops {
			if o.kind == "reserve" && o.status == http.StatusCreated && o.start.After(healAt) {
				return o.end, true
			}
		}
		return time.Time{}, false
	}
	waitFor(recoverWithin+time.Second, func() bool { _, ok := recovered(); return ok })
	// A little more rush after the recovery, so the checks below cover
	// reservations made on the new connections too.
	time.Sleep(300 * time.Millisecond)
	stopAt := time.Now()
	cancel()
	r.wait()
	readyOps := ready()
	probeOps := probes()
	acks, ops := r.snapshot()

	recoveredAt, ok := recovered()
	if !ok {
		t.Fatalf("no reserve succeeded within %s of the database's return", recoverWithin)
	}
	if d := recoveredAt.Sub(healAt); d > recoverWithin {
		t.Errorf("first reserve after the outage succeeded %s after the database came back, want within %s", d, recoverWithin)
	}

	// Every answer, in and out of the outage: no hang, no 5xx but 503,
	// and each 503 says when to retry and why.
	var all []op
	for _, o := range append(append(ops, readyOps...), probeOps...) {
		if o.err != nil && errors.Is(o.err, context.Canceled) && !o.end.Before(stopAt) {
			continue // the test stopped this client, not the server
		}
		all = append(all, o)
	}
	var slowest time.Duration
	var slow, down int
	downKinds := map[string]int{}
	for _, o := range all {
		slowest = max(slowest, o.took())
		if o.took() > answerWithin {
			slow++
			if slow <= 5 {
				t.Errorf("%s took %s (> %s), sent %s after the cut: status %d %q err %v",
					o.kind, o.took().Round(time.Millisecond), answerWithin, o.start.Sub(cutAt).Round(time.Millisecond), o.status, o.code, o.err)
			}
		}
		switch {
		case o.err != nil:
			t.Errorf("%s sent %s after the cut: no answer: %v", o.kind, o.start.Sub(cutAt).Round(time.Millisecond), o.err)
		case o.status >= 500 && o.status != http.StatusServiceUnavailable:
			t.Errorf("%s: status %d %q", o.kind, o.status, o.code)
		case o.status == http.StatusServiceUnavailable && (o.retryAfter == "" || (o.code != "unavailable" && o.code != "overloaded" && o.code != "outcome_unknown")):
			t.Errorf("%s: 503 with Retry-After %q and code %q", o.kind, o.retryAfter, o.code)
		}
		if o.start.After(cutAt) && o.end.Before(healAt) {
			// Entirely inside the outage: the database was needed and
			// gone, except by /healthz, which must stay up so that no
			// orchestrator restarts a process that will recover by itself.
			down++
			downKinds[o.kind]++
			want := http.StatusServiceUnavailable
			if o.kind == "healthz" {
				want = http.StatusOK
			}
			// The public event reads come from the server's snapshot of
			// the events, which is served until it is
			// httpapi.DefaultEventsMaxAge old: one taken just before the
			// cut answers 200 for that long, and only then 503.
			stale := (o.kind == "events" || o.kind == "event") && o.status == http.StatusOK &&
				o.start.Before(cutAt.Add(httpapi.DefaultEventsMaxAge))
			if o.status != want && !stale {
				t.Errorf("%s during the outage: status %d %q, want %d", o.kind, o.status, o.code, want)
			}
		}
	}
	if slow > 0 {
		t.Errorf("%d of %d requests took longer than %s", slow, len(all), answerWithin)
	}
	// The server's own view: its latency histogram has a bucket at
	// 2.048 s, and every answer must fall in it.
	over, total := serverSlow(t, c, 2.048)
	if over > 0 {
		t.Errorf("the server's histogram counts %d of %d answers slower than 2.048s", over, total)
	}
	for _, k := range probeKinds {
		if downKinds[k] < 2 {
			t.Errorf("only %d %s requests fell inside the outage: %v", downKinds[k], k, downKinds)
		}
	}

	// The same process serves and reports ready again.
	if !waitFor(10*time.Second, func() bool {
		rep, err := c.do(context.Background(), "GET", "/readyz", nil, "")
		return err == nil && rep.status == http.StatusOK
	}) {
		t.Errorf("/readyz not 200 within 10s of the database's return")
	}
	held, purchased := verifyAcks(t, c, acks)
	s := c.checkInvariant(t, ev.ID)
	if s.Held+s.Purchased < sumAcked(acks) || s.Purchased < purchased || s.Held+s.Purchased-purchased < held {
		t.Errorf("stats %+v account for fewer tickets than the %d acknowledged", s, sumAcked(acks))
	}
	t.Logf("%d requests, %d of them inside the %s outage, all 503 + Retry-After but /healthz 200 (%v); slowest answer %s, p99 %s (server: %d of %d over 2.048s); first reserve %s after the database came back; %d acknowledged reservations all found",
		len(all), down, outageFor, downKinds, slowest.Round(time.Millisecond), p99(all).Round(time.Millisecond), over, total,
		recoveredAt.Sub(healAt).Round(time.Millisecond), len(acks))
}

// probeKinds are the requests probe sends in turn; each needs the database
// but /healthz.
var probeKinds = []string{"reserve", "events", "event", "reservation", "purchase", "cancel", "stats", "readyz", "healthz"}

// probe sends one request every interval until the deadline, each from a
// goroutine of its own (so a slow answer does not delay the next), cycling
// through probeKinds. The purchase and cancel probes come from a stranger,
// which is refused with 404 when the database answers: probes change
// nothing. The returned function waits for every probe and returns them.
func probe(c *client, eventID int64, known []ack, until time.Time, interval time.Duration) func() []op {
	var (
		mu  sync.Mutex
		ops []op
		wg  sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; time.Now().Before(until) && i < 10_000; i++ {
			kind := probeKinds[i%len(probeKinds)]
			a := known[i%len(known)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				var method, path, body string
				var h http.Header
				switch kind {
				case "reserve":
					method, path, h = "POST", "/api/reserve", visitor(uuid.NewString())
					body = fmt.Sprintf(`{"event_id":%d,"amount":1}`, eventID)
				case "events":
					method, path = "GET", "/api/events"
				case "event":
					method, path = "GET", fmt.Sprintf("/api/events/%d", eventID)
				case "reservation":
					method, path, h = "GET", fmt.Sprintf("/api/reservations/%d", a.id), visitor(a.token)
				case "purchase":
					method, path, h = "POST", "/api/purchase", visitor(uuid.NewString())
					body = fmt.Sprintf(`{"reservation_id":%d}`, a.id)
				case "cancel":
					method, path, h = "DELETE", fmt.Sprintf("/api/reservations/%d", a.id), visitor(uuid.NewString())
				case "stats":
					method, path, h = "GET", fmt.Sprintf("/api/admin/events/%d/stats", eventID), admin()
				case "readyz":
					method, path = "GET", "/readyz"
				case "healthz":
					method, path = "GET", "/healthz"
				}
				start := time.Now()
				rep, err := c.do(context.Background(), method, path, h, body)
				o := op{kind: kind, start: start, end: time.Now(), status: rep.status, err: err}
				if err == nil {
					o.retryAfter = rep.header.Get("Retry-After")
					if rep.status >= 400 {
						o.code = errorCode(rep.body)
					}
				}
				mu.Lock()
				ops = append(ops, o)
				mu.Unlock()
			}()
			time.Sleep(interval)
		}
	}()
	return func() []op {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return ops
	}
}

// pollReady polls /readyz every interval until ctx ends; the returned
// function waits for the poller and returns what it saw.
func pollReady(ctx context.Context, c *client, every time.Duration) func() []op {
	var (
		mu  sync.Mutex
		ops []op
		wg  sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			start := time.Now()
			rep, err := c.do(context.Background(), "GET", "/readyz", nil, "")
			o := op{kind: "readyz", start: start, end: time.Now(), status: rep.status, err: err}
			if err == nil {
				o.retryAfter = rep.header.Get("Retry-After")
				if rep.status >= 400 {
					o.code = errorCode(rep.body)
				}
			}
			mu.Lock()
			ops = append(ops, o)
			mu.Unlock()
			sleepCtx(ctx, every)
		}
	}()
	return func() []op {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return ops
	}
}

// p99 is the 99th percentile of the requests' durations.
func p99(ops []op) time.Duration {
	if len(ops) == 0 {
		return 0
	}
	d := make([]time.Duration, len(ops))
	for i, o := range ops {
		d[i] = o.took()
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[(len(d)*99)/100]
}

// serverSlow reads the server's request latency histogram from /metrics and
// returns how many answers took longer than the bucket bound le (which must
// be one of its buckets), and how many there were.
func serverSlow(t *testing.T, c *client, le float64) (over, total int64) {
	t.Helper()
	rep := c.must(t, http.StatusOK, "GET", "/metrics", nil, "", nil)
	var fam dto.MetricFamily
	found := false
	dec := expfmt.NewDecoder(bytes.NewReader(rep.body), expfmt.NewFormat(expfmt.TypeTextPlain))
	for dec.Decode(&fam) == nil {
		if fam.GetName() == "ticketrush_http_request_duration_seconds" {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("/metrics has no ticketrush_http_request_duration_seconds")
	}
	for _, m := range fam.GetMetric() {
		h := m.GetHistogram()
		n := int64(h.GetSampleCount())
		total += n
		within := int64(-1)
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == le {
				within = int64(b.GetCumulativeCount())
			}
		}
		if within < 0 {
			t.Fatalf("histogram has no bucket le=%g", le)
		}
		over += n - within
	}
	return over, total
}
