package httpapi

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowWriter records its writes and takes its time over each.
type slowWriter struct {
	mu     sync.Mutex
	writes [][]byte
	delay  time.Duration
}

func (s *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, append([]byte(nil), p...))
	return len(p), nil
}

// TestAsyncWriter: writes return without waiting for a slow output, every
// line arrives whole and in order once closed, and no write to the output
// ends inside a line or exceeds the chunk size.
func TestAsyncWriter(t *testing.T) {
	out := &slowWriter{delay: 20 * time.Millisecond}
	w := NewAsyncWriter(out)
	start := time.Now()
	var want bytes.Buffer
	for i := range 500 {
		line := fmt.Sprintf("line %d %s\n", i, strings.Repeat("x", i%300))
		want.WriteString(line)
		w.Write([]byte(line))
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Fatalf("500 writes took %v: they waited for the output", d)
	}
	w.Close()
	var got bytes.Buffer
	for _, b := range out.writes {
		if len(b) > asyncChunk && bytes.Count(b, []byte("\n")) > 1 {
			t.Errorf("a write of %d bytes holds several lines", len(b))
		}
		if len(b) == 0 || b[len(b)-1] != '\n' {
			t.Errorf("a write ends inside a line: %q", b[max(0, len(b)-20):])
		}
		got.Write(b)
	}
	if got.String() != want.String() {
		t.Fatalf("output differs from the lines written (%d vs %d bytes)", got.Len(), want.Len())
	}
	if len(out.writes) >= 500 {
		t.Errorf("%d writes for 500 lines: no batching", len(out.writes))
	}
	// After Close writes go straight through.
	w.Write([]byte("late\n"))
	if last := out.writes[len(out.writes)-1]; string(last) != "late\n" {
		t.Errorf("write after Close: %q", last)
	}
}
