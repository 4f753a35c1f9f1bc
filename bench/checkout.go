package bench

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ticketrush/ticketrush"
)

// The checkout bench (ticketrush bench --checkout) measures, on one fresh
// server per backend, strategy, client count and round, under wrk:
//
//   - POST /api/reserve, one ticket a fresh visitor, on one hot event: the
//     reserves/s purchases are compared with;
//   - POST /api/purchase, each request its own hold and its own visitor:
//     the holds are made first, on a second event, straight through the
//     store (ReserveBatch), enough for the measured rate;
//   - POST /api/reserve again, on the tables the holds and sales grew:
//     purchases/s is compared with the mean of the two reserve loads;
//   - GET /api/events with CheckoutEvents events, and GET /api/events/{id}
//     of the hot event (what a crowd refreshing the page sends);
//   - GET /healthz, the ceiling the reads are compared with.
//
// Rounds repeat the whole set, each backend in turn, so that the runs of
// one backend are interleaved with the others' on a noisy machine; the
// report gives each round and the medians.

//go:embed checkout.lua
var checkoutScript []byte

//go:embed reads.lua
var readsScript []byte

// CheckoutEvents is how many events the read loads list.
const CheckoutEvents = 20

// Targets of checkout and reads.
const (
	// PurchaseVsReserveTarget: purchases/s at least this share of the
	// same server's reserves/s.
	PurchaseVsReserveTarget = 0.8
	// ReadVsHealthzTarget: each read at least this share of /healthz/s.
	ReadVsHealthzTarget = 0.7
)

// CheckoutConfig says what a checkout bench measures. Its Config names the
// backends, strategies, client counts, durations and wrk as for the
// reserve bench; the checkout bench needs wrk.
type CheckoutConfig struct {
	Config
}

// CheckoutReport is what bench --checkout prints, as a table or as JSON.
type CheckoutReport struct {
	Machine         Machine           `json:"machine"`
	DurationSeconds float64           `json:"duration_seconds"`
	WarmupSeconds   float64           `json:"warmup_seconds"`
	LoadDetail      string            `json:"load_detail"`
	Backends        []Setup           `json:"backends"`
	Runs            []*CheckoutResult `json:"runs"`
	// Medians has one line per backend × strategy × client count: the
	// median of each figure over the rounds.
	Medians []*CheckoutResult `json:"medians"`
	// OK is true when every check held; Problems lists the broken ones
	// (5xx, failed requests, stats that do not add up), Missed the
	// targets the medians did not reach.
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	Missed   []string `json:"missed_targets,omitempty"`
}

// CheckoutResult is one run (or, in Medians, the medians of its rounds).
type CheckoutResult struct {
	Backend  string `json:"backend"`
	Strategy string `json:"strategy"`
	Clients  int    `json:"clients"`
	Round    int    `json:"round,omitempty"`

	// Reserve is measured before the holds are made and ReserveAfter after
	// the purchases, on the grown tables: purchases are compared with
	// their mean, the reserves the same server did around them.
	Reserve      CheckoutLoad `json:"reserve"`
	Purchase     CheckoutLoad `json:"purchase"`
	ReserveAfter CheckoutLoad `json:"reserve_after"`
	List         CheckoutLoad `json:"list"`
	Get          CheckoutLoad `json:"get"`
	Healthz      CheckoutLoad `json:"healthz"`

	PurchaseVsReserve float64 `json:"purchase_vs_reserve"`
	ListVsHealthz     float64 `json:"list_vs_healthz"`
	GetVsHealthz      float64 `json:"get_vs_healthz"`

	// Holds is how many holds were made for the purchase load; Stats the
	// purchase event's stats afterwards.
	Holds     int    `json:"holds,omitempty"`
	Stats     Stats  `json:"stats"`
	Invariant string `json:"invariant,omitempty"`
}

// CheckoutLoad is one measured load.
type CheckoutLoad struct {
	PerSec float64 `json:"per_sec"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	// CPUMicros is the server process's CPU time per measured request.
	CPUMicros float64 `json:"cpu_us"`
	// Errors counts every answer but the wanted 2xx, and every request
	// without one, warm-up included; Errors5xx the 5xx among them.
	Errors    int64  `json:"errors"`
	Errors5xx int64  `json:"errors_5xx"`
	Sample    string `json:"error_sample,omitempty"`
}

func checkoutLoad(r *loadResult) CheckoutLoad {
	return CheckoutLoad{
		PerSec:    r.rate(),
		P50Ms:     r.p50.Seconds() * 1000,
		P99Ms:     r.p99.Seconds() * 1000,
		CPUMicros: r.cpuPerRequest(),
		Errors:    r.other + r.failed,
		Errors5xx: r.status5xx,
		Sample:    r.sample,
	}
}

// RunCheckout runs the checkout bench.
func RunCheckout(ctx context.Context, c CheckoutConfig) (*CheckoutReport, error) {
	if c.Serve == nil {
		return nil, errors.New("bench: no server to measure (Config.Serve)")
	}
	if c.Rounds < 1 {
		c.Rounds = 1
	}
	progress := c.Progress
	if progress == nil {
		progress = io.Discard
	}
	rep := &CheckoutReport{Machine: machine(), DurationSeconds: c.Duration.Seconds(), WarmupSeconds: c.Warmup.Seconds()}
	dir, err := os.MkdirTemp("", "ticketrush-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	threads := c.WrkThreads
	if threads <= 0 {
		threads = DefaultWrkThreads
	}
	if c.Load == LoadGo {
		return nil, errors.New("bench: the checkout bench drives its loads with wrk only")
	}
	w, err := findWrk(c.Wrk, threads, dir)
	if err != nil {
		return nil, fmt.Errorf("bench --checkout: %w", err)
	}
	cw := *w
	cw.script = filepath.Join(dir, "ticketrush-checkout.lua")
	if err := os.WriteFile(cw.script, withReport(checkoutScript), 0o600); err != nil {
		return nil, err
	}
	rw := *w
	rw.script = filepath.Join(dir, "ticketrush-reads.lua")
	if err := os.WriteFile(rw.script, readsScript, 0o600); err != nil {
		return nil, err
	}
	rep.LoadDetail = fmt.Sprintf("%s (%s), a separate process with %d threads; reserves and purchases count only 2xx answers, reads and /healthz every answer below 400 (their script reads no bodies)", w.version, w.path, threads)
	fmt.Fprintf(progress, "bench: load generator: %s\n", rep.LoadDetail)

	var backends []*backend
	defer func() {
		for _, b := range backends {
			if derr := b.drop(); derr != nil {
				fmt.Fprintf(progress, "bench: removing the %s bench database: %v\n", b.name, derr)
			}
		}
	}()
	if c.SQLite {
		b, err := benchSQLite(ctx)
		if err != nil {
			return nil, err
		}
		backends = append(backends, b)
	}
	if c.Postgres != "" {
		b, err := benchPostgres(ctx, c.Postgres, c.PostgresConns)
		if err != nil {
			return nil, err
		}
		backends = append(backends, b)
	}
	if c.Redis != "" {
		b, err := benchRedis(ctx, c.Redis)
		if err != nil {
			return nil, err
		}
		backends = append(backends, b)
	}
	for _, b := range backends {
		rep.Backends = append(rep.Backends, Setup{Backend: b.name, Detail: b.detail})
	}
	runs := c.Rounds * len(backends) * len(c.Strategies) * len(c.Clients)
	fmt.Fprintf(progress, "bench: %d checkout runs (%d rounds × %d backends × %d strategies × %d client counts), each 6 loads of %s warm-up + %s measured: about %s under load, plus making the holds\n",
		runs, c.Rounds, len(backends), len(c.Strategies), len(c.Clients), c.Warmup, c.Duration,
		time.Duration(runs*6)*(c.Warmup+c.Duration))
	n := 0
	for round := 1; round <= c.Rounds; round++ {
		for _, b := range backends {
			for _, strategy := range c.Strategies {
				for _, clients := range c.Clients {
					n++
					fmt.Fprintf(progress, "bench: [%d/%d] round %d, %s %s, %d clients\n", n, runs, round, b.name, strategy, clients)
					res, err := checkoutRun(ctx, c.Config, &cw, &rw, dir, b, strategy, clients, progress)
					if err != nil {
						return nil, fmt.Errorf("bench %s %s %d clients: %w", b.name, strategy, clients, err)
					}
					res.Round = round
					fmt.Fprintf(progress, "bench: [%d/%d] %.0f/%.0f reserves/s, %.0f purchases/s (%.2f×), %.0f lists/s (%.2f×), %.0f gets/s (%.2f×), %.0f /healthz/s\n",
						n, runs, res.Reserve.PerSec, res.ReserveAfter.PerSec, res.Purchase.PerSec, res.PurchaseVsReserve,
						res.List.PerSec, res.ListVsHealthz, res.Get.PerSec, res.GetVsHealthz, res.Healthz.PerSec)
					rep.Runs = append(rep.Runs, res)
				}
			}
		}
	}
	rep.finish()
	return rep, nil
}

// checkoutRun starts a fresh server on b's store and runs the five loads.
func checkoutRun(ctx context.Context, c Config, w, reads *wrkTool, dir string, b *backend, strategy string, clients int, progress io.Writer) (_ *CheckoutResult, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	token := randomHex(16)
	logs := &headWriter{max: 8 << 10}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	set := ServerSettings{
		Strategy:      strategy,
		AdminToken:    token,
		Hold:          ticketrush.DefaultHold,
		SweepInterval: time.Second,
		MaxBatch:      1024,
		MaxQueue:      8192,
		Timeout:       30 * time.Second,
	}
	sctx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- c.Serve(sctx, b.store, b.name, ln, set, log) }()
	tr := &http.Transport{MaxIdleConns: 4, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	defer func() {
		tr.CloseIdleConnections()
		stop()
		if serr := <-errc; serr != nil && err == nil {
			err = fmt.Errorf("server: %w", serr)
		}
	}()
	base := "http://" + ln.Addr().String()

	// The hot event, the purchase event and small ones up to
	// CheckoutEvents: the listing's length.
	evs, err := createEvents(ctx, tr, base, token, 2, 0)
	if err != nil {
		return nil, err
	}
	hot, buy := evs[0], evs[1]
	for i := 2; i < CheckoutEvents; i++ {
		var ev struct{}
		body := fmt.Sprintf(`{"name":"bench %d","ticket_quantity":1000}`, i)
		if err := benchAdmin(ctx, tr, http.MethodPost, base+"/api/admin/events", token, body, http.StatusCreated, &ev); err != nil {
			return nil, fmt.Errorf("create event: %w", err)
		}
	}
	res := &CheckoutResult{Backend: b.name, Strategy: strategy, Clients: clients}
	load := func(what string, t *loadTarget) (*loadResult, error) {
		fmt.Fprintf(progress, "bench:   %s, %s warm-up + %s…\n", what, c.Warmup, c.Duration)
		if c.CPUProfile != "" {
			t.profile = fmt.Sprintf("%s-%s-%s-%d-%s.pprof", c.CPUProfile, b.name, strategy, clients, strings.Fields(what)[0])
		}
		return runWrkLoad(ctx, reads, t, clients, c.Warmup, c.Duration)
	}

	// Reserves, with the bench's own script (a fresh visitor each).
	plain := *w
	plain.script = filepath.Join(dir, "ticketrush-bench.lua")
	reserves := func() (*loadResult, error) {
		fmt.Fprintf(progress, "bench:   reserve POST /api/reserve, %s warm-up + %s…\n", c.Warmup, c.Duration)
		return runWrkLoad(ctx, &plain, &loadTarget{
			method: http.MethodPost,
			url:    base + "/api/reserve",
			body:   []byte(`{"event_id":` + strconv.FormatInt(hot, 10) + `,"amount":1}`),
			want:   http.StatusCreated,
		}, clients, c.Warmup, c.Duration)
	}
	rl, err := reserves()
	if err != nil {
		return nil, err
	}
	res.Reserve = checkoutLoad(rl)

	// Holds for the purchases: enough for well over the reserve rate, in
	// two files, one for the warm-up and one for the measured load.
	rate := max(res.Reserve.PerSec, 1000)
	warmHolds := int(math.Ceil(3*rate*c.Warmup.Seconds())) + 2*clients
	measHolds := int(math.Ceil(3*rate*c.Duration.Seconds())) + 2*clients
	fmt.Fprintf(progress, "bench:   making %d holds for the purchases…\n", warmHolds+measHolds)
	warmFile, measFile := filepath.Join(dir, "holds-warmup"), filepath.Join(dir, "holds")
	if err := makeHolds(ctx, b.store, buy, warmFile, warmHolds); err != nil {
		return nil, err
	}
	if err := makeHolds(ctx, b.store, buy, measFile, measHolds); err != nil {
		return nil, err
	}
	res.Holds = warmHolds + measHolds
	threads := max(1, min(w.threads, clients))
	fmt.Fprintf(progress, "bench:   purchase POST /api/purchase, %s warm-up + %s…\n", c.Warmup, c.Duration)
	pl, err := runWrkPurchases(ctx, w, base+"/api/purchase", threads, warmFile, measFile, clients, c.Warmup, c.Duration)
	if err != nil {
		return nil, err
	}
	res.Purchase = checkoutLoad(pl)
	if rl, err = reserves(); err != nil {
		return nil, err
	}
	res.ReserveAfter = checkoutLoad(rl)

	gets := func(what, paths string) (*loadResult, error) {
		return load(what, &loadTarget{method: "get", url: base + "/", body: []byte(paths), want: http.StatusOK})
	}
	ll, err := gets("list GET /api/events", "/api/events")
	if err != nil {
		return nil, err
	}
	res.List = checkoutLoad(ll)
	gl, err := gets("get GET /api/events/{id}", "/api/events/"+strconv.FormatInt(hot, 10))
	if err != nil {
		return nil, err
	}
	res.Get = checkoutLoad(gl)
	hl, err := gets("healthz GET /healthz", "/healthz")
	if err != nil {
		return nil, err
	}
	res.Healthz = checkoutLoad(hl)
	if both := res.Reserve.PerSec + res.ReserveAfter.PerSec; both > 0 {
		res.PurchaseVsReserve = res.Purchase.PerSec / (both / 2)
	}
	if res.Healthz.PerSec > 0 {
		res.ListVsHealthz = res.List.PerSec / res.Healthz.PerSec
		res.GetVsHealthz = res.Get.PerSec / res.Healthz.PerSec
	}

	// Every acknowledged purchase is a sale; a purchase in doubt (no
	// answer read, a 5xx) may be either; every other hold still held.
	st, err := benchEventStats(ctx, tr, base, token, buy)
	if err != nil {
		return nil, err
	}
	res.Stats = *st
	var broken []string
	if st.Capacity != st.Available+st.Held+st.Purchased {
		broken = append(broken, fmt.Sprintf("capacity %d != available %d + held %d + purchased %d",
			st.Capacity, st.Available, st.Held, st.Purchased))
	}
	doubt := pl.failed + pl.status5xx + pl.abandoned
	if st.Purchased < pl.ok || st.Purchased > pl.ok+doubt {
		broken = append(broken, fmt.Sprintf("purchased %d, but %d purchases acknowledged and %d in doubt", st.Purchased, pl.ok, doubt))
	}
	if st.Held+st.Purchased != int64(res.Holds) {
		broken = append(broken, fmt.Sprintf("held %d + purchased %d, but %d holds made", st.Held, st.Purchased, res.Holds))
	}
	if len(broken) > 0 {
		res.Invariant = strings.Join(broken, ", ")
	}
	if first, _, _ := strings.Cut(logs.String(), "\n"); first != "" && res.Purchase.Errors5xx+res.Reserve.Errors5xx > 0 {
		res.Purchase.Sample += "; server log: " + first
	}
	return res, nil
}

// makeHolds makes n holds of one ticket on event, each its own visitor,
// straight through the store in batches, and writes "id token" lines.
func makeHolds(ctx context.Context, s ticketrush.Store, event int64, file string, n int) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	const chunk = 1000
	reqs := make([]ticketrush.ReserveRequest, 0, chunk)
	for made := 0; made < n; {
		reqs = reqs[:0]
		for range min(chunk, n-made) {
			reqs = append(reqs, ticketrush.ReserveRequest{EventID: event, Amount: 1, VisitorToken: uuid.NewString()})
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		results, err := s.ReserveBatch(cctx, event, reqs)
		cancel()
		if err != nil {
			f.Close()
			return fmt.Errorf("making holds: %w", err)
		}
		for _, r := range results {
			if r.Err != nil {
				f.Close()
				return fmt.Errorf("making holds: %w", r.Err)
			}
			fmt.Fprintf(bw, "%d %s\n", r.Reservation.ID, r.Reservation.UserUID)
		}
		made += len(reqs)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runWrkPurchases is runWrkLoad for purchases: the warm-up and the
// measured load each buy holds of their own file.
func runWrkPurchases(ctx context.Context, w *wrkTool, url string, threads int, warmFile, measFile string, clients int, warmup, d time.Duration) (*loadResult, error) {
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
	target := func(file string) *loadTarget {
		return &loadTarget{method: "purchase", url: url, body: []byte(strconv.Itoa(threads) + " " + file), want: http.StatusOK}
	}
	if warmup > 0 {
		r, err := w.run(ctx, target(warmFile), clients, warmup)
		if err != nil {
			return nil, err
		}
		add(r)
	}
	cpu0 := processCPU()
	r, err := w.run(ctx, target(measFile), clients, d)
	res.cpu = processCPU() - cpu0
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

// finish computes the medians and the checks.
func (rep *CheckoutReport) finish() {
	order, groups := groupRounds(rep.Runs, func(r *CheckoutResult) runKey {
		return runKey{r.Backend, r.Strategy, r.Clients}
	})
	for _, r := range rep.Runs {
		name := fmt.Sprintf("%s %s %d clients round %d", r.Backend, r.Strategy, r.Clients, r.Round)
		for _, l := range []struct {
			what string
			l    CheckoutLoad
		}{{"reserve", r.Reserve}, {"purchase", r.Purchase}, {"reserve after", r.ReserveAfter},
			{"list", r.List}, {"get", r.Get}, {"healthz", r.Healthz}} {
			if l.l.Errors > 0 {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %d %s errors (%d 5xx), e.g. %s", name, l.l.Errors, l.what, l.l.Errors5xx, l.l.Sample))
			}
		}
		if r.Invariant != "" {
			rep.Problems = append(rep.Problems, name+": "+r.Invariant)
		}
	}
	for _, k := range order {
		rs := groups[k]
		med := func(f func(*CheckoutResult) float64) float64 { return medianOf(rs, f) }
		medLoad := func(f func(*CheckoutResult) *CheckoutLoad) CheckoutLoad {
			return CheckoutLoad{
				PerSec:    med(func(r *CheckoutResult) float64 { return f(r).PerSec }),
				P50Ms:     med(func(r *CheckoutResult) float64 { return f(r).P50Ms }),
				P99Ms:     med(func(r *CheckoutResult) float64 { return f(r).P99Ms }),
				CPUMicros: med(func(r *CheckoutResult) float64 { return f(r).CPUMicros }),
			}
		}
		m := &CheckoutResult{
			Backend: k.backend, Strategy: k.strategy, Clients: k.clients,
			Reserve:           medLoad(func(r *CheckoutResult) *CheckoutLoad { return &r.Reserve }),
			Purchase:          medLoad(func(r *CheckoutResult) *CheckoutLoad { return &r.Purchase }),
			ReserveAfter:      medLoad(func(r *CheckoutResult) *CheckoutLoad { return &r.ReserveAfter }),
			List:              medLoad(func(r *CheckoutResult) *CheckoutLoad { return &r.List }),
			Get:               medLoad(func(r *CheckoutResult) *CheckoutLoad { return &r.Get }),
			Healthz:           medLoad(func(r *CheckoutResult) *CheckoutLoad { return &r.Healthz }),
			PurchaseVsReserve: med(func(r *CheckoutResult) float64 { return r.PurchaseVsReserve }),
			ListVsHealthz:     med(func(r *CheckoutResult) float64 { return r.ListVsHealthz }),
			GetVsHealthz:      med(func(r *CheckoutResult) float64 { return r.GetVsHealthz }),
		}
		rep.Medians = append(rep.Medians, m)
		name := fmt.Sprintf("%s %s %d clients", k.backend, k.strategy, k.clients)
		if k.strategy == "batch" && m.PurchaseVsReserve < PurchaseVsReserveTarget {
			rep.Missed = append(rep.Missed, fmt.Sprintf("%s: purchases/s %.2f× reserves/s, target %.1f×", name, m.PurchaseVsReserve, PurchaseVsReserveTarget))
		}
		if m.ListVsHealthz < ReadVsHealthzTarget {
			rep.Missed = append(rep.Missed, fmt.Sprintf("%s: GET /api/events %.2f× /healthz, target %.1f×", name, m.ListVsHealthz, ReadVsHealthzTarget))
		}
		if m.GetVsHealthz < ReadVsHealthzTarget {
			rep.Missed = append(rep.Missed, fmt.Sprintf("%s: GET /api/events/{id} %.2f× /healthz, target %.1f×", name, m.GetVsHealthz, ReadVsHealthzTarget))
		}
	}
	rep.OK = len(rep.Problems) == 0 && len(rep.Missed) == 0
}

// WriteMarkdown prints the medians as a table, then each round, then the
// problems and missed targets.
func (rep *CheckoutReport) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "Checkout bench: %s; %s warm-up + %s measured per load; %s.\n\n",
		rep.Machine, time.Duration(rep.WarmupSeconds*float64(time.Second)),
		time.Duration(rep.DurationSeconds*float64(time.Second)), rep.LoadDetail)
	for _, b := range rep.Backends {
		fmt.Fprintf(w, "- %s: %s\n", b.Backend, b.Detail)
	}
	table := func(title string, rs []*CheckoutResult, round bool) {
		fmt.Fprintf(w, "\n%s\n\n", title)
		head := "| backend | strategy | clients |"
		if round {
			head += " round |"
		}
		fmt.Fprintln(w, head+" reserve/s before / after | purchase/s | × reserve | list/s | get/s | /healthz/s | list × | get × | µs CPU reserve / purchase / list / get / healthz |")
		sep := "|---|---|---:|"
		if round {
			sep += "---:|"
		}
		fmt.Fprintln(w, sep+"---:|---:|---:|---:|---:|---:|---:|---:|---|")
		for _, r := range rs {
			row := fmt.Sprintf("| %s | %s | %d |", r.Backend, r.Strategy, r.Clients)
			if round {
				row += fmt.Sprintf(" %d |", r.Round)
			}
			fmt.Fprintf(w, "%s %.0f / %.0f | %.0f | %.2f | %.0f | %.0f | %.0f | %.2f | %.2f | %.0f / %.0f / %.0f / %.0f / %.0f |\n",
				row, r.Reserve.PerSec, r.ReserveAfter.PerSec, r.Purchase.PerSec, r.PurchaseVsReserve, r.List.PerSec, r.Get.PerSec,
				r.Healthz.PerSec, r.ListVsHealthz, r.GetVsHealthz,
				r.Reserve.CPUMicros, r.Purchase.CPUMicros, r.List.CPUMicros, r.Get.CPUMicros, r.Healthz.CPUMicros)
		}
	}
	table("Medians over the rounds:", rep.Medians, false)
	table("Each run:", rep.Runs, true)
	if len(rep.Problems) > 0 {
		fmt.Fprintln(w, "\nProblems:")
		for _, p := range rep.Problems {
			fmt.Fprintln(w, "- "+p)
		}
	}
	if len(rep.Missed) > 0 {
		fmt.Fprintln(w, "\nMissed targets:")
		for _, p := range rep.Missed {
			fmt.Fprintln(w, "- "+p)
		}
	}
}
