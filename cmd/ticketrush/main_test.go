package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/ticketrush/ticketrush/httpapi"
	"io"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/sqlite"
)

// startServe runs serve in-process on a loopback port and returns its base
// URL; the server stops when the test ends.
func startServe(t *testing.T, c serveConfig) (string, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	c.addr = "127.0.0.1:0"
	c.ready = func(addr string) { addrc <- addr }
	if c.hold == 0 {
		c.hold = ticketrush.DefaultHold
	}
	if c.sweepInterval == 0 {
		c.sweepInterval = time.Second
	}
	if c.strategy == "" {
		c.strategy = "batch"
	}
	if c.logLevel == "" {
		c.logLevel = "warn"
	}
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, c, io.Discard) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start within 30s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + addr, cancel
}

func TestServeSeedFlow(t *testing.T) {
	for _, strategy := range []string{"lock", "batch"} {
		t.Run(strategy, func(t *testing.T) {
			db := "sqlite:" + filepath.Join(t.TempDir(), "t.db")
			base, _ := startServe(t, serveConfig{db: db, strategy: strategy, adminToken: "secret"})

			// The original's first request: the seeded demo event.
			var events struct {
				Data []struct {
					ID             int64  `json:"id"`
					Name           string `json:"name"`
					TicketQuantity int64  `json:"ticket_quantity"`
				} `json:"data"`
			}
			getJSON(t, base+"/api/events", &events)
			if len(events.Data) != 1 || events.Data[0].Name != demoName || events.Data[0].TicketQuantity != demoTickets {
				t.Fatalf("events = %+v, want the demo event with 2000 tickets", events.Data)
			}
			id := events.Data[0].ID

			// Reserve without a Visitor-Token, as the seed's curl does.
			resp := post(t, base+"/api/reserve", "", fmt.Sprintf(`{"event_id": %d, "amount": 1}`, id))
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("reserve status %d", resp.StatusCode)
			}
			var res struct {
				Data struct {
					ID        int64  `json:"id"`
					UserUID   string `json:"user_uid"`
					Status    string `json:"status"`
					ExpiresAt string `json:"expires_at"`
					CreatedAt string `json:"created_at"`
				} `json:"data"`
			}
			decode(t, resp, &res)
			if res.Data.Status != "reserved" || res.Data.UserUID == "" || resp.Header.Get("Visitor-Token") != res.Data.UserUID {
				t.Fatalf("reserve = %+v, header %q", res.Data, resp.Header.Get("Visitor-Token"))
			}
			exp, _ := time.Parse(time.RFC3339, res.Data.ExpiresAt)
			created, _ := time.Parse(time.RFC3339, res.Data.CreatedAt)
			if exp.Sub(created) != 5*time.Minute {
				t.Fatalf("expires_at - created_at = %s, want 5m", exp.Sub(created))
			}

			// Purchase with the returned token.
			resp = post(t, base+"/api/purchase", res.Data.UserUID, fmt.Sprintf(`{"reservation_id": %d}`, res.Data.ID))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("purchase status %d", resp.StatusCode)
			}
			var bought struct {
				Data struct{ Status string } `json:"data"`
			}
			decode(t, resp, &bought)
			if bought.Data.Status != "purchased" {
				t.Fatalf("purchase status = %q", bought.Data.Status)
			}
			// The listing comes from the server's event view: it shows the
			// sale within httpapi.DefaultEventsMaxAge.
			for deadline := time.Now().Add(httpapi.DefaultEventsMaxAge + time.Second); ; time.Sleep(10 * time.Millisecond) {
				getJSON(t, base+"/api/events", &events)
				if events.Data[0].TicketQuantity == demoTickets-1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("ticket_quantity = %d, want %d", events.Data[0].TicketQuantity, demoTickets-1)
				}
			}
		})
	}
}

// TestGracefulShutdownKeepsAcknowledged stops the server while clients are
// reserving: every reservation a client got a 201 for must be in the
// database afterwards.
func TestGracefulShutdownKeepsAcknowledged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	base, stop := startServe(t, serveConfig{db: "sqlite:" + path})
	var mu sync.Mutex
	var acked []int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				resp, err := http.Post(base+"/api/reserve", "application/json", strings.NewReader(`{"event_id":1,"amount":1}`))
				if err != nil {
					return // server gone
				}
				var r struct {
					Data struct{ ID int64 } `json:"data"`
				}
				err = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated && err == nil {
					mu.Lock()
					acked = append(acked, r.Data.ID)
					mu.Unlock()
				} else if resp.StatusCode != http.StatusCreated {
					return
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()

	s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Stats(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if int(st.Held) != len(acked) || st.Capacity != st.Available+st.Held+st.Purchased {
		t.Fatalf("after shutdown: %+v, acknowledged %d", st, len(acked))
	}
	if len(acked) == 0 {
		t.Fatal("no reservation was acknowledged before shutdown")
	}
}

func TestCommandsHelp(t *testing.T) {
	for _, cmd := range []string{"serve", "migrate", "seed", "bench", "rush"} {
		var out bytes.Buffer
		err := run(t.Context(), []string{cmd, "--help"}, func(string) string { return "" }, &out, &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s --help: err = %v", cmd, err)
		}
		if !strings.Contains(out.String(), "Usage") {
			t.Errorf("%s --help printed no usage:\n%s", cmd, out.String())
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"nope"}, func(string) string { return "" }, &out, &out); !errors.Is(err, errUsage) {
		t.Errorf("unknown command: err = %v", err)
	}
}

func TestMigrateAndSeed(t *testing.T) {
	env := map[string]string{"TICKETRUSH_DB": "sqlite:" + filepath.Join(t.TempDir(), "t.db")}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	if err := run(t.Context(), []string{"migrate"}, getenv, &out, &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	for i, want := range []string{"seeded event 1", "nothing seeded"} {
		out.Reset()
		if err := run(t.Context(), []string{"seed"}, getenv, &out, &out); err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		if !strings.Contains(out.String(), want) {
			t.Fatalf("seed %d printed %q, want %q", i, out.String(), want)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	decode(t, resp, v)
}

func post(t *testing.T, url, token, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Visitor-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestGCDefault checks that the command raises the collector's target only
// when GOGC is not set.
func TestGCDefault(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	gcDefault(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GOGC unset: collector target %d, want %d", got, defaultGCPercent)
	}
	gcDefault(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=50 set: collector target changed to %d; the runtime's own reading of GOGC must stand", got)
	}
}
