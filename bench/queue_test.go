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

// TestQueueMedians: with rounds, the targets are judged on each figure's
// median, so one slow round among three does not miss a target and one
// fast round does not meet it; an error in any round is a problem.
func TestQueueMedians(t *testing.T) {
	run := func(round int, reserves, joins, polls, healthz float64) *QueueResult {
		return &QueueResult{Backend: "sqlite", Clients: 256, Round: round,
			Reserve: QueueLoad{PerSec: reserves}, Join: QueueLoad{PerSec: joins},
			Poll: QueueLoad{PerSec: polls}, Healthz: QueueLoad{PerSec: healthz},
			JoinVsReserve: joins / reserves, PollVsHealthz: polls / healthz}
	}
	rep := &QueueReport{Runs: []*QueueResult{
		run(1, 100, 110, 90, 100),
		run(2, 100, 80, 70, 100), // one slow round
		run(3, 100, 105, 85, 100),
	}}
	rep.finish()
	if len(rep.Medians) != 1 {
		t.Fatalf("%d medians, want 1", len(rep.Medians))
	}
	m := rep.Medians[0]
	if m.JoinVsReserve != 1.05 || m.Join.PerSec != 105 || m.PollVsHealthz != 0.85 {
		t.Errorf("medians = %+v, want joins 105 (1.05×), polls 0.85×", m)
	}
	if !rep.OK || len(rep.Missed) != 0 {
		t.Errorf("missed %q, want none: the medians meet the targets", rep.Missed)
	}

	rep = &QueueReport{Runs: []*QueueResult{run(1, 100, 120, 90, 100), run(2, 100, 95, 75, 100), run(3, 100, 90, 70, 100)}}
	rep.Runs[2].Join.Errors = 1
	rep.finish()
	if rep.OK || len(rep.Missed) != 2 || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "round 3") {
		t.Errorf("missed %q, problems %q: want both targets missed on the medians and round 3's error", rep.Missed, rep.Problems)
	}
	var b strings.Builder
	if err := rep.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Medians over the rounds", "| sqlite | 256 | 3 |", "Each round"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, &b)
		}
	}
}
