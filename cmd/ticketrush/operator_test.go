package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

// TestServeBusyPortLeavesNothing: serve takes its port before it touches
// the database, so a busy port fails at once, says which address and what
// to do, and leaves no database file behind.
func TestServeBusyPortLeavesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "ticketrush.db")
	var out bytes.Buffer
	start := time.Now()
	err = run(t.Context(), []string{"serve", "--addr", ln.Addr().String(), "--db", "sqlite:" + path}, noEnv, &out, &out)
	if err == nil {
		t.Fatal("serve on a busy port succeeded")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("serve took %v to fail on a busy port", time.Since(start))
	}
	msg := err.Error()
	for _, want := range []string{"cannot listen on " + ln.Addr().String(), "another program", "--addr"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("serve on a busy port left %v behind", entries)
	}
}

// TestUnreachablePostgresErrorIsForOperators: the error names what failed,
// the address (without the password) and what to check; not the text meant
// for HTTP clients.
func TestUnreachablePostgresErrorIsForOperators(t *testing.T) {
	// A port nothing listens on: take one and release it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dsn := "postgres://app:hunter2@" + addr + "/tickets?sslmode=disable&connect_timeout=2"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, cmd := range [][]string{
		{"serve", "--addr", "127.0.0.1:0", "--db", dsn},
		{"migrate", "--db", dsn},
	} {
		var out bytes.Buffer
		err := run(ctx, cmd, noEnv, &out, &out)
		if err == nil {
			t.Fatalf("%s: succeeded against %s", cmd[0], addr)
		}
		msg := err.Error()
		for _, want := range []string{"cannot open the postgres database", addr, "PostgreSQL is running and reachable", "--db"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error %q does not say %q", cmd[0], msg, want)
			}
		}
		for _, bad := range []string{"hunter2", "please retry"} {
			if strings.Contains(msg, bad) {
				t.Errorf("%s: error %q contains %q", cmd[0], msg, bad)
			}
		}
	}
}

// TestDurationFlagsNameTheForm: a duration without a unit is refused with
// a message that shows the form, from a flag and from the environment.
func TestDurationFlagsNameTheForm(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--hold", "5"},
		{"serve", "--sweep-interval", "1"},
		{"serve", "--request-timeout", "1500"},
		{"seed", "--hold", "300"},
	} {
		var out bytes.Buffer
		err := run(t.Context(), args, noEnv, &out, &out)
		if !errors.Is(err, errUsage) {
			t.Fatalf("%v: err = %v, want a usage error", args, err)
		}
		for _, want := range []string{"invalid value", "5m", "90s"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v: output %q does not say %q", args, out.String(), want)
			}
		}
	}
	env := map[string]string{"TICKETRUSH_HOLD": "5", "TICKETRUSH_DB": "sqlite:" + filepath.Join(t.TempDir(), "t.db")}
	var out bytes.Buffer
	err := run(t.Context(), []string{"serve", "--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "TICKETRUSH_HOLD") || !strings.Contains(err.Error(), "5m") {
		t.Fatalf("TICKETRUSH_HOLD=5: err = %v, want it refused naming the variable and the form", err)
	}
}

// TestServeFlagValues: other bad values are refused before anything
// starts, each naming the flag.
func TestServeFlagValues(t *testing.T) {
	for flagName, args := range map[string][]string{
		"--allowed-origins":    {"--allowed-origins", "shop.example.com"},
		"--request-log":        {"--request-log", "loud"},
		"--max-streams-per-ip": {"--max-streams-per-ip", "0"},
		"--rate-limit":         {"--rate-limit", "-1"},
	} {
		dir := t.TempDir()
		var out bytes.Buffer
		err := run(t.Context(), append([]string{"serve", "--addr", "127.0.0.1:0", "--db", "sqlite:" + filepath.Join(dir, "t.db")}, args...), noEnv, &out, &out)
		if err == nil || !strings.Contains(err.Error(), flagName) {
			t.Errorf("%v: err = %v, want it to name %s", args, err, flagName)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%v: left %v behind", args, entries)
		}
	}
}

// TestServeDefaults: the rate limit is on by default at the values the
// README names, the environment sets it like the flag, and 0 turns it off.
func TestServeDefaults(t *testing.T) {
	c, err := parseServe(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.rateLimit != 10 || c.rateBurst != 50 {
		t.Errorf("default rate limit %g/s burst %d, want 10/s burst 50", c.rateLimit, c.rateBurst)
	}
	if c.maxStreamsPerIP != 64 || c.requestLog != "info" || c.requestLogMax != 1000 {
		t.Errorf("defaults: streams per IP %d, request log %q max %g", c.maxStreamsPerIP, c.requestLog, c.requestLogMax)
	}
	env := map[string]string{"TICKETRUSH_RATE_LIMIT": "0", "TICKETRUSH_ALLOWED_ORIGINS": "https://shop.example.com"}
	c, err = parseServe(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.rateLimit != 0 || len(c.allowedOrigins) != 1 || c.allowedOrigins[0] != "https://shop.example.com" {
		t.Errorf("from the environment: rate %g, origins %v", c.rateLimit, c.allowedOrigins)
	}
	if c, err = parseServe([]string{"--rate-limit", "0"}, noEnv, io.Discard); err != nil || c.rateLimit != 0 {
		t.Errorf("--rate-limit 0: %g, %v", c.rateLimit, err)
	}
	// A rehearsal started as the README says (--rate-limit 0) sends its
	// crowd's joins from one address: the join quota must not refuse them.
	if c.joinRate != 0 {
		t.Errorf("--rate-limit 0 left the join quota at %g/s: a crowd from one machine is refused 429 after %d joins", c.joinRate, c.joinBurst)
	}
	if c, err = parseServe(nil, noEnv, io.Discard); err != nil || c.joinRate != 1 || c.joinBurst != 20 {
		t.Errorf("default join quota %g/s burst %d, %v; want 1/s burst 20", c.joinRate, c.joinBurst, err)
	}
	if c, err = parseServe([]string{"--rate-limit", "0", "--join-rate", "2"}, noEnv, io.Discard); err != nil || c.joinRate != 2 {
		t.Errorf("--rate-limit 0 --join-rate 2: join rate %g, %v", c.joinRate, err)
	}
	env = map[string]string{"TICKETRUSH_RATE_LIMIT": "0", "TICKETRUSH_JOIN_RATE": "3"}
	if c, err = parseServe(nil, func(k string) string { return env[k] }, io.Discard); err != nil || c.joinRate != 3 {
		t.Errorf("TICKETRUSH_JOIN_RATE=3 with the rate limit off: join rate %g, %v", c.joinRate, err)
	}
	// A value that is not a number is refused, naming the variable.
	env = map[string]string{"TICKETRUSH_RATE_LIMIT": "ten"}
	if _, err := parseServe(nil, func(k string) string { return env[k] }, io.Discard); err == nil || !strings.Contains(err.Error(), `TICKETRUSH_RATE_LIMIT="ten"`) {
		t.Errorf("TICKETRUSH_RATE_LIMIT=ten: err %v, want it refused by name", err)
	}
}
