package rush

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// A Histogram counts durations in log-linear buckets: every power of two
// is split into subBuckets equal parts, so a bucket is at most 1/64 (1.6 %)
// of its values wide, whatever the magnitude, in a fixed few kilobytes. It
// is safe for concurrent use without a lock: recording is a few atomic adds,
// so many visitors can share one histogram per endpoint.
//
// Values are microseconds. Below subBuckets µs every microsecond has its
// own bucket; the largest value kept apart is about 2^40 µs (12 days), and
// anything beyond falls into the last bucket (Max stays exact).
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // µs
	max    atomic.Uint64 // µs
}

const (
	subBits    = 6
	subBuckets = 1 << subBits
	maxExp     = 40 - subBits
	numBuckets = (maxExp + 2) * subBuckets
)

// bucketOf returns the bucket index of v µs.
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	// exp shifts v into [subBuckets, 2·subBuckets): the top subBits+1 bits
	// of v select the bucket, the rest is the width of the bucket.
	exp := bits.Len64(v) - subBits - 1
	if exp > maxExp {
		return numBuckets - 1
	}
	return (exp+1)*subBuckets + int(v>>exp) - subBuckets
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subBuckets {
		return uint64(i), uint64(i)
	}
	exp := i/subBuckets - 1
	sub := uint64(i%subBuckets + subBuckets)
	lo = sub << exp
	return lo, lo + 1<<exp - 1
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d.Microseconds(), 0))
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max returns the largest duration recorded, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) * time.Microsecond }

// Mean returns the average duration.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load()/n) * time.Microsecond
}

// Quantile returns the duration below which a fraction q (0…1) of the
// recorded durations lie: the upper bound of the bucket holding the
// ⌈q·n⌉-th smallest value, so it overstates by at most one bucket width
// and never exceeds Max. Call it once recording has stopped.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			_, hi := bucketBounds(i)
			return time.Duration(min(hi, h.max.Load())) * time.Microsecond
		}
	}
	return h.Max()
}
