package autoscaler

import (
	"fmt"
	"math"
	"time"
)

// BucketSize is the width of one window bucket: values recorded within the
// same second add up. It is fixed, as in Knative (config.BucketSize).
const BucketSize = time.Second

// Algorithm selects how a Window averages its buckets.
type Algorithm uint8

const (
	// Linear is the plain average over the window (Knative's default,
	// "linear"). Before the window has filled, and after a pause in the
	// data, it averages only over the seconds that hold data.
	Linear Algorithm = iota
	// WeightedExponential weighs recent seconds more (Knative's
	// "weighted-exponential"): bucket i seconds before now has weight
	// m·(1−m)^i with m = max(1 − 0.0001^(1/N), 0.2) for N buckets.
	WeightedExponential
)

// String returns the algorithm's annotation value: "linear" or
// "weighted-exponential".
func (a Algorithm) String() string {
	switch a {
	case Linear:
		return "linear"
	case WeightedExponential:
		return "weighted-exponential"
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// Constants of Knative's weighted average (aggregation/bucketing.go):
// the weights of a full window add up to at least weightPrecision, and the
// smoothing coefficient never drops below minSmoothing.
const (
	weightPrecision = 0.9999
	minSmoothing    = 0.2
	// averages of the linear window are rounded down to this many decimals.
	roundingScale = 1e6
)

// smoothingCoefficient is m for a window of n buckets. The expression is
// kept in Knative's exact form so that results agree to the last bit.
func smoothingCoefficient(n int) float64 {
	return math.Max(1-math.Pow(1-weightPrecision, 1/float64(n)), minSmoothing)
}

// zeroSecond is the Unix second of the zero time.Time, which Knative's
// windows use as "never written".
var zeroSecond = time.Time{}.Unix()

// Window is a time-bucketed average over a sliding window of whole seconds:
// Knative's TimedFloat64Buckets (Linear) and WeightedFloat64Buckets
// (WeightedExponential), with the same arithmetic, so the same records give
// the same averages bit for bit.
//
// Times are passed in; values recorded in the same second add up (that is
// how stats from the activator and from replicas merge). A record older than
// a window before the latest write is ignored. A write after a full window
// without data starts the window afresh.
//
// The zero value is not usable; create windows with NewWindow. A Window is
// not safe for simultaneous use: its owner serializes access (the Collector
// and the Runner hold a lock per revision).
type Window struct {
	buckets []float64 // ring indexed by Unix second mod len(buckets)
	size    time.Duration
	first   int64   // Unix second of the first write since the window last emptied
	last    int64   // Unix second of the latest write
	total   float64 // sum of all buckets in the ring
	coeff   float64 // smoothing coefficient; 0 for Linear
}

// NewWindow returns an empty window of the given size. Size is rounded up to
// whole buckets for storage; comparisons use the exact size, as Knative's
// do. It panics if size is not positive.
func NewWindow(alg Algorithm, size time.Duration) *Window {
	w := new(Window)
	w.init(alg, size, make([]float64, bucketCount(size)))
	return w
}

// bucketCount is how many one-second buckets a window of size needs.
func bucketCount(size time.Duration) int {
	if size <= 0 {
		panic(fmt.Sprintf("autoscaler: window size %v must be positive", size))
	}
	return int(math.Ceil(float64(size) / float64(BucketSize)))
}

// init sets w up over buf, which must hold bucketCount(size) zeros; the
// Collector carves the buffers of a revision's four windows out of one
// allocation.
func (w *Window) init(alg Algorithm, size time.Duration, buf []float64) {
	*w = Window{buckets: buf, size: size, first: zeroSecond, last: zeroSecond}
	w.setAlgorithm(alg)
}

func (w *Window) setAlgorithm(alg Algorithm) {
	w.coeff = 0
	if alg == WeightedExponential {
		w.coeff = smoothingCoefficient(len(w.buckets))
	}
}

// Algorithm reports how the window averages.
func (w *Window) Algorithm() Algorithm {
	if w.coeff != 0 {
		return WeightedExponential
	}
	return Linear
}

// Size is the window's length.
func (w *Window) Size() time.Duration { return w.size }

// seconds converts a difference of Unix seconds to a Duration, saturating
// like time.Time.Sub does, so that comparisons against "never written"
// behave as Knative's.
func seconds(s int64) time.Duration {
	const limit = math.MaxInt64 / int64(time.Second)
	switch {
	case s > limit:
		return math.MaxInt64
	case s < -limit:
		return math.MinInt64
	}
	return time.Duration(s) * time.Second
}

// slot maps a Unix second to its ring index (never negative).
func (w *Window) slot(sec int64) int {
	n := int64(len(w.buckets))
	i := sec % n
	if i < 0 {
		i += n
	}
	return int(i)
}

// Record adds v to the bucket of now's second.
func (w *Window) Record(now time.Time, v float64) {
	b := now.Unix()
	if b != w.last {
		// Knative: ignore a value a full window older than the latest write.
		if seconds(w.last-b) >= w.size {
			return
		}
		if w.first == zeroSecond || w.first > b {
			w.first = b
		}
		if b > w.last {
			if seconds(b-w.last) >= w.size {
				// A full window without data: start afresh.
				w.first = b
				clear(w.buckets)
				w.total = 0
			} else {
				// Zero the seconds skipped since the last write: they
				// hold data from a window ago.
				for s := w.last + 1; s <= b; s++ {
					i := w.slot(s)
					w.total -= w.buckets[i]
					w.buckets[i] = 0
				}
			}
			w.last = b
		}
	}
	w.buckets[w.slot(b)] += v
	w.total += v
}

// IsEmpty reports whether no value has been recorded within a window before
// now.
func (w *Window) IsEmpty(now time.Time) bool {
	return seconds(now.Unix()-w.last) > w.size
}

// Average returns the window's average as of now: for Linear the mean over
// the seconds that hold data within the window, rounded down to six
// decimals; for WeightedExponential the exponentially weighted sum (not
// normalized, exactly as Knative). Both are 0 once a window has passed
// without data.
func (w *Window) Average(now time.Time) float64 {
	if w.coeff != 0 {
		return w.weightedAverage(now.Unix())
	}
	return w.linearAverage(now.Unix())
}

func (w *Window) linearAverage(now int64) float64 {
	n := len(w.buckets)
	span := float64(seconds(w.last-w.first)/time.Second) + 1 // both ends count
	switch d := seconds(now - w.last); {
	case d <= 0:
		return roundDown(w.total / math.Min(span, float64(n)))
	case d < w.size:
		// The seconds since the last write hold no data for this window:
		// drop what the ring still has in their slots.
		sum := w.total
		for s := w.last + 1; s <= now; s++ {
			sum -= w.buckets[w.slot(s)]
		}
		return roundDown(sum / math.Min(span, float64(n-int(now-w.last))))
	default:
		return 0
	}
}

func (w *Window) weightedAverage(now int64) float64 {
	if seconds(now-w.last) > w.size {
		return 0
	}
	n := len(w.buckets)
	count := n
	weight := w.coeff
	if now > w.last {
		// The empty seconds since the last write take the first weights.
		empty := now - w.last
		weight = weight * math.Pow(1-w.coeff, float64(empty))
		count -= int(empty)
	}
	start := w.last + int64(n)
	avg := 0.
	for i := 0; i < count; i++ {
		v := w.buckets[w.slot(start-int64(i))] * weight
		avg += v
		weight *= 1 - w.coeff
	}
	return avg
}

// roundDown truncates f to six decimals, as Knative's roundToNDigits.
func roundDown(f float64) float64 {
	return math.Floor(f*roundingScale) / roundingScale
}

// Resize changes the window's size, keeping the newest buckets that fit.
// It is O(size) and allocates; windows are resized only when a revision's
// settings change. As in Knative, if data was written within the old window
// before now, the first write is taken to be a full old window before the
// last one, so the average covers the whole (new) window from then on.
// It panics if size is not positive.
func (w *Window) Resize(now time.Time, size time.Duration) {
	if size == w.size {
		return
	}
	n := bucketCount(size)
	buf := make([]float64, n)
	total := 0.
	if seconds(now.Unix()-w.last) <= w.size {
		old := len(w.buckets)
		s := w.last
		for i := 0; i < min(n, old); i++ {
			v := w.buckets[w.slot(s)]
			j := s % int64(n)
			if j < 0 {
				j += int64(n)
			}
			buf[j] = v
			total += v
			s--
		}
		w.first = w.last - int64(old-1)
	} else {
		w.first = zeroSecond
	}
	alg := w.Algorithm()
	w.size = size
	w.buckets = buf
	w.total = total
	w.setAlgorithm(alg)
}
