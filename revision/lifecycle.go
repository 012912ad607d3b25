package revision

import (
	"fmt"
	"time"
)

// Observation is what the host knows about a revision at one moment: the
// autoscaler's desired scale, how many replicas are ready, whether any route
// sends it traffic, and the failures the host currently sees.
type Observation struct {
	// Desired is the scale the autoscaler asked the backend for (after
	// bounds and scale-to-zero handling). Negative means unknown: the
	// autoscaler has no metrics yet.
	Desired int32
	// Ready is the number of ready replicas; it must not be negative.
	Ready int32
	// Unreachable says no route sends traffic to the revision (Knative's
	// Reachability Unreachable). MinScale is then ignored. The zero value,
	// reachable, is also what Knative assumes when it does not know.
	Unreachable bool
	// Failures are the problems the host sees now. Each sets its condition
	// False for as long as it is reported; an empty list clears them. (Knative
	// keeps ContainerHealthy False for good once set; servingkit lets the
	// host, which sees the replicas recover, say when a failure is over.)
	Failures []Failure
}

// Lifecycle is a revision's condition state machine: a plain value driven by
// Observe, with the time passed in. It does no I/O, starts no goroutine and
// is not safe for concurrent use; Reconciler is the concurrent shell.
//
// The Active condition follows Knative's computeActiveCondition. With want
// the desired scale (after the activation guard below), ready the ready
// replicas, and min the readiness threshold — max(MinScale, InitialScale)
// until the revision is initialized, max(MinScale, 1) after, MinScale
// counting as 0 when Unreachable:
//
//	want  ready      min  Active before   Active after (reason)
//	 any   any        0    any             False (NoTraffic)
//	 0     any       >0    Unknown         False (TimedOut)
//	 0     any       >0    True, False     False (NoTraffic)
//	>0    < min      >0    any             Unknown (Queued)
//	>0    >= min     >0    any             True
//	-1    < min      >0    Unknown, True   Unknown (Queued)
//	-1    < min      >0    False           False (NoTraffic)
//	-1    >= min     >0    Unknown, True   True
//	-1    >= min     >0    False           False (unchanged)
//
// Activation guard: a desired scale of 0 that arrives while Active is
// Unknown counts as -1 until the revision has been activating for
// Config.ActivationTimeout (progress deadline + 30 s), as Knative's scaler
// holds the scale and waits. So TimedOut means "scaled to zero after failing
// to activate in time".
//
// The revision is initialized once ready >= min. ResourcesAvailable is,
// first match wins: False with a reported ResourcesAvailable failure; False
// (ProgressDeadlineExceeded) when fewer replicas than desired are ready and
// none became ready for Config.ProgressDeadline; True once initialized;
// False (ProgressDeadlineExceeded, "Initial scale was never achieved") when
// Active is False before initialization; otherwise Unknown (Deploying).
// ContainerHealthy is False with a reported ContainerHealthy failure, True
// once initialized, otherwise Unknown (Deploying). Ready is the two together;
// Active is not part of it, so a scaled-to-zero revision stays Ready.
//
// Deadlines are met at or after the instant they fall (Knative's checks are
// strictly after; the difference is one nanosecond and makes timers exact).
type Lifecycle struct {
	cfg Config
	st  Status

	last          Observation // the last observation, for Tick-style re-evaluation
	progressStart time.Time   // start of the current progress window; zero when not short of replicas
	lastReady     int32       // ready replicas at the last observation
	exceeded      bool        // the current progress window has lasted the progress deadline
}

// NewLifecycle returns the life cycle of a revision created at now: every
// condition Unknown (Deploying), desired scale unknown, no replica.
func NewLifecycle(now time.Time, cfg Config) (*Lifecycle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Lifecycle{cfg: cfg, last: Observation{Desired: -1}}
	for _, c := range []*Condition{&l.st.ResourcesAvailable, &l.st.ContainerHealthy, &l.st.Ready, &l.st.Active} {
		*c = Condition{Status: Unknown, Reason: ReasonDeploying, LastTransition: now}
	}
	l.st.ResourcesAvailable.Type = ResourcesAvailable
	l.st.ContainerHealthy.Type = ContainerHealthy
	l.st.Ready.Type = Ready
	l.st.Active.Type = Active
	l.st.DesiredReplicas = -1
	return l, nil
}

// Status returns the status after the last Observe.
func (l *Lifecycle) Status() Status { return l.st }

// Config returns the configuration the life cycle was created with.
func (l *Lifecycle) Config() Config { return l.cfg }

// Observe applies o at now and returns the new status. A bad observation
// (negative Ready, invalid Failure) returns an error wrapping
// ErrInvalidObservation or ErrInvalidFailure and leaves the state unchanged.
// Times must not go backwards between calls.
func (l *Lifecycle) Observe(now time.Time, o Observation) (Status, error) {
	if o.Ready < 0 {
		return l.st, fmt.Errorf("%w: Observation.Ready = %d, must be >= 0", ErrInvalidObservation, o.Ready)
	}
	for _, f := range o.Failures {
		if err := f.Validate(); err != nil {
			return l.st, err
		}
	}
	l.last = o
	l.last.Failures = append([]Failure(nil), o.Failures...)
	l.step(now)
	return l.st, nil
}

// NextDeadline returns the earliest time at which observing the same inputs
// again may change the status (the progress deadline or the activation
// timeout falling due), and false when there is none. A host without its own
// periodic re-evaluation arms a timer for it; Reconciler.Run does.
func (l *Lifecycle) NextDeadline() (time.Time, bool) {
	var next time.Time
	if !l.progressStart.IsZero() && !l.exceeded {
		next = l.progressStart.Add(l.cfg.progressDeadline())
	}
	if l.last.Desired == 0 && l.st.Active.Status == Unknown {
		if t := l.st.Active.LastTransition.Add(l.cfg.ActivationTimeout()); next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next, !next.IsZero()
}

// step recomputes the status from l.last at now.
func (l *Lifecycle) step(now time.Time) {
	o := l.last
	st := l.st

	want := o.Desired
	if want < 0 {
		want = -1
	}
	if want == 0 && st.Active.Status == Unknown && now.Sub(st.Active.LastTransition) < l.cfg.ActivationTimeout() {
		want = -1 // the activation guard
	}
	if want >= 0 || st.DesiredReplicas < 0 {
		st.DesiredReplicas = want
	}
	st.ActualReplicas = o.Ready

	exceeded := l.trackProgress(now, st.DesiredReplicas, o.Ready)

	min := l.minReady(o.Unreachable)
	if o.Ready >= min {
		st.Initialized = true
	}
	st.Active = nextActive(now, st.Active, want, o.Ready, min)

	switch f, ok := failureFor(o.Failures, ResourcesAvailable); {
	case ok:
		st.ResourcesAvailable = st.ResourcesAvailable.set(now, False, f.Reason, f.Message)
	case exceeded:
		st.ResourcesAvailable = st.ResourcesAvailable.set(now, False, ReasonProgressDeadlineExceeded,
			fmt.Sprintf("%d of %d replicas ready; none became ready within the progress deadline (%v).",
				o.Ready, st.DesiredReplicas, l.cfg.progressDeadline()))
	case st.Initialized:
		st.ResourcesAvailable = st.ResourcesAvailable.set(now, True, "", "")
	case st.Active.Status == False:
		st.ResourcesAvailable = st.ResourcesAvailable.set(now, False, ReasonProgressDeadlineExceeded, MessageInitialScaleNeverAchieved)
	default:
		st.ResourcesAvailable = st.ResourcesAvailable.set(now, Unknown, ReasonDeploying, "")
	}
	switch f, ok := failureFor(o.Failures, ContainerHealthy); {
	case ok:
		st.ContainerHealthy = st.ContainerHealthy.set(now, False, f.Reason, f.Message)
	case st.Initialized:
		st.ContainerHealthy = st.ContainerHealthy.set(now, True, "", "")
	default:
		st.ContainerHealthy = st.ContainerHealthy.set(now, Unknown, ReasonDeploying, "")
	}
	st.Ready = st.ready(now)
	l.st = st
}

// trackProgress keeps the progress window, Kubernetes' Deployment style: it
// opens when fewer than target replicas are ready, restarts whenever one
// more becomes ready, and closes when target is met. It reports whether the
// window has lasted the progress deadline.
func (l *Lifecycle) trackProgress(now time.Time, target, ready int32) bool {
	short := target > 0 && ready < target
	switch {
	case !short:
		l.progressStart = time.Time{}
	case l.progressStart.IsZero() || ready > l.lastReady:
		l.progressStart = now
	}
	l.lastReady = ready
	l.exceeded = short && now.Sub(l.progressStart) >= l.cfg.progressDeadline()
	return l.exceeded
}

// minReady is Knative's activeThreshold.
func (l *Lifecycle) minReady(unreachable bool) int32 {
	min := l.cfg.MinScale
	if unreachable {
		min = 0
	}
	if !l.st.Initialized {
		return max(min, l.cfg.initialScale())
	}
	return max(min, 1)
}

// nextActive is the Active transition table in Lifecycle's doc.
func nextActive(now time.Time, cur Condition, want, ready, min int32) Condition {
	switch {
	case want == 0 || min == 0:
		if cur.Status == Unknown && min > 0 {
			return cur.set(now, False, ReasonTimedOut, MessageTimedOut)
		}
		return cur.set(now, False, ReasonNoTraffic, MessageNoTraffic)
	case ready < min:
		if want > 0 || cur.Status != False {
			return cur.set(now, Unknown, ReasonQueued, MessageQueued)
		}
		return cur.set(now, False, ReasonNoTraffic, MessageNoTraffic)
	default:
		if want > 0 || cur.Status != False {
			return cur.set(now, True, "", "")
		}
		return cur
	}
}

func failureFor(fs []Failure, c ConditionType) (Failure, bool) {
	for _, f := range fs {
		if f.Condition == c {
			return f, true
		}
	}
	return Failure{}, false
}
