package activator

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrUnknownRevision is returned when a request or an update names a
// revision that was never set with SetRevision (or was removed).
var ErrUnknownRevision = errors.New("activator: unknown revision")

// ErrNoRevision is returned by a Resolver that finds no revision in a
// request.
var ErrNoRevision = errors.New("activator: no revision in the request")

// ErrQueueFull is returned by Acquire at once, without waiting, when the
// revision already has RevisionConfig.MaxWaiting requests waiting for
// capacity. The Handler answers it with 503.
var ErrQueueFull = errors.New("activator: queue full")

// ErrMaxWait is wrapped in the *WaitError returned when a request waited
// RevisionConfig.MaxWait without getting a replica. The Handler answers it
// with 503.
var ErrMaxWait = errors.New("activator: waited too long for capacity")

// ErrRevisionRemoved is wrapped in the *WaitError returned to requests that
// were waiting when their revision was removed. The Handler answers it with
// 503.
var ErrRevisionRemoved = errors.New("activator: revision removed")

// ErrShuttingDown is what the Handler answers (503) to requests that arrive
// after Shutdown was called.
var ErrShuttingDown = errors.New("activator: shutting down, not accepting new requests")

// WaitError is returned by Acquire when a request gave up waiting for a
// replica. Err is ErrMaxWait, ErrRevisionRemoved, context.DeadlineExceeded
// (the request's deadline, for example the revision timeout, passed) or
// context.Canceled (the client went away).
type WaitError struct {
	Revision string        // the revision the request waited for
	Waited   time.Duration // how long it waited
	Cold     bool          // no replica was ready when it arrived
	Err      error
}

func (e *WaitError) Error() string {
	w := e.Waited.Round(time.Millisecond)
	switch {
	case errors.Is(e.Err, ErrMaxWait):
		return fmt.Sprintf("activator: revision %q: waited %v for capacity without getting a replica (max wait reached)", e.Revision, w)
	case errors.Is(e.Err, context.DeadlineExceeded):
		return fmt.Sprintf("activator request timeout: revision %q: waited %v for capacity", e.Revision, w)
	case errors.Is(e.Err, context.Canceled):
		return fmt.Sprintf("activator: revision %q: request canceled after waiting %v for capacity", e.Revision, w)
	case errors.Is(e.Err, ErrRevisionRemoved):
		return fmt.Sprintf("activator: revision %q was removed while the request waited %v for capacity", e.Revision, w)
	}
	return fmt.Sprintf("activator: revision %q: %v after waiting %v for capacity", e.Revision, e.Err, w)
}

func (e *WaitError) Unwrap() error { return e.Err }

// queueFullError is ErrQueueFull with the numbers.
type queueFullError struct {
	revision   string
	waiting    int // may exceed maxWaiting after MaxWaiting was lowered
	maxWaiting int
}

func (e *queueFullError) Error() string {
	return fmt.Sprintf("activator: queue full: revision %q already has %d requests waiting for capacity (MaxWaiting %d)",
		e.revision, e.waiting, e.maxWaiting)
}

func (e *queueFullError) Unwrap() error { return ErrQueueFull }
