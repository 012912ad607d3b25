package autoscaler

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type lifeStep struct {
	at                  int // seconds after creation
	desired, ready, ebc int
	want                int
	apply               bool
	act                 Activity
}

func lifeSpec(change func(*Spec)) Spec {
	s, err := DefaultConfig().RevisionSpec(nil, 0)
	if err != nil {
		panic(err)
	}
	if change != nil {
		change(&s)
	}
	return s
}

// TestLifecycleScenarios are step tables of (time, recommendation, ready,
// EBC) → (wanted scale, apply now, activity), after Knative's KPA
// reconciler (reference §1.5).
func TestLifecycleScenarios(t *testing.T) {
	tests := []struct {
		name  string
		spec  Spec
		steps []lifeStep
	}{
		{"scale to zero: a stable window active, activator in the path since creation",
			lifeSpec(nil), []lifeStep{
				{2, -1, 0, -111, -1, false, Activating}, // no metrics yet, replica starting
				{4, -1, 1, -111, -1, false, Active},     // ready: active even before metrics
				{6, 1, 1, -111, 1, true, Active},
				{10, 0, 1, -111, 1, true, Active},    // idle, but active for only 6 s: keep one
				{62, 0, 1, -111, 1, true, Active},    // 58 s
				{64, 0, 1, -111, 0, false, Inactive}, // 60 s: inactive, activator takes over
				{66, 0, 1, -111, 0, true, Inactive},  // in proxy mode for 66 s ≥ grace: to zero
			}},
		{"scale to zero: grace counts from when the activator entered the path",
			lifeSpec(nil), []lifeStep{
				{2, -1, 0, 5, -1, false, Activating},
				{4, 1, 1, 5, 1, true, Active}, // ebc ≥ 0: activator leaves the path
				{64, 0, 1, 5, 0, false, Inactive},
				{66, 0, 1, 5, 0, false, Inactive},
				{92, 0, 1, 5, 0, false, Inactive},
				{94, 0, 1, 5, 0, true, Inactive}, // 30 s
			}},
		{"scale to zero: pod retention keeps the last replica",
			lifeSpec(func(s *Spec) { s.ScaleToZeroPodRetention = 90 * time.Second }), []lifeStep{
				{4, 1, 1, -111, 1, true, Active},
				{64, 0, 1, -111, 0, false, Inactive},
				{94, 0, 1, -111, 0, false, Inactive}, // grace passed, retention not
				{152, 0, 1, -111, 0, false, Inactive},
				{154, 0, 1, -111, 0, true, Inactive}, // 90 s inactive
			}},
		{"scale to zero: no retention while unreachable",
			lifeSpec(func(s *Spec) { s.ScaleToZeroPodRetention = 90 * time.Second; s.Unreachable = true }), []lifeStep{
				{4, 1, 1, 5, 1, true, Active},
				{64, 0, 1, 5, 0, false, Inactive},
				{92, 0, 1, 5, 0, false, Inactive},
				{94, 0, 1, 5, 0, true, Inactive},
			}},
		{"scale to zero: disabled keeps one replica",
			lifeSpec(func(s *Spec) { s.EnableScaleToZero = false }), []lifeStep{
				{2, 1, 1, -111, 1, true, Active},
				{200, 0, 1, -111, 1, true, Active},
			}},
		{"scale to zero: target burst capacity -1 has the activator in the path anyway",
			lifeSpec(func(s *Spec) { s.TargetBurstCapacity = -1 }), []lifeStep{
				{2, 1, 1, -1, 1, true, Active},
				{62, 0, 1, -1, 0, false, Inactive},
				{92, 0, 1, -1, 0, true, Inactive},
			}},
		{"wake from zero",
			lifeSpec(nil), []lifeStep{
				{2, 1, 1, -111, 1, true, Active},
				{62, 0, 1, -111, 0, false, Inactive},
				{64, 0, 1, -111, 0, true, Inactive},
				{70, 0, 0, -211, 0, true, Inactive},
				{71, 1, 0, -211, 1, true, Activating}, // a poke
				{72, 1, 0, -211, 1, true, Activating},
				{74, 1, 1, -111, 1, true, Active},
			}},
		{"activation timeout scales back to zero",
			lifeSpec(func(s *Spec) { s.ActivationTimeout = 20 * time.Second }), []lifeStep{
				{2, 1, 0, -211, 1, true, Activating},
				{10, 0, 0, -211, -1, false, Activating}, // still within the timeout: leave it
				{20, 0, 0, -211, -1, false, Activating},
				{22, 0, 0, -211, 0, true, Inactive},  // TimedOut
				{24, 0, 0, -211, 0, false, Inactive}, // already at zero; waits as any inactive revision
			}},
		{"initial scale holds until first reached",
			lifeSpec(func(s *Spec) { s.InitialScale = 3 }), []lifeStep{
				{2, -1, 0, -211, 3, true, Activating},
				{4, 1, 2, -11, 3, true, Activating},
				{6, 1, 3, 89, 3, true, Active}, // reached: initialized
				{8, 1, 3, 89, 1, true, Active},
			}},
		{"initial scale does not hold while unreachable",
			lifeSpec(func(s *Spec) { s.InitialScale = 3; s.Unreachable = true }), []lifeStep{
				{2, -1, 0, -211, -1, false, Activating},
				{4, 2, 0, -211, 2, true, Activating},
			}},
		{"initial scale 0 starts inactive",
			lifeSpec(func(s *Spec) { s.InitialScale = 0 }), []lifeStep{
				{2, -1, 0, -211, -1, false, Inactive},
				{4, -1, 0, -211, -1, false, Inactive},
				{6, 1, 0, -211, 1, true, Activating},
				{8, 1, 1, -111, 1, true, Active},
			}},
		{"min and max bound the decision",
			lifeSpec(func(s *Spec) { s.MinScale, s.MaxScale = 2, 5 }), []lifeStep{
				{2, -1, 0, -211, 2, true, Activating},
				{4, 0, 2, -11, 2, true, Active},
				{6, 9, 2, -11, 5, true, Active},
				{8, 3, 5, 289, 3, true, Active},
			}},
		{"min is ignored while unreachable",
			lifeSpec(func(s *Spec) { s.MinScale = 2; s.Unreachable = true }), []lifeStep{
				{2, 1, 1, -111, 1, true, Active},
				{4, 0, 1, -111, 1, true, Active},
				{62, 0, 1, -111, 0, false, Inactive},
			}},
		{"no metrics after activation leaves the scale alone",
			lifeSpec(nil), []lifeStep{
				{2, 3, 3, 89, 3, true, Active},
				{4, -1, 3, 89, -1, false, Active},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLifecycle(t0)
			for i, st := range tt.steps {
				want, apply := l.step(&tt.spec, t0.Add(time.Duration(st.at)*time.Second), st.desired, st.ready, st.ebc, proxyTime{})
				require.Equal(t, fmt.Sprint(st.want, st.apply, st.act), fmt.Sprint(want, apply, l.activity),
					"step %d at +%ds (desired %d, ready %d, ebc %d)", i, st.at, st.desired, st.ready, st.ebc)
			}
		})
	}
}

// TestLifecycleProxyTimer: with the front door's word on the activator
// (a ProxyTimer), an inactive revision goes to zero as Knative's
// handleScaleToZero does with its activator probe and SKS.ProxyFor.
func TestLifecycleProxyTimer(t *testing.T) {
	type step struct {
		at                  int // seconds after creation
		desired, ready, ebc int
		proxy               proxyTime
		want                int
		apply               bool
		act                 Activity
	}
	unknown := proxyTime{}
	serve := proxyTime{known: true}
	proxyFor := func(s int) proxyTime { return proxyTime{d: time.Duration(s) * time.Second, known: true} }
	tests := []struct {
		name  string
		spec  Spec
		steps []step
	}{
		{"no activator in the path: the last replica stays", lifeSpec(nil), []step{
			{2, 1, 1, -111, unknown, 1, true, Active},
			{62, 0, 1, -111, unknown, 0, false, Inactive},
			{64, 0, 1, -111, serve, 0, false, Inactive}, // inferred: in proxy mode for 64 s
			{300, 0, 1, -111, serve, 0, false, Inactive},
			{302, 0, 1, -111, proxyFor(2), 0, true, Inactive}, // inactive ≥ grace: at once
		}},
		{"no activator in the path: also with TBC -1", lifeSpec(func(s *Spec) { s.TargetBurstCapacity = -1 }), []step{
			{2, 1, 1, -1, unknown, 1, true, Active},
			{62, 0, 1, -1, unknown, 0, false, Inactive},
			{94, 0, 1, -1, serve, 0, false, Inactive},
			{96, 0, 1, -1, proxyFor(1), 0, true, Inactive},
		}},
		{"grace counts from the front door's proxy time", lifeSpec(nil), []step{
			{2, 1, 1, 5, unknown, 1, true, Active}, // EBC ≥ 0: inferred out of the path
			{62, 0, 1, 5, unknown, 0, false, Inactive},
			{64, 0, 1, 5, proxyFor(25), 0, false, Inactive}, // wait grace − 25 s
			{68, 0, 1, 5, proxyFor(29), 0, false, Inactive},
			{70, 0, 1, 5, proxyFor(31), 0, true, Inactive}, // inferred: not before 92
		}},
		{"retention holds whatever the proxy time", lifeSpec(func(s *Spec) { s.ScaleToZeroPodRetention = 90 * time.Second }), []step{
			{2, 1, 1, -111, unknown, 1, true, Active},
			{62, 0, 1, -111, unknown, 0, false, Inactive},
			{64, 0, 1, -111, proxyFor(100), 0, false, Inactive},
			{150, 0, 1, -111, proxyFor(186), 0, false, Inactive},
			{152, 0, 1, -111, proxyFor(188), 0, true, Inactive}, // 90 s inactive
		}},
		{"unknown falls back to the inference, whatever its duration", lifeSpec(nil), []step{
			{2, 1, 1, 5, unknown, 1, true, Active},
			{62, 0, 1, 5, unknown, 0, false, Inactive},
			{64, 0, 1, 5, proxyTime{d: time.Hour}, 0, false, Inactive},
			{90, 0, 1, 5, proxyTime{d: time.Hour}, 0, false, Inactive},
			{92, 0, 1, 5, proxyTime{d: time.Hour}, 0, true, Inactive}, // 30 s since it entered
		}},
		{"the proxy time is not read while active", lifeSpec(nil), []step{
			{2, 1, 1, -111, serve, 1, true, Active},
			{62, 0, 1, -111, serve, 0, false, Inactive}, // active a stable window: inactive anyway
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLifecycle(t0)
			for i, st := range tt.steps {
				want, apply := l.step(&tt.spec, t0.Add(time.Duration(st.at)*time.Second), st.desired, st.ready, st.ebc, st.proxy)
				require.Equal(t, fmt.Sprint(st.want, st.apply, st.act), fmt.Sprint(want, apply, l.activity),
					"step %d at +%ds (desired %d, ready %d, ebc %d, proxy %+v)", i, st.at, st.desired, st.ready, st.ebc, st.proxy)
			}
		})
	}
}

func TestLifecycleTimedOutReason(t *testing.T) {
	s := lifeSpec(func(s *Spec) { s.ActivationTimeout = 10 * time.Second })
	l := newLifecycle(t0)
	l.step(&s, t0.Add(12*time.Second), 0, 0, -211, proxyTime{})
	require.Equal(t, Inactive, l.activity)
	require.True(t, l.timedOut)
	// Knative's reason changes to NoTraffic on the next reconcile, which
	// restarts the inactive time.
	l.step(&s, t0.Add(14*time.Second), 0, 0, -211, proxyTime{})
	require.False(t, l.timedOut)
	require.Equal(t, t0.Add(14*time.Second), l.since)
}
