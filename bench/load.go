package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// The load generator: a closed loop of clients, each one keep-alive
// connection sending one request after the other. It shares the machine
// with the server, so each request costs the client as little as it can:
// one request value per client, a body replayed from one byte slice,
// responses drained into io.Discard so connections are reused, and latency
// counted in a per-client histogram without locks.

// loadTarget is the request every client repeats.
type loadTarget struct {
	method string
	url    string
	body   []byte // nil for none
	want   int    // the status that counts as success
	// profile, when set, is a file for a CPU profile of the measured phase.
	profile string
	// events, when more than one, spreads reserves over these events
	// (body is then the first one's).
	events []int64
}

// Load phases: warming up (not measured), measuring, stopping.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// loadResult is what one load measured, from either load generator.
type loadResult struct {
	elapsed time.Duration // of the measured phase
	// cpu is this process's CPU time in the measured phase: the server's,
	// plus the clients' when they run in this process.
	cpu time.Duration
	// loadCPU is the load generator's own CPU time in the measured phase,
	// when it runs in a process of its own; 0 otherwise.
	loadCPU time.Duration
	// measured counts the answers completed while measuring, measuredOK
	// those with the wanted status: only they count towards the rate.
	measured, measuredOK int64
	// ok, other, status5xx and failed count the whole run, warm-up
	// included: answers with the wanted status, other answers (5xx
	// included), 5xx answers, and requests with no answer.
	ok, other, status5xx, failed int64
	// abandoned bounds the requests the load generator gave up on when
	// a phase ended, without reading their answers: the server may have
	// decided them either way. 0 for the in-process client, which waits.
	abandoned int64
	sample    string // the first unwanted answer
	p50, p99  time.Duration
}

func (r *loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.measuredOK) / r.elapsed.Seconds()
}

func (r *loadResult) cpuPerRequest() float64 {
	if r.measured == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.measured)
}

func (r *loadResult) loadCPUPerRequest() float64 {
	if r.measured == 0 {
		return 0
	}
	return float64(r.loadCPU.Microseconds()) / float64(r.measured)
}

// loadClient is one client's counts; each client writes only its own.
type loadClient struct {
	measured, measuredOK, ok, other, status5xx, failed int64
	sample                                             string
	hist                                               histogram
}

// runLoad drives clients concurrent clients at t for warmup, then measures
// for d, then waits for the requests in flight.
func runLoad(ctx context.Context, tr *http.Transport, t *loadTarget, clients int, warmup, d time.Duration) (*loadResult, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var phase atomic.Int32
	if warmup <= 0 {
		phase.Store(phaseMeasure)
	}
	cs := make([]*loadClient, clients)
	var wg sync.WaitGroup
	for i := range cs {
		cs[i] = &loadClient{hist: newHistogram()}
		ct := t.forClient(i)
		req, err := ct.request(lctx)
		if err != nil {
			return nil, err
		}
		wg.Go(func() { cs[i].loop(tr, req, ct, &phase) })
	}
	sleep := func(d time.Duration) error {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var err error
	if warmup > 0 {
		err = sleep(warmup)
		phase.Store(phaseMeasure)
	}
	stopProfile := func() {}
	if err == nil && t.profile != "" {
		stopProfile, err = startProfile(t.profile)
	}
	start := time.Now()
	cpu0 := processCPU()
	if err == nil {
		err = sleep(d)
	}
	phase.Store(phaseStop)
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	if stopProfile != nil {
		stopProfile()
	}
	if err != nil {
		cancel()
	}
	// Requests in flight are waited for, not cancelled: the answer to each
	// is needed to check the stats. Only a server that stopped answering
	// is given up on.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cancel()
		<-done
	}
	if err != nil {
		return nil, err
	}

	r := &loadResult{elapsed: elapsed, cpu: cpu}
	hist := newHistogram()
	for _, c := range cs {
		r.measured += c.measured
		r.measuredOK += c.measuredOK
		r.ok += c.ok
		r.other += c.other
		r.status5xx += c.status5xx
		r.failed += c.failed
		if r.sample == "" {
			r.sample = c.sample
		}
		hist.add(&c.hist)
	}
	r.p50, r.p99 = hist.quantile(0.50), hist.quantile(0.99)
	return r, nil
}

// request builds a client's request: every client is its own visitor.
func (t *loadTarget) request(ctx context.Context) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, t.method, t.url, nil)
	if err != nil {
		return nil, err
	}
	if t.body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Visitor-Token", uuid.NewString())
		req.ContentLength = int64(len(t.body))
		b := t.body
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	return req, nil
}

// loop sends req until the phase says stop.
func (c *loadClient) loop(tr *http.Transport, req *http.Request, t *loadTarget, phase *atomic.Int32) {
	// The body is an io.NopCloser around a bytes.Reader, which the
	// transport knows to be in memory, so it writes headers and body in
	// one system call. It is rewound for each request: the previous answer
	// was read to the end and closed, and the server answers only after
	// reading the whole body, so the transport is done with it.
	br := bytes.NewReader(t.body)
	body := io.NopCloser(br)
	for phase.Load() != phaseStop {
		if t.body != nil {
			br.Reset(t.body)
			req.Body = body
		}
		start := time.Now()
		resp, err := tr.RoundTrip(req)
		if err != nil {
			c.failed++
			if c.sample == "" {
				c.sample = err.Error()
			}
			if req.Context().Err() != nil {
				return
			}
			continue
		}
		if resp.StatusCode != t.want && c.sample == "" {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			c.sample = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		switch {
		case err != nil:
			// The status arrived, so the outcome is known; only the
			// connection broke.
			c.failed++
		case resp.StatusCode >= 500:
			c.other++
			c.status5xx++
		case resp.StatusCode != t.want:
			c.other++
		}
		if resp.StatusCode == t.want {
			c.ok++
		}
		if phase.Load() == phaseMeasure {
			c.measured++
			if resp.StatusCode == t.want {
				c.measuredOK++
			}
			c.hist.record(elapsed)
		}
	}
}
