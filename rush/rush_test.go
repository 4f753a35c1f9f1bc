package rush_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
	"github.com/ticketrush/ticketrush/httpapi"
	"github.com/ticketrush/ticketrush/rush"
	"github.com/ticketrush/ticketrush/sqlite"
)

const adminToken = "rush-test-token"

// node starts an API server over its own store on the SQLite file at path,
// as a separate process on a shared database would, and returns its URL.
func node(t *testing.T, path string, clock ticketrush.Clock) (string, *sqlite.Store) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path, sqlite.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// These tests check what the rehearsal verifies, not latency: under the
	// race detector on a busy machine a correct batch can take longer than
	// the serving deadlines, whose 503s would change the counts compared.
	b := batch.New(s, batch.Options{Timeout: 30 * time.Second})
	t.Cleanup(b.Close)
	srv := httptest.NewServer(httpapi.New(httpapi.Config{
		Store:      s,
		Reserver:   b,
		Timeout:    30 * time.Second,
		AdminToken: adminToken,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	t.Cleanup(srv.Close)
	return srv.URL, s
}

func checkResults(rep *rush.Report) map[string]rush.Check {
	m := map[string]rush.Check{}
	for _, c := range rep.Checks {
		m[c.Name] = c
	}
	return m
}

func logReport(t *testing.T, rep *rush.Report) {
	t.Helper()
	var b strings.Builder
	rep.WriteText(&b)
	t.Log("\n" + b.String())
}

func TestRushPassesOnTwoNodes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rush.db")
	a, _ := node(t, path, nil)
	b, _ := node(t, path, nil)
	var progress bytes.Buffer
	rep, err := rush.Run(t.Context(), rush.Config{
		URLs:          []string{a, b + "/"},
		Create:        300,
		Visitors:      600,
		Concurrency:   32,
		Purchase:      0.5,
		Cancel:        0.2,
		AdminToken:    adminToken,
		Progress:      &progress,
		ProgressEvery: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Partial {
		logReport(t, rep)
		t.Fatalf("OK %v, partial %v; want a passing, complete verification", rep.OK, rep.Partial)
	}
	for _, c := range rep.Checks {
		if c.Result != rush.Pass {
			t.Errorf("%s: %s %s, want PASS", c.Name, c.Result, c.Detail)
		}
	}
	if len(rep.Checks) != 8 {
		t.Errorf("%d checks, want 8", len(rep.Checks))
	}

	// Demand (600 visitors of 1, 2 or 4) far exceeds 300 tickets.
	if rep.Visitors != 600 || rep.Outcomes.SoldOut == 0 || rep.Outcomes.Reserved == 0 {
		t.Errorf("visitors %d, outcomes %+v; want 600 with some reserved and some sold out", rep.Visitors, rep.Outcomes)
	}
	s := rep.Stats
	if s == nil || rep.StatsBefore == nil {
		t.Fatal("no stats")
	}
	tk := rep.Tickets
	if tk.Purchased != s.Purchased || tk.Held != s.Held || tk.Cancelled != s.Cancelled {
		t.Errorf("tickets %+v, server %+v: purchased, held and cancelled must agree", tk, *s)
	}
	if s.Capacity != 300 || s.Available+s.Held+s.Purchased != 300 {
		t.Errorf("server stats %+v", *s)
	}
	if len(rep.Nodes) != 2 || rep.Nodes[0].TicketQuantity != s.Available || rep.Nodes[1].TicketQuantity != s.Available {
		t.Errorf("nodes %+v, available %d", rep.Nodes, s.Available)
	}

	eps := map[string]rush.EndpointReport{}
	for _, e := range rep.Endpoints {
		eps[e.Name] = e
		l := e.Latency
		if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
			t.Errorf("%s latency %+v is not ordered", e.Name, l)
		}
	}
	res := eps[rush.EndpointReserve]
	if res.Requests != 600 || res.Statuses["201"] != uint64(rep.Outcomes.Reserved) || res.Statuses["409"] != uint64(rep.Outcomes.SoldOut) || res.PerSecond <= 0 {
		t.Errorf("reserve endpoint %+v, outcomes %+v", res, rep.Outcomes)
	}
	if eps[rush.EndpointRead].Requests != uint64(rep.Outcomes.Reserved) {
		t.Errorf("read %d reservations, want every one of the %d acknowledged", eps[rush.EndpointRead].Requests, rep.Outcomes.Reserved)
	}
	if eps[rush.EndpointPurchase].Statuses["200"] == 0 || eps[rush.EndpointCancel].Statuses["200"] == 0 {
		t.Errorf("no purchase or no cancel: %+v %+v", eps[rush.EndpointPurchase], eps[rush.EndpointCancel])
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PASS  acknowledged ≤ capacity", "PASS  every node reports the same stock", "reserve ", "p99"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
	b2, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back rush.Report
	if err := json.Unmarshal(b2, &back); err != nil || !back.OK || len(back.Checks) != 8 {
		t.Errorf("report does not survive JSON: %v %s", err, b2)
	}

	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "rush: ") || !strings.Contains(last, "600/600 visitors (100%)") {
		t.Errorf("last progress line %q", last)
	}
	if strings.Contains(progress.String(), "\r") {
		t.Error("progress redraws in place although not on a terminal")
	}
}

func TestRushWithoutAdminTokenIsPartial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rush.db")
	url, s := node(t, path, nil)
	e, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "Concert", TicketQuantity: 50, HoldSeconds: 300})
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	rep, err := rush.Run(t.Context(), rush.Config{
		URLs: []string{url}, EventID: e.ID, Visitors: 100, Concurrency: 8,
		Purchase: 0.6, Cancel: 0.1, Progress: &progress, Terminal: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || !rep.Partial || rep.Result != rush.Partial || rep.Stats != nil {
		logReport(t, rep)
		t.Fatalf("OK %v, partial %v, result %s; want no failure and a PARTIAL verdict", rep.OK, rep.Partial, rep.Result)
	}
	got := checkResults(rep)
	for name, want := range map[string]string{
		"acknowledged ≤ capacity":                                rush.Pass,
		"capacity == available + held + purchased":               rush.Skip,
		"held + purchased + expired == acknowledged − cancelled": rush.Skip,
		"every node reports the same stock":                      rush.Pass,
	} {
		if got[name].Result != want {
			t.Errorf("%s: %s, want %s", name, got[name].Result, want)
		}
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "PARTIAL: no check failed, but 2 of") || strings.Contains(text.String(), "PASS: ") {
		t.Errorf("report does not say PARTIAL, or says PASS:\n%s", text.String())
	}
	p := progress.String()
	if !strings.Contains(p, "\r\x1b[K[########################] ") || !strings.HasSuffix(p, "\n") {
		t.Errorf("terminal progress %q: want a bar redrawn in place, ending full with a newline", p)
	}
}

// TestRushHoldsExpire runs on a clock that moves on with every reading, so
// holds expire during the run: they are counted from the server's expired
// count, so the equality is still checked, and passes, as does every
// other check. Nothing is skipped, so the verdict is PASS.
func TestRushHoldsExpire(t *testing.T) {
	base := time.Date(2025, 11, 18, 7, 54, 23, 0, time.UTC)
	var ticks atomic.Int64
	clock := func() time.Time { return base.Add(time.Duration(ticks.Add(1)) * 50 * time.Millisecond) }
	url, _ := node(t, filepath.Join(t.TempDir(), "rush.db"), clock)
	rep, err := rush.Run(t.Context(), rush.Config{
		URLs: []string{url}, Create: 60, Hold: time.Second, Visitors: 400, Concurrency: 16,
		Purchase: 0.3, Cancel: 0.1, AdminToken: adminToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	logReport(t, rep)
	got := checkResults(rep)
	if !rep.OK || rep.Stats == nil || rep.Stats.Expired == 0 {
		t.Fatalf("OK %v, stats %+v; want a pass with expired holds", rep.OK, rep.Stats)
	}
	if c := got["held + purchased + expired == acknowledged − cancelled"]; c.Result != rush.Pass || !strings.Contains(c.Detail, "expired") {
		t.Errorf("equality check %+v, want it checked and passed with the expired holds counted", c)
	}
	if rep.Partial || rep.Result != rush.Pass {
		t.Errorf("partial %v, result %s; want PASS with nothing skipped", rep.Partial, rep.Result)
	}
}

func TestRushRefusesBadConfig(t *testing.T) {
	for name, c := range map[string]rush.Config{
		"no url":             {Create: 10, Visitors: 1, AdminToken: "x"},
		"bad url":            {URLs: []string{"localhost:8080"}, Create: 10, Visitors: 1, AdminToken: "x"},
		"no event":           {URLs: []string{"http://127.0.0.1:1"}, Visitors: 1},
		"both":               {URLs: []string{"http://127.0.0.1:1"}, EventID: 1, Create: 10, Visitors: 1, AdminToken: "x"},
		"create no token":    {URLs: []string{"http://127.0.0.1:1"}, Create: 10, Visitors: 1},
		"no visitors":        {URLs: []string{"http://127.0.0.1:1"}, EventID: 1},
		"probabilities":      {URLs: []string{"http://127.0.0.1:1"}, EventID: 1, Visitors: 1, Purchase: 0.8, Cancel: 0.3},
		"amount":             {URLs: []string{"http://127.0.0.1:1"}, EventID: 1, Visitors: 1, Amounts: []int64{0}},
		"server unreachable": {URLs: []string{"http://127.0.0.1:1"}, EventID: 1, Visitors: 1, Timeout: time.Second},
	} {
		if _, err := rush.Run(t.Context(), c); err == nil {
			t.Errorf("%s: Run accepted %+v", name, c)
		}
	}
}

func TestRushCreatesHiddenEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rush.db")
	url, s := node(t, path, nil)
	for _, listed := range []bool{false, true} {
		rep, err := rush.Run(t.Context(), rush.Config{
			URLs: []string{url}, Create: 10, Listed: listed, Visitors: 5, Concurrency: 2, AdminToken: adminToken,
		})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := s.Event(t.Context(), rep.Event.ID)
		if err != nil {
			t.Fatal(err)
		}
		// A rehearsal's event stays off the buyer page unless asked.
		if ev.Hidden == listed {
			t.Errorf("Listed %v: the created event has hidden %v", listed, ev.Hidden)
		}
	}
}
