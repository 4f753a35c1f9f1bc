package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// serve's timeouts for a slow client (cmd/ticketrush/serve.go).
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
)

// TestSlowloris opens many connections that trickle their request one byte
// a second, some never finishing the headers, some never finishing the
// body. serve's ReadHeaderTimeout and ReadTimeout must close every one of
// them, and meanwhile a normal client must be served promptly.
func TestSlowloris(t *testing.T) {
	db, _ := sqliteBackend.newDB(t)
	srv := startServe(t, db)
	c := newClient(t, srv.URL, 4, 10*time.Second)
	ev := c.createEvent(t, "Slowloris", 1_000_000)

	const (
		slowHeaders = 200
		slowBodies  = 50
	)
	type slowConn struct {
		body   bool
		closed time.Duration // after the first byte; 0 if never
		answer string        // the status line the server sent, if any
	}
	var (
		mu    sync.Mutex
		conns []slowConn
		wg    sync.WaitGroup
	)
	start := time.Now()
	for i := range slowHeaders + slowBodies {
		body := i >= slowHeaders
		wg.Add(1)
		go func() {
			defer wg.Done()
			closed, answer := trickle(t, srv.Addr, body, ev.ID)
			mu.Lock()
			conns = append(conns, slowConn{body: body, closed: closed, answer: answer})
			mu.Unlock()
		}()
	}
	fault("slowloris connection", slowHeaders+slowBodies)

	// A normal client, on a fresh connection each time, while the slow
	// ones hold theirs.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var served int
	var slowest time.Duration
	normal := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer normal.CloseIdleConnections()
	for i := 0; ; i++ {
		select {
		case <-done:
		case <-time.After(100 * time.Millisecond):
			t0 := time.Now()
			var resp *http.Response
			var err error
			if i%2 == 0 {
				resp, err = normal.Get(srv.URL + "/api/events")
			} else {
				req, _ := http.NewRequestWithContext(context.Background(), "POST", srv.URL+"/api/reserve",
					strings.NewReader(fmt.Sprintf(`{"event_id":%d,"amount":1}`, ev.ID)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Visitor-Token", uuid.NewString())
				resp, err = normal.Do(req)
			}
			totals.requests.Add(1)
			took := time.Since(t0)
			if err != nil {
				t.Fatalf("normal client during the slowloris: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
				t.Errorf("normal client: status %d", resp.StatusCode)
			}
			slowest = max(slowest, took)
			// Generous for a busy machine; a held server would make it
			// wait for the slow connections' timeouts (5 s and more).
			if took > 2*time.Second {
				t.Errorf("normal client waited %s during the slowloris", took)
			}
			served++
			if time.Since(start) > 20*time.Second {
				t.Fatalf("slow connections still open after 20s")
			}
			continue
		}
		break
	}

	var headers, bodies []time.Duration
	for _, sc := range conns {
		if sc.closed == 0 {
			t.Errorf("slow connection (body %v) never closed by the server", sc.body)
			continue
		}
		if sc.body {
			bodies = append(bodies, sc.closed)
		} else {
			headers = append(headers, sc.closed)
			if sc.answer != "" {
				t.Errorf("slow header connection got an answer %q", sc.answer)
			}
		}
	}
	check := func(what string, ds []time.Duration, limit time.Duration) {
		if len(ds) == 0 {
			return
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		lo, hi := ds[0], ds[len(ds)-1]
		// The server's clock starts when it accepts, a little before the
		// first byte: allow a second either side.
		if lo < limit-time.Second || hi > limit+3*time.Second {
			t.Errorf("%s: closed after %s to %s, want about %s", what, lo.Round(time.Millisecond), hi.Round(time.Millisecond), limit)
		}
		t.Logf("%d %s connections closed by the server after %s to %s", len(ds), what, lo.Round(time.Millisecond), hi.Round(time.Millisecond))
	}
	check("slow-header", headers, readHeaderTimeout)
	check("slow-body", bodies, readTimeout)
	c.checkInvariant(t, ev.ID)
	t.Logf("normal client served %d requests meanwhile, slowest %s", served, slowest.Round(time.Millisecond))
}

// trickle opens a connection and sends a request one byte a second: the
// header block never ends, or (body) the headers end and the announced body
// never does. It returns when the server closes the connection: how long
// after the first byte, and the status line of any answer.
func trickle(t *testing.T, addr string, body bool, eventID int64) (time.Duration, string) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Errorf("dial: %v", err)
		return 0, ""
	}
	defer conn.Close()
	head := "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
	if body {
		head = fmt.Sprintf("POST /api/reserve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"event_id\":%d,\"amount\":1,\"x\":\"", eventID)
	}
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Errorf("write: %v", err)
		return 0, ""
	}
	closed := make(chan string, 1)
	go func() {
		// Whatever the server sends, then its close, end the wait.
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(conn)
		line := string(b)
		if i := indexCRLF(line); i >= 0 {
			line = line[:i]
		}
		closed <- line
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range 20 {
		select {
		case answer := <-closed:
			return time.Since(start), answer
		case <-tick.C:
			// A write to a connection the server closed may fail; the
			// reader reports the close.
			conn.Write([]byte("a"))
		}
	}
	return 0, ""
}

func indexCRLF(s string) int {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\r' && s[i+1] == '\n' {
			return i
		}
	}
	return -1
}
