// Package rush rehearses a ticket on-sale against running ticketrush
// servers and proves nothing was oversold.
//
// Each simulated visitor, with a visitor token of its own, reserves a random
// amount, then purchases, cancels or abandons the hold. A fixed number of
// visitors is in flight at any time (a closed loop), and requests go round
// robin over every server given, so one visitor's reserve, purchase and
// read-back usually reach different nodes. Afterwards Run reads every
// acknowledged reservation back, compares what the visitors were told with
// the server's own counts and with the stock every node reports, and returns
// a Report whose Checks say PASS or FAIL.
//
// A load tool counts requests; this one knows what a reservation is.
package rush

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/httpapi"
)

// Config describes a rehearsal. URLs and Visitors are required, and either
// EventID or Create.
type Config struct {
	// URLs are the base URLs of the servers (nodes) to spread requests
	// over, e.g. http://127.0.0.1:8080.
	URLs []string
	// EventID is the event to sell; 0 means create one with Create tickets
	// (which needs AdminToken).
	EventID int64
	Create  int64
	// Listed makes a created event appear in the public listing (and on
	// the buyer page); by default a rehearsal's event is hidden, so that
	// rehearsals never clutter the sale.
	Listed bool
	// Hold is the hold time of a created event; 0 means the server's
	// default.
	Hold time.Duration
	// Visitors is how many visitors come; Concurrency how many are in
	// flight at once (default 64).
	Visitors    int
	Concurrency int
	// Amounts are the ticket counts a visitor picks from, uniformly
	// (default 1, 2, 4).
	Amounts []int64
	// Purchase and Cancel are the probabilities that a visitor holding
	// tickets buys them or cancels the hold; otherwise it abandons the hold,
	// which expires.
	Purchase float64
	Cancel   float64
	// AdminToken reads the event's stats (and creates it). Without it the
	// checks that need the server's counts are skipped and the report says
	// verification was partial.
	AdminToken string
	// Timeout bounds each request (default 10 s).
	Timeout time.Duration
	// Retries is how many times a visitor repeats a step the server shed
	// (429 or 503 with Retry-After) or failed, after waiting as told; a
	// reserve is repeated with the same Idempotency-Key, so a repeat never
	// takes tickets twice. Negative means none; default 2.
	Retries int
	// MaxRetryWait caps the wait before a repeat (default 2 s).
	MaxRetryWait time.Duration
	// Seed makes the visitors' choices (amounts, purchase or cancel)
	// reproducible with Concurrency 1; 0 picks one. Tokens and keys are
	// always fresh, so two rehearsals never share a visitor.
	Seed uint64
	// Client sends the requests; nil means a client with enough idle
	// connections for Concurrency.
	Client *http.Client
	// Progress, when set, receives live progress: a bar redrawn in place
	// when Terminal is set, a plain line every ProgressEvery (default 2 s)
	// otherwise.
	Progress      io.Writer
	Terminal      bool
	ProgressEvery time.Duration
}

// DefaultAmounts are the ticket counts visitors pick from by default.
var DefaultAmounts = []int64{1, 2, 4}

func (c *Config) setDefaults() error {
	if len(c.URLs) == 0 {
		return errors.New("no server url")
	}
	urls := make([]string, len(c.URLs))
	for i, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("url %q: want http://host:port", raw)
		}
		urls[i] = strings.TrimRight(raw, "/")
	}
	c.URLs = urls
	switch {
	case c.EventID < 0:
		return fmt.Errorf("event id %d: must be positive", c.EventID)
	case c.EventID == 0 && c.Create <= 0:
		return errors.New("name an event, or a number of tickets for a new one")
	case c.EventID != 0 && c.Create != 0:
		return errors.New("name an event or create one, not both")
	case c.Create > ticketrush.MaxTicketQuantity:
		return fmt.Errorf("create %d: at most %d tickets", c.Create, ticketrush.MaxTicketQuantity)
	case c.Create > 0 && c.AdminToken == "":
		return errors.New("creating an event needs the admin token")
	case c.Hold != 0 && (c.Hold < time.Second || c.Hold > ticketrush.MaxHoldSeconds*time.Second):
		return fmt.Errorf("hold %s: want 1s to 24h", c.Hold)
	case c.Visitors <= 0:
		return errors.New("visitors must be positive")
	case c.Concurrency < 0:
		return errors.New("concurrency must be positive")
	case c.Purchase < 0 || c.Cancel < 0 || c.Purchase+c.Cancel > 1:
		return fmt.Errorf("purchase %g and cancel %g: want probabilities that add up to at most 1", c.Purchase, c.Cancel)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if len(c.Amounts) == 0 {
		c.Amounts = DefaultAmounts
	}
	for _, a := range c.Amounts {
		if a < 1 || a > ticketrush.MaxAmount {
			return fmt.Errorf("amount %d: want 1 to %d", a, ticketrush.MaxAmount)
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	c.Retries = max(c.Retries, 0)
	if c.MaxRetryWait <= 0 {
		c.MaxRetryWait = 2 * time.Second
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 2 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64() | 1
	}
	return nil
}

// What a visitor ends up with after its reserve.
type reserveOutcome uint8

const (
	notRun     reserveOutcome = iota // the rush was interrupted first
	reserved                         // 201: tickets acknowledged
	soldOut                          // 409 not_enough_tickets
	refused                          // 409 visitor_limit_exceeded or sale_not_started
	shedAway                         // shed every time: certainly not reserved
	inDoubt                          // no definite answer: maybe reserved
	unexpected                       // an answer the API does not give here
)

// What a visitor meant to do with its hold.
type intent uint8

const (
	abandon intent = iota
	buy
	cancel
)

// How the purchase or cancel went.
type stepResult uint8

const (
	stepNone       stepResult = iota // abandoned: nothing sent
	stepDone                         // 200, confirmed
	stepExpired                      // 410: the hold had expired
	stepShed                         // shed every time: certainly not done
	stepInDoubt                      // no definite answer: maybe done
	stepUnexpected                   // an answer the API does not give here
)

// visit is one visitor's story; each visitor writes only its own.
type visit struct {
	token   uuid.UUID
	amount  int64
	id      int64 // the reservation, when reserved
	outcome reserveOutcome
	intent  intent
	result  stepResult
	final   string // the status read back, "" when unread
}

// runner is one rehearsal in progress.
type runner struct {
	cfg    Config
	client *http.Client
	rr     atomic.Uint64
	eps    map[string]*endpoint
	event  *httpapi.Event
	visits []visit

	// Live counts for progress.
	done     atomic.Int64
	acked    atomic.Int64 // tickets
	soldOut  atomic.Int64 // visitors
	failures atomic.Int64 // 5xx other than shed, and requests without answer

	mu          sync.Mutex
	unexpected  int
	surprises   []string // the first few unexpected answers, for the report
	unreadable  int
	mismatches  []string
	interrupted bool
}

// maxSamples bounds the examples a check lists.
const maxSamples = 5

func (r *runner) surprise(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unexpected++
	if len(r.surprises) < maxSamples {
		r.surprises = append(r.surprises, fmt.Sprintf(format, args...))
	}
}

// Run rehearses an on-sale as cfg says and verifies the outcome. It returns
// an error only when the rehearsal cannot run (bad configuration, event
// unreadable, admin token refused); a violated invariant is a failed Check
// in the report (Report.OK is false).
//
// When ctx ends, no more visitors start; those in flight finish their
// steps, and the report covers what ran.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, client: cfg.Client, eps: map[string]*endpoint{}}
	if r.client == nil {
		r.client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConns:        cfg.Concurrency * (len(cfg.URLs) + 1),
			MaxIdleConnsPerHost: cfg.Concurrency + 1,
			IdleConnTimeout:     90 * time.Second,
		}}
		defer r.client.CloseIdleConnections()
	}
	for _, name := range endpointOrder {
		r.eps[name] = &endpoint{name: name}
	}

	// Setup talks to the servers under ctx: an interrupt here stops it.
	var before *httpapi.Stats
	var err error
	if cfg.EventID == 0 {
		r.event, err = r.createEvent(ctx)
	} else {
		r.event, err = r.fetchEvent(ctx, cfg.URLs[0], cfg.EventID)
	}
	if err != nil {
		return nil, err
	}
	if cfg.AdminToken != "" {
		if before, err = r.fetchStats(ctx, r.event.ID); err != nil {
			return nil, err
		}
	}

	// Visitors in flight finish even when ctx ends, so that what they were
	// told can still be checked.
	work := context.WithoutCancel(ctx)
	n := cfg.Visitors
	r.visits = make([]visit, n)
	stopProgress := r.startProgress()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range min(cfg.Concurrency, n) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(w)))
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				r.visit(work, &r.visits[i], rng)
				r.done.Add(1)
			}
		})
	}
	wg.Wait()
	rushTime := time.Since(start)
	stopProgress()
	r.interrupted = ctx.Err() != nil

	start = time.Now()
	r.readBack(work)
	readTime := time.Since(start)

	return r.verify(work, before, rushTime, readTime), nil
}

// visit runs one visitor: reserve, then purchase, cancel or abandon.
func (r *runner) visit(ctx context.Context, v *visit, rng *rand.Rand) {
	v.token = uuid.New()
	v.amount = r.cfg.Amounts[rng.IntN(len(r.cfg.Amounts))]
	switch p := rng.Float64(); {
	case p < r.cfg.Purchase:
		v.intent = buy
	case p < r.cfg.Purchase+r.cfg.Cancel:
		v.intent = cancel
	}
	r.reserve(ctx, v, uuid.NewString())
	if v.outcome != reserved {
		return
	}
	switch v.intent {
	case buy:
		r.purchase(ctx, v)
	case cancel:
		r.cancel(ctx, v)
	}
}

// failed reports whether a answers nothing definite: no answer, a 5xx, or
// shed load. maybeDone says whether the server may nonetheless have done it:
// only a connection that could not be opened, 429 rate_limited and 503
// overloaded certainly mean not done.
func failed(a answer) (isFailed, maybeDone bool) {
	switch {
	case a.status == 0:
		var op *net.OpError
		return true, !(errors.As(a.err, &op) && op.Op == "dial")
	case a.status == http.StatusTooManyRequests && a.shed:
		return true, false
	case a.status == http.StatusServiceUnavailable && a.shed:
		return true, a.code != ticketrush.EOverloaded && a.code != ticketrush.ERateLimited
	case a.status >= 500:
		return true, true
	}
	return false, false
}

// countFailure counts an answer that is neither definite nor shed load.
func (r *runner) countFailure(a answer) {
	if a.status == 0 || (a.status >= 500 && !a.shed) {
		r.failures.Add(1)
	}
}

// again waits before repeating a failed step and reports whether to repeat.
func (r *runner) again(ctx context.Context, a answer, attempt int) bool {
	if attempt >= r.cfg.Retries {
		return false
	}
	wait := a.retryAfter
	if !a.shed {
		wait = 50 * time.Millisecond << attempt
	}
	t := time.NewTimer(min(wait, r.cfg.MaxRetryWait))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *runner) reserve(ctx context.Context, v *visit, key string) {
	token := v.token.String()
	body := map[string]int64{"event_id": r.event.ID, "amount": v.amount}
	maybe := false
	for attempt := 0; ; attempt++ {
		a := r.do(ctx, request{ep: r.eps[EndpointReserve], method: http.MethodPost, base: r.pick(),
			path: "/api/reserve", body: body, visitor: token, idemKey: key})
		switch {
		case a.status == http.StatusCreated:
			var res httpapi.Reservation
			if err := a.decode(&res); err != nil {
				v.outcome = inDoubt
				r.surprise("reserve: %v", err)
				return
			}
			if res.ID <= 0 || res.EventID != r.event.ID || res.Amount != v.amount ||
				res.UserUID != token || res.Status != ticketrush.StatusReserved {
				v.outcome = inDoubt
				r.surprise("reserve on %s: answered reservation %d of event %d, %d tickets, status %q, visitor %q for a reserve of %d on event %d",
					a.url, res.ID, res.EventID, res.Amount, res.Status, res.UserUID, v.amount, r.event.ID)
				return
			}
			v.id, v.outcome = res.ID, reserved
			r.acked.Add(v.amount)
			return
		case a.status == http.StatusConflict && a.code == ticketrush.ENotEnoughTickets:
			v.outcome = soldOut
			if maybe {
				// An earlier attempt got no definite answer; had it
				// reserved, this one would have answered it again under
				// the same key, unless it was still running then.
				v.outcome = inDoubt
			}
			r.soldOut.Add(1)
			return
		case a.status == http.StatusConflict && (a.code == ticketrush.EVisitorLimit || a.code == ticketrush.ESaleNotStarted):
			v.outcome = refused
			return
		}
		if bad, m := failed(a); bad {
			r.countFailure(a)
			maybe = maybe || m
			if r.again(ctx, a, attempt) {
				continue
			}
			v.outcome = shedAway
			if maybe {
				v.outcome = inDoubt
			}
			return
		}
		v.outcome = unexpected
		if maybe {
			v.outcome = inDoubt
		}
		r.surprise("reserve on %s: %s", a.url, a)
		return
	}
}

func (r *runner) purchase(ctx context.Context, v *visit) {
	r.step(ctx, v, request{ep: r.eps[EndpointPurchase], method: http.MethodPost,
		path: "/api/purchase", body: map[string]int64{"reservation_id": v.id}},
		ticketrush.StatusPurchased, ticketrush.EAlreadyPurchased)
}

func (r *runner) cancel(ctx context.Context, v *visit) {
	r.step(ctx, v, request{ep: r.eps[EndpointCancel], method: http.MethodDelete,
		path: "/api/reservations/" + strconv.FormatInt(v.id, 10)},
		ticketrush.StatusCancelled, "")
}

// step purchases or cancels v's hold. After an attempt without a definite
// answer, a repeat may find the first one done: then repeatCode (a
// purchase's reservation_already_purchased) confirms it.
func (r *runner) step(ctx context.Context, v *visit, q request, want, repeatCode string) {
	q.visitor = v.token.String()
	maybe := false
	for attempt := 0; ; attempt++ {
		q.base = r.pick()
		a := r.do(ctx, q)
		switch {
		case a.status == http.StatusOK:
			var res httpapi.Reservation
			if err := a.decode(&res); err != nil || res.ID != v.id || res.Status != want {
				v.result = stepUnexpected
				r.surprise("%s of reservation %d on %s: answered %d %q, want status %q (%v)", q.ep.name, v.id, a.url, res.ID, res.Status, want, err)
				return
			}
			v.result = stepDone
			return
		case a.status == http.StatusGone && a.code == ticketrush.EExpired:
			v.result = stepExpired
			return
		case maybe && repeatCode != "" && a.status == http.StatusConflict && a.code == repeatCode:
			v.result = stepDone
			return
		}
		if bad, m := failed(a); bad {
			r.countFailure(a)
			maybe = maybe || m
			if r.again(ctx, a, attempt) {
				continue
			}
			v.result = stepShed
			if maybe {
				v.result = stepInDoubt
			}
			return
		}
		v.result = stepUnexpected
		r.surprise("%s of reservation %d on %s: %s", q.ep.name, v.id, a.url, a)
		return
	}
}

// expected returns the statuses v's reservation may have now, given what
// its visitor was told.
func (v *visit) expected() []string {
	const (
		res = ticketrush.StatusReserved
		pur = ticketrush.StatusPurchased
		can = ticketrush.StatusCancelled
		exp = ticketrush.StatusExpired
	)
	switch v.result {
	case stepDone:
		if v.intent == buy {
			return []string{pur}
		}
		return []string{can}
	case stepExpired:
		return []string{exp}
	case stepInDoubt:
		if v.intent == buy {
			return []string{pur, res, exp}
		}
		return []string{can, res, exp}
	case stepUnexpected:
		return []string{res, pur, can, exp}
	}
	// Abandoned, or the step was shed every time: still held until it
	// expires.
	return []string{res, exp}
}

// readBack reads every acknowledged reservation as its visitor, from the
// nodes in turn, and checks its status against what the visitor was told.
func (r *runner) readBack(ctx context.Context) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.cfg.Concurrency, len(r.visits)) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(r.visits)) {
					return
				}
				if v := &r.visits[i]; v.outcome == reserved {
					r.readOne(ctx, v)
				}
			}
		})
	}
	wg.Wait()
}

func (r *runner) readOne(ctx context.Context, v *visit) {
	q := request{ep: r.eps[EndpointRead], method: http.MethodGet,
		path: "/api/reservations/" + strconv.FormatInt(v.id, 10), visitor: v.token.String()}
	for attempt := 0; ; attempt++ {
		q.base = r.pick()
		a := r.do(ctx, q)
		if bad, _ := failed(a); bad {
			r.countFailure(a)
			if r.again(ctx, a, attempt) {
				continue
			}
		}
		if a.status != http.StatusOK {
			r.mismatch("reservation %d of visitor %s on %s: %s", v.id, q.visitor, a.url, a)
			return
		}
		var res httpapi.Reservation
		if err := a.decode(&res); err != nil {
			r.mismatch("reservation %d on %s: %v", v.id, a.url, err)
			return
		}
		v.final = res.Status
		want := v.expected()
		ok := res.ID == v.id && res.EventID == r.event.ID && res.Amount == v.amount && res.UserUID == q.visitor
		found := false
		for _, s := range want {
			found = found || s == res.Status
		}
		if !ok || !found {
			r.mismatch("reservation %d on %s: read %d tickets of event %d, status %q, visitor %q; want %d tickets of event %d, status %s",
				v.id, a.url, res.Amount, res.EventID, res.Status, res.UserUID, v.amount, r.event.ID, strings.Join(want, " or "))
		}
		return
	}
}

func (r *runner) mismatch(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreadable++
	if len(r.mismatches) < maxSamples {
		r.mismatches = append(r.mismatches, fmt.Sprintf(format, args...))
	}
}
