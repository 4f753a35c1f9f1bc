package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Purchase outcomes of an acknowledged reservation, as its client knows it.
const (
	notBought   = iota // no purchase tried, or refused with a 4xx
	bought             // purchase answered 200
	maybeBought        // purchase sent, no definite answer
)

// ack is a reservation a client got a 201 for: it must exist afterwards,
// whatever happened to the server or the database.
type ack struct {
	id, eventID, amount int64
	token               string
	purchase            int
}

// op is one request of a rush, as its client saw it.
type op struct {
	kind       string // reserve, purchase, event, reservation
	start, end time.Time
	status     int // 0 when the server did not answer
	code       string
	retryAfter string
	err        error
}

func (o op) took() time.Duration { return o.end.Sub(o.start) }

// rush drives reserves (and some purchases and reads) from many goroutines
// over real HTTP and records every acknowledged reservation and every
// request.
type rush struct {
	c       *client
	eventID int64
	// mix adds reads of the event and of the client's own reservation
	// between reserves.
	mix bool
	// pause is how long a worker waits after a 503 before its next
	// request, as a client honouring Retry-After would (scaled down).
	pause time.Duration

	mu   sync.Mutex
	acks []ack
	ops  []op
	wg   sync.WaitGroup
}

// start runs workers until ctx ends; each stops after maxOps requests.
func (r *rush) start(ctx context.Context, workers, maxOps int) {
	for w := range workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.worker(ctx, w, maxOps)
		}()
	}
}

// wait waits for every worker to stop.
func (r *rush) wait() { r.wg.Wait() }

func (r *rush) worker(ctx context.Context, w, maxOps int) {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	var last *ack
	for n := 0; n < maxOps && ctx.Err() == nil; n++ {
		if r.mix && last != nil {
			switch n % 3 {
			case 1:
				r.send(ctx, "event", "GET", fmt.Sprintf("/api/events/%d", r.eventID), nil, "")
				continue
			case 2:
				r.send(ctx, "reservation", "GET", fmt.Sprintf("/api/reservations/%d", last.id), visitor(last.token), "")
				continue
			}
		}
		token := uuid.NewString()
		amount := 1 + rng.Int64N(4)
		h := visitor(token)
		h.Set("Idempotency-Key", fmt.Sprintf("rush-%d-%d", w, n))
		o, body := r.send(ctx, "reserve", "POST", "/api/reserve", h, fmt.Sprintf(`{"event_id":%d,"amount":%d}`, r.eventID, amount))
		if o.err != nil || o.status != http.StatusCreated {
			if o.err != nil {
				// The server is gone: do not spin.
				sleepCtx(ctx, 10*time.Millisecond)
			}
			continue
		}
		var res struct{ Data wireReservation }
		if err := json.Unmarshal(body, &res); err != nil || res.Data.ID == 0 || res.Data.Amount != amount || res.Data.UserUID != token {
			// A 201 that does not say what was reserved is a failure the
			// checks below report; keep it as an acknowledgement of
			// nothing.
			r.mu.Lock()
			r.ops[len(r.ops)-1].code = "bad_201"
			r.mu.Unlock()
			continue
		}
		a := ack{id: res.Data.ID, eventID: r.eventID, amount: amount, token: token}
		if n%4 == 3 {
			po, _ := r.send(ctx, "purchase", "POST", "/api/purchase", visitor(token), fmt.Sprintf(`{"reservation_id":%d}`, a.id))
			switch {
			case po.status == http.StatusOK:
				a.purchase = bought
			case po.status >= 400 && po.status < 500:
				a.purchase = notBought
			default:
				a.purchase = maybeBought
			}
		}
		r.mu.Lock()
		r.acks = append(r.acks, a)
		r.mu.Unlock()
		last = &a
	}
}

// send makes one request and records it.
func (r *rush) send(ctx context.Context, kind, method, path string, h http.Header, body string) (op, []byte) {
	start := time.Now()
	rep, err := r.c.do(ctx, method, path, h, body)
	o := op{kind: kind, start: start, end: time.Now(), status: rep.status, err: err}
	if err == nil {
		o.retryAfter = rep.header.Get("Retry-After")
		if rep.status >= 400 {
			o.code = errorCode(rep.body)
		}
	}
	r.mu.Lock()
	r.ops = append(r.ops, o)
	r.mu.Unlock()
	if o.status == http.StatusServiceUnavailable {
		sleepCtx(ctx, r.pause)
	}
	return o, rep.body
}

// acked returns how many reservations were acknowledged so far.
func (r *rush) acked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acks)
}

// snapshot returns copies of the acknowledgements and requests so far.
func (r *rush) snapshot() ([]ack, []op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ack(nil), r.acks...), append([]op(nil), r.ops...)
}

// waitFor polls cond every few milliseconds until it holds or within has
// passed, and reports whether it held.
func waitFor(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// verifyAcks reads back every acknowledged reservation with its visitor's
// token: it must exist, for its event, with its amount, reserved or (when
// its purchase was acknowledged) purchased. It returns the tickets the
// acknowledgements account for: at least held+purchased must cover them.
func verifyAcks(t *testing.T, c *client, acks []ack) (held, purchased int64) {
	t.Helper()
	type failure struct {
		a   ack
		msg string
	}
	var (
		mu       sync.Mutex
		failures []failure
		wg       sync.WaitGroup
		next     = make(chan ack)
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range next {
				msg := checkAck(c, a)
				totals.checked.Add(1)
				if msg != "" {
					totals.lost.Add(1)
					mu.Lock()
					failures = append(failures, failure{a, msg})
					mu.Unlock()
				}
			}
		}()
	}
	for _, a := range acks {
		next <- a
		if a.purchase == bought {
			purchased += a.amount
		} else if a.purchase == notBought {
			held += a.amount
		}
	}
	close(next)
	wg.Wait()
	for i, f := range failures {
		if i == 10 {
			t.Errorf("… and %d more", len(failures)-10)
			break
		}
		t.Errorf("acknowledged reservation %d (amount %d): %s", f.a.id, f.a.amount, f.msg)
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d acknowledged reservations lost or changed", len(failures), len(acks))
	}
	return held, purchased
}

// checkAck reads one acknowledged reservation; "" means it is as
// acknowledged.
func checkAck(c *client, a ack) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := c.do(ctx, "GET", fmt.Sprintf("/api/reservations/%d", a.id), visitor(a.token), "")
	if err != nil {
		return err.Error()
	}
	if rep.status != http.StatusOK {
		return fmt.Sprintf("status %d: %s", rep.status, short(rep.body))
	}
	var res struct{ Data wireReservation }
	if err := json.Unmarshal(rep.body, &res); err != nil {
		return err.Error()
	}
	d := res.Data
	ok := d.ID == a.id && d.EventID == a.eventID && d.Amount == a.amount && d.UserUID == a.token
	switch a.purchase {
	case notBought:
		ok = ok && d.Status == "reserved"
	case bought:
		ok = ok && d.Status == "purchased"
	default:
		ok = ok && (d.Status == "reserved" || d.Status == "purchased")
	}
	if !ok {
		return fmt.Sprintf("read back as %+v", d)
	}
	return ""
}

// sumAcked is the tickets acknowledged reservations hold or bought.
func sumAcked(acks []ack) int64 {
	var n int64
	for _, a := range acks {
		n += a.amount
	}
	return n
}
