package bench

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// finish fills the ratios and the verdict.
func (rep *Report) finish(c Config) {
	lock := map[string]*Result{}
	key := func(r *Result) string {
		return r.Backend + "/" + strconv.Itoa(r.Clients) + "/" + strconv.Itoa(r.Round)
	}
	for _, r := range rep.Runs {
		if r.Strategy == "lock" {
			lock[key(r)] = r
		}
	}
	for _, r := range rep.Runs {
		if l := lock[key(r)]; l != nil && l.ReservePerSec > 0 {
			v := r.ReservePerSec / l.ReservePerSec
			r.VsLock = &v
		}
		name := fmt.Sprintf("%s%s %s at %d clients", roundOf(r.Round), r.Backend, r.Strategy, r.Clients)
		if r.Oversold > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s oversold %d tickets", name, r.Oversold))
		}
		if r.Invariant != "ok" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s broke the invariant: %s", name, r.Invariant))
		}
		if r.Errors5xx > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s got %d 5xx answers (%s)", name, r.Errors5xx, r.ErrorSample))
		}
		if r.Failed > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s had %d requests with no answer (%s)", name, r.Failed, r.ErrorSample))
		}
		if r.HealthzErrors > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s got %d failed /healthz requests", name, r.HealthzErrors))
		}
	}
	if len(c.Clients) > 1 {
		lo, hi := slicesMinMax(c.Clients)
		for _, r := range rep.Runs {
			if r.Clients != lo {
				continue
			}
			for _, s := range rep.Runs {
				if s.Clients == hi && s.Backend == r.Backend && s.Strategy == r.Strategy && s.Round == r.Round && r.ReservePerSec > 0 {
					rep.Scaling = append(rep.Scaling, Scaling{
						Round: r.Round, Backend: r.Backend, Strategy: r.Strategy, From: lo, To: hi,
						Ratio: s.ReservePerSec / r.ReservePerSec,
					})
				}
			}
		}
	}
	rep.medians()
	rep.OK = len(rep.Problems) == 0
}

// medians fills Medians when the runs come in several rounds, in the order
// of the first round's runs.
func (rep *Report) medians() {
	rep.Medians = nil
	if !slices.ContainsFunc(rep.Runs, func(r *Result) bool { return r.Round > 1 }) {
		return
	}
	order, groups := groupRounds(rep.Runs, func(r *Result) runKey { return runKey{r.Backend, r.Strategy, r.Clients} })
	for _, k := range order {
		rs := groups[k]
		m := Median{
			Backend: k.backend, Strategy: k.strategy, Clients: k.clients, Rounds: len(rs),
			ReservePerSec:    medianOf(rs, func(r *Result) float64 { return r.ReservePerSec }),
			HealthzPerSec:    medianOf(rs, func(r *Result) float64 { return r.HealthzPerSec }),
			VsHealthz:        medianOf(rs, func(r *Result) float64 { return r.VsHealthz }),
			ReserveCPUMicros: medianOf(rs, func(r *Result) float64 { return r.ReserveCPUMicros }),
			HealthzCPUMicros: medianOf(rs, func(r *Result) float64 { return r.HealthzCPUMicros }),
		}
		var vsLock []float64
		for _, r := range rs {
			m.VsHealthzRounds = append(m.VsHealthzRounds, r.VsHealthz)
			if r.VsLock != nil {
				vsLock = append(vsLock, *r.VsLock)
			}
		}
		if len(vsLock) > 0 {
			v := median(vsLock)
			m.VsLock = &v
		}
		rep.Medians = append(rep.Medians, m)
	}
}

func slicesMinMax(v []int) (lo, hi int) {
	lo, hi = v[0], v[0]
	for _, x := range v[1:] {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

// WriteMarkdown prints the report as a markdown table with its context.
func (rep *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "ticketrush bench: %s; over loopback HTTP, a fresh server per run, rate limit off\n", rep.Machine)
	fmt.Fprintf(w, "load generator: %s\n", rep.LoadDetail)
	fmt.Fprintf(w, "each run: %s warm-up, %s measured on POST /api/reserve (amount 1), then the same on GET /healthz; request deadline 30s\n",
		fmtSeconds(rep.WarmupSeconds), fmtSeconds(rep.DurationSeconds))
	if len(rep.Runs) > 0 && (rep.Runs[0].Events > 1 || rep.Runs[0].MaxPerVisitor > 0) {
		r := rep.Runs[0]
		fmt.Fprintf(w, "reserves spread uniformly over %d events, each with max_per_visitor %d (0: no cap)\n", r.Events, r.MaxPerVisitor)
	}
	for _, b := range rep.Backends {
		fmt.Fprintf(w, "- %s: %s\n", b.Backend, b.Detail)
	}
	fmt.Fprintln(w)

	// With wrk the server has its process to itself; in-process clients
	// are counted with it.
	cpuHead := "server µs"
	if rep.Load != LoadWrk {
		cpuHead = "server+clients µs"
	}
	multi := len(rep.Medians) > 0
	rows := [][]string{{"backend", "strategy", "clients", "reserve/s", "p50", "p99", "errors", "oversold", "× lock", "× /healthz", "/healthz/s", cpuHead + "/reserve", cpuHead + "/healthz"}}
	for _, r := range rep.Runs {
		errs := strconv.FormatInt(r.Errors, 10)
		if r.Errors > 0 {
			errs += fmt.Sprintf(" (5xx: %d", r.Errors5xx)
			if r.Failed > 0 {
				errs += fmt.Sprintf(", no answer: %d", r.Failed)
			}
			errs += ")"
		}
		over := strconv.FormatInt(r.Oversold, 10)
		if r.Invariant != "ok" {
			over += " (invariant broken)"
		}
		vsLock := "–"
		if r.VsLock != nil {
			vsLock = fmt.Sprintf("%.1f×", *r.VsLock)
		}
		rows = append(rows, []string{
			r.Backend, r.Strategy, strconv.Itoa(r.Clients),
			fmt.Sprintf("%.0f", r.ReservePerSec), fmtMs(r.P50Ms), fmtMs(r.P99Ms),
			errs, over, vsLock, fmt.Sprintf("%.2f×", r.VsHealthz), fmt.Sprintf("%.0f", r.HealthzPerSec),
			fmt.Sprintf("%.0f", r.ReserveCPUMicros), fmt.Sprintf("%.0f", r.HealthzCPUMicros),
		})
	}
	right := map[int]bool{2: true, 3: true, 4: true, 5: true, 8: true, 9: true, 10: true, 11: true, 12: true}
	if multi {
		// Each run's round goes in a first column.
		rows[0] = append([]string{"round"}, rows[0]...)
		for i, r := range rep.Runs {
			rows[i+1] = append([]string{strconv.Itoa(r.Round)}, rows[i+1]...)
		}
		shifted := map[int]bool{}
		for c := range right {
			shifted[c+1] = true
		}
		right = shifted
	}
	writeTable(w, rows, right)
	if multi {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "medians over the rounds (each ratio the median of the ratios within a round; the rounds' × /healthz in brackets):")
		fmt.Fprintln(w)
		rows := [][]string{{"backend", "strategy", "clients", "rounds", "reserve/s", "× lock", "× /healthz", "/healthz/s", cpuHead + "/reserve", cpuHead + "/healthz"}}
		for _, m := range rep.Medians {
			vsLock := "–"
			if m.VsLock != nil {
				vsLock = fmt.Sprintf("%.1f×", *m.VsLock)
			}
			each := make([]string, len(m.VsHealthzRounds))
			for i, v := range m.VsHealthzRounds {
				each[i] = fmt.Sprintf("%.2f", v)
			}
			rows = append(rows, []string{m.Backend, m.Strategy, strconv.Itoa(m.Clients), strconv.Itoa(m.Rounds),
				fmt.Sprintf("%.0f", m.ReservePerSec), vsLock,
				fmt.Sprintf("%.2f× (%s)", m.VsHealthz, strings.Join(each, ", ")), fmt.Sprintf("%.0f", m.HealthzPerSec),
				fmt.Sprintf("%.0f", m.ReserveCPUMicros), fmt.Sprintf("%.0f", m.HealthzCPUMicros)})
		}
		writeTable(w, rows, map[int]bool{2: true, 3: true, 4: true, 5: true, 7: true, 8: true, 9: true})
	}

	var notes []string
	for _, r := range rep.Runs {
		if r.LoadCPUMicros > 0 {
			notes = append(notes, fmt.Sprintf("- %s%s %s, %d clients: the load generator spent %.0f µs of CPU per reserve, outside the server",
				roundOf(r.Round), r.Backend, r.Strategy, r.Clients, r.LoadCPUMicros))
		}
		if b := r.Batches; b != nil && b.Count > 0 {
			notes = append(notes, fmt.Sprintf("- %s%s batch, %d clients: %d transactions, %.1f reserves each, %s per transaction (commit included), %s queued before one started",
				roundOf(r.Round), r.Backend, r.Clients, b.Count, b.MeanSize, fmtMs(b.MeanMs), fmtMs(b.MeanWaitMs)))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	}
	if len(rep.Scaling) > 0 {
		fmt.Fprintln(w)
		for _, s := range rep.Scaling {
			fmt.Fprintf(w, "- %s%s %s: %d clients reserve %.2f× as fast as %d clients\n", roundOf(s.Round), s.Backend, s.Strategy, s.To, s.Ratio, s.From)
		}
	}
	fmt.Fprintln(w)
	if rep.OK {
		fmt.Fprintln(w, "verified after each run: nothing oversold, capacity == available + held + purchased, held == acknowledged (give or take answers never read), no 5xx")
		return
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "FAIL:", p)
	}
}

// roundOf names round r at the start of a note; nothing with one round.
func roundOf(r int) string {
	if r == 0 {
		return ""
	}
	return fmt.Sprintf("round %d: ", r)
}

// writeTable prints rows as a markdown table with padded columns; the
// columns in right are right-aligned.
func writeTable(w io.Writer, rows [][]string, right map[int]bool) {
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	line := func(row []string) {
		bw.WriteString("|")
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			if right[i] {
				bw.WriteString(" " + pad + cell + " |")
			} else {
				bw.WriteString(" " + cell + pad + " |")
			}
		}
		bw.WriteString("\n")
	}
	line(rows[0])
	bw.WriteString("|")
	for i := range rows[0] {
		dash := strings.Repeat("-", width[i])
		if right[i] {
			bw.WriteString(" " + dash[1:] + ": |")
		} else {
			bw.WriteString(" " + dash + " |")
		}
	}
	bw.WriteString("\n")
	for _, row := range rows[1:] {
		line(row)
	}
}

func fmtMs(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f ms", ms)
	}
}

func fmtSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).String()
}

// runKey names the runs that rounds repeat: one backend, strategy and
// client count.
type runKey struct {
	backend, strategy string
	clients           int
}

// groupRounds groups runs by key, keys in the order of their first run: the
// rounds of each run, for its medians.
func groupRounds[T any](runs []T, key func(T) runKey) ([]runKey, map[runKey][]T) {
	var order []runKey
	groups := map[runKey][]T{}
	for _, r := range runs {
		k := key(r)
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	return order, groups
}

// medianOf returns the median of f over rs.
func medianOf[T any](rs []T, f func(T) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return median(v)
}

// median returns the median of v (the mean of the middle two when their
// number is even), sorting v.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
