package revision

import (
	"fmt"
	"time"
)

// Status is a revision's observed state: its four conditions and its
// replica counts. It is a comparable value; two statuses are equal when
// nothing a reader could see has changed.
type Status struct {
	// ResourcesAvailable, ContainerHealthy, Ready and Active are the
	// revision's conditions (see the ConditionType constants).
	ResourcesAvailable Condition
	ContainerHealthy   Condition
	Ready              Condition
	Active             Condition
	// DesiredReplicas is the autoscaler's last known desired scale, or -1
	// before it has one. A later "unknown" (-1, as after an autoscaler
	// restart) does not overwrite a known value, as in Knative.
	DesiredReplicas int32
	// ActualReplicas is the number of ready replicas last observed.
	ActualReplicas int32
	// Initialized is Knative's ScaleTargetInitialized: the revision has
	// reached its initial scale once. It never goes back to false.
	Initialized bool
}

// IsReady reports whether Ready is True.
func (s Status) IsReady() bool { return s.Ready.Status == True }

// Condition returns the condition of type t, and false for an unknown type.
func (s Status) Condition(t ConditionType) (Condition, bool) {
	switch t {
	case ResourcesAvailable:
		return s.ResourcesAvailable, true
	case ContainerHealthy:
		return s.ContainerHealthy, true
	case Ready:
		return s.Ready, true
	case Active:
		return s.Active, true
	}
	return Condition{}, false
}

// ActiveFor returns how long Active has been True at now, or -1 when it is
// not True (Knative's PodAutoscalerStatus.ActiveFor). The autoscaler's
// scale-to-zero step waits on it.
func (s Status) ActiveFor(now time.Time) time.Duration { return s.activeIn(True, now) }

// InactiveFor returns how long Active has been False at now, or -1 when it
// is not False (Knative's InactiveFor).
func (s Status) InactiveFor(now time.Time) time.Duration { return s.activeIn(False, now) }

// ActivatingFor returns how long Active has been Unknown (the revision is
// activating) at now, or -1 when it is not Unknown.
func (s Status) ActivatingFor(now time.Time) time.Duration { return s.activeIn(Unknown, now) }

func (s Status) activeIn(st ConditionStatus, now time.Time) time.Duration {
	if s.Active.Status != st || s.Active.LastTransition.IsZero() {
		return -1
	}
	return now.Sub(s.Active.LastTransition)
}

// String formats the status on one line: the four conditions, then the
// desired and actual replica counts.
func (s Status) String() string {
	return fmt.Sprintf("%v, %v, %v, %v, desired %d, actual %d",
		s.Ready, s.ResourcesAvailable, s.ContainerHealthy, s.Active, s.DesiredReplicas, s.ActualReplicas)
}

// ready derives the Ready condition from ResourcesAvailable and
// ContainerHealthy, as Knative's living condition set does: the first False
// one (in that order) makes Ready False with its reason and message;
// otherwise the first Unknown one makes it Unknown; otherwise it is True.
func (s Status) ready(now time.Time) Condition {
	deps := [2]Condition{s.ResourcesAvailable, s.ContainerHealthy}
	for _, d := range deps {
		if d.Status == False {
			return s.Ready.set(now, False, d.Reason, d.Message)
		}
	}
	for _, d := range deps {
		if d.Status == Unknown {
			return s.Ready.set(now, Unknown, d.Reason, d.Message)
		}
	}
	return s.Ready.set(now, True, "", "")
}
