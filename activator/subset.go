package activator

import (
	"fmt"
	"math"
)

// Subset says which share of a revision's replicas this activator sends
// requests to when several activators serve the same revision (Knative's
// activator subsetting). Each activator takes a contiguous slice of the
// replicas sorted by address, and the remainder goes one replica each to
// the lowest indices, so that N activators split the replicas between them
// without overlap; with more activators than replicas each takes replica
// Index mod n. Subsetting applies only to revisions with a container
// concurrency limit; with unlimited concurrency every activator uses every
// replica, as in Knative.
//
// The zero value (Count 0) means no subsetting: this activator uses every
// replica. An Index of -1 means this activator does not know its place yet,
// and also uses every replica (Knative does the same).
type Subset struct {
	// Index is this activator's position among the Count activators, for
	// example in the sorted list of their addresses. Range [-1, Count).
	Index int
	// Count is the number of activators sharing the revision. Zero means no
	// subsetting. Range [0, MaxInt32].
	Count int
}

func (s Subset) validate(field string) error {
	if s.Count < 0 || s.Count > math.MaxInt32 {
		return fmt.Errorf("activator: %s.Count = %d, must be in [0, %d] (0 means no subsetting)", field, s.Count, math.MaxInt32)
	}
	hi := max(s.Count, 1)
	if s.Index < -1 || s.Index >= hi {
		return fmt.Errorf("activator: %s.Index = %d, must be in [-1, %d) (-1 means unknown)", field, s.Index, hi)
	}
	return nil
}

// Validate reports an out-of-range Index or Count, naming the value and the
// range.
func (s Subset) Validate() error { return s.validate("Subset") }

// whole reports whether the subset is every replica of n.
func (s Subset) whole(n int) bool {
	return s.Count <= 1 || s.Index < 0 || n <= 1
}

// Span returns this activator's share of n replicas sorted by address: the
// contiguous indices [lo, hi), plus one more index extra (or -1 for none)
// taken from the remainder at the end. s must be valid.
func (s Subset) Span(n int) (lo, hi, extra int) {
	extra = -1
	if n <= 0 {
		return 0, 0, -1
	}
	if s.whole(n) {
		return 0, n, -1
	}
	if s.Count > n {
		i := s.Index % n
		return i, i + 1, -1
	}
	size := n / s.Count
	lo, hi = s.Index*size, s.Index*size+size
	if rem := n % s.Count; s.Index < rem {
		extra = n - rem + s.Index
	}
	return lo, hi, extra
}

// Share returns the indices of this activator's share of n replicas sorted
// by address, in increasing order. s must be valid.
func (s Subset) Share(n int) []int {
	lo, hi, extra := s.Span(n)
	out := make([]int, 0, hi-lo+1)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	if extra >= 0 {
		out = append(out, extra)
	}
	return out
}

// Capacity returns how many requests this activator may have in flight to a
// revision with container concurrency cc and n ready replicas: cc × its
// share of them, Unlimited when cc is 0 and n > 0, and 0 when n is 0. This
// is Knative's calculateCapacity for pod routing. s must be valid.
func Capacity(cc, n int, s Subset) int {
	if n <= 0 {
		return 0
	}
	if cc == 0 {
		return Unlimited
	}
	lo, hi, extra := s.Span(n)
	assigned := hi - lo
	if extra >= 0 {
		assigned++
	}
	return int(min(int64(cc)*int64(assigned), Unlimited))
}
