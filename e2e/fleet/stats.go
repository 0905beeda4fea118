package fleet

import (
	"math"
	"slices"
	"time"
)

// Latencies are measured durations, in no order.
type Latencies []time.Duration

// Quantile is the q-quantile (0 < q <= 1) by the nearest rank: always a
// duration that was measured, never an interpolation. 0 when empty.
func (l Latencies) Quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	rank := int(math.Ceil(q * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// ms is d in milliseconds, to a tenth: what the RESULT lines print.
func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*10) / 10 }

// round rounds v to so many decimals.
func round(v float64, decimals int) float64 {
	f := math.Pow(10, float64(decimals))
	return math.Round(v*f) / f
}
