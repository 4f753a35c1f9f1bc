package httpapi

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestListenerAnswersJSON: behind Listener, what net/http refuses before
// any handler runs is a JSON error with a 4xx status, and every other
// answer passes unchanged.
func TestListenerAnswersJSON(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A handler's own plain-text answer is left alone.
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Connection", "close")
			io.WriteString(w, "handled")
		}),
		MaxHeaderBytes: 1 << 10,
	}
	go srv.Serve(Listener(ln, 1<<10))
	t.Cleanup(func() { srv.Close() })

	send := func(raw string) (*http.Response, string) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		body, _ := io.ReadAll(res.Body)
		return res, string(body)
	}
	for _, tc := range []struct {
		name, raw, code string
		status          int
	}{
		{"HeadersTooLarge", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 8<<10) + "\r\n\r\n", "headers_too_large", 431},
		{"NoHost", "GET / HTTP/1.1\r\n\r\n", "bad_request", 400},
		{"Garbage", "HELLO\r\n\r\n", "bad_request", 400},
		{"HTTP2Line", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", "bad_request", 400},
		{"GzipChunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "bad_request", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := send(tc.raw)
			if res.StatusCode != tc.status || res.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q: %s, want %d application/json", res.StatusCode, res.Header.Get("Content-Type"), body, tc.status)
			}
			var e ErrorBody
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("body %q (%v), want code %s with a message", body, err, tc.code)
			}
			if StatusOf(e.Error.Code) != res.StatusCode {
				t.Errorf("status %d, but the table says %d for %s", res.StatusCode, StatusOf(e.Error.Code), e.Error.Code)
			}
		})
	}
	res, body := send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if res.StatusCode != 200 || body != "handled" || res.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("a handler's answer changed: %d %v %q", res.StatusCode, res.Header, body)
	}
}
