package activator

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/servingkit/servingkit/balancer"
)

const (
	// DefaultMaxWaiting is how many requests may wait for a revision's
	// capacity when RevisionConfig.MaxWaiting is zero: Knative's activator
	// breaker queue depth (10,000).
	DefaultMaxWaiting = 10000

	// DefaultTimeout is a request's total time limit when
	// RevisionConfig.Timeout is zero: Knative's revision-timeout-seconds
	// default (300 s).
	DefaultTimeout = 300 * time.Second

	// NoTimeout as RevisionConfig.Timeout means a request has no time limit
	// but its own context (for long-lived streams).
	NoTimeout time.Duration = -1

	// Unlimited is the capacity reported for a revision with unlimited
	// container concurrency and at least one replica (Knative's
	// MaxBreakerCapacity).
	Unlimited = math.MaxInt32

	// MaxContainerConcurrency is the largest RevisionConfig.ContainerConcurrency.
	MaxContainerConcurrency = math.MaxInt32
)

// RevisionConfig is how the activator treats one revision. The zero value is
// Knative's default revision: unlimited concurrency, the default balancing
// policy, 10,000 waiting requests at most, no limit on the wait but the
// 300 s request timeout.
type RevisionConfig struct {
	// ContainerConcurrency is how many requests one replica may have in
	// flight from this activator, Knative's containerConcurrency. Zero means
	// unlimited. Range [0, MaxContainerConcurrency].
	ContainerConcurrency int
	// Policy chooses a replica for each request. Zero (PolicyDefault) means
	// Knative's rule: power of two choices when ContainerConcurrency is 0,
	// first available when it is 1–3, round robin above.
	Policy Policy
	// MaxWaiting is how many requests may wait for capacity at once; the
	// next one gets ErrQueueFull (503) at once. Zero means DefaultMaxWaiting.
	// Range [0, MaxContainerConcurrency].
	MaxWaiting int
	// MaxWait is the longest a request may wait for capacity before it gets
	// ErrMaxWait (503). Zero means no limit but Timeout and the client.
	// Must not be negative.
	MaxWait time.Duration
	// Timeout is a request's total time limit, waiting and forwarding
	// included, Knative's timeoutSeconds; when it passes the client gets 504
	// "activator request timeout" if nothing was written yet, else the
	// response is cut off. Zero means DefaultTimeout; NoTimeout means none.
	// Range: NoTimeout or >= 0.
	Timeout time.Duration
	// Subset is this activator's share of the revision's replicas. The zero
	// value means the throttler's default (ThrottlerOptions.Subset).
	Subset Subset
}

// Validate reports every out-of-range field, naming the field, its value and
// the allowed range.
func (c RevisionConfig) Validate() error {
	var errs []error
	if c.ContainerConcurrency < 0 || c.ContainerConcurrency > MaxContainerConcurrency {
		errs = append(errs, fmt.Errorf("activator: RevisionConfig.ContainerConcurrency = %d, must be in [0, %d] (0 means unlimited)", c.ContainerConcurrency, MaxContainerConcurrency))
	}
	if !c.Policy.Valid() {
		errs = append(errs, fmt.Errorf("activator: RevisionConfig.Policy = %d, must be one of %s", int(c.Policy), balancer.PolicyNames()))
	}
	if c.MaxWaiting < 0 || c.MaxWaiting > MaxContainerConcurrency {
		errs = append(errs, fmt.Errorf("activator: RevisionConfig.MaxWaiting = %d, must be in [0, %d] (0 means %d)", c.MaxWaiting, MaxContainerConcurrency, DefaultMaxWaiting))
	}
	if c.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("activator: RevisionConfig.MaxWait = %v, must be >= 0 (0 means no limit)", c.MaxWait))
	}
	if c.Timeout < 0 && c.Timeout != NoTimeout {
		errs = append(errs, fmt.Errorf("activator: RevisionConfig.Timeout = %v, must be >= 0 (0 means %v) or NoTimeout", c.Timeout, DefaultTimeout))
	}
	if err := c.Subset.validate("RevisionConfig.Subset"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// withDefaults fills the zero values. c must be valid.
func (c RevisionConfig) withDefaults(def Subset) RevisionConfig {
	if c.Policy == PolicyDefault {
		c.Policy = DefaultPolicy(c.ContainerConcurrency)
	}
	if c.MaxWaiting == 0 {
		c.MaxWaiting = DefaultMaxWaiting
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Subset.Count == 0 {
		c.Subset = def
	}
	return c
}
