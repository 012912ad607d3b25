package autoscalertest

import (
	"time"

	"github.com/servingkit/servingkit/autoscaler"
)

// DeciderStep is one step of a DeciderScenario: the inputs at At (an
// offset from the scenario's start) and the expected recommendation.
type DeciderStep struct {
	At            time.Duration
	Ready         int
	Stable, Panic float64
	Want          autoscaler.Recommendation
}

// DeciderScenario is a named step table for a Decider. The package's own
// tests run them against autoscaler.Decider, and the bench module runs the
// same tables against Knative's decider to show that both agree; a
// scenario of your own can be checked the same way.
type DeciderScenario struct {
	Name string
	Spec autoscaler.DeciderSpec
	// Ready is the ready count when the decider is created.
	Ready int
	Steps []DeciderStep
	// KnativeDiffers, when set, says why Knative v0.42.2 (the version the
	// bench module runs) decides differently: the reference is a later
	// Knative.
	KnativeDiffers string
}

// BaseDeciderSpec is the spec the scenarios start from: target 10 per
// replica, total 15, no burst capacity (EBC 0), panic at 200%, Knative's
// rates and a 60 s stable window.
func BaseDeciderSpec() autoscaler.DeciderSpec {
	return autoscaler.DeciderSpec{
		TargetValue:      10,
		TotalValue:       15,
		PanicThreshold:   2,
		MaxScaleUpRate:   1000,
		MaxScaleDownRate: 2,
		StableWindow:     60 * time.Second,
	}
}

func spec(change func(*autoscaler.DeciderSpec)) autoscaler.DeciderSpec {
	s := BaseDeciderSpec()
	if change != nil {
		change(&s)
	}
	return s
}

func sec(n int) time.Duration { return time.Duration(n) * time.Second }

// rec is a Recommendation literal: desired, EBC, panicking.
func rec(desired, ebc int, panicking bool) autoscaler.Recommendation {
	return autoscaler.Recommendation{Desired: desired, ExcessBurstCapacity: ebc, Panicking: panicking}
}

// DeciderScenarios returns the scenario tables covering the decider's edge
// cases (Knative reference §1.3). Steps are at even seconds; run them from
// an even Unix second so that the scale-down delay's 2 s slots line up.
func DeciderScenarios() []DeciderScenario {
	return []DeciderScenario{
		{
			Name: "stable/ceil of load over target",
			Spec: spec(nil), Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 3, 25, 25, rec(3, 0, false)},
				{sec(4), 3, 30.5, 30.5, rec(4, 0, false)},
				{sec(6), 4, 40, 40, rec(4, 0, false)},
			},
		},
		{
			Name: "stable/scale down limited to floor(ready/max-scale-down-rate)",
			Spec: spec(nil), Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 10, 0, 0, rec(5, 0, false)},
				{sec(4), 5, 0, 0, rec(2, 0, false)},
				{sec(6), 2, 0, 0, rec(1, 0, false)},
				{sec(8), 1, 0, 0, rec(0, 0, false)},
			},
		},
		{
			Name: "stable/scale up limited to ceil(max-scale-up-rate × ready)",
			Spec: spec(func(s *autoscaler.DeciderSpec) { s.MaxScaleUpRate = 1.1 }), Ready: 1,
			Steps: []DeciderStep{
				// 2 × 1.1 = 2.2: ceil lets it grow by one replica.
				{sec(2), 2, 300, 30, rec(3, 0, false)},
				{sec(4), 3, 300, 30, rec(4, 0, false)},
			},
		},
		{
			Name: "stable/zero ready counts as one for the rates",
			Spec: spec(func(s *autoscaler.DeciderSpec) { s.MaxScaleUpRate = 2 }), Ready: 0,
			Steps: []DeciderStep{
				{sec(2), 0, 5, 5, rec(1, 0, false)},
				{sec(4), 0, 0, 0, rec(0, 0, false)},
				// ceil(2 × max(1, 0)) = 2 bounds the surge; dppc = 10 ≥ 2 × 1 panics.
				{sec(6), 0, 100, 100, rec(2, 0, true)},
			},
		},
		{
			Name: "reachability/unreachable scales down without the rate limit",
			Spec: spec(func(s *autoscaler.DeciderSpec) { s.Unreachable = true }), Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 10, 0, 0, rec(0, 0, false)},
				{sec(4), 10, 12, 12, rec(2, 0, false)},
			},
		},
		{
			Name: "panic/threshold on the unclamped panic count",
			Spec: spec(func(s *autoscaler.DeciderSpec) { s.MaxScaleUpRate = 1.5 }), Ready: 1,
			Steps: []DeciderStep{
				// dppc = 6, 6/2 ≥ 2: panic, although the clamped count (3) is not.
				{sec(2), 2, 0, 60, rec(3, 0, true)},
			},
		},
		{
			Name: "panic/at exactly the threshold",
			Spec: spec(nil), Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 2, 0, 39, rec(4, 0, true)},
				{sec(4), 2, 0, 40, rec(4, 0, true)},
			},
		},
		{
			Name: "panic/no scale-down, ratchet, extension, exit a stable window after the last surge",
			Spec: spec(nil), Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 1, 5, 25, rec(3, 0, true)},
				{sec(4), 3, 5, 5, rec(3, 0, true)},   // under, but no scale-down while panicking
				{sec(10), 3, 5, 65, rec(7, 0, true)}, // over again: extends panic to 10 s
				{sec(12), 7, 5, 5, rec(7, 0, true)},
				{sec(62), 7, 5, 5, rec(7, 0, true)},  // the surge at 10 s keeps it panicking
				{sec(70), 7, 5, 5, rec(7, 0, true)},  // 10 s + 60 s is not before 70 s
				{sec(72), 7, 5, 5, rec(3, 0, false)}, // un-panic; stable, limited to floor(7/2)
			},
		},
		{
			Name: "panic/stable count wins when larger",
			Spec: spec(nil), Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 2, 100, 40, rec(10, 0, true)},
			},
		},
		{
			Name: "panic/start in panic when created with more than one ready replica",
			Spec: spec(nil), Ready: 5,
			Steps: []DeciderStep{
				{sec(2), 5, 0, 0, rec(5, 0, true)},
				{sec(60), 5, 0, 0, rec(5, 0, true)},
				{sec(62), 5, 0, 0, rec(2, 0, false)},
			},
		},
		{
			Name: "panic/no panic at start with one ready replica",
			Spec: spec(nil), Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 1, 0, 0, rec(0, 0, false)},
			},
		},
		{
			Name: "activation scale/raises a non-zero count",
			Spec: spec(func(s *autoscaler.DeciderSpec) { s.ActivationScale = 3 }), Ready: 0,
			Steps: []DeciderStep{
				{sec(2), 0, 1, 1, rec(3, 0, false)},
				{sec(4), 3, 25, 25, rec(3, 0, false)},
				{sec(6), 3, 41, 41, rec(5, 0, false)},
				{sec(8), 5, 0, 0, rec(2, 0, false)}, // zero load: no activation floor
				{sec(10), 2, 0, 0, rec(1, 0, false)},
				{sec(12), 1, 0, 0, rec(0, 0, false)},
			},
		},
		{
			Name: "activation scale/applies to the panic count",
			Spec: spec(func(s *autoscaler.DeciderSpec) { s.ActivationScale = 4; s.MaxScaleUpRate = 2 }), Ready: 0,
			Steps: []DeciderStep{
				// dppc = 3 ≥ 2: panic; the panic count clamps to 2, then rises to 4.
				{sec(2), 0, 0, 30, rec(4, 0, true)},
			},
		},
		{
			Name: "delay/scale-down waits for the larger decisions to leave the window",
			Spec: spec(func(s *autoscaler.DeciderSpec) { s.ScaleDownDelay = 10 * time.Second }), Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 5, 50, 50, rec(5, 0, false)},
				{sec(4), 5, 10, 10, rec(5, 0, false)},
				{sec(6), 5, 10, 10, rec(5, 0, false)},
				{sec(10), 5, 10, 10, rec(5, 0, false)},
				{sec(12), 5, 10, 10, rec(2, 0, false)}, // 5 slots after 2 s
				{sec(14), 2, 80, 10, rec(8, 0, false)}, // scale-up passes at once
				{sec(16), 8, 0, 0, rec(8, 0, false)},
			},
		},
		{
			Name: "delay/skipped while unreachable",
			Spec: spec(func(s *autoscaler.DeciderSpec) {
				s.ScaleDownDelay = 10 * time.Second
				s.Unreachable = true
			}),
			Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 5, 50, 50, rec(5, 0, false)},
				{sec(4), 5, 10, 10, rec(1, 0, false)},
			},
			KnativeDiffers: "v0.42.2 applies the scale-down delay to unreachable revisions too; the reference Knative skips it",
		},
		{
			Name: "ebc/from the panic load and the unclamped ready count",
			Spec: spec(func(s *autoscaler.DeciderSpec) {
				s.TargetValue, s.TotalValue, s.TargetBurstCapacity = 50, 100, 200
			}),
			Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 3, 25, 89.5, rec(1, 10, false)},  // floor(300 − 200 − 89.5)
				{sec(4), 3, 25, 100.5, rec(1, -1, false)}, // floor(−0.5)
				{sec(6), 1, 5, 0.5, rec(1, -101, false)},  // floor(−100.5)
				{sec(8), 0, 5, 0, rec(1, -200, false)},    // ready 0: no capacity at all
			},
		},
		{
			Name: "ebc/target burst capacity 0 gives 0",
			Spec: spec(func(s *autoscaler.DeciderSpec) { s.TargetBurstCapacity = 0 }), Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 0, 5, 500, rec(50, 0, true)},
			},
		},
		{
			Name: "ebc/target burst capacity -1 gives -1",
			Spec: spec(func(s *autoscaler.DeciderSpec) { s.TargetBurstCapacity = -1 }), Ready: 1,
			Steps: []DeciderStep{
				{sec(2), 20, 5, 5, rec(10, -1, false)},
			},
		},
	}
}
