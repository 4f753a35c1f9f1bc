package rush

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// BenchmarkSolveChallenge measures what a join's proof of work costs a
// script: the SHA-256 hashes per second one core of Go tries (reported as
// hashes/s), and from it the time 2^bits hashes (the mean) take at the
// difficulties the README tabulates.
func BenchmarkSolveChallenge(b *testing.B) {
	const bits = 12 // 4,096 hashes on average: long enough to time, quick to repeat
	var hashes float64
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		token := fmt.Sprintf("2b1f0d4c-6a0e-4b8e-9d3a-%012x", i)
		nonce, ok := SolveChallenge(context.Background(), "bench-challenge", token, bits)
		if !ok {
			b.Fatal("no nonce")
		}
		// The solver tries nonces 0, 1, … in base 36: the one it found
		// says how many hashes it took.
		n, err := strconv.ParseUint(nonce, 36, 64)
		if err != nil {
			b.Fatal(err)
		}
		hashes += float64(n + 1)
	}
	rate := hashes / time.Since(start).Seconds()
	b.ReportMetric(rate, "hashes/s")
	for _, d := range []int{8, 16, 20, 24} {
		b.ReportMetric(float64(uint64(1)<<d)/rate*1000, "ms@"+strconv.Itoa(d)+"bits")
	}
}
