package autoscaler

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Metric is the load a revision is scaled on.
type Metric uint8

const (
	// Concurrency scales on requests in flight (Knative's default).
	Concurrency Metric = iota
	// RPS scales on requests per second.
	RPS
)

// String returns the metric annotation value: "concurrency" or "rps".
func (m Metric) String() string {
	switch m {
	case Concurrency:
		return "concurrency"
	case RPS:
		return "rps"
	}
	return fmt.Sprintf("Metric(%d)", uint8(m))
}

// Spec is everything a Runner needs to autoscale one revision: the decider's
// spec plus how load is averaged and the rules Knative's KPA reconciler
// applies to a decision (bounds, initial scale, scale to zero). Build it with
// Config.RevisionSpec from annotations, or set the fields directly and call
// Validate.
type Spec struct {
	DeciderSpec

	// Metric is the load the revision is scaled on. Default Concurrency.
	Metric Metric
	// Algorithm is how the stable and panic windows average. Default Linear.
	Algorithm Algorithm
	// PanicWindow is the short averaging window that detects surges; in
	// [1s, StableWindow]. Knative: the stable window × panic-window-percentage
	// rounded to a second, at least 1s (6s by default).
	PanicWindow time.Duration
	// ReplicaStats says the revision's replicas report their own load,
	// scraped through Options.Scraper when set or pushed through the
	// Runner's Send. A stable window without any stat then means "no data"
	// (no decision that tick) rather than zero load. Without it only the
	// activator reports load, and silence means idle. Config.RevisionSpec
	// sets it when TargetBurstCapacity ≠ −1, as Knative scrapes exactly then.
	ReplicaStats bool
	// MinScale is the least replica count while the revision is reachable;
	// in [0, 2147483647]. Default 0.
	MinScale int
	// MaxScale is the greatest replica count; 0 means unbounded. In
	// [0, 2147483647] and ≥ MinScale when not 0.
	MaxScale int
	// EnableScaleToZero lets the revision go to zero replicas when idle;
	// when false an idle revision keeps one. Knative default true.
	EnableScaleToZero bool
	// ScaleToZeroGracePeriod is how long the activator must have been in
	// the request path before the last replica is removed. Must be > 0;
	// Knative default 30s.
	ScaleToZeroGracePeriod time.Duration
	// ScaleToZeroPodRetention keeps the last replica this long after the
	// revision went inactive (ignored while Unreachable). In [0, 1h];
	// default 0.
	ScaleToZeroPodRetention time.Duration
	// ActivationTimeout is how long the revision may keep wanting replicas
	// that do not become ready before it is scaled back to zero. Must be
	// > 0; default DefaultActivationTimeout (630s).
	ActivationTimeout time.Duration
}

// Validate reports every field out of range (the embedded DeciderSpec's
// too), each as a *FieldError naming the field, the value and the range,
// joined with errors.Join.
func (s Spec) Validate() error {
	errs := []error{s.DeciderSpec.Validate()}
	bad := func(field string, v any, want string) {
		errs = append(errs, &FieldError{Field: field, Value: fmt.Sprint(v), Want: want})
	}
	if s.Metric > RPS {
		bad("Metric", s.Metric, "Concurrency or RPS")
	}
	if s.Algorithm > WeightedExponential {
		bad("Algorithm", s.Algorithm, "Linear or WeightedExponential")
	}
	if s.PanicWindow < BucketSize || (s.StableWindow > 0 && s.PanicWindow > s.StableWindow) {
		bad("PanicWindow", s.PanicWindow, fmt.Sprintf("a duration in [1s, %v] (the stable window)", s.StableWindow))
	}
	if s.MinScale < 0 || s.MinScale > math.MaxInt32 {
		bad("MinScale", s.MinScale, "an integer in [0, 2147483647]")
	}
	switch {
	case s.MaxScale < 0 || s.MaxScale > math.MaxInt32:
		bad("MaxScale", s.MaxScale, "an integer in [0, 2147483647] (0 = unbounded)")
	case s.MaxScale != 0 && s.MaxScale < s.MinScale:
		bad("MaxScale", s.MaxScale, fmt.Sprintf("0 (unbounded) or at least MinScale (%d)", s.MinScale))
	}
	if s.ScaleToZeroGracePeriod <= 0 {
		bad("ScaleToZeroGracePeriod", s.ScaleToZeroGracePeriod, "a duration > 0s")
	}
	if s.ScaleToZeroPodRetention < 0 || s.ScaleToZeroPodRetention > WindowMax {
		bad("ScaleToZeroPodRetention", s.ScaleToZeroPodRetention, "a duration in [0s, 1h0m0s]")
	}
	if s.ActivationTimeout <= 0 {
		bad("ActivationTimeout", s.ActivationTimeout, "a duration > 0s")
	}
	return errors.Join(errs...)
}

// collectorSpec is the part of a Spec the collector needs.
func (s *Spec) collectorSpec() CollectorSpec {
	return CollectorSpec{
		StableWindow: s.StableWindow,
		PanicWindow:  s.PanicWindow,
		Algorithm:    s.Algorithm,
		RequireData:  s.ReplicaStats,
	}
}
