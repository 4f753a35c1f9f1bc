package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
)

// testConfig keeps the runs short: the point is that every run is
// measured and verified, not the numbers.
func testConfig(t *testing.T) Config {
	return Config{
		SQLite:        true,
		PostgresConns: DefaultPostgresConns,
		Clients:       []int{8},
		Strategies:    []string{"lock", "batch"},
		Duration:      300 * time.Millisecond,
		Warmup:        100 * time.Millisecond,
		Load:          LoadGo,
		Serve:         testServe,
		Progress:      tWriter{t},
	}
}

// TestRunSQLite runs both strategies on SQLite with the in-process
// client and reads the table.
func TestRunSQLite(t *testing.T) {
	rep, err := Run(t.Context(), testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Load != LoadGo {
		t.Errorf("load = %q, want go", rep.Load)
	}
	var out bytes.Buffer
	rep.WriteMarkdown(&out)
	if !strings.Contains(out.String(), "load generator: in-process Go clients") {
		t.Errorf("the report does not say what drove the load:\n%s", &out)
	}
	rows := benchTableRows(t, out.String())
	for _, strategy := range []string{"lock", "batch"} {
		row := rows["sqlite/"+strategy]
		if row == nil {
			t.Fatalf("no sqlite %s row in:\n%s", strategy, &out)
		}
		if row["clients"] != "8" || row["oversold"] != "0" || row["errors"] != "0" {
			t.Errorf("sqlite %s row = %v, want 8 clients, nothing oversold, no errors", strategy, row)
		}
		if row["reserve/s"] == "0" || row["/healthz/s"] == "0" {
			t.Errorf("sqlite %s row = %v, want requests measured", strategy, row)
		}
	}
	if got := rows["sqlite/batch"]["× lock"]; !strings.HasSuffix(got, "×") || got == "–" {
		t.Errorf("batch × lock = %q, want a ratio", got)
	}
	if !strings.Contains(out.String(), "verified after each run: nothing oversold") {
		t.Errorf("no verdict in:\n%s", &out)
	}
}

// TestRunServers runs the JSON form on every backend this machine
// reaches, with several client counts.
func TestRunServers(t *testing.T) {
	c := testConfig(t)
	c.Duration, c.Warmup, c.Clients = 200*time.Millisecond, 0, []int{4, 16}
	want := []string{"sqlite"}
	if u := benchTestPostgres(t); u != "" {
		c.Postgres = u
		want = append(want, "postgres")
	}
	if u := benchTestRedis(t); u != "" {
		c.Redis = u
		want = append(want, "redis")
	}
	r0, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	// The JSON form is what scripts read: check it round-trips.
	b, err := json.Marshal(r0)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, b)
	}
	if !rep.OK || len(rep.Problems) > 0 {
		t.Errorf("ok = %v, problems = %q", rep.OK, rep.Problems)
	}
	if got := len(rep.Runs); got != len(want)*2*2 {
		t.Fatalf("%d runs, want %d (backends %v × 2 strategies × 2 client counts)", got, len(want)*4, want)
	}
	seen := map[string]bool{}
	for _, r := range rep.Runs {
		seen[r.Backend] = true
		name := r.Backend + " " + r.Strategy
		if r.ReservePerSec <= 0 || r.HealthzPerSec <= 0 || r.Requests <= 0 {
			t.Errorf("%s: nothing measured: %+v", name, r)
		}
		if r.Oversold != 0 || r.Invariant != "ok" || r.Errors != 0 {
			t.Errorf("%s: oversold %d, invariant %q, errors %d", name, r.Oversold, r.Invariant, r.Errors)
		}
		if r.Stats.Held != r.Acknowledged || r.Stats.Capacity != eventTickets {
			t.Errorf("%s: stats %+v, acknowledged %d", name, r.Stats, r.Acknowledged)
		}
		if r.VsLock == nil {
			t.Errorf("%s: no ratio to lock", name)
		}
		if b := r.Batches; (r.Strategy == "batch") != (b != nil) || b != nil && (b.Count == 0 || b.MeanSize < 1) {
			t.Errorf("%s: batches %+v", name, b)
		}
	}
	for _, b := range want {
		if !seen[b] {
			t.Errorf("no run on %s", b)
		}
	}
	if len(rep.Scaling) != len(want)*2 {
		t.Errorf("scaling = %+v, want one per backend and strategy", rep.Scaling)
	}
}

// TestRunWrk runs the bench with wrk as the load generator, briefly: a
// separate process loads a fresh server per run, with a fresh visitor per
// request, and every run is verified.
func TestRunWrk(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		if os.Getenv("TICKETRUSH_REQUIRE_WRK") == "1" {
			t.Fatalf("wrk is not installed (%v), and TICKETRUSH_REQUIRE_WRK=1", err)
		}
		t.Skipf("wrk is not installed (%v); the test script installs it", err)
	}
	c := testConfig(t)
	c.Load = LoadWrk
	c.Clients = []int{16}
	rep, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Load != LoadWrk || !strings.HasPrefix(rep.LoadDetail, "wrk ") {
		t.Errorf("load = %q (%s), want wrk", rep.Load, rep.LoadDetail)
	}
	if !rep.OK {
		t.Errorf("problems: %q", rep.Problems)
	}
	if len(rep.Runs) != 2 {
		t.Fatalf("%d runs, want 2", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		name := r.Backend + " " + r.Strategy
		if r.ReservePerSec <= 0 || r.HealthzPerSec <= 0 || r.Requests <= 0 || r.P99Ms <= 0 {
			t.Errorf("%s: nothing measured: %+v", name, r)
		}
		if r.Errors != 0 || r.Oversold != 0 || r.Invariant != "ok" {
			t.Errorf("%s: errors %d (%s), oversold %d, invariant %q", name, r.Errors, r.ErrorSample, r.Oversold, r.Invariant)
		}
		// Every acknowledged reserve is held; at most one per connection
		// per wrk process was granted without its answer being read.
		if r.Stats.Held < r.Acknowledged || r.Stats.Held > r.Acknowledged+r.Abandoned || r.Abandoned != 2*16 {
			t.Errorf("%s: held %d, acknowledged %d, abandoned %d", name, r.Stats.Held, r.Acknowledged, r.Abandoned)
		}
		// The server's CPU is its own, and wrk's is measured apart.
		if r.ReserveCPUMicros <= 0 || r.LoadCPUMicros <= 0 {
			t.Errorf("%s: server %.0f µs, wrk %.0f µs per reserve", name, r.ReserveCPUMicros, r.LoadCPUMicros)
		}
	}
	var out bytes.Buffer
	rep.WriteMarkdown(&out)
	for _, want := range []string{"load generator: wrk", "server µs/reserve", "verified after each run"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, &out)
		}
	}
}

// TestPickLoad checks the choice of load generator: auto falls back to the
// in-process client and says why, an explicit wrk without wrk fails.
func TestPickLoad(t *testing.T) {
	r := &runner{c: Config{Load: LoadAuto, Wrk: filepath.Join(t.TempDir(), "no-wrk")}}
	kind, detail, err := r.pickLoad(t.TempDir())
	if err != nil || kind != LoadGo || r.wrk != nil || !strings.Contains(detail, "wrk not found") {
		t.Errorf("auto without wrk: %q, %q, %v", kind, detail, err)
	}
	r.c.Load = LoadWrk
	if _, _, err := r.pickLoad(t.TempDir()); err == nil || !strings.Contains(err.Error(), "apt-get install wrk") {
		t.Errorf("wrk without wrk: %v", err)
	}
	r.c.Load = "ab"
	if _, _, err := r.pickLoad(t.TempDir()); err == nil {
		t.Error("an unknown load generator was accepted")
	}
}

// TestWrkVisitorTokens checks that the script's tokens are UUIDs, as the
// server requires, and fresh for every request.
func TestWrkVisitorTokens(t *testing.T) {
	p := tokenPrefix()
	seen := map[string]bool{}
	for id := range 3 {
		for n := 1; n <= 3; n++ {
			tok := fmt.Sprintf("%s%04x%08x", p, id, n) // as wrk.lua builds it
			if _, err := ticketrush.ParseVisitorToken(tok); err != nil {
				t.Fatalf("%q: %v", tok, err)
			}
			if seen[tok] {
				t.Fatalf("%q twice", tok)
			}
			seen[tok] = true
		}
	}
	if !bytes.Contains(wrkScript, []byte(`string.format("%s%04x%08x", prefix, id, n)`)) {
		t.Error("wrk.lua no longer builds tokens as this test does")
	}
}

// TestRunPlan checks that the bench says up front how long it will load
// the servers, shows each phase, and keeps to what it said.
func TestRunPlan(t *testing.T) {
	c := testConfig(t)
	var progress bytes.Buffer
	c.Progress = &progress
	start := time.Now()
	if _, err := Run(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	out := progress.String()
	t.Log(out)
	// 1 backend × 1 client count × 2 strategies × 2 loads × (100ms + 300ms).
	if got := LoadTime(c, 1); got != 1600*time.Millisecond {
		t.Errorf("LoadTime = %v, want 1.6s", got)
	}
	for _, want := range []string{
		"2 runs (1 backends × 1 client counts × 2 strategies), each 2 loads (reserve, /healthz) of 100ms warm-up + 300ms measured: about 1.6s in all",
		"[1/2] sqlite lock, 8 clients: POST /api/reserve, 100ms warm-up + 300ms…",
		"[1/2] sqlite lock, 8 clients: GET /healthz, 100ms warm-up + 300ms…",
		"[2/2] sqlite batch, 8 clients: POST /api/reserve",
		"[2/2] sqlite batch, 8 clients: GET /healthz",
		"bench: done in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q", want)
		}
	}
	if plan := strings.Index(out, "about 1.6s"); plan < 0 || plan > strings.Index(out, "[1/2]") {
		t.Error("the plan does not come before the first phase")
	}
	// The loads take what was announced; set-up comes on top but must not
	// dwarf it (a slow shared machine gets ample slack).
	if elapsed < 1600*time.Millisecond || elapsed > 1600*time.Millisecond+15*time.Second {
		t.Errorf("ran %v, announced 1.6s of load", elapsed)
	}
}

func TestHistogram(t *testing.T) {
	h := newHistogram()
	// 1 µs … 100 ms, one each: the quantiles are known exactly.
	for i := 1; i <= 100_000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		got := h.quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d > 0.016 || d < -0.016 {
			t.Errorf("quantile(%v) = %v, want %v within 1.6 %%", c.q, got, c.want)
		}
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		i := histIndex(v)
		mid := histValue(i)
		if diff := float64(mid) - float64(v); diff > float64(v)/64+1 || -diff > float64(v)/64+1 {
			t.Fatalf("value %d in bucket %d read back as %d", v, i, mid)
		}
	}
	var empty histogram
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
}

// benchTableRows reads the markdown table: rows keyed by backend/strategy
// (the last one wins), cells keyed by header.
func benchTableRows(t *testing.T, out string) map[string]map[string]string {
	t.Helper()
	var header []string
	rows := map[string]map[string]string{}
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		switch {
		case header == nil:
			header = cells
		case strings.HasPrefix(cells[0], "-"):
		default:
			row := map[string]string{}
			for i, c := range cells {
				row[header[i]] = c
			}
			rows[row["backend"]+"/"+row["strategy"]] = row
		}
	}
	if header == nil {
		t.Fatalf("no table in:\n%s", out)
	}
	return rows
}

// benchTestPostgres returns the test PostgreSQL's URL, or "" (having
// logged why) when it does not answer; with TICKETRUSH_REQUIRE_SERVERS=1 it
// fails instead.
func benchTestPostgres(t *testing.T) string {
	t.Helper()
	u := envOr("TICKETRUSH_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err == nil {
		err = c.Ping(ctx)
		c.Close(ctx)
	}
	return benchReachable(t, "PostgreSQL", "TICKETRUSH_TEST_POSTGRES", u, err)
}

// benchTestRedis is benchTestPostgres for Redis.
func benchTestRedis(t *testing.T) string {
	t.Helper()
	u := envOr("TICKETRUSH_TEST_REDIS", "redis://127.0.0.1:6379/0")
	o, err := goredis.ParseURL(u)
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		c := goredis.NewClient(o)
		err = c.Ping(ctx).Err()
		c.Close()
	}
	return benchReachable(t, "Redis", "TICKETRUSH_TEST_REDIS", u, err)
}

func benchReachable(t *testing.T, what, env, u string, err error) string {
	t.Helper()
	switch {
	case err == nil:
		return u
	case os.Getenv("TICKETRUSH_REQUIRE_SERVERS") == "1":
		t.Fatalf("%s at %s does not answer: %v", what, u, err)
	default:
		t.Logf("%s at %s does not answer (%v): benching without it; set %s, or TICKETRUSH_REQUIRE_SERVERS=1 to fail instead", what, u, err, env)
	}
	return ""
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// tWriter sends the bench's progress to the test log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestReportMedians: with several rounds each run is compared with the lock
// run of its own round, and the medians are taken over the rounds, each
// ratio as the median of the rounds' ratios.
func TestReportMedians(t *testing.T) {
	run := func(round int, strategy string, reserves, healthz float64) *Result {
		return &Result{Round: round, Backend: "sqlite", Strategy: strategy, Clients: 256,
			ReservePerSec: reserves, HealthzPerSec: healthz, VsHealthz: reserves / healthz, Invariant: "ok"}
	}
	rep := &Report{Runs: []*Result{
		run(1, "lock", 100, 1000), run(1, "batch", 400, 1000),
		run(2, "lock", 50, 500), run(2, "batch", 300, 500), // a slow round: lock and batch alike
		run(3, "lock", 100, 1000), run(3, "batch", 450, 1000),
	}}
	rep.finish(Config{Clients: []int{256}})
	if *rep.Runs[3].VsLock != 6 {
		t.Errorf("round 2 batch × lock = %v, want 6 (its own round's lock)", *rep.Runs[3].VsLock)
	}
	if len(rep.Medians) != 2 {
		t.Fatalf("%d medians, want 2 (lock, batch)", len(rep.Medians))
	}
	m := rep.Medians[1]
	if m.Strategy != "batch" || m.Rounds != 3 || m.ReservePerSec != 400 || m.VsHealthz != 0.45 ||
		m.VsLock == nil || *m.VsLock != 4.5 || len(m.VsHealthzRounds) != 3 || m.VsHealthzRounds[1] != 0.6 {
		t.Errorf("batch medians = %+v, want 400/s, 0.45× /healthz (0.4, 0.6, 0.45), 4.5× lock", m)
	}
	var b strings.Builder
	rep.WriteMarkdown(&b)
	for _, want := range []string{"| round |", "medians over the rounds", "0.45× (0.40, 0.60, 0.45)", "4.5×"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}

	one := &Report{Runs: []*Result{run(0, "batch", 400, 1000)}}
	one.finish(Config{Clients: []int{256}})
	b.Reset()
	one.WriteMarkdown(&b)
	if len(one.Medians) != 0 || strings.Contains(b.String(), "round") {
		t.Errorf("one round: medians %+v, report:\n%s", one.Medians, b.String())
	}
}
