package rush

import (
	"context"
	"crypto/sha256"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestMannWhitneyP(t *testing.T) {
	// Reference: scipy.stats.mannwhitneyu(a, b, method="asymptotic")
	// gives p = 0.01219 for fully separated samples of five.
	a := []float64{1, 2, 3, 4, 5}
	b := []float64{6, 7, 8, 9, 10}
	if p := MannWhitneyP(a, b); math.Abs(p-0.01219) > 0.0005 {
		t.Errorf("separated samples: p = %.5f, want 0.01219", p)
	}
	if p := MannWhitneyP(b, a); math.Abs(p-0.01219) > 0.0005 {
		t.Errorf("separated samples, swapped: p = %.5f, want 0.01219", p)
	}
	// All tied: no evidence of a difference.
	if p := MannWhitneyP([]float64{3, 3, 3}, []float64{3, 3}); p != 1 {
		t.Errorf("all tied: p = %g, want 1", p)
	}
	// Two shuffles of one population: p is rarely tiny. Over 200 trials at
	// alpha 0.01 about 2 fall below it; 15 or more would mean the test is
	// miscalibrated.
	rng := rand.New(rand.NewPCG(1, 2))
	low := 0
	for range 200 {
		pop := rng.Perm(300)
		var x, y []float64
		for i, v := range pop {
			if i%10 == 0 {
				x = append(x, float64(v))
			} else {
				y = append(y, float64(v))
			}
		}
		if MannWhitneyP(x, y) < 0.01 {
			low++
		}
	}
	if low >= 15 {
		t.Errorf("%d of 200 random splits had p < 0.01", low)
	}
}

func TestSpearman(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	y := []float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 1000}
	rho, p := Spearman(x, y)
	if math.Abs(rho-1) > 1e-12 {
		t.Errorf("monotone: rho = %g, want 1", rho)
	}
	if want := math.Erfc(3 / math.Sqrt2); math.Abs(p-want) > 1e-9 {
		t.Errorf("monotone: p = %g, want %g (z = 3)", p, want)
	}
	rev := []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	if rho, _ := Spearman(x, rev); math.Abs(rho+1) > 1e-12 {
		t.Errorf("reversed: rho = %g, want -1", rho)
	}
}

func TestMaxInWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s ...float64) []time.Time {
		out := make([]time.Time, len(s))
		for i, x := range s {
			out[i] = t0.Add(time.Duration(x * float64(time.Second)))
		}
		return out
	}
	for _, tc := range []struct {
		stamps []time.Time
		want   int
	}{
		{nil, 0},
		{at(0), 1},
		{at(0, 59.999, 60), 2},       // [0, 60) holds two; 60 starts a new window
		{at(60, 0, 30, 59, 90), 3},   // unsorted input
		{at(0, 0, 0, 120, 121), 3},   // equal stamps
		{at(0, 10, 20, 65, 70), 3},   // [10, 70) holds 10, 20, 65 — and 70 is out
		{at(0, 10, 20, 65, 69.9), 4}, // [10, 70) holds 10, 20, 65, 69.9
	} {
		if got := MaxInWindow(tc.stamps, time.Minute); got != tc.want {
			t.Errorf("MaxInWindow(%v) = %d, want %d", tc.stamps, got, tc.want)
		}
	}
}

func TestSolveChallenge(t *testing.T) {
	for _, bits := range []int{0, 1, 8, 14} {
		token := "0B9A5D7E-1C2F-4A3B-8D4E-5F6A7B8C9D0E"
		nonce, ok := SolveChallenge(context.Background(), "abc.def", token, bits)
		if !ok {
			t.Fatalf("bits %d: not solved", bits)
		}
		sum := sha256.Sum256([]byte("abc.def:0b9a5d7e-1c2f-4a3b-8d4e-5f6a7b8c9d0e:" + nonce))
		if got := LeadingZeroBits(sum[:]); got < bits {
			t.Errorf("bits %d: nonce %q gives %d leading zero bits", bits, nonce, got)
		}
		for _, c := range nonce {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z') || len(nonce) > 64 || nonce == "" {
				t.Errorf("nonce %q is not 1-64 characters of [A-Za-z0-9]", nonce)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok := SolveChallenge(ctx, "x", "y", 256); ok {
		t.Error("an impossible challenge was solved")
	}
}

func TestLeadingZeroBits(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want int
	}{
		{[]byte{0x80}, 0}, {[]byte{0x40}, 1}, {[]byte{0x01}, 7}, {[]byte{0x00, 0xff}, 8},
		{[]byte{0x00, 0x00, 0x10}, 19}, {[]byte{0, 0}, 16},
	} {
		if got := LeadingZeroBits(tc.b); got != tc.want {
			t.Errorf("LeadingZeroBits(%x) = %d, want %d", tc.b, got, tc.want)
		}
	}
}
