package revision

import (
	"errors"
	"fmt"
	"time"
)

// DefaultProgressDeadline is how long replicas may take to become ready
// when Config.ProgressDeadline is zero: Knative's progress-deadline default
// (config-deployment, 600 s).
const DefaultProgressDeadline = 600 * time.Second

// activationTimeoutBuffer is what Knative adds to the progress deadline to
// get the activation timeout (kpa/scaler.go, activationTimeoutBuffer).
const activationTimeoutBuffer = 30 * time.Second

// Config configures one revision's life cycle and proxy/serve switch. The
// zero value is Knative's defaults.
type Config struct {
	// ProgressDeadline is how long the replicas the autoscaler asked for may
	// take to become ready, counted from the last progress (a new replica
	// ready). Past it ResourcesAvailable turns False with
	// ProgressDeadlineExceeded. Zero means DefaultProgressDeadline (600 s);
	// it must not be negative. Knative: serving.knative.dev/progress-deadline.
	ProgressDeadline time.Duration
	// MinScale is the revision's lower bound on replicas; it raises the
	// number of ready replicas Active=True needs. Zero means no bound; it
	// must not be negative. It is ignored while the revision is unrouted, as
	// in Knative. Knative: autoscaling.knative.dev/min-scale.
	MinScale int32
	// InitialScale is the number of ready replicas the revision must reach
	// once before it counts as initialized (ResourcesAvailable and
	// ContainerHealthy True). Zero means 1 (Knative's initial-scale
	// default); it must not be negative. Knative:
	// autoscaling.knative.dev/initial-scale.
	InitialScale int32
	// ZeroInitialScale makes the revision initialized without any replica
	// (Knative's initial-scale: 0, allowed by allow-zero-initial-scale). It
	// cannot be combined with a non-zero InitialScale.
	ZeroInitialScale bool
	// Activators sizes the activator subset in front of the revision.
	Activators ActivatorSizing
}

// Validate reports every problem with c, joined, each naming the field, the
// value and the allowed range. The zero Config is valid.
func (c Config) Validate() error {
	var errs []error
	if c.ProgressDeadline < 0 {
		errs = append(errs, fmt.Errorf("revision: Config.ProgressDeadline = %v, must be >= 0 (0 means %v)",
			c.ProgressDeadline, DefaultProgressDeadline))
	}
	if c.MinScale < 0 {
		errs = append(errs, fmt.Errorf("revision: Config.MinScale = %d, must be >= 0", c.MinScale))
	}
	if c.InitialScale < 0 {
		errs = append(errs, fmt.Errorf("revision: Config.InitialScale = %d, must be >= 0 (0 means 1)", c.InitialScale))
	}
	if c.ZeroInitialScale && c.InitialScale > 0 {
		errs = append(errs, fmt.Errorf("revision: Config.InitialScale = %d with Config.ZeroInitialScale set, must be 0 when ZeroInitialScale is true",
			c.InitialScale))
	}
	if err := c.Activators.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ActivationTimeout is how long a revision may stay activating before a
// decision to scale it to zero is taken as a failure to activate (Active
// False, TimedOut): ProgressDeadline plus 30 s, as in Knative.
func (c Config) ActivationTimeout() time.Duration {
	return c.progressDeadline() + activationTimeoutBuffer
}

func (c Config) progressDeadline() time.Duration {
	if c.ProgressDeadline == 0 {
		return DefaultProgressDeadline
	}
	return c.ProgressDeadline
}

func (c Config) initialScale() int32 {
	switch {
	case c.ZeroInitialScale:
		return 0
	case c.InitialScale == 0:
		return 1
	}
	return c.InitialScale
}
