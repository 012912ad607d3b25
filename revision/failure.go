package revision

import (
	"fmt"
	"strconv"
)

// Failure is a problem the host saw with a revision's replicas: a container
// that crashes, an image that cannot be pulled, a replica that cannot be
// scheduled. It sets Condition to False with Reason and Message for as long
// as the host reports it.
type Failure struct {
	// Condition is ResourcesAvailable or ContainerHealthy.
	Condition ConditionType
	// Reason is a short CamelCase word; it must not be empty.
	Reason string
	// Message explains the failure to a person.
	Message string
}

// Validate reports whether f can be applied: Condition must be
// ResourcesAvailable or ContainerHealthy and Reason must not be empty.
func (f Failure) Validate() error {
	if f.Condition != ResourcesAvailable && f.Condition != ContainerHealthy {
		return fmt.Errorf("%w: Failure.Condition = %q, must be %q or %q",
			ErrInvalidFailure, f.Condition, ResourcesAvailable, ContainerHealthy)
	}
	if f.Reason == "" {
		return fmt.Errorf("%w: Failure.Reason is empty for condition %q, must be a non-empty word",
			ErrInvalidFailure, f.Condition)
	}
	return nil
}

// ContainerFailed is the failure Knative reports when a revision's container
// exits: ContainerHealthy False, reason "ExitCode<code>", message
// "Container failed with: <message>".
func ContainerFailed(exitCode int32, message string) Failure {
	if exitCode == 0 && message == "" {
		message = "container exited with no error"
	}
	return Failure{
		Condition: ContainerHealthy,
		Reason:    "ExitCode" + strconv.Itoa(int(exitCode)),
		Message:   "Container failed with: " + message,
	}
}

// ImageMissing is the failure Knative reports when a revision's image cannot
// be fetched: ContainerHealthy False, reason ContainerMissing.
func ImageMissing(image, message string) Failure {
	return Failure{
		Condition: ContainerHealthy,
		Reason:    ReasonContainerMissing,
		Message:   fmt.Sprintf("Unable to fetch image %q: %s", image, message),
	}
}

// ResourcesUnavailable is a ResourcesAvailable failure with the host's own
// reason, e.g. Kubernetes' "Unschedulable" with the scheduler's message.
func ResourcesUnavailable(reason, message string) Failure {
	return Failure{Condition: ResourcesAvailable, Reason: reason, Message: message}
}
