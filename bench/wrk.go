package bench

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Load generators.
const (
	// LoadAuto uses wrk when it is installed, else the in-process client.
	LoadAuto = "auto"
	// LoadWrk drives the load from a wrk process: the server then has the
	// process to itself, as in production, and its CPU time is its own.
	LoadWrk = "wrk"
	// LoadGo drives the load from goroutines in the bench's own process,
	// which then shares the CPU, and its CPU time, with the clients.
	LoadGo = "go"
)

// wrkReport is the answer counting every script ends with; withReport
// appends it.
//
//go:embed wrk_report.lua
var wrkReport []byte

// withReport returns a load script with the shared answer counting after it.
func withReport(script []byte) []byte {
	return append(append(append([]byte{}, script...), '\n'), wrkReport...)
}

// wrkScript is the Lua script every wrk run gets.
//
//go:embed wrk.lua
var wrkScript []byte

// DefaultWrkThreads is wrk's thread count: one per core of the 2-core
// machines the README's numbers come from, which is what wrk advises.
const DefaultWrkThreads = 2

// wrkTool is a wrk executable ready to run, with its script on disk.
type wrkTool struct {
	path, version string
	threads       int
	script        string
	// eventsScript is the script of a load spread over several events.
	eventsScript string
}

// findWrk looks wrk up (path "" means in PATH) and writes its script into
// dir. It returns an error saying what is missing when there is no wrk.
func findWrk(path string, threads int, dir string) (*wrkTool, error) {
	if path == "" {
		path = "wrk"
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return nil, fmt.Errorf("wrk not found (%w); install it (Debian: apt-get install wrk) to measure from a separate process", err)
	}
	// wrk prints its version with -v, then usage, and exits 1.
	out, _ := exec.Command(p, "-v").CombinedOutput()
	version, _, _ := strings.Cut(string(out), "\n")
	version = strings.TrimSpace(strings.TrimSuffix(strings.SplitN(version, "Copyright", 2)[0], " "))
	if !strings.HasPrefix(version, "wrk") {
		return nil, fmt.Errorf("%s -v: not wrk: %q", p, version)
	}
	script := filepath.Join(dir, "ticketrush-bench.lua")
	if err := os.WriteFile(script, withReport(wrkScript), 0o600); err != nil {
		return nil, err
	}
	events := filepath.Join(dir, "ticketrush-bench-events.lua")
	if err := os.WriteFile(events, withReport(wrkEventsScript), 0o600); err != nil {
		return nil, err
	}
	return &wrkTool{path: p, version: version, threads: threads, script: script, eventsScript: events}, nil
}

// wrkRun is what one wrk process reported.
type wrkRun struct {
	ok, other, status5xx, requests int64
	duration                       time.Duration
	socketErrors                   int64
	p50, p99                       time.Duration
	sample                         string
	cpu                            time.Duration // wrk's own
}

// run drives clients connections at url for d. wrk takes whole seconds
// only, so it is given a generous -d and stopped with SIGINT after d,
// upon which it finishes as after -d: it stops, abandoning the requests
// in flight, and reports.
func (w *wrkTool) run(ctx context.Context, t *loadTarget, clients int, d time.Duration) (*wrkRun, error) {
	threads := max(1, min(w.threads, clients))
	limit := int64(d/time.Second) + 60
	script := w.script
	if len(t.events) > 1 {
		script = w.eventsScript
	}
	args := []string{
		"-t", strconv.Itoa(threads), "-c", strconv.Itoa(clients),
		"-d", strconv.FormatInt(limit, 10) + "s", "--timeout", "30s",
		"-s", script, t.url, "--",
	}
	args = append(args, t.wrkArgs(tokenPrefix())...)
	cmd := exec.CommandContext(ctx, w.path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("wrk: %w", err)
	}
	stop := time.AfterFunc(d, func() { cmd.Process.Signal(syscall.SIGINT) })
	err := cmd.Wait()
	stop.Stop()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("wrk %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	r, err := parseWrk(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("wrk: %w\n%s%s", err, &stdout, &stderr)
	}
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, nil
}

// parseWrk reads the lines the script's done() printed.
func parseWrk(out []byte) (*wrkRun, error) {
	r := &wrkRun{}
	found := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if s, ok := strings.CutPrefix(line, "ticketrush-wrk-sample "); ok {
			r.sample = strings.TrimSpace(s)
			continue
		}
		fields, ok := strings.CutPrefix(line, "ticketrush-wrk ")
		if !ok {
			continue
		}
		found = true
		for f := range strings.FieldsSeq(fields) {
			k, v, _ := strings.Cut(f, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("report field %q: %w", f, err)
			}
			switch k {
			case "ok":
				r.ok = n
			case "other":
				r.other = n
			case "status5xx":
				r.status5xx = n
			case "requests":
				r.requests = n
			case "duration_us":
				r.duration = time.Duration(n) * time.Microsecond
			case "connect", "read", "write", "timeout":
				r.socketErrors += n
			case "p50_us":
				r.p50 = time.Duration(n) * time.Microsecond
			case "p99_us":
				r.p99 = time.Duration(n) * time.Microsecond
			}
		}
	}
	if !found {
		return nil, errors.New("no report line from the script")
	}
	return r, nil
}

// tokenPrefix starts the visitor tokens of one wrk run: the first 24
// characters of a random version-4 UUID; the script appends the thread
// and a counter as the last 12.
func tokenPrefix() string {
	h := randomHex(10)
	return h[0:8] + "-" + h[8:12] + "-4" + h[12:15] + "-8" + h[15:18] + "-"
}

// runWrkLoad is runLoad with wrk: a warm-up run, then a measured one,
// each a wrk process of its own. The server's CPU time is this process's
// over the measured run.
func runWrkLoad(ctx context.Context, w *wrkTool, t *loadTarget, clients int, warmup, d time.Duration) (*loadResult, error) {
	res := &loadResult{}
	add := func(r *wrkRun) {
		res.ok += r.ok
		res.other += r.other
		res.status5xx += r.status5xx
		res.failed += r.socketErrors
		// Each connection had at most one request in flight when wrk
		// stopped; their answers were never read.
		res.abandoned += int64(clients)
		if res.sample == "" {
			res.sample = r.sample
		}
	}
	if warmup > 0 {
		r, err := w.run(ctx, t, clients, warmup)
		if err != nil {
			return nil, err
		}
		add(r)
	}
	stopProfile := func() {}
	if t.profile != "" {
		var err error
		if stopProfile, err = startProfile(t.profile); err != nil {
			return nil, err
		}
	}
	cpu0 := processCPU()
	r, err := w.run(ctx, t, clients, d)
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
