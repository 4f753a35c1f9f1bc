package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeWaitingRoom runs two serve instances on one database, with key
// lists mid-rotation: the queue keeper admits a visitor without anyone
// calling it, and a pass from one node is accepted by the other.
func TestServeWaitingRoom(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "t.db")
	a, _ := startServe(t, serveConfig{db: db, adminToken: "secret", passKeys: "new:0123456789abcdef-new,old:0123456789abcdef-old", queueInterval: 50 * time.Millisecond})
	b, _ := startServe(t, serveConfig{db: db, adminToken: "secret", passKeys: "old:0123456789abcdef-old,new:0123456789abcdef-new", queueInterval: 50 * time.Millisecond})

	call := func(base, method, path, token, pass, body string) (int, http.Header, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Visitor-Token", token)
		}
		if pass != "" {
			req.Header.Set("Admission-Pass", pass)
		}
		if strings.HasPrefix(path, "/api/admin") {
			req.Header.Set("Authorization", "Bearer secret")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var out map[string]any
		json.Unmarshal(raw, &out)
		return res.StatusCode, res.Header, out
	}
	status, _, ev := call(a, "POST", "/api/admin/events", "", "", `{"name":"Room","ticket_quantity":10,"waiting_room":{"admit_per_minute":600}}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, ev)
	}
	id := int64(ev["data"].(map[string]any)["id"].(float64))
	const token = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
	if status, _, body := call(a, "POST", fmt.Sprintf("/api/events/%d/queue", id), token, "", ""); status != 201 {
		t.Fatalf("join: %d %v", status, body)
	}
	var pass string
	deadline := time.Now().Add(10 * time.Second)
	for pass == "" {
		status, h, body := call(a, "GET", fmt.Sprintf("/api/events/%d/queue", id), token, "", "")
		if status != 200 || h.Get("Retry-After") == "" {
			t.Fatalf("poll: %d %v", status, body)
		}
		if p, ok := body["data"].(map[string]any)["pass"].(string); ok {
			pass = p
		} else if time.Now().After(deadline) {
			t.Fatalf("not admitted within 10s: %v", body)
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if status, _, body := call(b, "POST", "/api/reserve", token, pass, fmt.Sprintf(`{"event_id":%d,"amount":2}`, id)); status != 201 {
		t.Fatalf("reserve on the other node: %d %v", status, body)
	}
}

func TestServeWaitingRoomFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--pass-keys", "k1:short"},
		{"--pass-keys", "nocolon"},
		{"--join-rate", "-1"},
		{"--queue-interval", "10s"},
	} {
		err := runServe(t.Context(), append([]string{"--db", "sqlite:" + filepath.Join(t.TempDir(), "t.db"), "--addr", "127.0.0.1:0"}, args...),
			func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("%v: err = %v, want one naming the flag", args, err)
		}
	}
}
