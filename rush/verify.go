package rush

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/httpapi"
)

// settled returns the status v's reservation is known to have: the one
// read back, else the one its visitor was told. A hold without a definite
// answer counts as still held, so it is never left out of a bound.
func (v *visit) settled() string {
	if v.final != "" {
		return v.final
	}
	switch {
	case v.result == stepDone && v.intent == buy:
		return ticketrush.StatusPurchased
	case v.result == stepDone && v.intent == cancel:
		return ticketrush.StatusCancelled
	case v.result == stepExpired:
		return ticketrush.StatusExpired
	}
	return ticketrush.StatusReserved
}

// verify reads the servers' final state and builds the report.
func (r *runner) verify(ctx context.Context, before *httpapi.Stats, rushTime, readTime time.Duration) *Report {
	cfg := r.cfg
	rep := &Report{
		URLs:            cfg.URLs,
		Event:           *r.event,
		Created:         cfg.EventID == 0,
		Planned:         cfg.Visitors,
		Concurrency:     cfg.Concurrency,
		Amounts:         cfg.Amounts,
		Purchase:        cfg.Purchase,
		Cancel:          cfg.Cancel,
		Seed:            cfg.Seed,
		Interrupted:     r.interrupted,
		Seconds:         rushTime.Seconds(),
		ReadBackSeconds: readTime.Seconds(),
		StatsBefore:     before,
	}

	t := &rep.Tickets
	o := &rep.Outcomes
	for i := range r.visits {
		v := &r.visits[i]
		if v.outcome != notRun {
			rep.Visitors++
		}
		switch v.outcome {
		case reserved:
			o.Reserved++
		case soldOut:
			o.SoldOut++
		case refused:
			o.Refused++
		case shedAway:
			o.Shed++
		case inDoubt:
			o.InDoubt++
			t.InDoubt += v.amount
		case unexpected:
			o.Unexpected++
		}
		if v.outcome != reserved {
			continue
		}
		t.Acknowledged += v.amount
		switch v.settled() {
		case ticketrush.StatusPurchased:
			t.Purchased += v.amount
		case ticketrush.StatusCancelled:
			t.Cancelled += v.amount
		case ticketrush.StatusExpired:
			t.Expired += v.amount
		default:
			t.Held += v.amount
		}
	}

	// The final state, read after the read-back so that it is what the
	// visitors left behind.
	var statsErr error
	rep.Stats, rep.Nodes, statsErr = r.finalState(ctx)
	rep.Endpoints = r.endpointReports(rushTime, readTime)

	add := func(name, result, format string, args ...any) {
		rep.Checks = append(rep.Checks, Check{Name: name, Result: result, Detail: fmt.Sprintf(format, args...)})
	}
	passIf := func(ok bool) string {
		if ok {
			return Pass
		}
		return Fail
	}

	// No overselling, from the visitors' side: what they hold or bought
	// fits in what was on sale when they came.
	onSale := r.event.TicketQuantity
	if before != nil {
		onSale = before.Available
	}
	out := t.Acknowledged - t.Cancelled - t.Expired
	add("acknowledged ≤ capacity", passIf(out <= onSale),
		"visitors hold or bought %d tickets (acknowledged %d − cancelled %d − expired %d) of %d on sale at start (capacity %d)",
		out, t.Acknowledged, t.Cancelled, t.Expired, onSale, r.event.Capacity)

	const invName = "capacity == available + held + purchased"
	const eqName = "held + purchased + expired == acknowledged − cancelled"
	switch s := rep.Stats; {
	case cfg.AdminToken == "":
		add(invName, Skip, "not verified: reading the server's stats needs the admin token (--admin-token)")
		add(eqName, Skip, "not verified: reading the server's stats needs the admin token (--admin-token)")
	case s == nil:
		add(invName, Fail, "server stats unreadable: %v", statsErr)
		add(eqName, Fail, "server stats unreadable: %v", statsErr)
	default:
		sum := s.Available + s.Held + s.Purchased
		add(invName, passIf(s.Capacity == sum && s.Capacity == r.event.Capacity && s.Available >= 0 && s.Held >= 0 && s.Purchased >= 0),
			"server: capacity %d, available %d + held %d + purchased %d = %d (event capacity %d)",
			s.Capacity, s.Available, s.Held, s.Purchased, sum, r.event.Capacity)

		// Holds that expire during a long rehearsal leave held for the
		// server's expired count: counted with it, every acknowledged
		// ticket is still accounted for.
		expired := s.Expired - before.Expired
		got := s.Held + s.Purchased + expired - before.Held - before.Purchased
		want := t.Acknowledged - t.Cancelled
		if t.InDoubt > 0 {
			add(eqName, passIf(got >= want && got <= want+t.InDoubt),
				"server held %d + purchased %d + expired %d since start = %d; visitors acknowledged %d − cancelled %d = %d, plus up to %d in doubt",
				s.Held-before.Held, s.Purchased-before.Purchased, expired, got, t.Acknowledged, t.Cancelled, want, t.InDoubt)
		} else {
			add(eqName, passIf(got == want),
				"server held %d + purchased %d + expired %d since start = %d; visitors acknowledged %d − cancelled %d = %d",
				s.Held-before.Held, s.Purchased-before.Purchased, expired, got, t.Acknowledged, t.Cancelled, want)
		}
	}

	r.mu.Lock()
	unreadable, mismatches := r.unreadable, r.mismatches
	unexpected, surprises := r.unexpected, r.surprises
	r.mu.Unlock()
	add("every acknowledged reservation readable with the right status", passIf(unreadable == 0),
		"%d of %d read back by their visitors as told%s", o.Reserved-unreadable, o.Reserved, samples(mismatches))

	var fiveXX, shed, none uint64
	var byEndpoint []string
	for _, e := range rep.Endpoints {
		shed += e.Shed
		none += e.Statuses["none"]
		n := e.ServerErrors
		if n > 0 {
			byEndpoint = append(byEndpoint, fmt.Sprintf("%s %d", e.Name, n))
			fiveXX += n
		}
	}
	detail := fmt.Sprintf("%d answers 5xx", fiveXX)
	if len(byEndpoint) > 0 {
		detail += " (" + strings.Join(byEndpoint, ", ") + ")"
	}
	add("no 5xx", passIf(fiveXX == 0), "%s; %d shed (429/503 with Retry-After), counted as shed load", detail, shed)
	add("every request answered", passIf(none == 0), "%d requests got no answer (connection refused or reset, or over the timeout)", none)
	add("no unexpected answers", passIf(unexpected == 0), "%d answers the API does not give for what was asked%s", unexpected, samples(surprises))

	// Every node must agree, and with the server's own count.
	const nodeName = "every node reports the same stock"
	var parts []string
	agree := len(rep.Nodes) > 0
	for _, n := range rep.Nodes {
		if n.Error != "" {
			agree = false
			parts = append(parts, n.URL+": "+n.Error)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d", n.URL, n.TicketQuantity))
		if n.TicketQuantity != rep.Nodes[0].TicketQuantity {
			agree = false
		}
	}
	if agree && rep.Stats != nil && rep.Nodes[0].TicketQuantity != rep.Stats.Available {
		agree = false
		parts = append(parts, fmt.Sprintf("stats available %d", rep.Stats.Available))
	}
	d := "ticket_quantity " + strings.Join(parts, ", ")
	if statsErr != nil && rep.Stats != nil {
		d += "; " + statsErr.Error()
		agree = false
	}
	add(nodeName, passIf(agree), "%s", d)

	rep.OK = len(rep.Failed()) == 0
	rep.Result = rep.verdict()
	rep.Partial = len(rep.Skipped()) > 0
	return rep
}

// finalState reads the server's stats and every node's stock. A sweeper
// may release holds between the reads, so it reads until the stats before
// and after the nodes' stock are the same, and says so when they never
// settle.
func (r *runner) finalState(ctx context.Context) (*httpapi.Stats, []NodeStock, error) {
	var lastErr error
	var stats *httpapi.Stats
	var nodes []NodeStock
	for attempt := range 5 {
		if attempt > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		var s1 *httpapi.Stats
		if r.cfg.AdminToken != "" {
			var err error
			if s1, err = r.fetchStats(ctx, r.event.ID); err != nil {
				lastErr = err
				continue
			}
		}
		nodes = r.nodeStock(ctx)
		if r.cfg.AdminToken == "" {
			again := r.nodeStock(ctx)
			if sameStock(nodes, again) {
				return nil, nodes, nil
			}
			lastErr = fmt.Errorf("the stock kept changing")
			continue
		}
		s2, err := r.fetchStats(ctx, r.event.ID)
		if err != nil {
			lastErr = err
			continue
		}
		stats = s2
		if *s1 == *s2 {
			return s2, nodes, nil
		}
		lastErr = fmt.Errorf("the server's counts kept changing while the nodes were read")
	}
	return stats, nodes, lastErr
}

func (r *runner) nodeStock(ctx context.Context) []NodeStock {
	out := make([]NodeStock, len(r.cfg.URLs))
	for i, base := range r.cfg.URLs {
		out[i].URL = base
		e, err := r.fetchEvent(ctx, base, r.event.ID)
		if err != nil {
			out[i].Error = err.Error()
			continue
		}
		out[i].TicketQuantity = e.TicketQuantity
	}
	return out
}

func sameStock(a, b []NodeStock) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// endpointReports sums up every endpoint that was used, in table order.
func (r *runner) endpointReports(rushTime, readTime time.Duration) []EndpointReport {
	var out []EndpointReport
	for _, name := range endpointOrder {
		e := r.eps[name]
		n := e.latency.Count()
		if n == 0 {
			continue
		}
		er := EndpointReport{
			Name:     name,
			Requests: n,
			Latency: Latency{
				P50:  ms(e.latency.Quantile(0.50)),
				P90:  ms(e.latency.Quantile(0.90)),
				P99:  ms(e.latency.Quantile(0.99)),
				Max:  ms(e.latency.Max()),
				Mean: ms(e.latency.Mean()),
			},
			Statuses:     map[string]uint64{},
			Shed:         e.shed.Load(),
			ServerErrors: e.failed.Load(),
		}
		switch name {
		case EndpointReserve, EndpointPurchase, EndpointCancel:
			er.PerSecond = float64(n) / rushTime.Seconds()
		case EndpointRead:
			er.PerSecond = float64(n) / readTime.Seconds()
		}
		for code := range e.statuses {
			c := e.statuses[code].Load()
			if c == 0 {
				continue
			}
			key := strconv.Itoa(code)
			if code == 0 {
				key = "none"
			}
			er.Statuses[key] = c
		}
		out = append(out, er)
	}
	return out
}

func samples(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return "; e.g. " + strings.Join(s, "; ")
}
