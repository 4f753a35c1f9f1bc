package rush

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// terminalEvery is how often the bar is redrawn on a terminal.
const terminalEvery = 200 * time.Millisecond

// barWidth is the bar's width in cells.
const barWidth = 24

// snapshot is the live state progress shows.
type snapshot struct {
	elapsed  time.Duration
	done     int64
	total    int64
	requests uint64
	acked    int64
	soldOut  int64
	shed     uint64
	failures int64
}

func (r *runner) snapshot(start time.Time) snapshot {
	s := snapshot{
		elapsed:  time.Since(start),
		done:     r.done.Load(),
		total:    int64(r.cfg.Visitors),
		acked:    r.acked.Load(),
		soldOut:  r.soldOut.Load(),
		failures: r.failures.Load(),
	}
	for _, name := range []string{EndpointReserve, EndpointPurchase, EndpointCancel} {
		s.requests += r.eps[name].latency.Count()
		s.shed += r.eps[name].shed.Load()
	}
	return s
}

// line renders s; rate is the requests per second since the last line.
func (s snapshot) line(rate float64, bar bool) string {
	b := &strings.Builder{}
	if bar {
		filled := 0
		if s.total > 0 {
			filled = int(s.done * barWidth / s.total)
		}
		b.WriteString("[")
		b.WriteString(strings.Repeat("#", filled))
		b.WriteString(strings.Repeat(".", barWidth-filled))
		b.WriteString("] ")
	}
	pct := 0.0
	if s.total > 0 {
		pct = float64(s.done) * 100 / float64(s.total)
	}
	fmt.Fprintf(b, "%5.1fs %d/%d visitors (%.0f%%) %.0f req/s, %d tickets acknowledged, %d sold out",
		s.elapsed.Seconds(), s.done, s.total, pct, rate, s.acked, s.soldOut)
	if s.shed > 0 {
		fmt.Fprintf(b, ", %d shed", s.shed)
	}
	if s.failures > 0 {
		fmt.Fprintf(b, ", %d failed", s.failures)
	}
	return b.String()
}

// startProgress shows progress until the returned function is called,
// which draws the last state and returns once the output is complete.
func (r *runner) startProgress() (stop func()) {
	w := r.cfg.Progress
	if w == nil {
		return func() {}
	}
	every := r.cfg.ProgressEvery
	if r.cfg.Terminal {
		every = terminalEvery
	}
	start := time.Now()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		lastAt, lastReq := start, uint64(0)
		draw := func(final bool) {
			s := r.snapshot(start)
			rate := 0.0
			if final {
				rate = float64(s.requests) / max(s.elapsed.Seconds(), 1e-9)
			} else if dt := time.Since(lastAt).Seconds(); dt > 0 {
				rate = float64(s.requests-lastReq) / dt
			}
			lastAt, lastReq = time.Now(), s.requests
			if r.cfg.Terminal {
				// \r and erase-line redraw the bar in place.
				end := ""
				if final {
					end = "\n"
				}
				io.WriteString(w, "\r\x1b[K"+s.line(rate, true)+end)
				return
			}
			io.WriteString(w, "rush: "+s.line(rate, false)+"\n")
		}
		for {
			select {
			case <-t.C:
				draw(false)
			case <-quit:
				draw(true)
				return
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait()
	}
}
