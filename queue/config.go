package queue

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/benbjohnson/clock"
)

// Defaults that a zero Config field stands for.
const (
	// DefaultQuietPeriod is how long a draining handler keeps serving after
	// the last request before it stops waiting for more: Knative's
	// network.DefaultDrainTimeout.
	DefaultQuietPeriod = 30 * time.Second
	// DefaultHijackedDrainTimeout caps how long a drain waits for hijacked
	// connections (websockets) to close: Knative's queue-proxy waits 60 s.
	DefaultHijackedDrainTimeout = 60 * time.Second
	// queueDepthPerSlot is Knative's queue depth factor: 10 × container
	// concurrency.
	queueDepthPerSlot = 10
	// maxQuietFactor sets the default cap on the quiet period.
	maxQuietFactor = 10
)

// Config configures a Handler. The zero value is a working handler with no
// concurrency limit, no timeouts and Knative's drain periods.
type Config struct {
	// ContainerConcurrency is how many requests the application may handle
	// at once. Zero means no limit and no breaker, as in Knative. Range
	// [0, MaxCapacity].
	ContainerConcurrency int
	// QueueDepth is how many requests may wait for a slot when all
	// ContainerConcurrency slots are busy. Zero means 10 ×
	// ContainerConcurrency (Knative's choice), capped at MaxCapacity.
	// Ignored without a limit. Range [0, MaxCapacity].
	QueueDepth int
	// MaxWait bounds how long a request may wait in the queue; past it the
	// request gets 503. Zero means no bound but the request's own context
	// and TotalTimeout (Knative's behaviour). Must be >= 0.
	MaxWait time.Duration

	// TotalTimeout bounds a request's whole time in the handler, queueing
	// included (Knative's revision timeout). When it fires before the
	// response has started the client gets 504; after, the timeout message
	// is appended to the body. Zero means no limit. Must be >= 0.
	TotalTimeout time.Duration
	// ResponseStartTimeout bounds the time until the application writes
	// the response header or first byte; past it the client gets 504. Zero
	// means no limit. Must be >= 0.
	ResponseStartTimeout time.Duration
	// IdleTimeout bounds the time between two writes of the response (and
	// until the first); past it the client gets 504, or the message appended
	// if the response has started. Zero means no limit. Must be >= 0.
	//
	// A timeout answers the client at once and cancels the application's
	// context (context.Cause gives the *TimeoutError); the request keeps
	// its slot until the application returns (see Handler).
	IdleTimeout time.Duration

	// QuietPeriod is how long Drain keeps serving after the last request
	// (or after Drain was called) before it stops waiting for new
	// requests. Zero means DefaultQuietPeriod (30 s). Must be >= 0.
	QuietPeriod time.Duration
	// MaxQuietPeriod caps the quiet phase of Drain, which each new request
	// otherwise extends, so that a replica under steady traffic still
	// finishes draining. Zero means 10 × QuietPeriod (5 min by default).
	// Range [QuietPeriod, ∞).
	MaxQuietPeriod time.Duration
	// HijackedDrainTimeout caps how long Drain waits for hijacked
	// connections (websockets, raw upgrades) once the quiet period is
	// over; those still open then are closed. Zero means
	// DefaultHijackedDrainTimeout (60 s). Must be >= 0.
	HijackedDrainTimeout time.Duration

	// Readiness checks that the application can serve. Nil means it always
	// can (an in-process application is ready when it is built); NewSidecar
	// sets a probe of the application's port.
	Readiness Checker
	// Clock drives timeouts, drain periods and the stats recorder's times.
	// Nil means the real clock. Give the Reporter the same clock.
	Clock clock.Clock
	// Logger receives rejected and timed-out requests at debug level and
	// drain progress at info level. Nil means silent.
	Logger *slog.Logger
	// Observer, if not nil, is called once for every request the Handler
	// accepted, when it has ended (see Observation), on the goroutine that
	// ends it — the application's, or the one closing a hijacked
	// connection — outside any lock. It must be safe for simultaneous use
	// and should be quick: the request's slot is already free, but its
	// goroutine waits. Nil costs nothing; set, a request costs the call.
	Observer func(Observation)
}

// Validate reports every out-of-range field, naming the field, its value and
// the allowed range.
func (c Config) Validate() error {
	var errs []error
	if c.ContainerConcurrency < 0 || c.ContainerConcurrency > MaxCapacity {
		errs = append(errs, fmt.Errorf("queue: Config.ContainerConcurrency = %d, must be in [0, %d] (0 means no limit)", c.ContainerConcurrency, MaxCapacity))
	}
	if c.QueueDepth < 0 || c.QueueDepth > MaxCapacity {
		errs = append(errs, fmt.Errorf("queue: Config.QueueDepth = %d, must be in [0, %d] (0 means 10 × ContainerConcurrency)", c.QueueDepth, MaxCapacity))
	}
	nonNegative := func(name string, v time.Duration, zeroMeans string) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("queue: Config.%s = %v, must be >= 0 (0 means %s)", name, v, zeroMeans))
		}
	}
	nonNegative("MaxWait", c.MaxWait, "no limit")
	nonNegative("TotalTimeout", c.TotalTimeout, "no limit")
	nonNegative("ResponseStartTimeout", c.ResponseStartTimeout, "no limit")
	nonNegative("IdleTimeout", c.IdleTimeout, "no limit")
	nonNegative("QuietPeriod", c.QuietPeriod, DefaultQuietPeriod.String())
	nonNegative("HijackedDrainTimeout", c.HijackedDrainTimeout, DefaultHijackedDrainTimeout.String())
	if c.MaxQuietPeriod < 0 {
		errs = append(errs, fmt.Errorf("queue: Config.MaxQuietPeriod = %v, must be >= 0 (0 means 10 × QuietPeriod)", c.MaxQuietPeriod))
	} else if q := c.quietPeriod(); c.MaxQuietPeriod > 0 && c.QuietPeriod >= 0 && c.MaxQuietPeriod < q {
		errs = append(errs, fmt.Errorf("queue: Config.MaxQuietPeriod = %v, must be >= QuietPeriod (%v) or 0", c.MaxQuietPeriod, q))
	}
	return errors.Join(errs...)
}

func (c Config) quietPeriod() time.Duration {
	if c.QuietPeriod == 0 {
		return DefaultQuietPeriod
	}
	return c.QuietPeriod
}

func (c Config) maxQuietPeriod() time.Duration {
	if c.MaxQuietPeriod == 0 {
		q := c.quietPeriod()
		if q > math.MaxInt64/maxQuietFactor {
			return math.MaxInt64 // 10 × would overflow into the past
		}
		return maxQuietFactor * q
	}
	return c.MaxQuietPeriod
}

func (c Config) hijackedDrainTimeout() time.Duration {
	if c.HijackedDrainTimeout == 0 {
		return DefaultHijackedDrainTimeout
	}
	return c.HijackedDrainTimeout
}

func (c Config) queueDepth() int {
	if c.QueueDepth != 0 {
		return c.QueueDepth
	}
	if c.ContainerConcurrency > MaxCapacity/queueDepthPerSlot {
		return MaxCapacity // 10 × would overflow a 32-bit int
	}
	return queueDepthPerSlot * c.ContainerConcurrency
}

// timed reports whether any request timeout is on, which moves requests to
// the timed path.
func (c Config) timed() bool {
	return c.TotalTimeout > 0 || c.ResponseStartTimeout > 0 || c.IdleTimeout > 0
}
