package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/sqlite"
)

// logSink is a log destination safe for concurrent writers, readable as
// JSON lines.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logSink) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func requestLogServer(t *testing.T, rl RequestLogConfig, level slog.Level) (*Server, *logSink, int64) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/x.db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	e, err := st.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "Log", TicketQuantity: 100, HoldSeconds: 300})
	if err != nil {
		t.Fatal(err)
	}
	buf := &logSink{}
	log := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: level}))
	return New(Config{Store: st, AdminToken: adminToken, Logger: log, RequestLog: rl}), buf, e.ID
}

// TestRequestLog: one line per request, with method, route pattern (not
// the raw path), status, duration, error code, bytes, client IP and the
// first characters of the visitor token, never the whole token.
func TestRequestLog(t *testing.T) {
	srv, buf, id := requestLogServer(t, RequestLogConfig{}, slog.LevelInfo)
	send := func(method, path, body string, h map[string]string) {
		r := httptest.NewRequestWithContext(t.Context(), method, "http://ticketrush.test"+path, strings.NewReader(body))
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		for k, v := range h {
			r.Header.Set(k, v)
		}
		srv.ServeHTTP(httptest.NewRecorder(), r)
	}
	send("POST", "/api/reserve", `{"event_id":`+itoa(id)+`,"amount":2}`, map[string]string{"Visitor-Token": tokenA})
	send("GET", "/api/events/"+itoa(id), "", nil)
	send("GET", "/api/events/999999", "", nil)
	send("GET", "/api/reservations/1", "", nil)
	send("GET", "/nope", "", nil)

	lines := buf.lines()
	var reqs []map[string]any
	for _, l := range lines {
		if l["msg"] == "request" {
			reqs = append(reqs, l)
		}
	}
	if len(reqs) != 5 {
		t.Fatalf("%d request lines for 5 requests:\n%s", len(reqs), buf.b.String())
	}
	want := []struct {
		method, route string
		status        float64
		code          string
	}{
		{"POST", "POST /api/reserve", 201, ""},
		{"GET", "GET /api/events/{id}", 200, ""},
		{"GET", "GET /api/events/{id}", 404, "event_not_found"},
		{"GET", "GET /api/reservations/{id}", 400, "visitor_token_required"},
		{"GET", "unmatched", 404, "not_found"},
	}
	for i, w := range want {
		l := reqs[i]
		if l["method"] != w.method || l["route"] != w.route || l["status"] != w.status || l["code"] != w.code {
			t.Errorf("line %d: %v, want %+v", i, l, w)
		}
		if l["level"] != "INFO" || l["ip"] != "192.0.2.1" {
			t.Errorf("line %d: level %v ip %v", i, l["level"], l["ip"])
		}
		if b, _ := l["bytes"].(float64); b <= 0 {
			t.Errorf("line %d: bytes %v", i, l["bytes"])
		}
		if _, ok := l["duration"].(float64); !ok {
			t.Errorf("line %d: duration %v", i, l["duration"])
		}
	}
	if v := reqs[0]["visitor"]; v != tokenA[:8]+"…" {
		t.Errorf("visitor %q, want the token's first 8 characters", v)
	}
	if strings.Contains(buf.b.String(), tokenA) || strings.Contains(buf.b.String(), tokenA[:9]) {
		t.Errorf("the log holds more of the visitor token than its first 8 characters:\n%s", buf.b.String())
	}
}

// TestRequestLogLevelAndOff: the lines go out at the configured level, only
// when the logger lets that level through, and not at all when off.
func TestRequestLogLevelAndOff(t *testing.T) {
	for _, c := range []struct {
		name   string
		rl     RequestLogConfig
		logger slog.Level
		want   int
	}{
		{"InfoOnInfo", RequestLogConfig{}, slog.LevelInfo, 3},
		{"DebugOnInfo", RequestLogConfig{Level: slog.LevelDebug}, slog.LevelInfo, 0},
		{"DebugOnDebug", RequestLogConfig{Level: slog.LevelDebug}, slog.LevelDebug, 3},
		{"Off", RequestLogConfig{Off: true}, slog.LevelDebug, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, buf, _ := requestLogServer(t, c.rl, c.logger)
			for range 3 {
				srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(t.Context(), "GET", "/healthz", nil))
			}
			n := 0
			for _, l := range buf.lines() {
				if l["msg"] == "request" {
					n++
				}
			}
			if n != c.want {
				t.Fatalf("%d request lines, want %d", n, c.want)
			}
		})
	}
}

// TestRequestLogSamplesOverCap: over MaxPerSecond lines are dropped,
// counted in the metric, and a summary line says how many.
func TestRequestLogSamplesOverCap(t *testing.T) {
	srv, buf, _ := requestLogServer(t, RequestLogConfig{MaxPerSecond: 5}, slog.LevelInfo)
	for range 50 {
		srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(t.Context(), "GET", "/healthz", nil))
	}
	reqs, summaries := 0, 0
	for _, l := range buf.lines() {
		switch {
		case l["msg"] == "request":
			reqs++
		case strings.HasPrefix(l["msg"].(string), "request log sampled"):
			summaries++
		}
	}
	if reqs < 5 || reqs > 10 || summaries == 0 {
		t.Fatalf("%d request lines and %d summaries for 50 requests at a cap of 5/s", reqs, summaries)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), "GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "ticketrush_request_log_dropped_total") {
		t.Error("/metrics lacks ticketrush_request_log_dropped_total")
	}
}
