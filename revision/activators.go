package revision

import (
	"errors"
	"fmt"
	"math"
)

// MinActivators is the fewest activators a revision is given: Knative's
// minActivators, also what a revision gets before anything is known.
const MinActivators = 2

// Knative's defaults for ActivatorSizing's zero fields.
const (
	// DefaultTotalValue is the per-replica capacity in the autoscaler's
	// metric when ActivatorSizing.TotalValue is zero: Knative's
	// container-concurrency-target-default (100).
	DefaultTotalValue = 100.0
	// DefaultActivatorCapacity is what one activator can carry when
	// ActivatorSizing.ActivatorCapacity is zero: Knative's activator-capacity
	// (100).
	DefaultActivatorCapacity = 100.0
)

// ActivatorSizing says how many activators a revision needs in its path,
// with Knative's formula (computeNumActivators): enough to carry the ready
// replicas' capacity plus the burst capacity, and at least MinActivators.
// The zero value is valid.
type ActivatorSizing struct {
	// TotalValue is one replica's capacity in the autoscaler's metric (the
	// decider's TotalValue: containerConcurrency, or the target when it is
	// 0). Zero means DefaultTotalValue (100); it must not be negative.
	TotalValue float64
	// TargetBurstCapacity is the autoscaler's target burst capacity in the
	// same unit. Zero means 0 (no burst capacity, so MinActivators always);
	// -1 means unlimited (the activator always in the path); otherwise it
	// must be positive. Knative's default is 211.
	TargetBurstCapacity float64
	// ActivatorCapacity is what one activator can carry, in the same unit.
	// Zero means DefaultActivatorCapacity (100); it must not be negative.
	// Knative: activator-capacity.
	ActivatorCapacity float64
}

// Validate reports every problem with s, joined, each naming the field, the
// value and the allowed range.
func (s ActivatorSizing) Validate() error {
	var errs []error
	if s.TotalValue < 0 || math.IsNaN(s.TotalValue) || math.IsInf(s.TotalValue, 0) {
		errs = append(errs, fmt.Errorf("revision: ActivatorSizing.TotalValue = %v, must be a finite number >= 0 (0 means %v)",
			s.TotalValue, DefaultTotalValue))
	}
	if (s.TargetBurstCapacity < 0 && s.TargetBurstCapacity != -1) || math.IsNaN(s.TargetBurstCapacity) || math.IsInf(s.TargetBurstCapacity, 0) {
		errs = append(errs, fmt.Errorf("revision: ActivatorSizing.TargetBurstCapacity = %v, must be -1 (unlimited) or a finite number >= 0",
			s.TargetBurstCapacity))
	}
	if s.ActivatorCapacity < 0 || math.IsNaN(s.ActivatorCapacity) || math.IsInf(s.ActivatorCapacity, 0) {
		errs = append(errs, fmt.Errorf("revision: ActivatorSizing.ActivatorCapacity = %v, must be a finite number >= 0 (0 means %v)",
			s.ActivatorCapacity, DefaultActivatorCapacity))
	}
	return errors.Join(errs...)
}

// NumActivators returns how many activators a revision with readyReplicas
// ready replicas needs:
//
//	TargetBurstCapacity == 0: MinActivators
//	otherwise: max(MinActivators, ceil((ready × TotalValue + max(TBC, 0)) / ActivatorCapacity))
//
// s is assumed valid (see Validate).
func (s ActivatorSizing) NumActivators(readyReplicas int) int {
	if s.TargetBurstCapacity == 0 {
		return MinActivators
	}
	total, capacity := s.TotalValue, s.ActivatorCapacity
	if total == 0 {
		total = DefaultTotalValue
	}
	if capacity == 0 {
		capacity = DefaultActivatorCapacity
	}
	need := float64(max(readyReplicas, 0)) * total
	if s.TargetBurstCapacity > 0 {
		need += s.TargetBurstCapacity
	}
	n := math.Ceil(need / capacity)
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return max(MinActivators, int(n))
}
