package bench

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ticketrush/ticketrush"
)

// The waiting-room bench (ticketrush bench --queue) measures, on one fresh
// server per backend and client count, under wrk:
//
//   - POST /api/reserve with the batch strategy, one ticket a fresh visitor:
//     the reserves/s a join must at least match;
//   - POST /api/events/{id}/queue, a fresh visitor per join, on an event
//     whose waiting room is open (sale started, challenge_bits 0, admission
//     running as it would);
//   - GET /api/events/{id}/queue for visitors who joined already, a pool of
//     them polled in turn;
//   - GET /healthz, which a poll should come within 80% of;
//   - a crowd: Crowd fresh visitors joining one event as fast as the
//     clients can send them, timed until the server holds every one of
//     them in its queue.
//
// Rate limit and join quota are off (every request comes from one
// address); only 2xx answers count.

//go:embed queue.lua
var queueScript []byte

// QueueConfig says what a waiting-room bench measures. Its Config names
// the backends, client counts, durations and wrk as for the reserve bench;
// Strategies is not used (reserves are measured with the batch strategy,
// the one joins are group-committed like).
type QueueConfig struct {
	Config
	// Pool is how many joined visitors the poll load takes turns with
	// (default 10,000).
	Pool int
	// Crowd is how many visitors the crowd run joins to one event
	// (0 means DefaultCrowd; negative skips it); CrowdWithin is its target
	// (default one minute).
	Crowd       int
	CrowdWithin time.Duration
	// Config.Rounds repeats every run, and the targets are judged on each
	// figure's median over the rounds: runs on a 2-core machine differ by
	// ±20%. The crowd runs in the first round.
}

// Targets of the waiting room under wrk.
const (
	// JoinVsReserveTarget: joins/s at least the same backend's batch
	// reserves/s in the same run.
	JoinVsReserveTarget = 1.0
	// PollVsHealthzTarget: polls/s at least this share of /healthz/s.
	PollVsHealthzTarget = 0.8
	// DefaultCrowd is the crowd run's size, DefaultCrowdWithin its target.
	DefaultCrowd       = 100_000
	DefaultCrowdWithin = time.Minute
	// DefaultPool is how many joined visitors the poll load uses.
	DefaultPool = 10_000
)

// QueueReport is what bench --queue prints, as a table or as JSON.
type QueueReport struct {
	Machine         Machine        `json:"machine"`
	DurationSeconds float64        `json:"duration_seconds"`
	WarmupSeconds   float64        `json:"warmup_seconds"`
	LoadDetail      string         `json:"load_detail"`
	Backends        []Setup        `json:"backends"`
	Runs            []*QueueResult `json:"runs"`
	// Medians has one result per backend and client count: the median
	// of each figure over the rounds (the run itself with one round). The
	// targets are judged on it.
	Medians []*QueueResult `json:"medians"`
	// OK is true when every check held and every target was met;
	// Problems lists broken checks (errors, wrong counts), Missed the
	// targets not met.
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	Missed   []string `json:"missed_targets,omitempty"`
}

// QueueResult is one backend × client count.
type QueueResult struct {
	Backend string `json:"backend"`
	Clients int    `json:"clients"`
	// Round is the run's round (1…Rounds); 0 in Medians.
	Round int `json:"round,omitempty"`

	Reserve QueueLoad `json:"reserve"`
	Join    QueueLoad `json:"join"`
	Poll    QueueLoad `json:"poll"`
	Healthz QueueLoad `json:"healthz"`
	// JoinVsReserve is joins/s over batch reserves/s; PollVsHealthz
	// polls/s over /healthz/s.
	JoinVsReserve float64 `json:"join_vs_reserve"`
	PollVsHealthz float64 `json:"poll_vs_healthz"`
	// Queued is the join event's queue length (its tail) afterwards, and
	// PoolJoined the visitors the poll load used.
	Queued     int64 `json:"queued"`
	PoolJoined int   `json:"pool_joined"`

	Crowd *CrowdResult `json:"crowd,omitempty"`
}

// QueueLoad is one measured load.
type QueueLoad struct {
	PerSec float64 `json:"per_sec"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	// Requests counts the measured requests, OK those answered 2xx;
	// Errors every request of the load (warm-up included) not answered
	// 2xx, Errors5xx the 5xx among them, Failed those with no answer.
	Requests  int64   `json:"requests"`
	OK        int64   `json:"ok"`
	Errors    int64   `json:"errors"`
	Errors5xx int64   `json:"errors_5xx"`
	Failed    int64   `json:"failed"`
	Sample    string  `json:"error_sample,omitempty"`
	CPUMicros float64 `json:"server_cpu_us"`
	abandoned int64
}

// CrowdResult is the crowd run: Visitors fresh visitors joining one event.
type CrowdResult struct {
	Visitors int `json:"visitors"`
	// Seconds runs from the first join sent until the server's queue held
	// Visitors entries; PerSec is Visitors over it. The clients keep
	// joining until then (and a moment after, to read the answers).
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"per_sec"`
	// Joined counts the joins answered 2xx (Visitors or a few more),
	// Errors the other answers and requests with no answer; Queued the
	// event's queue length afterwards.
	Joined int64   `json:"joined"`
	Errors int64   `json:"errors"`
	Sample string  `json:"error_sample,omitempty"`
	Queued int64   `json:"queued"`
	P99Ms  float64 `json:"p99_ms"`
	Within float64 `json:"target_seconds"`
}

// RunQueue measures the waiting room on every backend c names, one fresh
// server per backend and client count.
func RunQueue(ctx context.Context, c QueueConfig) (*QueueReport, error) {
	if c.Serve == nil {
		return nil, errors.New("bench: no server to measure (Config.Serve)")
	}
	if c.Pool <= 0 {
		c.Pool = DefaultPool
	}
	if c.Crowd == 0 {
		c.Crowd = DefaultCrowd
	}
	if c.CrowdWithin <= 0 {
		c.CrowdWithin = DefaultCrowdWithin
	}
	if c.Rounds < 1 {
		c.Rounds = 1
	}
	r := &runner{c: c.Config, progress: c.Progress}
	if r.progress == nil {
		r.progress = io.Discard
	}
	dir, err := os.MkdirTemp("", "ticketrush-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if c.Load == LoadGo {
		return nil, errors.New("bench --queue: needs wrk (--load wrk or auto): every join is a fresh visitor and every poll a joined one, which the in-process client does not do")
	}
	r.c.Load = LoadWrk
	_, detail, err := r.pickLoad(dir)
	if err != nil {
		return nil, fmt.Errorf("bench --queue: %w", err)
	}
	script := filepath.Join(dir, "ticketrush-queue.lua")
	if err := os.WriteFile(script, withReport(queueScript), 0o600); err != nil {
		return nil, err
	}
	qw := &queueWrk{wrkTool: r.wrk, queueScript: script}
	rep := &QueueReport{Machine: machine(), DurationSeconds: c.Duration.Seconds(), WarmupSeconds: c.Warmup.Seconds(), LoadDetail: detail}

	var opens []func(context.Context) (*backend, error)
	if c.SQLite {
		opens = append(opens, benchSQLite)
	}
	if c.Postgres != "" {
		opens = append(opens, func(ctx context.Context) (*backend, error) {
			return benchPostgres(ctx, c.Postgres, c.PostgresConns)
		})
	}
	if c.Redis != "" {
		opens = append(opens, func(ctx context.Context) (*backend, error) {
			return benchRedis(ctx, c.Redis)
		})
	}
	runs := c.Rounds * len(opens) * len(c.Clients)
	loads := time.Duration(runs*4) * (c.Warmup + c.Duration)
	fmt.Fprintf(r.progress, "bench --queue: load generator: %s\n", detail)
	fmt.Fprintf(r.progress, "bench --queue: %d runs (%d rounds × %d backends × %d client counts), each 4 loads (reserve, join, poll, /healthz) of %s warm-up + %s measured, then in the first round a crowd of %d joins: about %s under load plus the crowds\n",
		runs, c.Rounds, len(opens), len(c.Clients), c.Warmup, c.Duration, c.Crowd, loads)
	start := time.Now()
	for round := 1; round <= c.Rounds; round++ {
		rc := c
		if round > 1 {
			rc.Crowd = -1
		}
		err := eachBackend(ctx, opens, round, &rep.Backends, r.progress, "bench --queue", func(b *backend) error {
			for _, clients := range c.Clients {
				if c.Rounds > 1 {
					fmt.Fprintf(r.progress, "bench --queue: round %d of %d\n", round, c.Rounds)
				}
				res, err := r.queueRun(ctx, qw, &rc, b, clients)
				if err != nil {
					return fmt.Errorf("bench --queue %s %d clients: %w", b.name, clients, err)
				}
				res.Round = round
				rep.Runs = append(rep.Runs, res)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(r.progress, "bench --queue: done in %s\n", time.Since(start).Round(100*time.Millisecond))
	rep.finish()
	return rep, nil
}

// queueRun starts a fresh server on b's store and measures it.
func (r *runner) queueRun(ctx context.Context, qw *queueWrk, c *QueueConfig, b *backend, clients int) (_ *QueueResult, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	token := randomHex(16)
	logs := &headWriter{max: 8 << 10}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	set := ServerSettings{
		Strategy: "batch", AdminToken: token, Hold: ticketrush.DefaultHold, SweepInterval: time.Second,
		MaxBatch: 1024, MaxQueue: 8192, Timeout: 30 * time.Second, RateLimit: 0,
	}
	sctx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- c.Serve(sctx, b.store, b.name, ln, set, log) }()
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer func() {
		tr.CloseIdleConnections()
		stop()
		if serr := <-errc; serr != nil && err == nil {
			err = fmt.Errorf("server: %w", serr)
		}
	}()
	base := "http://" + ln.Addr().String()
	res := &QueueResult{Backend: b.name, Clients: clients}
	phase := func(what string) {
		fmt.Fprintf(r.progress, "bench --queue: %s, %d clients: %s…\n", b.name, clients, what)
	}
	profile := func(what string) string {
		if c.CPUProfile == "" {
			return ""
		}
		return fmt.Sprintf("%s-%s-%d-%s.pprof", c.CPUProfile, b.name, clients, what)
	}

	// Reserves, batch strategy, as the reserve bench runs them.
	evs, err := createEvents(ctx, tr, base, token, 1, 0)
	if err != nil {
		return nil, err
	}
	ev := evs[0]
	phase(fmt.Sprintf("POST /api/reserve, %s warm-up + %s", c.Warmup, c.Duration))
	rl, err := runWrkLoad(ctx, qw.wrkTool, &loadTarget{
		method: http.MethodPost, url: base + "/api/reserve",
		body:    []byte(`{"event_id":` + strconv.FormatInt(ev, 10) + `,"amount":1}`),
		profile: profile("reserve"),
	}, clients, c.Warmup, c.Duration)
	if err != nil {
		return nil, err
	}
	res.Reserve = queueLoad(rl)
	st, err := benchEventStats(ctx, tr, base, token, ev)
	if err != nil {
		return nil, err
	}
	if st.Capacity != st.Available+st.Held+st.Purchased || st.Held < rl.ok || st.Held > rl.ok+rl.failed+rl.status5xx+rl.abandoned {
		return nil, fmt.Errorf("reserve event: stats %+v after %d acknowledged", *st, rl.ok)
	}

	// Joins: a fresh visitor each.
	room, err := queueCreateRoom(ctx, tr, base, token, "bench joins")
	if err != nil {
		return nil, err
	}
	queuePath := base + "/api/events/" + strconv.FormatInt(room, 10) + "/queue"
	phase(fmt.Sprintf("POST /api/events/%d/queue, a fresh visitor each, %s warm-up + %s", room, c.Warmup, c.Duration))
	jl, err := qw.load(ctx, queuePath, "join", tokenPrefix(), 0, clients, c.Warmup, c.Duration, profile("join"))
	if err != nil {
		return nil, err
	}
	res.Join = queueLoad(jl)
	qs, err := queueStats(ctx, tr, base, token, room)
	if err != nil {
		return nil, err
	}
	res.Queued = qs.Tail
	if qs.Tail < jl.ok || qs.Tail > jl.ok+jl.failed+jl.status5xx+jl.abandoned {
		return nil, fmt.Errorf("join event: the queue holds %d visitors after %d joins acknowledged (%d in doubt)",
			qs.Tail, jl.ok, jl.failed+jl.status5xx+jl.abandoned)
	}

	// Polls: visitors who joined, in turn.
	prefix := tokenPrefix()
	phase(fmt.Sprintf("joining a pool of %d visitors", c.Pool))
	if err := queueJoinPool(ctx, tr, queuePath, prefix, c.Pool); err != nil {
		return nil, err
	}
	res.PoolJoined = c.Pool
	phase(fmt.Sprintf("GET /api/events/%d/queue as %d joined visitors, %s warm-up + %s", room, c.Pool, c.Warmup, c.Duration))
	pl, err := qw.load(ctx, queuePath, "poll", prefix, c.Pool, clients, c.Warmup, c.Duration, profile("poll"))
	if err != nil {
		return nil, err
	}
	res.Poll = queueLoad(pl)

	phase(fmt.Sprintf("GET /healthz, %s warm-up + %s", c.Warmup, c.Duration))
	hl, err := runWrkLoad(ctx, qw.wrkTool, &loadTarget{method: http.MethodGet, url: base + "/healthz", profile: profile("healthz")},
		clients, c.Warmup, c.Duration)
	if err != nil {
		return nil, err
	}
	res.Healthz = queueLoad(hl)
	if res.Reserve.PerSec > 0 {
		res.JoinVsReserve = res.Join.PerSec / res.Reserve.PerSec
	}
	if res.Healthz.PerSec > 0 {
		res.PollVsHealthz = res.Poll.PerSec / res.Healthz.PerSec
	}

	if c.Crowd > 0 {
		crowd, err := queueCreateRoom(ctx, tr, base, token, "bench crowd")
		if err != nil {
			return nil, err
		}
		phase(fmt.Sprintf("a crowd of %d visitors joining event %d (target: within %s)", c.Crowd, crowd, c.CrowdWithin))
		if res.Crowd, err = qw.crowd(ctx, tr, base, token, crowd, c.Crowd, clients, c.CrowdWithin); err != nil {
			return nil, err
		}
	}
	for _, l := range []*QueueLoad{&res.Reserve, &res.Join, &res.Poll, &res.Healthz} {
		if (l.Errors5xx > 0 || l.Failed > 0) && l.Sample != "" {
			if first, _, _ := strings.Cut(logs.String(), "\n"); first != "" {
				l.Sample += "; server log: " + first
			}
		}
	}
	fmt.Fprintf(r.progress, "bench --queue: %s, %d clients: %.0f reserves/s, %.0f joins/s (%.2f×), %.0f polls/s, %.0f /healthz/s (%.2f×)\n",
		b.name, clients, res.Reserve.PerSec, res.Join.PerSec, res.JoinVsReserve, res.Poll.PerSec, res.Healthz.PerSec, res.PollVsHealthz)
	return res, nil
}

func queueLoad(l *loadResult) QueueLoad {
	return QueueLoad{
		PerSec: l.rate(), P50Ms: l.p50.Seconds() * 1000, P99Ms: l.p99.Seconds() * 1000,
		Requests: l.measured, OK: l.measuredOK, Errors: l.other + l.failed, Errors5xx: l.status5xx,
		Failed: l.failed, Sample: l.sample, CPUMicros: l.cpuPerRequest(), abandoned: l.abandoned,
	}
}

// queueCreateRoom creates an event on sale now with an open waiting room:
// no challenge, the default admission rate, stock to spare.
func queueCreateRoom(ctx context.Context, tr http.RoundTripper, base, token, name string) (int64, error) {
	body := fmt.Sprintf(`{"name":%q,"ticket_quantity":%d,"hidden":true,"waiting_room":{"admit_per_minute":%d,"pass_seconds":60,"challenge_bits":0}}`,
		name, eventTickets, 600)
	var ev struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if err := benchAdmin(ctx, tr, http.MethodPost, base+"/api/admin/events", token, body, http.StatusCreated, &ev); err != nil {
		return 0, fmt.Errorf("create a waiting-room event: %w", err)
	}
	return ev.Data.ID, nil
}

// wireQueueStats is the queue part of the admin stats.
type wireQueueStats struct {
	Tail     int64 `json:"tail"`
	Waiting  int64 `json:"waiting"`
	Admitted int64 `json:"admitted"`
}

func queueStats(ctx context.Context, tr http.RoundTripper, base, token string, id int64) (*wireQueueStats, error) {
	var st struct {
		Data struct {
			Queue *wireQueueStats `json:"queue"`
		} `json:"data"`
	}
	u := base + "/api/admin/events/" + strconv.FormatInt(id, 10) + "/stats"
	if err := benchAdmin(ctx, tr, http.MethodGet, u, token, "", http.StatusOK, &st); err != nil {
		return nil, fmt.Errorf("event stats: %w", err)
	}
	if st.Data.Queue == nil {
		return nil, fmt.Errorf("event %d stats: no queue figures", id)
	}
	return st.Data.Queue, nil
}

// queueJoinPool joins the visitors prefix+"0000"+%08x for 1..n, the tokens
// the poll load uses, from 64 goroutines.
func queueJoinPool(ctx context.Context, tr http.RoundTripper, url, prefix string, n int) error {
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
				if err != nil {
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Visitor-Token", fmt.Sprintf("%s0000%08x", prefix, i))
				resp, err := hc.Do(req)
				if err == nil {
					b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						err = fmt.Errorf("join the poll pool: status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// queueWrk runs wrk with the waiting-room script.
type queueWrk struct {
	*wrkTool
	queueScript string
}

// run drives clients connections at url with the queue script for at most
// d, or until until (when set) returns true, asked every 250 ms: each ask
// reads the queue's figures, which the server pays for too.
func (w *queueWrk) run(ctx context.Context, url string, args []string, clients int, d time.Duration, until func() bool) (*wrkRun, time.Duration, error) {
	threads := max(1, min(w.threads, clients))
	limit := int64(d/time.Second) + 60
	argv := append([]string{
		"-t", strconv.Itoa(threads), "-c", strconv.Itoa(clients),
		"-d", strconv.FormatInt(limit, 10) + "s", "--timeout", "30s",
		"-s", w.queueScript, url, "--"}, append(args, strconv.Itoa(threads))...)
	cmd := exec.CommandContext(ctx, w.path, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("wrk: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var took time.Duration
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	var err error
wait:
	for {
		select {
		case err = <-exited:
			break wait
		case <-deadline.C:
			took = time.Since(start)
			cmd.Process.Signal(syscall.SIGINT)
			err = <-exited
			break wait
		case <-tick.C:
			if until != nil && until() {
				took = time.Since(start)
				// Let the answers of the last joins be read before wrk
				// stops and reports.
				time.Sleep(500 * time.Millisecond)
				cmd.Process.Signal(syscall.SIGINT)
				err = <-exited
				break wait
			}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, fmt.Errorf("wrk %s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	rw, err := parseWrk(stdout.Bytes())
	if err != nil {
		return nil, 0, fmt.Errorf("wrk: %w\n%s%s", err, &stdout, &stderr)
	}
	rw.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return rw, took, nil
}

// load is a warm-up run, then a measured one, of the queue script in mode.
func (w *queueWrk) load(ctx context.Context, url, mode, prefix string, pool, clients int, warmup, d time.Duration, profile string) (*loadResult, error) {
	res := &loadResult{}
	add := func(r *wrkRun) {
		res.ok += r.ok
		res.other += r.other
		res.status5xx += r.status5xx
		res.failed += r.socketErrors
		res.abandoned += int64(clients)
		if res.sample == "" {
			res.sample = r.sample
		}
	}
	args := func() []string {
		if mode == "join" {
			// Each wrk process gets its own prefix: its counters start
			// at 1 again.
			return []string{mode, tokenPrefix(), "0"}
		}
		return []string{mode, prefix, strconv.Itoa(pool)}
	}
	if warmup > 0 {
		r, _, err := w.run(ctx, url, args(), clients, warmup, nil)
		if err != nil {
			return nil, err
		}
		add(r)
	}
	stopProfile := func() {}
	if profile != "" {
		var err error
		if stopProfile, err = startProfile(profile); err != nil {
			return nil, err
		}
	}
	cpu0 := processCPU()
	r, _, err := w.run(ctx, url, args(), clients, d, nil)
	res.cpu = processCPU() - cpu0
	stopProfile()
	if err != nil {
		return nil, err
	}
	add(r)
	res.elapsed = r.duration
	res.measured, res.measuredOK = r.requests, r.ok
	res.loadCPU = r.cpu
	res.p50, res.p99 = r.p50, r.p99
	return res, nil
}

// crowd joins fresh visitors to event id from clients connections as fast
// as they go, and times it until the server's queue holds n of them; the
// joins sent meanwhile are answered and counted before wrk stops.
func (w *queueWrk) crowd(ctx context.Context, tr http.RoundTripper, base, token string, id int64, n, clients int, within time.Duration) (*CrowdResult, error) {
	url := base + "/api/events/" + strconv.FormatInt(id, 10) + "/queue"
	until := func() bool {
		st, err := queueStats(ctx, tr, base, token, id)
		return err == nil && st.Tail >= int64(n)
	}
	// Give up well after the target: a slow crowd is measured, not cut.
	limit := max(3*within, within+time.Minute)
	r, took, err := w.run(ctx, url, []string{"join", tokenPrefix(), "0"}, clients, limit, until)
	if err != nil {
		return nil, err
	}
	st, err := queueStats(ctx, tr, base, token, id)
	if err != nil {
		return nil, err
	}
	res := &CrowdResult{
		Visitors: n, Seconds: took.Seconds(), Joined: r.ok, Errors: r.other + r.socketErrors,
		Sample: r.sample, Queued: st.Tail, P99Ms: r.p99.Seconds() * 1000, Within: within.Seconds(),
	}
	if took > 0 {
		res.PerSec = float64(n) / took.Seconds()
	}
	return res, nil
}

// finish computes the medians and fills the verdict: errors in any run
// are problems, the throughput targets are judged on the medians.
func (rep *QueueReport) finish() {
	// The queue bench runs the batch strategy only.
	keyOf := func(r *QueueResult) runKey { return runKey{backend: r.Backend, clients: r.Clients} }
	order, groups := groupRounds(rep.Runs, keyOf)
	rep.Medians = nil
	for _, k := range order {
		rs := groups[k]
		med := func(f func(*QueueResult) float64) float64 { return medianOf(rs, f) }
		medLoad := func(f func(*QueueResult) *QueueLoad) QueueLoad {
			return QueueLoad{
				PerSec:    med(func(r *QueueResult) float64 { return f(r).PerSec }),
				P50Ms:     med(func(r *QueueResult) float64 { return f(r).P50Ms }),
				P99Ms:     med(func(r *QueueResult) float64 { return f(r).P99Ms }),
				CPUMicros: med(func(r *QueueResult) float64 { return f(r).CPUMicros }),
			}
		}
		m := &QueueResult{
			Backend:       k.backend,
			Clients:       k.clients,
			Reserve:       medLoad(func(r *QueueResult) *QueueLoad { return &r.Reserve }),
			Join:          medLoad(func(r *QueueResult) *QueueLoad { return &r.Join }),
			Poll:          medLoad(func(r *QueueResult) *QueueLoad { return &r.Poll }),
			Healthz:       medLoad(func(r *QueueResult) *QueueLoad { return &r.Healthz }),
			JoinVsReserve: med(func(r *QueueResult) float64 { return r.JoinVsReserve }),
			PollVsHealthz: med(func(r *QueueResult) float64 { return r.PollVsHealthz }),
		}
		if len(rs) == 1 {
			m = rs[0]
		}
		rep.Medians = append(rep.Medians, m)
		name := fmt.Sprintf("%s at %d clients", k.backend, k.clients)
		if len(rs) > 1 {
			name += fmt.Sprintf(" (median of %d rounds)", len(rs))
		}
		if m.JoinVsReserve < JoinVsReserveTarget {
			rep.Missed = append(rep.Missed, fmt.Sprintf("%s: joins/s %.2f× batch reserves/s (%.0f vs %.0f)", name, m.JoinVsReserve, m.Join.PerSec, m.Reserve.PerSec))
		}
		if m.PollVsHealthz < PollVsHealthzTarget {
			rep.Missed = append(rep.Missed, fmt.Sprintf("%s: polls/s %.2f× /healthz/s (%.0f vs %.0f), target %.1f×", name, m.PollVsHealthz, m.Poll.PerSec, m.Healthz.PerSec, PollVsHealthzTarget))
		}
	}
	for _, r := range rep.Runs {
		name := fmt.Sprintf("%s at %d clients", r.Backend, r.Clients)
		if r.Round > 0 && len(groups[keyOf(r)]) > 1 {
			name += fmt.Sprintf(" round %d", r.Round)
		}
		for _, l := range []struct {
			what string
			l    *QueueLoad
		}{{"reserve", &r.Reserve}, {"join", &r.Join}, {"poll", &r.Poll}, {"/healthz", &r.Healthz}} {
			if l.l.Errors > 0 {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %d %s requests not answered 2xx (%d 5xx, %d no answer): %s",
					name, l.l.Errors, l.what, l.l.Errors5xx, l.l.Failed, l.l.Sample))
			}
		}
		if c := r.Crowd; c != nil {
			// wrk abandons at most one join per connection when it stops:
			// those may be queued unanswered.
			if c.Errors > 0 || c.Queued < int64(c.Visitors) || c.Queued < c.Joined || c.Queued > c.Joined+int64(r.Clients) {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: crowd of %d: %d joins answered 2xx, %d errors, the queue holds %d: %s",
					name, c.Visitors, c.Joined, c.Errors, c.Queued, c.Sample))
			}
			if c.Seconds > c.Within {
				rep.Missed = append(rep.Missed, fmt.Sprintf("%s: a crowd of %d took %.1f s (target %.0f s)", name, c.Visitors, c.Seconds, c.Within))
			}
		}
	}
	rep.OK = len(rep.Problems) == 0 && len(rep.Missed) == 0
}

// WriteMarkdown prints the report as Markdown tables.
func (rep *QueueReport) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Waiting room under load: %s\n", rep.Machine)
	fmt.Fprintf(&b, "Load: %s; each load %.0f s warm-up + %.0f s measured; rate limit and join quota off; challenge_bits 0\n\n",
		rep.LoadDetail, rep.WarmupSeconds, rep.DurationSeconds)
	for _, s := range rep.Backends {
		fmt.Fprintf(&b, "- %s: %s\n", s.Backend, s.Detail)
	}
	table := func(rs []*QueueResult, round bool) {
		col, sep := "", ""
		if round {
			col, sep = " round |", "---:|"
		}
		fmt.Fprintf(&b, "\n| backend | clients |%s batch reserves/s | joins/s | joins ÷ reserves | join p99 | polls/s | /healthz/s | polls ÷ /healthz | poll p99 |\n", col)
		b.WriteString("|---|---:|" + sep + "---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			cell := ""
			if round {
				cell = fmt.Sprintf(" %d |", r.Round)
			}
			fmt.Fprintf(&b, "| %s | %d |%s %.0f | %.0f | %.2f | %s | %.0f | %.0f | %.2f | %s |\n",
				r.Backend, r.Clients, cell, r.Reserve.PerSec, r.Join.PerSec, r.JoinVsReserve, fmtMs(r.Join.P99Ms),
				r.Poll.PerSec, r.Healthz.PerSec, r.PollVsHealthz, fmtMs(r.Poll.P99Ms))
		}
	}
	if len(rep.Medians) == len(rep.Runs) {
		table(rep.Runs, false)
	} else {
		b.WriteString("\nMedians over the rounds (the targets are judged on these):\n")
		table(rep.Medians, false)
		b.WriteString("\nEach round:\n")
		table(rep.Runs, true)
	}
	crowds := false
	for _, r := range rep.Runs {
		if r.Crowd != nil {
			if !crowds {
				b.WriteString("\n| backend | clients | visitors | seconds | joins/s | joined | errors | queued | p99 |\n")
				b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
				crowds = true
			}
			c := r.Crowd
			fmt.Fprintf(&b, "| %s | %d | %d | %.1f | %.0f | %d | %d | %d | %s |\n",
				r.Backend, r.Clients, c.Visitors, c.Seconds, c.PerSec, c.Joined, c.Errors, c.Queued, fmtMs(c.P99Ms))
		}
	}
	fmt.Fprintf(&b, "\nTargets: joins/s ≥ %.0f× batch reserves/s; polls/s ≥ %.1f× /healthz/s; a crowd joins within its target, every join answered 2xx and queued.\n",
		JoinVsReserveTarget, PollVsHealthzTarget)
	for _, p := range rep.Problems {
		fmt.Fprintf(&b, "PROBLEM: %s\n", p)
	}
	for _, p := range rep.Missed {
		fmt.Fprintf(&b, "MISSED: %s\n", p)
	}
	if rep.OK {
		b.WriteString("OK: every target met, no errors\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
