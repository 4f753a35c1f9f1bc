package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// bin is the ticketrush binary TestMain builds once for every test.
var bin string

// adminToken is the admin token every server of these tests runs with.
const adminToken = "e2e-admin-9f3c1b7d2a"

// Figures for the README, summed over every test and printed at the end of a
// verbose run.
var totals struct {
	requests atomic.Int64 // HTTP requests sent to a server
	checked  atomic.Int64 // acknowledged reservations read back and compared
	lost     atomic.Int64 // acknowledged reservations missing or changed

	mu     sync.Mutex
	faults map[string]int64 // faults injected, by kind
}

// fault counts n faults of a kind.
func fault(kind string, n int64) {
	totals.mu.Lock()
	defer totals.mu.Unlock()
	if totals.faults == nil {
		totals.faults = map[string]int64{}
	}
	totals.faults[kind] += n
}

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "ticketrush-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "ticketrush")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ticketrush")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build: %v\n%s", err, out)
	}
	code := m.Run()
	if testing.Verbose() {
		var kinds []string
		for k, n := range totals.faults {
			kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
		}
		sort.Strings(kinds)
		fmt.Printf("e2e totals: %d requests; faults injected: %s; %d acknowledged reservations checked, %d lost\n",
			totals.requests.Load(), strings.Join(kinds, ", "), totals.checked.Load(), totals.lost.Load())
	}
	return code, nil
}

// logBuffer keeps a process's log, bounded so a chatty server cannot exhaust
// the test's memory.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

const maxLog = 4 << 20

func (l *logBuffer) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > maxLog {
		rest := l.b.Bytes()[l.b.Len()-maxLog/2:]
		l.b = *bytes.NewBuffer(append([]byte("…\n"), rest...))
	}
	l.b.WriteString(line)
	l.b.WriteByte('\n')
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail returns the last n bytes of the log, for failure messages.
func (l *logBuffer) tail(n int) string {
	s := l.String()
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// proc is one running "ticketrush serve".
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	URL  string // http://127.0.0.1:PORT
	Addr string // 127.0.0.1:PORT
	log  *logBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServe runs "ticketrush serve" on db on a loopback port the process
// picks itself, waits until /healthz answers 200 and returns it. The process
// gets SIGTERM (then SIGKILL) when the test ends, unless it already exited.
func startServe(t testing.TB, db string, args ...string) *proc {
	t.Helper()
	// The rate limit is on by default; these tests drive many visitors
	// from one address, so they turn it off explicitly (a test that
	// checks the limit passes its own --rate-limit, which wins).
	argv := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db,
		"--admin-token", adminToken, "--log-level", "info", "--rate-limit", "0"}, args...)
	cmd := exec.Command(bin, argv...)
	cmd.Env = cleanEnv()
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = pw
	p := &proc{t: t, cmd: cmd, log: &logBuffer{}, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.log.add(line)
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start serve: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("serve log (%s):\n%s", strings.Join(argv, " "), p.log.tail(6000))
		}
	})

	select {
	case p.Addr = <-addrc:
	case <-p.done:
		t.Fatalf("serve exited at start: %v\n%s", p.err, p.log.tail(4000))
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not listen within 60s\n%s", p.log.tail(4000))
	}
	p.URL = "http://" + p.Addr
	waitHealthy(t, p.URL, 30*time.Second)
	return p
}

// cleanEnv is this process's environment without ticketrush's own
// variables, so a developer's settings cannot change what a test runs.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TICKETRUSH_") || strings.HasPrefix(kv, "DATABASE_URL=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitHealthy polls base/healthz until it answers 200.
func waitHealthy(t testing.TB, base string, within time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		resp, err := c.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz did not answer 200 within %s (%v)", base, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL, as kill -9 does, and waits for the process to end:
// no deferred function, no graceful shutdown, nothing flushed.
func (p *proc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("kill: %v", err)
	}
	<-p.done
}

// stop ends the process gracefully (SIGTERM), killing it if it does not
// stop within 30s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("serve did not stop within 30s of SIGTERM")
	}
}

// client is an HTTP client of one server, counting its requests.
type client struct {
	base string
	hc   *http.Client
}

// newClient returns a client of base with room for conns connections;
// timeout bounds each request end to end.
func newClient(t testing.TB, base string, conns int, timeout time.Duration) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{base: base, hc: &http.Client{Transport: tr, Timeout: timeout}}
}

// reply is an answer: status, headers, body, and how long it took.
type reply struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

// do sends one request. A nil error means the server answered.
func (c *client) do(ctx context.Context, method, path string, h http.Header, body string) (reply, error) {
	totals.requests.Add(1)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return reply{}, err
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{took: time.Since(start)}, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return reply{status: resp.StatusCode, header: resp.Header, body: b, took: time.Since(start)}, err
}

// must sends one request that must be answered with want.
func (c *client) must(t testing.TB, want int, method, path string, h http.Header, body string, out any) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.do(ctx, method, path, h, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, short(r.body))
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, short(r.body), err)
		}
	}
	return r
}

func short(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// admin is the header of an admin request.
func admin() http.Header { return http.Header{"Authorization": {"Bearer " + adminToken}} }

// visitor is the header of a visitor's request.
func visitor(token string) http.Header { return http.Header{"Visitor-Token": {token}} }

// Wire shapes, as a client reads them.
type (
	wireEvent struct {
		ID             int64 `json:"id"`
		TicketQuantity int64 `json:"ticket_quantity"`
		Capacity       int64 `json:"capacity"`
	}
	wireReservation struct {
		ID      int64  `json:"id"`
		EventID int64  `json:"event_id"`
		UserUID string `json:"user_uid"`
		Amount  int64  `json:"amount"`
		Status  string `json:"status"`
	}
	wireStats struct {
		EventID   int64 `json:"event_id"`
		Capacity  int64 `json:"capacity"`
		Available int64 `json:"available"`
		Held      int64 `json:"held"`
		Purchased int64 `json:"purchased"`
		Expired   int64 `json:"expired"`
		Cancelled int64 `json:"cancelled"`
	}
	wireError struct {
		Error *struct {
			Code    string            `json:"code"`
			Message string            `json:"message"`
			Fields  map[string]string `json:"fields"`
		} `json:"error"`
	}
)

// createEvent creates an event with tickets tickets, held for an hour so
// nothing expires during a test.
func (c *client) createEvent(t testing.TB, name string, tickets int64) wireEvent {
	t.Helper()
	var out struct{ Data wireEvent }
	body := fmt.Sprintf(`{"name":%q,"ticket_quantity":%d,"hold_seconds":3600}`, name, tickets)
	c.must(t, http.StatusCreated, "POST", "/api/admin/events", admin(), body, &out)
	return out.Data
}

// stats reads an event's counts through the admin endpoint.
func (c *client) stats(t testing.TB, eventID int64) wireStats {
	t.Helper()
	var out struct{ Data wireStats }
	c.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/admin/events/%d/stats", eventID), admin(), "", &out)
	return out.Data
}

// checkInvariant fails the test unless capacity == available + held +
// purchased, and returns the stats.
func (c *client) checkInvariant(t testing.TB, eventID int64) wireStats {
	t.Helper()
	s := c.stats(t, eventID)
	if s.Available < 0 || s.Held < 0 || s.Purchased < 0 || s.Capacity != s.Available+s.Held+s.Purchased {
		t.Errorf("invariant broken: %+v: capacity %d != available %d + held %d + purchased %d",
			s, s.Capacity, s.Available, s.Held, s.Purchased)
	}
	return s
}

// errorCode returns the code of a JSON error body, "" if it is none.
func errorCode(body []byte) string {
	var e wireError
	if json.Unmarshal(body, &e) != nil || e.Error == nil {
		return ""
	}
	return e.Error.Code
}
