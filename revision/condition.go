package revision

import (
	"fmt"
	"time"
)

// ConditionType names one of a revision's conditions.
type ConditionType string

// The revision's conditions, with Knative's names.
const (
	// ResourcesAvailable says whether the revision's replicas could be
	// provisioned: False on a progress-deadline timeout or a host-reported
	// resource failure (say, unschedulable).
	ResourcesAvailable ConditionType = "ResourcesAvailable"
	// ContainerHealthy says whether the revision's container starts and
	// stays up: False on a host-reported crash or missing image.
	ContainerHealthy ConditionType = "ContainerHealthy"
	// Ready is ResourcesAvailable and ContainerHealthy together. Active is
	// deliberately not part of it, so a revision scaled to zero stays Ready.
	Ready ConditionType = "Ready"
	// Active says whether the revision has (True), is getting (Unknown) or
	// has deliberately not got (False) the replicas it needs to serve.
	Active ConditionType = "Active"
)

// ConditionStatus is the three-valued status of a condition.
type ConditionStatus uint8

// Condition statuses. The zero value is Unknown.
const (
	Unknown ConditionStatus = iota
	True
	False
)

// String returns "Unknown", "True" or "False", as Kubernetes spells them.
func (s ConditionStatus) String() string {
	switch s {
	case Unknown:
		return "Unknown"
	case True:
		return "True"
	case False:
		return "False"
	}
	return fmt.Sprintf("ConditionStatus(%d)", uint8(s))
}

// Reasons and messages the life cycle uses. They are Knative's
// (pkg/apis/serving/v1/revision_lifecycle.go and
// pkg/reconciler/autoscaling/kpa/kpa.go), so dashboards and alerts written
// for Knative read servingkit's conditions unchanged.
const (
	// ReasonDeploying: the revision has not yet reached its initial scale.
	ReasonDeploying = "Deploying"
	// ReasonQueued: Active is Unknown while replicas are being provisioned
	// and requests wait in the activator.
	ReasonQueued = "Queued"
	// MessageQueued goes with ReasonQueued.
	MessageQueued = "Requests to the target are being buffered as resources are provisioned."
	// ReasonNoTraffic: Active is False because the revision was scaled to
	// zero for lack of traffic.
	ReasonNoTraffic = "NoTraffic"
	// MessageNoTraffic goes with ReasonNoTraffic.
	MessageNoTraffic = "The target is not receiving traffic."
	// ReasonTimedOut: Active is False because the revision was scaled to
	// zero while still activating, after the activation timeout.
	ReasonTimedOut = "TimedOut"
	// MessageTimedOut goes with ReasonTimedOut.
	MessageTimedOut = "The target could not be activated."
	// ReasonProgressDeadlineExceeded: ResourcesAvailable is False because
	// replicas did not become ready within the progress deadline, or the
	// initial scale was never reached before the revision went inactive.
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// MessageInitialScaleNeverAchieved goes with
	// ReasonProgressDeadlineExceeded when a revision that never reached its
	// initial scale became inactive.
	MessageInitialScaleNeverAchieved = "Initial scale was never achieved"
	// ReasonContainerMissing: ContainerHealthy is False because the image
	// (or handler) could not be fetched. See ImageMissing.
	ReasonContainerMissing = "ContainerMissing"
)

// Condition is one condition of a revision's status. It is a comparable
// value.
type Condition struct {
	// Type names the condition.
	Type ConditionType
	// Status is True, False or Unknown.
	Status ConditionStatus
	// Reason is a CamelCase word saying why (empty when True).
	Reason string
	// Message is a human-readable sentence (may be empty).
	Message string
	// LastTransition is when Status last changed. A change of Reason or
	// Message alone keeps it, so "how long has it been activating" survives
	// a new reason (Knative bumps the time on any change; servingkit keeps
	// the durations the autoscaler relies on stable).
	LastTransition time.Time
}

// String formats the condition as "Type=Status" followed by
// " (Reason: Message)" when there is a reason.
func (c Condition) String() string {
	s := string(c.Type) + "=" + c.Status.String()
	switch {
	case c.Reason != "" && c.Message != "":
		s += " (" + c.Reason + ": " + c.Message + ")"
	case c.Reason != "":
		s += " (" + c.Reason + ")"
	}
	return s
}

// set returns c changed to status, reason and message at now, keeping
// LastTransition when the status is unchanged.
func (c Condition) set(now time.Time, status ConditionStatus, reason, message string) Condition {
	if c.Status != status || c.LastTransition.IsZero() {
		c.LastTransition = now
	}
	c.Status, c.Reason, c.Message = status, reason, message
	return c
}
