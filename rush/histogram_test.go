package rush

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	prevHi := uint64(0)
	for i := range numBuckets {
		lo, hi := bucketBounds(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, after %d: buckets must be contiguous", i, lo, prevHi)
		}
		if lo > hi {
			t.Fatalf("bucket %d: lo %d > hi %d", i, lo, hi)
		}
		// Relative width at most 1/subBuckets.
		if lo >= subBuckets && (hi-lo+1)*subBuckets > lo {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its values", i, lo, hi, subBuckets)
		}
		for _, v := range []uint64{lo, hi, lo + (hi-lo)/2} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		prevHi = hi
	}
	if got := bucketOf(1 << 62); got != numBuckets-1 {
		t.Errorf("bucketOf(2^62) = %d, want the last bucket %d", got, numBuckets-1)
	}
}

func TestQuantilesMatchSortedSamples(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var exact []time.Duration
	for range 100_000 {
		// Log-normal-ish latencies from 50µs to a few seconds.
		d := time.Duration(50+rng.ExpFloat64()*rng.ExpFloat64()*20_000) * time.Microsecond
		h.Record(d)
		exact = append(exact, d)
	}
	slices.Sort(exact)
	if h.Count() != uint64(len(exact)) {
		t.Fatalf("Count = %d, want %d", h.Count(), len(exact))
	}
	if h.Max() != exact[len(exact)-1] {
		t.Errorf("Max = %v, want %v", h.Max(), exact[len(exact)-1])
	}
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := max(int(float64(len(exact))*q+0.999999999), 1)
		want := exact[rank-1]
		got := h.Quantile(q)
		if got < want || float64(got-want) > float64(want)/subBuckets+float64(time.Microsecond) {
			t.Errorf("Quantile(%g) = %v, want %v to within 1/%d above", q, got, want, subBuckets)
		}
	}
}

func TestEmptyHistogram(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Errorf("empty histogram: p50 %v, max %v, mean %v; want zeros", h.Quantile(0.5), h.Max(), h.Mean())
	}
	h.Record(-time.Second) // a clock step backwards counts as 0
	if h.Quantile(1) != 0 {
		t.Errorf("negative duration recorded as %v", h.Quantile(1))
	}
}
