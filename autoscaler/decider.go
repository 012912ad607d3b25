package autoscaler

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// DeciderSpec is what a Decider needs to know about one revision: Knative's
// scaling.DeciderSpec without Kubernetes. Config.RevisionSpec builds it from
// config-autoscaler keys and autoscaling.knative.dev annotations; the zero
// value is not valid (TargetValue must be set).
type DeciderSpec struct {
	// TargetValue is the load per replica the decider aims for (concurrent
	// requests, or requests per second): total × target utilization, at
	// least 0.01. Required; must be finite and ≥ 0.01. Knative default 70.
	TargetValue float64
	// TotalValue is the load one replica can take at most (container
	// concurrency, or the target default); it sizes the excess burst
	// capacity. Must be finite and > 0. Knative default 100.
	TotalValue float64
	// TargetBurstCapacity is the spare capacity, in the metric's unit, to
	// keep across ready replicas before the activator leaves the request
	// path. 0 means the activator is only in the path at zero scale; −1 means
	// it always is. Must be ≥ 0 or exactly −1. Knative default 211.
	TargetBurstCapacity float64
	// PanicThreshold is the ratio of desired panic replicas to ready
	// replicas at or above which the decider panics (2 = 200%). Must be
	// finite and > 0. Knative default 2.
	PanicThreshold float64
	// MaxScaleUpRate bounds one step's growth to ceil(rate × ready). Must be
	// finite and > 1. Knative default 1000.
	MaxScaleUpRate float64
	// MaxScaleDownRate bounds one step's shrink to floor(ready / rate). Must
	// be finite and > 1. Knative default 2.
	MaxScaleDownRate float64
	// StableWindow is how long the decider stays in panic after the last
	// step over the threshold. It is also the stable averaging window of the
	// runner's collector. Must be > 0; Config keeps it in [6s, 1h] with
	// whole seconds. Knative default 60s.
	StableWindow time.Duration
	// ScaleDownDelay keeps the largest decision of the last delay (in 2 s
	// slots) so that scale-downs wait; 0 disables. Must be in [0, 1h].
	ScaleDownDelay time.Duration
	// InitialScale is the revision's replica count at creation; it sets the
	// initial excess burst capacity (and, in the Runner, the first scale).
	// Must be ≥ 0. Knative default 1.
	InitialScale int
	// ActivationScale is the least non-zero decision (when > 1): a revision
	// leaving zero goes straight to it. 0 or 1 disable; must be 0 or ≥ 1.
	ActivationScale int
	// Unreachable says no route sends traffic to the revision (Knative's
	// Reachability Unreachable): it may then drop to zero at once, the
	// scale-down delay is skipped, and min-scale is ignored by the Runner.
	// The zero value, reachable, is also what Knative assumes when unknown.
	// Skipping the delay is the reference Knative's rule; Knative v0.42.2
	// applies the delay to unreachable revisions too (the scenario table
	// "delay/skipped while unreachable" shows the difference).
	Unreachable bool
}

// Validate reports every field out of range, each naming the field, its
// value and the allowed range, joined with errors.Join.
func (s DeciderSpec) Validate() error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, &FieldError{Field: field, Value: fmt.Sprint(v), Want: want})
	}
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	if !finite(s.TargetValue) || s.TargetValue < TargetMin {
		bad("TargetValue", s.TargetValue, "a number ≥ 0.01")
	}
	if !finite(s.TotalValue) || s.TotalValue <= 0 {
		bad("TotalValue", s.TotalValue, "a number > 0")
	}
	if !finite(s.TargetBurstCapacity) || (s.TargetBurstCapacity < 0 && s.TargetBurstCapacity != -1) {
		bad("TargetBurstCapacity", s.TargetBurstCapacity, "a number ≥ 0, or -1 (activator always in path)")
	}
	if !finite(s.PanicThreshold) || s.PanicThreshold <= 0 {
		bad("PanicThreshold", s.PanicThreshold, "a ratio > 0 (2 = 200%)")
	}
	if !finite(s.MaxScaleUpRate) || s.MaxScaleUpRate <= 1 {
		bad("MaxScaleUpRate", s.MaxScaleUpRate, "a number > 1")
	}
	if !finite(s.MaxScaleDownRate) || s.MaxScaleDownRate <= 1 {
		bad("MaxScaleDownRate", s.MaxScaleDownRate, "a number > 1")
	}
	if s.StableWindow <= 0 {
		bad("StableWindow", s.StableWindow, "a duration > 0")
	}
	if s.ScaleDownDelay < 0 || s.ScaleDownDelay > WindowMax {
		bad("ScaleDownDelay", s.ScaleDownDelay, "a duration in [0s, 1h0m0s]")
	}
	if s.InitialScale < 0 || s.InitialScale > math.MaxInt32 {
		bad("InitialScale", s.InitialScale, "an integer in [0, 2147483647]")
	}
	if s.ActivationScale < 0 || s.ActivationScale > math.MaxInt32 {
		bad("ActivationScale", s.ActivationScale, "an integer in [0, 2147483647] (0 or 1 disable it)")
	}
	return errors.Join(errs...)
}

// InitialExcessBurstCapacity is the excess burst capacity a revision has
// before its first decision, as Knative's MultiScaler sets it: TBC itself
// when it is 0 or −1, else InitialScale × TotalValue − TBC truncated toward
// zero. With the defaults that is 1×100 − 211 = −111: a new revision starts
// with the activator in its path.
func (s DeciderSpec) InitialExcessBurstCapacity() int {
	switch s.TargetBurstCapacity {
	case 0, -1:
		return int(s.TargetBurstCapacity)
	}
	return int(toInt32(float64(s.InitialScale)*s.TotalValue - s.TargetBurstCapacity))
}

// Recommendation is one step's output of a Decider.
type Recommendation struct {
	// Desired is how many replicas the revision should have (Knative's
	// DesiredPodCount), before min/max bounds and scale-to-zero rules.
	Desired int
	// ExcessBurstCapacity is ready × TotalValue − TargetBurstCapacity − the
	// panic-window load, rounded down; 0 when TBC is 0 and −1 when TBC is −1.
	// Negative means the activator should stay in the request path.
	ExcessBurstCapacity int
	// Panicking reports whether the decider is in panic mode after this
	// step.
	Panicking bool
}

// Decider is Knative's KPA scaling algorithm (scaling.autoscaler.Scale) as a
// pure state machine: each Step takes the time, the ready replica count and
// the revision-wide stable and panic load, and returns the desired replica
// count and the excess burst capacity. It does no I/O, reads no clock and
// starts no goroutine; a step does not allocate. With the same spec and
// inputs it returns what Knative's decider returns.
//
// Per step, with R = max(1, ready):
//
//	maxUp = ceil(MaxScaleUpRate × R), maxDown = floor(R / MaxScaleDownRate) (0 if Unreachable)
//	dspc  = ceil(stable / TargetValue), dppc = ceil(panic / TargetValue)
//	each clamped to [maxDown, maxUp], then raised to ActivationScale if > 0
//	panic when dppc / R ≥ PanicThreshold (dppc unclamped)
//
// Panic lasts until the first step that is under the threshold and more than
// StableWindow after the last step over it; while panicking the decision is
// the larger of the stable and panic counts and never goes down. A Decider
// created with more than one ready replica starts in panic, so a restart
// does not scale a running revision down before it has seen its load.
//
// A Decider is not safe for simultaneous use.
type Decider struct {
	spec         DeciderSpec
	panicTime    time.Time // zero when not panicking
	maxPanicPods int32     // largest decision of the current panic
	delay        *delayWindow
}

// NewDecider returns a Decider for spec, created at now with ready replicas
// (more than one starts it in panic). It returns spec.Validate's error if
// spec is invalid.
func NewDecider(spec DeciderSpec, now time.Time, ready int) (*Decider, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	d := new(Decider)
	d.init(spec, now, ready)
	return d, nil
}

// init sets d up for a valid spec; the Runner embeds Deciders by value.
func (d *Decider) init(spec DeciderSpec, now time.Time, ready int) {
	ready = max(ready, 0)
	*d = Decider{spec: spec, maxPanicPods: toInt32(float64(ready))}
	if ready > 1 {
		d.panicTime = now
	}
	if spec.ScaleDownDelay > 0 {
		d.delay = newDelayWindow(spec.ScaleDownDelay)
	}
}

// Spec returns the spec in use.
func (d *Decider) Spec() DeciderSpec { return d.spec }

// Panicking reports whether the last step (or creation) left the decider in
// panic mode.
func (d *Decider) Panicking() bool { return !d.panicTime.IsZero() }

// Update replaces the spec. Panic state is kept. A changed ScaleDownDelay
// takes effect at once, keeping the recorded decisions that still fit
// (Knative keeps the delay of the decider's creation until it is
// recreated). It returns spec.Validate's error, leaving d unchanged, if spec
// is invalid.
func (d *Decider) Update(spec DeciderSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	d.update(spec)
	return nil
}

func (d *Decider) update(spec DeciderSpec) {
	if spec.ScaleDownDelay != d.spec.ScaleDownDelay {
		switch {
		case spec.ScaleDownDelay <= 0:
			d.delay = nil
		case d.delay == nil:
			d.delay = newDelayWindow(spec.ScaleDownDelay)
		default:
			d.delay = d.delay.resized(spec.ScaleDownDelay)
		}
	}
	d.spec = spec
}

// Step decides at now, given the ready replica count and the revision-wide
// average load over the stable and the panic window (the metric's unit:
// concurrent requests or requests per second). A negative ready count is
// taken as 0 and a NaN load as 0.
func (d *Decider) Step(now time.Time, ready int, stableLoad, panicLoad float64) Recommendation {
	s := &d.spec
	ready = max(ready, 0)
	if math.IsNaN(stableLoad) {
		stableLoad = 0
	}
	if math.IsNaN(panicLoad) {
		panicLoad = 0
	}
	// One replica stands in for none, so that the rates can grow from zero.
	r := float64(max(ready, 1))
	// ceil guarantees growth by at least one replica even with a rate close
	// to 1; floor, symmetrically, shrinks by at least one.
	maxUp := math.Ceil(s.MaxScaleUpRate * r)
	maxDown := 0.
	if !s.Unreachable {
		maxDown = math.Floor(r / s.MaxScaleDownRate)
	}
	dspc := math.Ceil(stableLoad / s.TargetValue)
	dppc := math.Ceil(panicLoad / s.TargetValue)
	stablePods := toInt32(clamp(dspc, maxDown, maxUp))
	panicPods := toInt32(clamp(dppc, maxDown, maxUp))
	if act := toInt32(float64(s.ActivationScale)); act > 1 {
		if dspc > 0 && act > stablePods {
			stablePods = act
		}
		if dppc > 0 && act > panicPods {
			panicPods = act
		}
	}

	// The threshold is tested on the unclamped panic count, so a rate limit
	// does not hide a surge.
	over := dppc/r >= s.PanicThreshold
	switch {
	case over:
		// Enter panic, or extend it: it ends a stable window after the
		// last step over the threshold.
		d.panicTime = now
	case !d.panicTime.IsZero() && d.panicTime.Add(s.StableWindow).Before(now):
		d.panicTime = time.Time{}
		d.maxPanicPods = 0
	}

	desired := stablePods
	if !d.panicTime.IsZero() {
		// Provision for whichever window asks for more, and never scale
		// down while panicking.
		desired = max(desired, panicPods)
		d.maxPanicPods = max(d.maxPanicPods, desired)
		desired = d.maxPanicPods
	}

	if d.delay != nil && !s.Unreachable {
		d.delay.record(now, desired)
		desired = d.delay.current()
	}

	// The burst capacity is judged on the panic window and the real ready
	// count, so that the activator leaves the path only with real headroom.
	ebc := -1.
	switch {
	case s.TargetBurstCapacity == 0:
		ebc = 0
	case s.TargetBurstCapacity > 0:
		ebc = math.Floor(float64(ready)*s.TotalValue - s.TargetBurstCapacity - panicLoad)
	}
	return Recommendation{
		Desired:             int(desired),
		ExcessBurstCapacity: int(toInt32(ebc)),
		Panicking:           !d.panicTime.IsZero(),
	}
}

// clamp is math.Min(math.Max(x, lo), hi) for x that is not NaN, without
// the calls (math.Max and math.Min are not inlined on amd64); it can differ
// only in the sign of a zero, which converts to the same integer.
func clamp(x, lo, hi float64) float64 {
	if x < lo {
		x = lo
	}
	if x > hi {
		x = hi
	}
	return x
}

// toInt32 converts like Knative's int32(float64) for values in range and
// saturates outside it (Go leaves out-of-range conversions
// implementation-defined).
func toInt32(f float64) int32 {
	switch {
	case math.IsNaN(f):
		return 0
	case f >= math.MaxInt32:
		return math.MaxInt32
	case f <= math.MinInt32:
		return math.MinInt32
	}
	return int32(f)
}
