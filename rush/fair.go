package rush

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/ticketrush/ticketrush"
)

// A fairness rehearsal pits people against scripts for one event's tickets,
// twice in one run: through a waiting room, and on an event without one. The
// humans arrive over a window, some before the sale starts, join once, poll
// as Retry-After says and reserve a few tickets when let in. Each bot loops
// with fresh visitor tokens as fast as it can: it solves challenges as fast
// as Go can, polls fifty times a second and takes as many tickets as one
// order may. The report says who got the tickets.

// FairConfig describes a fairness rehearsal. URLs and AdminToken are
// required: the rehearsal creates its own (hidden) events.
type FairConfig struct {
	URLs       []string
	AdminToken string
	// Humans and Bots are how many of each come (defaults 2,000 and 20);
	// Tickets is each event's stock (default 400).
	Humans  int
	Bots    int
	Tickets int64
	// HumanAmount is what a human reserves (default 2); bots take the
	// event's max_per_order.
	HumanAmount int64
	// Window is the time over which humans arrive, from the start of each
	// phase (default 20 s); SaleAfter is when the sale starts (default 5 s):
	// humans arriving before join the pre-queue.
	Window    time.Duration
	SaleAfter time.Duration
	// The waiting room's settings: AdmitPerMinute (default 600),
	// PassSeconds (default 60), ChallengeBits (default 8), MaxActive
	// (default 0, no cap).
	AdmitPerMinute int64
	PassSeconds    int64
	ChallengeBits  int64
	MaxActive      int64
	// HumanPoll is the poll interval a human uses when the server names
	// none; a human never polls faster than the server's Retry-After says
	// (default 3 s). BotPoll is the bots' interval (default 20 ms, 50 Hz).
	HumanPoll time.Duration
	BotPoll   time.Duration
	// PhaseTimeout bounds each phase (default 3 minutes).
	PhaseTimeout time.Duration
	// SkipNoRoom leaves out the comparison phase without a waiting room.
	SkipNoRoom bool
	// Timeout bounds each request (default 10 s).
	Timeout time.Duration
	Seed    uint64
	Client  *http.Client
}

func (c *FairConfig) setDefaults() error {
	if len(c.URLs) == 0 {
		return errors.New("no server url")
	}
	for i, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("url %q: want http://host:port", raw)
		}
		c.URLs[i] = strings.TrimRight(raw, "/")
	}
	if c.AdminToken == "" {
		return errors.New("a fairness rehearsal creates its events: it needs the admin token")
	}
	def := func(p *int64, v int64) {
		if *p == 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Humans == 0 {
		c.Humans = 2000
	}
	if c.Bots == 0 {
		c.Bots = 20
	}
	def(&c.Tickets, 400)
	def(&c.HumanAmount, 2)
	def(&c.AdmitPerMinute, 600)
	def(&c.PassSeconds, 60)
	def(&c.ChallengeBits, 8)
	defd(&c.Window, 20*time.Second)
	defd(&c.SaleAfter, 5*time.Second)
	defd(&c.HumanPoll, 3*time.Second)
	defd(&c.BotPoll, 20*time.Millisecond)
	defd(&c.PhaseTimeout, 3*time.Minute)
	defd(&c.Timeout, 10*time.Second)
	switch {
	case c.Humans < 0 || c.Bots < 0 || c.Humans+c.Bots == 0:
		return errors.New("humans and bots: want at least one visitor")
	case c.Tickets < 1 || c.Tickets > ticketrush.MaxTicketQuantity:
		return fmt.Errorf("tickets %d: want 1 to %d", c.Tickets, ticketrush.MaxTicketQuantity)
	case c.HumanAmount < 1 || c.HumanAmount > ticketrush.DefaultMaxPerOrder:
		return fmt.Errorf("human amount %d: want 1 to %d", c.HumanAmount, ticketrush.DefaultMaxPerOrder)
	case c.ChallengeBits < 0 || c.ChallengeBits > ticketrush.MaxChallengeBits:
		return fmt.Errorf("challenge bits %d: want 0 to %d", c.ChallengeBits, ticketrush.MaxChallengeBits)
	case c.AdmitPerMinute < 1 || c.AdmitPerMinute > ticketrush.MaxAdmitPerMinute:
		return fmt.Errorf("admit per minute %d: want 1 to %d", c.AdmitPerMinute, ticketrush.MaxAdmitPerMinute)
	case c.SaleAfter < 0 || c.SaleAfter > c.Window:
		return fmt.Errorf("sale after %s: want 0 to the arrival window (%s)", c.SaleAfter, c.Window)
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64() | 1
	}
	return nil
}

// Groups of visitors.
const (
	GroupHumans = "humans"
	GroupBots   = "bots"
)

// entry is one join of the queue (or, without a room, one attempt to buy)
// as its visitor saw it.
type entry struct {
	group    string
	joinedAt time.Time // when the join was sent
	prequeue bool      // answered prequeue
	position int64
	// admittedAt is the server's admission time, read from the pass's
	// expiry less the pass time; zero when never admitted.
	admittedAt time.Time
	won        bool // reserved and purchased
	tickets    int64
}

// fair is one fairness phase in progress.
type fair struct {
	r     *runner
	cfg   *FairConfig
	room  bool
	event fairEvent
	start time.Time
	sale  time.Time
	// done is closed when the phase ends: the event is sold out for good,
	// or the phase timed out.
	done     chan struct{}
	doneOnce sync.Once

	mu      sync.Mutex
	entries []*entry
	errs    map[string]int // unexpected answers by endpoint and status
	samples []string
	solves  atomic.Int64
	polls   atomic.Int64
}

// fairEvent is what the rehearsal reads of its event.
type fairEvent struct {
	ID          int64 `json:"id"`
	MaxPerOrder int64 `json:"max_per_order"`
	Capacity    int64 `json:"capacity"`
}

// queueView is the answer of a join or a poll.
type queueView struct {
	EventID       int64      `json:"event_id"`
	State         string     `json:"state"`
	Position      *int64     `json:"position"`
	Ahead         *int64     `json:"ahead"`
	Wait          *int64     `json:"estimated_wait_seconds"`
	Pass          *string    `json:"pass"`
	PassExpiresAt *time.Time `json:"pass_expires_at"`
}

type challenge struct {
	Challenge string    `json:"challenge"`
	Bits      int       `json:"bits"`
	ExpiresAt time.Time `json:"expires_at"`
}

type reservationID struct {
	ID int64 `json:"id"`
}

// FairReport is the outcome of a fairness rehearsal. It encodes as JSON.
type FairReport struct {
	URLs   []string    `json:"urls"`
	Seed   uint64      `json:"seed"`
	Humans int         `json:"humans"`
	Bots   int         `json:"bots"`
	Room   *FairPhase  `json:"waiting_room"`
	NoRoom *FairPhase  `json:"no_waiting_room,omitempty"`
	Checks []Check     `json:"checks"`
	OK     bool        `json:"ok"`
	Config FairSummary `json:"config"`
}

// FairSummary restates the settings the report was made with.
type FairSummary struct {
	Tickets        int64   `json:"tickets"`
	HumanAmount    int64   `json:"human_amount"`
	AdmitPerMinute int64   `json:"admit_per_minute"`
	PassSeconds    int64   `json:"pass_seconds"`
	ChallengeBits  int64   `json:"challenge_bits"`
	MaxActive      int64   `json:"max_active"`
	WindowSeconds  float64 `json:"arrival_window_seconds"`
	SaleAfter      float64 `json:"sale_after_seconds"`
	HumanPollMs    float64 `json:"human_poll_ms"`
	BotPollMs      float64 `json:"bot_poll_ms"`
}

// FairPhase sums up one phase.
type FairPhase struct {
	EventID int64                 `json:"event_id"`
	Seconds float64               `json:"duration_seconds"`
	Groups  map[string]*GroupStat `json:"groups"`
	// BotAdmissionShare and BotOrderShare are the bots' shares of all
	// admissions and of all orders won (0…1).
	BotAdmissionShare float64 `json:"bot_admission_share"`
	BotOrderShare     float64 `json:"bot_order_share"`
	BotTicketShare    float64 `json:"bot_ticket_share"`
	// PrequeueGroupP is the two-sided p-value of a Mann-Whitney U test that
	// bots' and humans' pre-queue positions come from one distribution;
	// PrequeueTimeP that of a Spearman test that pre-queue position does not
	// depend on join time. -1 when there were too few entries to test.
	PrequeueGroupP float64 `json:"prequeue_group_p"`
	PrequeueTimeP  float64 `json:"prequeue_time_p"`
	PrequeueRho    float64 `json:"prequeue_time_rho"`
	// Inversions counts pairs admitted out of position order (a lower
	// position admitted later, by the server's stamps).
	Inversions int `json:"admission_inversions"`
	// MaxPerMinute is the most admissions in any 60 s window of the
	// server's stamps.
	MaxPerMinute int `json:"max_admissions_per_minute"`
	// Stats are the server's counts after the phase.
	Capacity   int64          `json:"capacity"`
	Available  int64          `json:"available"`
	Held       int64          `json:"held"`
	Purchased  int64          `json:"purchased"`
	Unexpected map[string]int `json:"unexpected_answers,omitempty"`
	Samples    []string       `json:"unexpected_samples,omitempty"`
	Solves     int64          `json:"challenges_solved"`
	Polls      int64          `json:"polls"`
}

// GroupStat counts one group's outcome.
type GroupStat struct {
	Visitors int   `json:"visitors"`
	Entries  int   `json:"entries"` // joins (or buy attempts without a room)
	Admitted int   `json:"admitted"`
	Orders   int   `json:"orders_won"`
	Tickets  int64 `json:"tickets"`
}

// RunFair runs a fairness rehearsal: a phase through a waiting room, then
// (unless SkipNoRoom) the same crowd on an event without one.
func RunFair(ctx context.Context, cfg FairConfig) (*FairReport, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	r := &runner{cfg: Config{URLs: cfg.URLs, AdminToken: cfg.AdminToken, Timeout: cfg.Timeout}, client: cfg.Client,
		eps: map[string]*endpoint{}}
	if r.client == nil {
		r.client = &http.Client{Transport: &http.Transport{
			MaxIdleConns:        (cfg.Humans + cfg.Bots + 16) * len(cfg.URLs),
			MaxIdleConnsPerHost: cfg.Humans + cfg.Bots + 16,
			IdleConnTimeout:     90 * time.Second,
		}}
		defer r.client.CloseIdleConnections()
	}
	for _, name := range endpointOrder {
		r.eps[name] = &endpoint{name: name}
	}
	rep := &FairReport{URLs: cfg.URLs, Seed: cfg.Seed, Humans: cfg.Humans, Bots: cfg.Bots, Config: FairSummary{
		Tickets: cfg.Tickets, HumanAmount: cfg.HumanAmount, AdmitPerMinute: cfg.AdmitPerMinute,
		PassSeconds: cfg.PassSeconds, ChallengeBits: cfg.ChallengeBits, MaxActive: cfg.MaxActive,
		WindowSeconds: cfg.Window.Seconds(), SaleAfter: cfg.SaleAfter.Seconds(),
		HumanPollMs: ms(cfg.HumanPoll), BotPollMs: ms(cfg.BotPoll),
	}}
	var err error
	if rep.Room, err = runPhase(ctx, r, &cfg, true); err != nil {
		return nil, err
	}
	if !cfg.SkipNoRoom && ctx.Err() == nil {
		if rep.NoRoom, err = runPhase(ctx, r, &cfg, false); err != nil {
			return nil, err
		}
	}
	rep.check(&cfg)
	return rep, nil
}

func runPhase(ctx context.Context, r *runner, cfg *FairConfig, room bool) (*FairPhase, error) {
	f := &fair{r: r, cfg: cfg, room: room, done: make(chan struct{}), errs: map[string]int{}}
	f.start = time.Now()
	f.sale = f.start.Add(cfg.SaleAfter)
	if err := f.createEvent(ctx); err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.PhaseTimeout)
	defer cancel()
	go func() {
		<-pctx.Done()
		f.finish()
	}()
	var wg sync.WaitGroup
	for i := range cfg.Bots {
		wg.Go(func() { f.bot(pctx, i) })
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	var humans sync.WaitGroup
	for i := range cfg.Humans {
		arrive := f.start.Add(time.Duration(rng.Int64N(int64(cfg.Window) + 1)))
		humans.Go(func() { f.human(pctx, i, arrive) })
	}
	// The phase ends when every human is done: the bots go on until then
	// (or until sold out for good), which is when a real sale would end
	// for the people.
	humans.Wait()
	f.finish()
	wg.Wait()
	seconds := time.Since(f.start).Seconds()
	st, err := r.fetchStats(context.WithoutCancel(ctx), f.event.ID)
	if err != nil {
		return nil, err
	}
	p := f.summary(seconds)
	p.Capacity, p.Available, p.Held, p.Purchased = st.Capacity, st.Available, st.Held, st.Purchased
	return p, nil
}

func (f *fair) finish() { f.doneOnce.Do(func() { close(f.done) }) }

func (f *fair) over() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// createEvent creates the phase's hidden event.
func (f *fair) createEvent(ctx context.Context) error {
	name := "Fairness rehearsal, without a waiting room"
	body := map[string]any{
		"ticket_quantity": f.cfg.Tickets,
		"sale_starts_at":  f.sale.UTC().Format(time.RFC3339Nano),
		"hidden":          true,
	}
	if f.room {
		name = "Fairness rehearsal, waiting room"
		body["waiting_room"] = map[string]any{
			"admit_per_minute":  f.cfg.AdmitPerMinute,
			"max_active":        f.cfg.MaxActive,
			"pass_seconds":      f.cfg.PassSeconds,
			"prequeue_opens_at": f.start.Add(-time.Second).UTC().Format(time.RFC3339Nano),
			"challenge_bits":    f.cfg.ChallengeBits,
		}
	}
	body["name"] = name
	base := f.cfg.URLs[0]
	a := f.r.do(ctx, request{ep: f.r.eps[EndpointCreate], method: http.MethodPost, base: base,
		path: "/api/admin/events", body: body, admin: true})
	if a.status != http.StatusCreated {
		return fmt.Errorf("create the rehearsal's event on %s: %s", base, a)
	}
	if err := a.decode(&f.event); err != nil {
		return err
	}
	if f.event.MaxPerOrder < 1 {
		return fmt.Errorf("create the rehearsal's event on %s: the answer has no max_per_order", base)
	}
	return nil
}

// ip gives each simulated client an address of its own for
// X-Forwarded-For, so a server that trusts the rehearsal as a proxy counts
// its per-IP limits per simulated client, as it would in production. Bots
// keep one address each however many tokens they use.
func ip(group string, i int) string {
	if group == GroupBots {
		return fmt.Sprintf("198.18.%d.%d", 200+i/250, 1+i%250)
	}
	return fmt.Sprintf("198.18.%d.%d", i/250, 1+i%250)
}

func (f *fair) unexpected(what string, a answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := what + " " + a.String()
	f.errs[key]++
	if len(f.samples) < maxSamples {
		f.samples = append(f.samples, key+": "+truncate(string(a.body), 160))
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (f *fair) record(e *entry) {
	f.mu.Lock()
	f.entries = append(f.entries, e)
	f.mu.Unlock()
}

// sleep waits d or until ctx ends; it reports whether the wait was whole.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// human is one person: arrives, joins once (solving the challenge), polls
// as told, reserves and buys when let in. Without a room, clicks "buy" at
// arrival or, if early, a moment after the sale opens.
func (f *fair) human(ctx context.Context, i int, arrive time.Time) {
	if !sleep(ctx, time.Until(arrive)) {
		return
	}
	addr := ip(GroupHumans, i)
	token := uuid.NewString()
	e := &entry{group: GroupHumans, joinedAt: time.Now()}
	f.record(e)
	if !f.room {
		if wait := time.Until(f.sale); wait > 0 {
			// A person who waits for the opening clicks within a second
			// or so of it, not at the microsecond.
			jitter := time.Duration(rand.Int64N(int64(1500 * time.Millisecond)))
			if !sleep(ctx, wait+jitter) {
				return
			}
		}
		for try := 0; try < 3 && ctx.Err() == nil; try++ {
			switch f.reserveAndBuy(ctx, e, token, addr, "", f.cfg.HumanAmount) {
			case buyDone, buyGone:
				return
			}
			sleep(ctx, time.Second)
		}
		return
	}
	view, ok := f.join(ctx, e, token, addr)
	if !ok {
		return
	}
	for ctx.Err() == nil {
		switch view.State {
		case ticketrush.QueueAdmitted:
			f.admitted(e, view)
			f.reserveAndBuy(ctx, e, token, addr, *view.Pass, f.cfg.HumanAmount)
			return
		case ticketrush.QueueSoldOut, ticketrush.QueueExpired:
			return
		}
		wait := f.cfg.HumanPoll
		if view.retryAfter > 0 {
			wait = view.retryAfter
		}
		if !sleep(ctx, wait) {
			return
		}
		if view, ok = f.poll(ctx, e, token, addr); !ok {
			return
		}
	}
}

// bot is one script: fresh tokens, as fast as it can, until the phase ends.
func (f *fair) bot(ctx context.Context, i int) {
	addr := ip(GroupBots, i)
	for ctx.Err() == nil && !f.over() {
		token := uuid.NewString()
		e := &entry{group: GroupBots, joinedAt: time.Now()}
		if !f.room {
			if wait := time.Until(f.sale); wait > 0 {
				// A script fires at the opening, to the millisecond.
				if !sleep(ctx, wait) {
					return
				}
				e.joinedAt = time.Now()
			}
			f.record(e)
			if f.reserveAndBuy(ctx, e, token, addr, "", f.event.MaxPerOrder) == buyGone {
				// Sold out for now; holds may come back.
				sleep(ctx, f.cfg.BotPoll)
			}
			continue
		}
		f.record(e)
		view, ok := f.join(ctx, e, token, addr)
		if !ok {
			sleep(ctx, f.cfg.BotPoll)
			continue
		}
		for ctx.Err() == nil && !f.over() {
			if view.State == ticketrush.QueueAdmitted {
				f.admitted(e, view)
				f.reserveAndBuy(ctx, e, token, addr, *view.Pass, f.event.MaxPerOrder)
				break
			}
			if view.State == ticketrush.QueueExpired {
				break
			}
			if view.State == ticketrush.QueueSoldOut {
				sleep(ctx, time.Second)
			}
			// A bot ignores Retry-After.
			if !sleep(ctx, f.cfg.BotPoll) {
				return
			}
			if view, ok = f.poll(ctx, e, token, addr); !ok {
				break
			}
		}
	}
}

// view is a queueView with the answer's Retry-After.
type view struct {
	queueView
	retryAfter time.Duration
}

func (f *fair) join(ctx context.Context, e *entry, token, addr string) (view, bool) {
	path := "/api/events/" + strconv.FormatInt(f.event.ID, 10) + "/queue"
	var body any = map[string]any{}
	if f.cfg.ChallengeBits > 0 {
		a := f.r.do(ctx, request{method: http.MethodGet, base: f.r.pick(), path: path + "/challenge",
			visitor: token, header: http.Header{"X-Forwarded-For": {addr}}})
		if a.status != http.StatusOK {
			f.unexpected("challenge", a)
			return view{}, false
		}
		var c challenge
		if err := a.decode(&c); err != nil {
			f.unexpected("challenge", a)
			return view{}, false
		}
		nonce, ok := SolveChallenge(ctx, c.Challenge, token, c.Bits)
		if !ok {
			return view{}, false
		}
		f.solves.Add(1)
		body = map[string]any{"challenge": c.Challenge, "nonce": nonce}
	}
	e.joinedAt = time.Now()
	a := f.r.do(ctx, request{method: http.MethodPost, base: f.r.pick(), path: path, body: body,
		visitor: token, header: http.Header{"X-Forwarded-For": {addr}}})
	if a.status != http.StatusCreated && a.status != http.StatusOK {
		f.unexpected("join", a)
		return view{}, false
	}
	v, ok := f.view(a)
	if !ok {
		return v, false
	}
	e.prequeue = v.State == ticketrush.QueuePrequeue
	if v.Position != nil {
		e.position = *v.Position
	}
	return v, true
}

func (f *fair) poll(ctx context.Context, e *entry, token, addr string) (view, bool) {
	f.polls.Add(1)
	a := f.r.do(ctx, request{method: http.MethodGet, base: f.r.pick(),
		path:    "/api/events/" + strconv.FormatInt(f.event.ID, 10) + "/queue",
		visitor: token, header: http.Header{"X-Forwarded-For": {addr}}})
	if a.status == http.StatusTooManyRequests {
		return view{retryAfter: a.retryAfter, queueView: queueView{State: ticketrush.QueueWaiting}}, true
	}
	if a.status != http.StatusOK {
		f.unexpected("poll", a)
		return view{}, false
	}
	v, ok := f.view(a)
	if ok && v.Position != nil {
		e.position = *v.Position
	}
	return v, ok
}

func (f *fair) view(a answer) (view, bool) {
	var v view
	if err := a.decode(&v.queueView); err != nil {
		f.unexpected("queue answer", a)
		return v, false
	}
	v.retryAfter = parseRetryAfter(a.header.Get("Retry-After"), time.Now())
	if a.header.Get("Retry-After") == "" {
		v.retryAfter = 0
	}
	if v.State == ticketrush.QueueAdmitted && (v.Pass == nil || v.PassExpiresAt == nil) {
		f.unexpected("admitted without a pass", a)
		return v, false
	}
	return v, true
}

// admitted notes the server's admission time of an entry: a pass runs
// PassSeconds from admission.
func (f *fair) admitted(e *entry, v view) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.admittedAt.IsZero() {
		e.admittedAt = v.PassExpiresAt.Add(-time.Duration(f.cfg.PassSeconds) * time.Second)
	}
}

type buyOutcome int

const (
	buyDone  buyOutcome = iota // reserved and purchased
	buyGone                    // no tickets (sold out) or not allowed: stop
	buyAgain                   // refused for now (sale not started, shed): may try again
)

// reserveAndBuy reserves amount (with the pass, when given) and purchases
// the hold.
func (f *fair) reserveAndBuy(ctx context.Context, e *entry, token, addr, pass string, amount int64) buyOutcome {
	h := http.Header{"X-Forwarded-For": {addr}}
	if pass != "" {
		h.Set("Admission-Pass", pass)
	}
	key := uuid.NewString()
	body := map[string]any{"event_id": f.event.ID, "amount": amount}
	var a answer
	for try := 0; try < 3; try++ {
		a = f.r.do(ctx, request{ep: f.r.eps[EndpointReserve], method: http.MethodPost, base: f.r.pick(),
			path: "/api/reserve", body: body, visitor: token, idemKey: key, header: h})
		if !a.shed && a.status != 0 {
			break
		}
		sleep(ctx, min(max(a.retryAfter, 100*time.Millisecond), 2*time.Second))
	}
	switch {
	case a.status == http.StatusCreated:
	case a.code == ticketrush.ENotEnoughTickets || a.code == ticketrush.ESaleClosed:
		return buyGone
	case a.code == ticketrush.ESaleNotStarted || a.shed:
		return buyAgain
	default:
		f.unexpected("reserve", a)
		return buyGone
	}
	var res reservationID
	if err := a.decode(&res); err != nil {
		f.unexpected("reserve", a)
		return buyGone
	}
	p := f.r.do(ctx, request{ep: f.r.eps[EndpointPurchase], method: http.MethodPost, base: f.r.pick(),
		path: "/api/purchase", body: map[string]any{"reservation_id": res.ID}, visitor: token, header: h})
	if p.status != http.StatusOK {
		f.unexpected("purchase", p)
		return buyGone
	}
	f.mu.Lock()
	e.won, e.tickets = true, amount
	f.mu.Unlock()
	return buyDone
}

// SolveChallenge finds a nonce whose SHA-256 proof has bits leading zero
// bits, as fast as one core can, or gives up when ctx ends. The proof is
// SHA-256 of challenge + ":" + lower-case token + ":" + nonce.
func SolveChallenge(ctx context.Context, challenge, token string, bits int) (string, bool) {
	prefix := []byte(challenge + ":" + strings.ToLower(token) + ":")
	buf := make([]byte, 0, len(prefix)+16)
	for n := uint64(0); ; n++ {
		if n&0xfff == 0 && ctx.Err() != nil {
			return "", false
		}
		buf = strconv.AppendUint(append(buf[:0], prefix...), n, 36)
		sum := sha256.Sum256(buf)
		if LeadingZeroBits(sum[:]) >= bits {
			return string(buf[len(prefix):]), true
		}
	}
}

// LeadingZeroBits counts the zero bits of b from the most significant bit
// of its first byte.
func LeadingZeroBits(b []byte) int {
	n := 0
	for _, c := range b {
		if c == 0 {
			n += 8
			continue
		}
		for c&0x80 == 0 {
			n++
			c <<= 1
		}
		return n
	}
	return n
}

// summary computes the phase's figures from what the visitors saw.
func (f *fair) summary(seconds float64) *FairPhase {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := &FairPhase{EventID: f.event.ID, Seconds: seconds, Groups: map[string]*GroupStat{
		GroupHumans: {Visitors: f.cfg.Humans}, GroupBots: {Visitors: f.cfg.Bots},
	}, PrequeueGroupP: -1, PrequeueTimeP: -1, Solves: f.solves.Load(), Polls: f.polls.Load()}
	if len(f.errs) > 0 {
		p.Unexpected = f.errs
		p.Samples = f.samples
	}
	var admitted []*entry
	var pre []*entry
	var admissions, orders, tickets int
	var botTickets int64
	for _, e := range f.entries {
		g := p.Groups[e.group]
		g.Entries++
		if !e.admittedAt.IsZero() {
			g.Admitted++
			admissions++
			admitted = append(admitted, e)
		}
		if e.won {
			g.Orders++
			g.Tickets += e.tickets
			orders++
			tickets += int(e.tickets)
			if e.group == GroupBots {
				botTickets += e.tickets
			}
		}
		if e.prequeue && e.position > 0 {
			pre = append(pre, e)
		}
	}
	if admissions > 0 {
		p.BotAdmissionShare = float64(p.Groups[GroupBots].Admitted) / float64(admissions)
	}
	if orders > 0 {
		p.BotOrderShare = float64(p.Groups[GroupBots].Orders) / float64(orders)
		p.BotTicketShare = float64(botTickets) / float64(tickets)
	}
	if f.room {
		var bots, humans []float64
		var times, positions []float64
		for _, e := range pre {
			pos := float64(e.position)
			if e.group == GroupBots {
				bots = append(bots, pos)
			} else {
				humans = append(humans, pos)
			}
			times = append(times, float64(e.joinedAt.UnixNano()))
			positions = append(positions, pos)
		}
		if len(bots) >= 5 && len(humans) >= 5 {
			p.PrequeueGroupP = MannWhitneyP(bots, humans)
		}
		if len(pre) >= 10 {
			p.PrequeueRho, p.PrequeueTimeP = Spearman(times, positions)
		}
		slices.SortFunc(admitted, func(a, b *entry) int { return int(a.position - b.position) })
		latest := time.Time{}
		for _, e := range admitted {
			if e.admittedAt.Before(latest) {
				p.Inversions++
			}
			latest = later(latest, e.admittedAt)
		}
		stamps := make([]time.Time, len(admitted))
		for i, e := range admitted {
			stamps[i] = e.admittedAt
		}
		p.MaxPerMinute = MaxInWindow(stamps, time.Minute)
	}
	return p
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// MaxInWindow returns the most stamps in any half-open window of length w.
func MaxInWindow(stamps []time.Time, w time.Duration) int {
	s := slices.Clone(stamps)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	best, lo := 0, 0
	for hi := range s {
		for s[hi].Sub(s[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// check turns the figures into the report's checks.
func (rep *FairReport) check(cfg *FairConfig) {
	add := func(name string, ok bool, detail string) {
		c := Check{Name: name, Result: Pass, Detail: detail}
		if !ok {
			c.Result = Fail
		}
		rep.Checks = append(rep.Checks, c)
	}
	phases := []*FairPhase{rep.Room}
	if rep.NoRoom != nil {
		phases = append(phases, rep.NoRoom)
	}
	for i, p := range phases {
		name := "waiting room"
		if i == 1 {
			name = "no waiting room"
		}
		sold := p.Groups[GroupHumans].Tickets + p.Groups[GroupBots].Tickets
		add(name+": no overselling",
			p.Capacity == p.Available+p.Held+p.Purchased && p.Purchased <= p.Capacity,
			fmt.Sprintf("capacity %d = available %d + held %d + purchased %d", p.Capacity, p.Available, p.Held, p.Purchased))
		add(name+": every acknowledged purchase counted",
			sold == p.Purchased,
			fmt.Sprintf("visitors were told of %d tickets bought; the server counts %d", sold, p.Purchased))
		add(name+": no unexpected answers", len(p.Unexpected) == 0, fmt.Sprintf("%v", p.Unexpected))
	}
	r := rep.Room
	add("bots win no more orders than their admissions",
		r.BotOrderShare <= r.BotAdmissionShare+0.05,
		fmt.Sprintf("bots' share of orders won %.1f%%, of admissions %.1f%% (target: at most +5 points)",
			100*r.BotOrderShare, 100*r.BotAdmissionShare))
	add("admission follows position, not poll rate", r.Inversions == 0,
		fmt.Sprintf("%d admissions out of position order (bots poll every %s, humans as Retry-After says)",
			r.Inversions, cfg.BotPoll))
	limit := float64(cfg.AdmitPerMinute) * 1.01
	add("admission rate within admit_per_minute", float64(r.MaxPerMinute) <= limit,
		fmt.Sprintf("at most %d admissions in any 60 s window; admit_per_minute %d", r.MaxPerMinute, cfg.AdmitPerMinute))
	const alpha = 0.001
	if r.PrequeueGroupP >= 0 {
		add("pre-queue place does not depend on group", r.PrequeueGroupP >= alpha,
			fmt.Sprintf("Mann-Whitney U, bots vs humans: p = %.3g (fails below %g)", r.PrequeueGroupP, alpha))
	} else {
		rep.Checks = append(rep.Checks, Check{Name: "pre-queue place does not depend on group", Result: Skip,
			Detail: "fewer than 5 pre-queue entries in a group"})
	}
	if r.PrequeueTimeP >= 0 {
		add("pre-queue place does not depend on join time", r.PrequeueTimeP >= alpha,
			fmt.Sprintf("Spearman rho = %.3f, p = %.3g (fails below %g)", r.PrequeueRho, r.PrequeueTimeP, alpha))
	} else {
		rep.Checks = append(rep.Checks, Check{Name: "pre-queue place does not depend on join time", Result: Skip,
			Detail: "fewer than 10 pre-queue entries"})
	}
	rep.OK = true
	for _, c := range rep.Checks {
		if c.Result == Fail {
			rep.OK = false
		}
	}
}

// Partial reports whether a check was skipped.
func (rep *FairReport) Partial() bool {
	return slices.ContainsFunc(rep.Checks, func(c Check) bool { return c.Result == Skip })
}

// JSON encodes the report.
func (rep *FairReport) JSON() ([]byte, error) { return json.MarshalIndent(rep, "", "  ") }

// WriteText writes the report for a person: a table per phase, then the
// checks, PASS or FAIL.
func (rep *FairReport) WriteText(w io.Writer) error {
	var b strings.Builder
	c := rep.Config
	fmt.Fprintf(&b, "Fairness rehearsal: %d humans, %d bots, %d tickets per event, over %s\n",
		rep.Humans, rep.Bots, c.Tickets, strings.Join(rep.URLs, ", "))
	fmt.Fprintf(&b, "humans arrive over %.0f s (sale at %.0f s), reserve %d, poll as Retry-After says (%.0f ms without one); bots poll every %.0f ms and take max_per_order\n",
		c.WindowSeconds, c.SaleAfter, c.HumanAmount, c.HumanPollMs, c.BotPollMs)
	fmt.Fprintf(&b, "waiting room: admit_per_minute %d, max_active %d, pass_seconds %d, challenge_bits %d; seed %d\n",
		c.AdmitPerMinute, c.MaxActive, c.PassSeconds, c.ChallengeBits, rep.Seed)
	phase := func(name string, p *FairPhase, room bool) {
		fmt.Fprintf(&b, "\n%s (event %d, %.1f s)\n", name, p.EventID, p.Seconds)
		fmt.Fprintf(&b, "  %-7s %9s %9s %9s %7s %8s\n", "group", "visitors", "entries", "admitted", "orders", "tickets")
		for _, g := range []string{GroupHumans, GroupBots} {
			s := p.Groups[g]
			adm := strconv.Itoa(s.Admitted)
			if !room {
				adm = "-"
			}
			fmt.Fprintf(&b, "  %-7s %9d %9d %9s %7d %8d\n", g, s.Visitors, s.Entries, adm, s.Orders, s.Tickets)
		}
		if room {
			fmt.Fprintf(&b, "  bots: %.1f%% of admissions, %.1f%% of orders won, %.1f%% of tickets\n",
				100*p.BotAdmissionShare, 100*p.BotOrderShare, 100*p.BotTicketShare)
			fmt.Fprintf(&b, "  pre-queue: group p = %s, join time rho = %.3f p = %s; %d admissions out of position order; at most %d admitted in any 60 s\n",
				pval(p.PrequeueGroupP), p.PrequeueRho, pval(p.PrequeueTimeP), p.Inversions, p.MaxPerMinute)
			fmt.Fprintf(&b, "  %d challenges solved, %d polls\n", p.Solves, p.Polls)
		} else {
			fmt.Fprintf(&b, "  bots: %.1f%% of orders won, %.1f%% of tickets\n", 100*p.BotOrderShare, 100*p.BotTicketShare)
		}
		fmt.Fprintf(&b, "  server: capacity %d, available %d, held %d, purchased %d\n", p.Capacity, p.Available, p.Held, p.Purchased)
		for _, s := range p.Samples {
			fmt.Fprintf(&b, "  unexpected: %s\n", s)
		}
	}
	phase("With a waiting room", rep.Room, true)
	if rep.NoRoom != nil {
		phase("Without a waiting room", rep.NoRoom, false)
	}
	b.WriteString("\nChecks\n")
	for _, ch := range rep.Checks {
		fmt.Fprintf(&b, "  %-4s %s: %s\n", ch.Result, ch.Name, ch.Detail)
	}
	switch {
	case !rep.OK:
		b.WriteString("\nFAIL\n")
	case rep.Partial():
		b.WriteString("\nPARTIAL: every check that ran held; the skipped ones are named above\n")
	default:
		b.WriteString("\nPASS: no overselling, and speed and scripts bought no advantage\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func pval(p float64) string {
	if p < 0 {
		return "n/a"
	}
	return strconv.FormatFloat(p, 'g', 3, 64)
}
