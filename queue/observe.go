package queue

import (
	"fmt"
	"time"
)

// Observation describes one request the Handler accepted (readiness probes
// are not requests), once it has ended. See Config.Observer.
type Observation struct {
	// Status is the response's status code: what the application wrote
	// (200 if it wrote a body without a status, or nothing at all; 101 if
	// it hijacked the connection without writing one), or the queue's own
	// answer: 503 when the queue turned it away, 504 after a timeout
	// before the response started, StatusClientClosedRequest (499) when
	// the client left while it waited for a slot. After a timeout that
	// fired once the response had started, it is the status already sent.
	Status int
	// Outcome says whether the application handled the request or why the
	// queue ended it.
	Outcome Outcome
	// Latency runs from the request's arrival to its end for the client:
	// the application's return (the connection's close if it hijacked
	// it), or the queue's own answer.
	Latency time.Duration
	// Proxied is true when an activator forwarded the request (ProxyHeader).
	Proxied bool
}

// Outcome is how a request ended in the queue.
type Outcome int

const (
	// OutcomeServed: the application handled the request (its own status,
	// 5xx included).
	OutcomeServed Outcome = iota
	// OutcomeQueueFull: QueueDepth requests already waited; 503 at once.
	OutcomeQueueFull
	// OutcomeMaxWait: the request waited Config.MaxWait for a slot; 503.
	OutcomeMaxWait
	// OutcomeDeadline: the request's own deadline passed while it waited
	// for a slot; 503.
	OutcomeDeadline
	// OutcomeCanceled: the client left while the request waited for a
	// slot; 499.
	OutcomeCanceled
	// OutcomeTotalTimeout, OutcomeResponseStartTimeout and
	// OutcomeIdleTimeout: that timeout fired while the application ran;
	// 504, or the message appended to a response already started.
	OutcomeTotalTimeout
	OutcomeResponseStartTimeout
	OutcomeIdleTimeout
	// OutcomeError: the breaker failed in an unexpected way; 500.
	OutcomeError
)

var outcomeNames = [...]string{"served", "queue-full", "max-wait", "deadline", "canceled", "total-timeout", "response-start-timeout", "idle-timeout", "error"}

// String returns the outcome's name, for logs and metric labels.
func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

func timeoutOutcome(k TimeoutKind) Outcome {
	switch k {
	case ResponseStartTimeoutKind:
		return OutcomeResponseStartTimeout
	case IdleTimeoutKind:
		return OutcomeIdleTimeout
	}
	return OutcomeTotalTimeout
}

// noteStatus records the response's status for the observer: the first
// final one (or 101) wins. Informational codes are not the response's.
func (ex *exchange) noteStatus(code int) {
	if ex.status == 0 && (code >= 200 || code == 101) {
		ex.status = code
	}
}

// setOutcome records why the queue ended the request, unless a timeout
// already did (its cancellation is what ended the wait then). Only the
// observer reads it: without one, it takes no lock.
func (ex *exchange) setOutcome(o Outcome) {
	if ex.h.observer == nil {
		return
	}
	if ex.timed {
		ex.mu.Lock()
		defer ex.mu.Unlock()
	}
	if ex.outcome == OutcomeServed {
		ex.outcome = o
	}
}

// observe reports the request that ends at now. It runs on the goroutine
// that ends the request, outside every lock but ex.mu's brief hold.
func (ex *exchange) observe(now time.Time) {
	h := ex.h
	if ex.timed {
		// A timeout may have answered on the timer goroutine.
		ex.mu.Lock()
	}
	o := Observation{Status: ex.status, Outcome: ex.outcome, Latency: now.Sub(ex.start), Proxied: ex.proxied}
	if !ex.answered.IsZero() {
		o.Latency = ex.answered.Sub(ex.start)
	}
	if ex.timed {
		ex.mu.Unlock()
	}
	if o.Status == 0 {
		o.Status = 200
		if ex.hijacked.Load() {
			o.Status = 101
		}
	}
	h.observer(o)
}
