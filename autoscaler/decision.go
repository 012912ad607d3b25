package autoscaler

import (
	"fmt"
	"time"
)

// Decision is what a Runner concluded for one revision at one moment. It
// is published to subscribers on every tick (and on a poke that wakes a
// revision at zero) as a plain value, so that a host or a revision
// reconciler can act on it without importing this package's other types.
type Decision struct {
	// Revision is the host's key for the revision.
	Revision string
	// Time is the tick (or poke) the decision was made at.
	Time time.Time
	// Desired is the replica count the revision should have, after min/max
	// bounds, initial scale and the scale-to-zero rules (Knative's PA
	// "want"); −1 while unknown (no metrics yet). It can be 0 before the
	// last replica is actually removed: the activator must take over first.
	Desired int
	// ExcessBurstCapacity is the decider's latest headroom (see
	// Recommendation); before the first decision, the spec's
	// InitialExcessBurstCapacity. Negative: keep the activator in the path.
	ExcessBurstCapacity int
	// Panicking reports whether the decider is in panic mode.
	Panicking bool
	// Recommended is the decider's own count before bounds and
	// scale-to-zero rules; −1 before its first decision.
	Recommended int
	// Ready is the ready replica count the decision was based on.
	Ready int
	// Activity is the revision's Active condition after this decision.
	Activity Activity
	// StableLoad and PanicLoad are the averaged load the decision saw, in
	// the spec's metric (0 when there was no data). A tick's windows end
	// with the last whole second before Time (see Runner); a poke's include
	// the second under way.
	StableLoad, PanicLoad float64
	// Target is the load per replica the decision aimed for (the spec's
	// TargetValue), for comparing with the loads.
	Target float64
	// Metric is the spec's metric: what StableLoad, PanicLoad and Target
	// measure.
	Metric Metric
}

// ActivatorInPath reports whether requests should go through the activator
// (Knative's SKS proxy mode): unless the revision wants replicas and has
// excess burst capacity ≥ 0.
func (d Decision) ActivatorInPath() bool {
	return !(d.Desired > 0 && d.ExcessBurstCapacity >= 0)
}

// String formats the decision on one line, for logs and examples.
func (d Decision) String() string {
	return fmt.Sprintf("%s: desired=%d ebc=%d panicking=%t recommended=%d ready=%d %s",
		d.Revision, d.Desired, d.ExcessBurstCapacity, d.Panicking, d.Recommended, d.Ready, d.Activity)
}
