package autoscaler

import (
	"fmt"
	"time"
)

// Activity is whether a revision is serving, Knative's PodAutoscaler
// "Active" condition.
type Activity uint8

const (
	// Activating: replicas are wanted but fewer than needed are ready
	// (Active=Unknown, reason Queued). A new revision starts here.
	Activating Activity = iota
	// Active: enough replicas are ready (Active=True).
	Active
	// Inactive: the revision is idle, at or on its way to zero replicas
	// (Active=False, reason NoTraffic, or TimedOut after a failed
	// activation).
	Inactive
)

// String returns "Activating", "Active" or "Inactive".
func (a Activity) String() string {
	switch a {
	case Activating:
		return "Activating"
	case Active:
		return "Active"
	case Inactive:
		return "Inactive"
	}
	return fmt.Sprintf("Activity(%d)", uint8(a))
}

// lifecycle turns a decider's recommendation into the replica count to
// apply, as Knative's KPA reconciler does (kpa.go computeActiveCondition,
// scaler.go scale and handleScaleToZero): min/max bounds, initial scale
// until first reached, and the scale-to-zero rules. It tracks the Active
// condition. Whether the activator is in the request path, and since when
// (Knative's activator probe and SKS ProxyFor), comes from the host's
// ProxyTimer when it knows; otherwise it is inferred from the lifecycle's
// own decisions with the SKS rule: the activator leaves the path exactly
// when the wanted scale is > 0 and the excess burst capacity is ≥ 0. The
// inference is exact only for a front door that switches as soon as it is
// told and always has an activator to switch to.
//
// It is pure: the Runner calls step on every tick, where Knative reconciles
// on events and timers, so waits end on the first tick after they expire.
type lifecycle struct {
	activity    Activity
	timedOut    bool      // Inactive because activation timed out
	since       time.Time // when activity (or its reason) last changed
	initialized bool      // ScaleTargetInitialized: ready reached the active threshold once
	proxied     bool      // activator in the request path after the last step
	proxySince  time.Time // when it last entered the path
}

func newLifecycle(now time.Time) lifecycle {
	// A new revision's SKS starts in proxy mode.
	return lifecycle{activity: Activating, since: now, proxied: true, proxySince: now}
}

// proxyTime is a ProxyTimer's answer for one step; the zero value is
// "unknown", which makes the lifecycle use its own inference.
type proxyTime struct {
	d     time.Duration // time in Proxy mode; 0: the activator is not in the path
	known bool
}

// step applies one recommendation (desired −1: none yet) at now with ready
// replicas, the current excess burst capacity and what the front door
// reports about the activator. It returns the scale the revision should
// have (−1: unknown, leave it) and whether to apply it now.
func (l *lifecycle) step(s *Spec, now time.Time, desired, ready, ebc int, proxy proxyTime) (want int, apply bool) {
	want, apply = l.scale(s, now, desired, proxy)

	proxied := !(want > 0 && ebc >= 0)
	if proxied && !l.proxied {
		l.proxySince = now
	}
	l.proxied = proxied

	l.updateActivity(s, now, want, ready)
	return want, apply
}

// bounds are min and max scale; min does not hold for an unreachable
// revision (Knative's ScaleBounds).
func bounds(s *Spec) (lo, hi int) {
	if s.Unreachable {
		return 0, s.MaxScale
	}
	return s.MinScale, s.MaxScale
}

func (l *lifecycle) scale(s *Spec, now time.Time, desired int, proxy proxyTime) (int, bool) {
	if desired < 0 && l.activity != Activating {
		// No metrics yet: leave the scale alone.
		return -1, false
	}
	lo, hi := bounds(s)
	if s.InitialScale > 1 && !l.initialized && !s.Unreachable {
		lo = max(lo, s.InitialScale)
	}
	x := desired
	if x < lo {
		x = lo
	}
	if hi != 0 && x > hi {
		x = hi
	}
	if x != 0 {
		return x, true
	}
	return l.toZero(s, now, proxy)
}

// toZero decides whether a revision that wants zero replicas may have them
// now (handleScaleToZero). A false apply means "not yet": the returned want
// still tells the front door where requests should go.
func (l *lifecycle) toZero(s *Spec, now time.Time, proxy proxyTime) (int, bool) {
	if !s.EnableScaleToZero {
		return 1, true
	}
	in := now.Sub(l.since)
	switch l.activity {
	case Activating:
		if in > s.ActivationTimeout {
			return 0, true // activation failed: give up
		}
		return -1, false
	case Active:
		// Stay at one replica for a stable window after becoming active;
		// then turn inactive (the activator takes over) without scaling.
		if in >= s.StableWindow {
			return 0, false
		}
		return 1, true
	}
	// Inactive. The activator must be in the path before the last replica
	// goes (Knative probes for it; with TBC −1 it assumes so).
	inPath, proxyFor := l.proxied || s.TargetBurstCapacity == -1, now.Sub(l.proxySince)
	if proxy.known {
		// The front door's word wins, also over TBC −1: without a ready
		// activator it serves from the replicas whatever the spec says.
		inPath, proxyFor = proxy.d > 0, proxy.d
	}
	if !inPath {
		return 0, false
	}
	retention := s.ScaleToZeroPodRetention
	if s.Unreachable {
		retention = 0
	}
	if in >= max(s.ScaleToZeroGracePeriod, retention) {
		return 0, true
	}
	if retention > 0 && in < retention {
		return 0, false
	}
	return 0, proxyFor >= s.ScaleToZeroGracePeriod
}

// updateActivity is computeActiveCondition.
func (l *lifecycle) updateActivity(s *Spec, now time.Time, want, ready int) {
	lo, _ := bounds(s)
	threshold := max(lo, 1)
	if !l.initialized {
		threshold = max(lo, s.InitialScale)
	}
	if ready >= threshold {
		l.initialized = true
	}
	switch {
	case want == 0 || threshold == 0:
		// Only a timed-out activation scales to zero while activating.
		l.set(now, Inactive, l.activity == Activating && threshold > 0)
	case ready < threshold:
		if want > 0 || l.activity != Inactive {
			l.set(now, Activating, false)
		} else {
			l.set(now, Inactive, false)
		}
	default:
		if want > 0 || l.activity != Inactive {
			l.set(now, Active, false)
		}
	}
}

func (l *lifecycle) set(now time.Time, a Activity, timedOut bool) {
	if a != l.activity || timedOut != l.timedOut {
		l.activity, l.timedOut, l.since = a, timedOut, now
	}
}
