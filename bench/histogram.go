package bench

import (
	"math"
	"math/bits"
	"time"
)

// histogram counts latencies in log-linear buckets, as HDR histograms do:
// values below 2^histSub ns each get a bucket, and every power of two above
// is split into 2^histSub buckets, so a quantile is within 1/2^histSub
// (about 1.6 %) of the true value, in a fixed 16 KiB per client.
type histogram struct {
	counts []uint64
	n      uint64
}

const (
	histSub     = 6
	histMaxExp  = 37 // 2^37 ns is over two minutes; longer is clamped
	histBuckets = (histMaxExp - histSub + 1) << histSub
)

func newHistogram() histogram {
	return histogram{counts: make([]uint64, histBuckets)}
}

func histIndex(v uint64) int {
	shift := bits.Len64(v) - histSub - 1
	if shift < 0 {
		return int(v)
	}
	i := shift<<histSub + int(v>>shift)
	return min(i, histBuckets-1)
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < 2<<histSub {
		return uint64(i)
	}
	shift := i>>histSub - 1
	m := uint64(i - shift<<histSub)
	return m<<shift + 1<<shift/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	h.n++
}

func (h *histogram) add(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the latency below which a fraction q of the values lie.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(histValue(i))
		}
	}
	return time.Duration(histValue(len(h.counts) - 1))
}
