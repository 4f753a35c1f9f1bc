package rush

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ticketrush/ticketrush/httpapi"
)

// Report is the outcome of a rehearsal. It encodes as JSON as is.
type Report struct {
	URLs        []string      `json:"urls"`
	Event       httpapi.Event `json:"event"` // as it was before the rush
	Created     bool          `json:"created"`
	Visitors    int           `json:"visitors"` // that came
	Planned     int           `json:"visitors_planned"`
	Concurrency int           `json:"concurrency"`
	Amounts     []int64       `json:"amounts"`
	Purchase    float64       `json:"purchase"`
	Cancel      float64       `json:"cancel"`
	Seed        uint64        `json:"seed"`
	// Interrupted is set when the rush was stopped before every visitor
	// came.
	Interrupted bool `json:"interrupted"`
	// Seconds the rush took, and the read-back of every reservation after.
	Seconds         float64 `json:"duration_seconds"`
	ReadBackSeconds float64 `json:"read_back_seconds"`

	Endpoints []EndpointReport `json:"endpoints"`
	Outcomes  Outcomes         `json:"visitors_by_outcome"`
	Tickets   Tickets          `json:"tickets"`

	// StatsBefore and Stats are the server's counts for the event before
	// and after the rush; nil without an admin token.
	StatsBefore *httpapi.Stats `json:"stats_before,omitempty"`
	Stats       *httpapi.Stats `json:"stats,omitempty"`
	// Nodes are the stock each server reports at the end.
	Nodes []NodeStock `json:"nodes"`

	// Partial is set when a check was skipped: the rehearsal could not
	// verify everything, so it does not say PASS.
	Partial bool    `json:"verification_partial"`
	Checks  []Check `json:"checks"`
	// OK is set when no check failed.
	OK bool `json:"ok"`
	// Result is the verdict: Pass (every check held), Fail (a check
	// failed) or Partial (none failed, but some could not be verified).
	Result string `json:"result"`
}

// EndpointReport sums up the answers of one endpoint.
type EndpointReport struct {
	Name     string `json:"name"`
	Requests uint64 `json:"requests"`
	// PerSecond is requests over the phase the endpoint belongs to (the
	// rush, or the read-back); 0 for the few setup and check requests.
	PerSecond float64 `json:"requests_per_second"`
	Latency   Latency `json:"latency_ms"`
	// Statuses counts answers by HTTP status; "none" counts requests that
	// got no answer (refused connection, timeout).
	Statuses map[string]uint64 `json:"statuses"`
	// Shed counts 429 and 503 answers with Retry-After: load the server
	// chose not to serve, which is not a failure.
	Shed uint64 `json:"shed"`
	// ServerErrors counts 5xx answers other than shed load.
	ServerErrors uint64 `json:"server_errors"`
}

// Latency percentiles in milliseconds, from a log-linear histogram (each at
// most 1.6 % above the true value; Max is exact).
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Outcomes count visitors by how their reserve ended.
type Outcomes struct {
	Reserved int `json:"reserved"`
	SoldOut  int `json:"sold_out"`
	// Refused: 409 visitor_limit_exceeded or sale_not_started.
	Refused int `json:"refused"`
	// Shed: every attempt was shed, so nothing was reserved.
	Shed int `json:"shed"`
	// InDoubt: no definite answer, so the reserve may or may not have
	// taken tickets.
	InDoubt    int `json:"in_doubt"`
	Unexpected int `json:"unexpected"`
}

// Tickets counts tickets by what the visitors were told, settled by the
// read-back where the answer was in doubt.
type Tickets struct {
	Acknowledged int64 `json:"acknowledged"`
	Purchased    int64 `json:"purchased"`
	Cancelled    int64 `json:"cancelled"`
	// Expired: holds that expired before their purchase or by the
	// read-back.
	Expired int64 `json:"expired"`
	// Held: holds still held at the read-back (abandoned ones, mostly).
	Held int64 `json:"held"`
	// InDoubt: tickets of in-doubt reserves, which the server may hold.
	InDoubt int64 `json:"in_doubt"`
}

// NodeStock is the stock one server reports for the event.
type NodeStock struct {
	URL            string `json:"url"`
	TicketQuantity int64  `json:"ticket_quantity"`
	Error          string `json:"error,omitempty"`
}

// Check results.
const (
	Pass = "PASS"
	Fail = "FAIL"
	Skip = "SKIP"
	// Partial is the verdict of a report with skipped checks and no
	// failed one.
	Partial = "PARTIAL"
)

// Check is one verified property.
type Check struct {
	Name   string `json:"name"`
	Result string `json:"result"` // Pass, Fail or Skip
	Detail string `json:"detail"`
}

// Skipped returns the checks that could not be verified.
func (r *Report) Skipped() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Result == Skip {
			out = append(out, c)
		}
	}
	return out
}

// verdict returns Fail, Partial or Pass for the checks.
func (r *Report) verdict() string {
	switch {
	case len(r.Failed()) > 0:
		return Fail
	case len(r.Skipped()) > 0:
		return Partial
	}
	return Pass
}

// Failed returns the checks that failed.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Result == Fail {
			out = append(out, c)
		}
	}
	return out
}

// WriteText writes the report for a person.
func (r *Report) WriteText(w io.Writer) error {
	b := &strings.Builder{}
	how := "existing event"
	if r.Created {
		how = "created"
	}
	fmt.Fprintf(b, "Rush on event %d %q (%s; capacity %d, %d on sale at start) over %d node%s\n",
		r.Event.ID, r.Event.Name, how, r.Event.Capacity, r.Event.TicketQuantity, len(r.URLs), plural(len(r.URLs)))
	fmt.Fprintf(b, "%d of %d visitors, concurrency %d, amounts %s, purchase %g, cancel %g, seed %d\n",
		r.Visitors, r.Planned, r.Concurrency, joinInts(r.Amounts), r.Purchase, r.Cancel, r.Seed)
	fmt.Fprintf(b, "duration %s (read-back %s)", seconds(r.Seconds), seconds(r.ReadBackSeconds))
	if r.Interrupted {
		b.WriteString(", interrupted")
	}
	b.WriteString("\n\n")

	fmt.Fprintf(b, "%-9s %9s %9s %9s %9s %9s %9s  %s\n", "endpoint", "requests", "req/s", "p50", "p90", "p99", "max", "statuses")
	for _, e := range r.Endpoints {
		rate := "-"
		if e.PerSecond > 0 {
			rate = strconv.FormatFloat(e.PerSecond, 'f', 1, 64)
		}
		fmt.Fprintf(b, "%-9s %9d %9s %9s %9s %9s %9s  %s\n", e.Name, e.Requests, rate,
			millis(e.Latency.P50), millis(e.Latency.P90), millis(e.Latency.P99), millis(e.Latency.Max), statusText(e))
	}
	o, t := r.Outcomes, r.Tickets
	fmt.Fprintf(b, "\nvisitors: %d reserved, %d sold out, %d refused, %d shed, %d in doubt, %d unexpected\n",
		o.Reserved, o.SoldOut, o.Refused, o.Shed, o.InDoubt, o.Unexpected)
	fmt.Fprintf(b, "tickets:  %d acknowledged, %d purchased, %d cancelled, %d still held, %d expired",
		t.Acknowledged, t.Purchased, t.Cancelled, t.Held, t.Expired)
	if t.InDoubt > 0 {
		fmt.Fprintf(b, ", %d in doubt", t.InDoubt)
	}
	b.WriteString("\n")
	if s := r.Stats; s != nil {
		fmt.Fprintf(b, "server:   capacity %d, available %d, held %d, purchased %d, expired %d, cancelled %d\n",
			s.Capacity, s.Available, s.Held, s.Purchased, s.Expired, s.Cancelled)
	} else {
		b.WriteString("server:   stats not read (no admin token)\n")
	}
	b.WriteString("stock:   ")
	for i, n := range r.Nodes {
		if i > 0 {
			b.WriteString(",")
		}
		if n.Error != "" {
			fmt.Fprintf(b, " %s unreadable", n.URL)
		} else {
			fmt.Fprintf(b, " %s %d", n.URL, n.TicketQuantity)
		}
	}
	b.WriteString("\n\n")

	for _, c := range r.Checks {
		fmt.Fprintf(b, "%s  %s: %s\n", c.Result, c.Name, c.Detail)
	}
	f, sk := r.Failed(), r.Skipped()
	switch {
	case len(f) > 0:
		fmt.Fprintf(b, "\nFAIL: %d check%s failed", len(f), plural(len(f)))
		if len(sk) > 0 {
			fmt.Fprintf(b, " and %d could not be verified", len(sk))
		}
		b.WriteString("\n")
	case len(sk) > 0:
		fmt.Fprintf(b, "\nPARTIAL: no check failed, but %d of %d could not be verified, so this rehearsal does not show that nothing was oversold:\n", len(sk), len(r.Checks))
		for _, c := range sk {
			fmt.Fprintf(b, "  - %s: %s\n", c.Name, c.Detail)
		}
	default:
		b.WriteString("\nPASS: no overselling; every check held\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func statusText(e EndpointReport) string {
	keys := make([]string, 0, len(e.Statuses))
	for k := range e.Statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, e.Statuses[k]))
	}
	if e.Shed > 0 {
		parts = append(parts, fmt.Sprintf("(%d shed)", e.Shed))
	}
	return strings.Join(parts, " ")
}

func millis(ms float64) string {
	switch {
	case ms >= 1000:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + "s"
	case ms >= 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + "ms"
	default:
		return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
	}
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func joinInts(v []int64) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.FormatInt(n, 10)
	}
	return strings.Join(s, ",")
}
