package activator

import (
	"fmt"
	"time"
)

// ColdStart reports one request that had to wait for capacity, or was
// turned away because too many already waited. Cold tells a true cold
// start (no replica of the revision was ready for this activator when the
// request arrived) from a wait behind busy replicas. The Handler passes it
// to Options.OnColdStart on the request's goroutine, outside any lock, as
// soon as the wait is over (before the request is forwarded).
type ColdStart struct {
	Revision string
	Waited   time.Duration
	Cold     bool
	Outcome  Outcome
}

// Outcome is how a wait for capacity ended, or (in an Observation) why
// the activator answered a request itself.
type Outcome int

const (
	// OutcomeServed: the request got a replica and was forwarded.
	OutcomeServed Outcome = iota
	// OutcomeQueueFull: MaxWaiting requests already waited; 503 at once.
	OutcomeQueueFull
	// OutcomeMaxWait: the request waited MaxWait; 503.
	OutcomeMaxWait
	// OutcomeTimeout: the request's timeout passed while it waited; 504.
	OutcomeTimeout
	// OutcomeCanceled: the client went away while it waited.
	OutcomeCanceled
	// OutcomeRemoved: the revision was removed while it waited; 503.
	OutcomeRemoved
	// OutcomeUnknownRevision: the request named no revision this activator
	// serves; 404. Only in an Observation.
	OutcomeUnknownRevision
	// OutcomeShuttingDown: the Handler was shutting down; 503. Only in an
	// Observation.
	OutcomeShuttingDown
)

var outcomeNames = [...]string{"served", "queue-full", "max-wait", "timeout", "canceled", "removed", "unknown-revision", "shutting-down"}

// String returns the outcome's name, for logs and metric labels.
func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}
