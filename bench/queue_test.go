package bench

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRunQueue runs the waiting-room bench on SQLite with wrk, briefly: every
// load answered 2xx, the join event's queue holding what was acknowledged,
// the poll load reading the pool's visitors, and the crowd all queued. The
// targets are for a real run, not a test's second, so they are not checked.
func TestRunQueue(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		if os.Getenv("TICKETRUSH_REQUIRE_WRK") == "1" {
			t.Fatalf("wrk is not installed (%v), and TICKETRUSH_REQUIRE_WRK=1", err)
		}
		t.Skipf("wrk is not installed (%v); the test script installs it", err)
	}
	c := testConfig(t)
	c.Load = LoadAuto
	c.Clients = []int{16}
	c.Duration, c.Warmup = time.Second, 200*time.Millisecond
	rep, err := RunQueue(t.Context(), QueueConfig{Config: c, Pool: 200, Crowd: 3000, CrowdWithin: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("problems: %q", rep.Problems)
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(rep.Runs))
	}
	r := rep.Runs[0]
	for what, l := range map[string]QueueLoad{"reserve": r.Reserve, "join": r.Join, "poll": r.Poll, "healthz": r.Healthz} {
		if l.PerSec <= 0 || l.OK == 0 || l.Errors != 0 {
			t.Errorf("%s load = %+v, want answers, all 2xx", what, l)
		}
	}
	if r.Queued < r.Join.OK {
		t.Errorf("join event queues %d visitors, fewer than the %d measured joins acknowledged", r.Queued, r.Join.OK)
	}
	if c := r.Crowd; c == nil || c.Queued < 3000 || c.Joined < 3000 || c.Errors != 0 || c.Seconds <= 0 {
		t.Errorf("crowd = %+v, want 3000 or more joined and queued, no error", c)
	}
	var b strings.Builder
	if err := rep.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| sqlite | 16 |", "joins ÷ reserves", "polls ÷ /healthz", "visitors | seconds"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, &b)
		}
	}
}

// TestRunQueueNeedsWrk: the in-process client cannot make a fresh visitor
// per join, so the queue bench refuses it rather than measure something
// else.
func TestRunQueueNeedsWrk(t *testing.T) {
	c := testConfig(t)
	c.Load = LoadGo
	if _, err := RunQueue(t.Context(), QueueConfig{Config: c}); err == nil || !strings.Contains(err.Error(), "needs wrk") {
		t.Fatalf("RunQueue with --load go: %v, want an error saying it needs wrk", err)
	}
}
