package bench

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRunCheckout runs the checkout bench on SQLite, batch, two rounds, and
// checks every figure and check it reports. The warm-up is long enough for
// wrk to have installed its signal handler on a loaded machine before the
// bench stops it.
func TestRunCheckout(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		if os.Getenv("TICKETRUSH_REQUIRE_WRK") == "1" {
			t.Fatalf("wrk is not installed (%v), and TICKETRUSH_REQUIRE_WRK=1", err)
		}
		t.Skipf("wrk is not installed (%v); the test script installs it", err)
	}
	c := testConfig(t)
	c.Load = LoadWrk
	c.Clients = []int{16}
	c.Strategies = []string{"batch"}
	c.Duration, c.Warmup = 500*time.Millisecond, time.Second
	c.Rounds = 2
	rep, err := RunCheckout(t.Context(), CheckoutConfig{Config: c})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Errorf("problems: %q", rep.Problems)
	}
	if len(rep.Runs) != 2 || len(rep.Medians) != 1 {
		t.Fatalf("%d runs and %d medians, want 2 and 1", len(rep.Runs), len(rep.Medians))
	}
	for _, r := range rep.Runs {
		name := r.Backend + " " + r.Strategy
		for what, l := range map[string]CheckoutLoad{"reserve": r.Reserve, "purchase": r.Purchase, "reserve after": r.ReserveAfter,
			"list": r.List, "get": r.Get, "healthz": r.Healthz} {
			if l.PerSec <= 0 || l.P99Ms <= 0 || l.CPUMicros <= 0 {
				t.Errorf("%s %s: nothing measured: %+v", name, what, l)
			}
			if l.Errors != 0 {
				t.Errorf("%s %s: %d errors: %s", name, what, l.Errors, l.Sample)
			}
		}
		// Every hold made is sold or still held, and sales are what was
		// acknowledged, within what wrk left unread.
		if r.Stats.Purchased <= 0 || r.Stats.Held+r.Stats.Purchased != int64(r.Holds) || r.Invariant != "" {
			t.Errorf("%s: stats %+v for %d holds: %s", name, r.Stats, r.Holds, r.Invariant)
		}
	}
	var out bytes.Buffer
	rep.WriteMarkdown(&out)
	for _, want := range []string{"Medians over the rounds", "| sqlite | batch | 16 |", "| sqlite | batch | 16 | 2 |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, &out)
		}
	}
}
