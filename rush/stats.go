package rush

import (
	"math"
	"slices"
)

// The fairness report asks two questions of the pre-queue's positions, each
// answered by a classic rank test with a normal approximation (the samples
// are hundreds to thousands of entries, where the approximation is good):
// do bots and humans get places from one distribution (Mann-Whitney U), and
// does place follow join time (Spearman's rank correlation)?

// ranks returns the rank of each value (1-based, ties given their mean
// rank) and the tie correction term sum(t³ - t) over groups of ties.
func ranks(v []float64) (r []float64, ties float64) {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case v[a] < v[b]:
			return -1
		case v[a] > v[b]:
			return 1
		}
		return 0
	})
	r = make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
			j++
		}
		mean := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = mean
		}
		t := float64(j - i + 1)
		ties += t*t*t - t
		i = j + 1
	}
	return r, ties
}

// MannWhitneyP returns the two-sided p-value of the Mann-Whitney U test
// that a and b come from the same distribution, by the normal
// approximation with tie correction.
func MannWhitneyP(a, b []float64) float64 {
	n1, n2 := float64(len(a)), float64(len(b))
	if n1 == 0 || n2 == 0 {
		return 1
	}
	all := append(slices.Clone(a), b...)
	r, ties := ranks(all)
	var r1 float64
	for i := range a {
		r1 += r[i]
	}
	u := r1 - n1*(n1+1)/2
	n := n1 + n2
	mean := n1 * n2 / 2
	variance := n1 * n2 / 12 * ((n + 1) - ties/(n*(n-1)))
	if variance <= 0 {
		return 1
	}
	z := (math.Abs(u-mean) - 0.5) / math.Sqrt(variance)
	return min(math.Erfc(max(z, 0)/math.Sqrt2), 1)
}

// Spearman returns Spearman's rank correlation of x and y and the
// two-sided p-value of "no correlation", with z = rho·sqrt(n-1).
func Spearman(x, y []float64) (rho, p float64) {
	n := len(x)
	if n < 3 || len(y) != n {
		return 0, 1
	}
	rx, _ := ranks(x)
	ry, _ := ranks(y)
	rho = pearson(rx, ry)
	z := math.Abs(rho) * math.Sqrt(float64(n-1))
	return rho, min(math.Erfc(z/math.Sqrt2), 1)
}

func pearson(x, y []float64) float64 {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}
