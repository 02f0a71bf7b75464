// Package stats holds the median-and-range summary the benchmarks and
// bench/s3bench report their ratios with.
package stats

import (
	"fmt"
	"slices"
)

// Spread is the median of a set of values and their range.
type Spread struct {
	N             int
	Med, Min, Max float64
}

// Summarize returns the median (the mean of the middle two for an even
// count) and the range of xs, without reordering xs; N is 0 for no values.
func Summarize(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Spread{N: len(s), Med: m, Min: s[0], Max: s[len(s)-1]}
}

// String is "0.91 (0.85–0.97 over 3 rounds)", or just the value for one.
func (s Spread) String() string {
	if s.N < 2 {
		return fmt.Sprintf("%.2f", s.Med)
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f over %d rounds)", s.Med, s.Min, s.Max, s.N)
}
