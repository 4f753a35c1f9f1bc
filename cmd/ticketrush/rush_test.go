package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush/httpapi"
	"github.com/ticketrush/ticketrush/postgres"
	"github.com/ticketrush/ticketrush/redis"
	"github.com/ticketrush/ticketrush/rush"
	"github.com/ticketrush/ticketrush/sqlite"
)

func TestRushCommand(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "t.db")
	base, _ := startServe(t, serveConfig{db: db, adminToken: "secret"})
	getenv := func(k string) string {
		if k == "TICKETRUSH_ADMIN_TOKEN" {
			return "secret"
		}
		return ""
	}

	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"rush", "--url", base, "--create", "200", "--visitors", "500",
		"--concurrency", "16", "--amounts", "1,3", "--purchase", "0.5", "--cancel", "0.2"}, getenv, &stdout, &stderr)
	if err != nil {
		t.Fatalf("rush: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"PASS  acknowledged ≤ capacity", "PASS  capacity == available + held + purchased",
		"PASS  held + purchased + expired == acknowledged − cancelled", "PASS  every acknowledged reservation readable",
		"PASS  no 5xx", "PASS  every node reports the same stock", "PASS: no overselling", "amounts 1,3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "rush: ") || !strings.Contains(stderr.String(), "500/500 visitors") {
		t.Errorf("no progress lines on stderr: %q", stderr.String())
	}

	// --json, on the event just sold out, without the admin token and
	// with --partial-ok: nothing failed, the verdict is PARTIAL, exit 0.
	stdout.Reset()
	err = run(t.Context(), []string{"rush", "--url", base + "," + base, "--event", "2", "--visitors", "50", "--json", "--partial-ok"},
		func(string) string { return "" }, &stdout, io.Discard)
	if err != nil {
		t.Fatalf("rush --json --partial-ok: %v\n%s", err, stdout.String())
	}
	var rep rush.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout.String())
	}
	if !rep.OK || !rep.Partial || rep.Result != rush.Partial || rep.Event.ID != 2 || len(rep.Nodes) != 2 || rep.Outcomes.Reserved+rep.Outcomes.SoldOut != 50 {
		t.Errorf("report %+v", rep)
	}
}

// TestRushWithoutAdminTokenIsPartial: without the admin token, rush never
// prints PASS: it says PARTIAL, names each check it could not run and why,
// and exits with status 3 (0 only with --partial-ok).
func TestRushWithoutAdminTokenIsPartial(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "t.db")
	base, _ := startServe(t, serveConfig{db: db, adminToken: "secret"})
	var stdout bytes.Buffer
	err := run(t.Context(), []string{"rush", "--url", base, "--event", "1", "--visitors", "40", "--concurrency", "8"},
		func(string) string { return "" }, &stdout, io.Discard)
	var ex exitError
	if !errors.As(err, &ex) || ex.code != exitPartial || exitPartial == 0 || exitPartial == 1 || exitPartial == 2 {
		t.Fatalf("rush without an admin token: err %v, want exit status %d (distinct from 0, 1, 2)\n%s", err, exitPartial, stdout.String())
	}
	out := stdout.String()
	if strings.Contains(out, "PASS: ") || strings.Contains(out, "every check held") {
		t.Errorf("a partial rehearsal printed a PASS verdict:\n%s", out)
	}
	for _, want := range []string{
		"PARTIAL: no check failed, but 2 of",
		"- capacity == available + held + purchased: not verified: reading the server's stats needs the admin token",
		"- held + purchased + expired == acknowledged − cancelled: not verified",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"PARTIAL", "capacity == available + held + purchased", "--admin-token", "--partial-ok"} {
		if !strings.Contains(ex.msg, want) {
			t.Errorf("exit message %q lacks %q", ex.msg, want)
		}
	}
}

// TestRushCommandFailsOnBrokenInvariant points rush at a server whose stats
// miscount capacity: the command must end with exit status 1.
func TestRushCommandFailsOnBrokenInvariant(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{Store: s, AdminToken: "secret", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/stats") {
			api.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, r)
		var env httpapi.Envelope[httpapi.Stats]
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
			t.Errorf("stats: %v", err)
		}
		env.Data.Capacity += 5 // capacity != available + held + purchased
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Code)
		json.NewEncoder(w).Encode(env)
	}))
	defer broken.Close()

	var stdout bytes.Buffer
	err = run(t.Context(), []string{"rush", "--url", broken.URL, "--create", "100", "--visitors", "200",
		"--concurrency", "8", "--admin-token", "secret"}, func(string) string { return "" }, &stdout, io.Discard)
	var ex exitError
	if !errors.As(err, &ex) || ex.code != 1 || !strings.Contains(ex.msg, "capacity == available + held + purchased") {
		t.Fatalf("rush on a broken server: err %v, want exit status 1 naming the failed check\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "FAIL  capacity == available + held + purchased") {
		t.Errorf("report lacks the FAIL line:\n%s", stdout.String())
	}
}

func TestRushCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"rush", "--create", "10"},
		{"rush", "--url", "http://127.0.0.1:1"},
		{"rush", "--url", "http://127.0.0.1:1", "--event", "1", "--create", "10"},
		{"rush", "--url", "http://127.0.0.1:1", "--event", "1", "--amounts", "1,x"},
		{"rush", "--url", "http://127.0.0.1:1", "--event", "1", "extra"},
	} {
		var stderr bytes.Buffer
		if err := run(t.Context(), args, func(string) string { return "" }, io.Discard, &stderr); !errors.Is(err, errUsage) {
			t.Errorf("%q: err %v, want a usage error", args, err)
		}
		if stderr.Len() == 0 {
			t.Errorf("%q: nothing said on stderr", args)
		}
	}
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"rush", "--help"}, func(string) string { return "" }, io.Discard, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	if !strings.Contains(stderr.String(), "--concurrency") {
		t.Errorf("--help does not list the flags:\n%s", stderr.String())
	}
}

// The multi-node proof: three serve processes on one database, one rush
// through all three.

// rushBinary builds the command, for tests that run it as processes.
func rushBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ticketrush")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// lockedBuffer keeps a process's log for the test's failure message.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startNode runs `ticketrush serve` as a process on a loopback port it
// picks itself, waits until /healthz answers and returns the base URL. The
// process gets SIGTERM when the test ends.
func startNode(t *testing.T, bin, db, strategy string) string {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--db", db, "--admin-token", "node-secret",
		"--strategy", strategy, "--log-level", "info", "--rate-limit", "0")
	cmd.Env = append(os.Environ(), "TICKETRUSH_DB=", "DATABASE_URL=")
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	logs := &lockedBuffer{}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logs, line)
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
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		pw.Close()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("serve %s: %v\n%s", strategy, err, logs.String())
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("serve %s did not stop within 20s of SIGTERM\n%s", strategy, logs.String())
		}
	})

	var addr string
	select {
	case addr = <-addrc:
	case err := <-exited:
		t.Fatalf("serve exited: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not listen within 60s\n%s", logs.String())
	}
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz did not answer 200 within 30s (%v)\n%s", base, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rushNodes starts three nodes on db (mixing both reserve strategies, which
// must agree on one database), rushes through all three with the built
// binary, and checks the report.
func rushNodes(t *testing.T, bin, db string) {
	var urls []string
	for _, strategy := range []string{"batch", "lock", "batch"} {
		urls = append(urls, startNode(t, bin, db, strategy))
	}
	args := []string{"rush", "--create", "400", "--visitors", "1200", "--concurrency", "48",
		"--purchase", "0.6", "--cancel", "0.1", "--json"}
	for _, u := range urls {
		args = append(args, "--url", u)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TICKETRUSH_ADMIN_TOKEN=node-secret")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("rush: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var rep rush.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("rush --json: %v\n%s", err, stdout.String())
	}
	if !rep.OK || rep.Partial || rep.Stats == nil {
		t.Fatalf("rush report: OK %v, partial %v\n%s", rep.OK, rep.Partial, stdout.String())
	}
	for _, c := range rep.Checks {
		if c.Result != rush.Pass {
			t.Errorf("%s: %s %s, want PASS", c.Name, c.Result, c.Detail)
		}
	}
	s := rep.Stats
	if s.Capacity != 400 || s.Available+s.Held+s.Purchased != 400 || rep.Outcomes.SoldOut == 0 {
		t.Errorf("stats %+v, outcomes %+v: want 400 tickets, all taken", *s, rep.Outcomes)
	}
	if len(rep.Nodes) != 3 {
		t.Fatalf("nodes %+v", rep.Nodes)
	}
	for _, n := range rep.Nodes {
		if n.Error != "" || n.TicketQuantity != s.Available {
			t.Errorf("node %s: stock %d (%s), want %d", n.URL, n.TicketQuantity, n.Error, s.Available)
		}
	}
	// A reserve the server shed with 503 unavailable may have committed
	// all the same; when its repeat finds the event sold out it stays in
	// doubt, which the checks above allow for.
	o := rep.Outcomes
	if rep.Visitors != 1200 || o.Reserved+o.SoldOut+o.InDoubt+o.Shed != 1200 || o.Reserved == 0 || o.Unexpected+o.Refused != 0 {
		t.Errorf("%d visitors, outcomes %+v: want 1200, reserved or turned away as sold out", rep.Visitors, o)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Logf("rush over %d nodes:\n%s", len(urls), text.String())
}

func TestRushMultiNode(t *testing.T) {
	bin := rushBinary(t)
	t.Run("postgres", func(t *testing.T) { rushNodes(t, bin, postgres.NewTestDatabase(t)) })
	t.Run("redis", func(t *testing.T) { rushNodes(t, bin, redis.NewTestURL(t)) })
}
