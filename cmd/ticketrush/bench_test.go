package main

import (
	"bytes"
	"strings"
	"testing"
)

func benchNoEnv(string) string { return "" }

// TestBenchCommand runs the command as a user would, on serve's own server,
// and reads its verdict; the harness itself is tested in package bench.
func TestBenchCommand(t *testing.T) {
	args := []string{"bench", "--duration", "300ms", "--warmup", "100ms", "--concurrency", "8"}
	var out, errOut bytes.Buffer
	if err := run(t.Context(), args, benchNoEnv, &out, &errOut); err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, &out, &errOut)
	}
	for _, want := range []string{"| sqlite  | lock ", "| sqlite  | batch", "verified after each run: nothing oversold"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, &out)
		}
	}
}

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--concurrency", "0"},
		{"bench", "--concurrency", "64,x"},
		{"bench", "--strategies", "lock,fast"},
		{"bench", "--duration", "0s"},
		{"bench", "extra"},
	} {
		var out, errOut bytes.Buffer
		if err := run(t.Context(), args, benchNoEnv, &out, &errOut); err != errUsage {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
	}
}
