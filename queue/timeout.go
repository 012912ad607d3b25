package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// ErrRequestTimeout is wrapped by every *TimeoutError: a request ran past
// one of the handler's timeouts.
var ErrRequestTimeout = errors.New("queue: request timeout")

// TimeoutKind names which of the handler's request timeouts fired.
type TimeoutKind int

const (
	// TotalTimeoutKind is Config.TotalTimeout: the whole request took too
	// long.
	TotalTimeoutKind TimeoutKind = iota + 1
	// ResponseStartTimeoutKind is Config.ResponseStartTimeout: the
	// application did not start its response in time.
	ResponseStartTimeoutKind
	// IdleTimeoutKind is Config.IdleTimeout: the application wrote nothing
	// for too long.
	IdleTimeoutKind
)

func (k TimeoutKind) String() string {
	switch k {
	case TotalTimeoutKind:
		return "total timeout"
	case ResponseStartTimeoutKind:
		return "response-start timeout"
	case IdleTimeoutKind:
		return "idle timeout"
	}
	return fmt.Sprintf("TimeoutKind(%d)", int(k))
}

// TimeoutError says which timeout fired. Its text is the body of the 504
// (or what is appended to a response already started), and it is the cause
// of the request context's cancellation (context.Cause).
type TimeoutError struct {
	Kind    TimeoutKind
	Timeout time.Duration // the configured limit
}

func (e *TimeoutError) Error() string {
	switch e.Kind {
	case ResponseStartTimeoutKind:
		return fmt.Sprintf("queue: request timeout: no response started within the response-start timeout (%v)", e.Timeout)
	case IdleTimeoutKind:
		return fmt.Sprintf("queue: request timeout: nothing written for the idle timeout (%v)", e.Timeout)
	default:
		return fmt.Sprintf("queue: request timeout: the request ran longer than the total timeout (%v)", e.Timeout)
	}
}

func (e *TimeoutError) Unwrap() error { return ErrRequestTimeout }

// serveTimed runs the request on its own goroutine and watches the
// timeouts from this one. When a timeout fires first it answers the client,
// cancels the request's context and returns; the application's goroutine
// keeps its slot (and the exchange) until it returns, and its writes fail
// with http.ErrHandlerTimeout.
//
// A goroutine per request cannot be avoided: only returning from ServeHTTP
// ends the response for net/http (and for HTTP/2), and an application that
// ignores its context holds the goroutine it runs on. The timeouts are the
// Handler's deadline heap's (see deadlines): the request is in it, to be
// looked at by its first deadline, until this goroutine takes it out, and
// only the heap, the application's return and the request's context wake
// this goroutine. Every wake-up re-reads the state under mu, so a timeout
// fires neither early nor late. What a request allocates is its appRequest:
// the request copy and its context, together.
func (h *Handler) serveTimed(w http.ResponseWriter, r *http.Request) {
	ex := h.getExchange(w, true)
	// The application sees what outer middleware already set.
	copyHeader(ex.header, w.Header())
	now := h.now()
	ex.start, ex.lastWrite = now, now
	ex.live.Store(1)
	ex.refs.Store(2) // this goroutine and the application's

	req, ctx := newAppRequest(r, ex.wake)
	ex.req = req
	h.deadlines.set(ex, now, now.Add(h.firstWait))
	go ex.run()

	var parentDone <-chan struct{}
	for {
		select {
		case <-ex.wake:
		case <-parentDone:
			// The client is gone: the application's context says so.
			parentDone = nil
			ctx.cancelFromParent()
			continue
		}
		ex.mu.Lock()
		if ex.returned {
			p := ex.panicVal
			ex.mu.Unlock()
			h.deadlines.remove(ex)
			ctx.cancel(context.Canceled, nil)
			ex.unref()
			if p != nil {
				panic(p)
			}
			return
		}
		now := h.now()
		err, wait := ex.checkLocked(now)
		if err != nil {
			ex.timeoutLocked(err, now)
		}
		ex.mu.Unlock()
		if err != nil {
			h.deadlines.remove(ex)
			if h.logger.Enabled(r.Context(), slog.LevelDebug) {
				h.logger.Debug("queue: request timed out", "error", err, "method", r.Method, "path", r.URL.Path)
			}
			ctx.cancel(context.Canceled, err)
			ex.unref()
			return
		}
		if wait > 0 {
			// Early: a write moved the idle deadline, or the context
			// asked to be watched.
			h.deadlines.set(ex, now, now.Add(wait))
		} else {
			// Hijacked: no timeout applies any more; wait for the
			// application to return.
			h.deadlines.remove(ex)
		}
		if parentDone == nil {
			parentDone = ctx.parentDone()
		}
	}
}

// runTimed is the application's goroutine of a timed request.
func (ex *exchange) runTimed() {
	h, r := ex.h, ex.req
	defer func() {
		p := recover()
		ex.mu.Lock()
		// From here on the response is complete: a timeout that ServeHTTP
		// finds after seeing returned must not be appended to it.
		ex.returned = true
		gone := ex.timedOut
		if !gone {
			if !ex.committed {
				// The application wrote nothing: the server sends 200 with
				// its headers.
				ex.commitLocked()
			} else {
				// Trailers: the application sets them in its own map
				// after the response started. The server reads them once
				// ServeHTTP returns, after it has seen returned.
				copyHeader(ex.w.Header(), ex.header)
			}
			ex.panicVal = p
		}
		ex.mu.Unlock()
		if p != nil && gone {
			// ServeHTTP has returned; nobody can re-panic it.
			h.logger.Error("queue: application panicked after its request timed out", "panic", p, "method", r.Method, "path", r.URL.Path)
		}
		if !gone {
			// Signalled before this goroutine lets go of the exchange,
			// so that no signal of this request reaches the next one.
			ex.wake.signal()
		}
		ex.unref()
	}()
	h.serve(ex, r, ex.start)
}

// checkLocked returns the timeout that has passed at now, if any, and
// otherwise how long until the next one could. A zero wait with no error
// means that no timeout applies any more: the connection was hijacked, or
// the application has returned. ex.mu must be held.
func (ex *exchange) checkLocked(now time.Time) (*TimeoutError, time.Duration) {
	if ex.returned || ex.hijacked.Load() {
		return nil, 0
	}
	h := ex.h
	wait := time.Duration(1<<63 - 1)
	check := func(limit time.Duration, since time.Time) bool {
		left := limit - now.Sub(since)
		if left <= 0 {
			return true
		}
		wait = min(wait, left)
		return false
	}
	// Most specific first, when several pass at once.
	if h.responseStart > 0 && !ex.committed && check(h.responseStart, ex.start) {
		return &TimeoutError{Kind: ResponseStartTimeoutKind, Timeout: h.responseStart}, 0
	}
	if h.idle > 0 && check(h.idle, ex.lastWrite) {
		return &TimeoutError{Kind: IdleTimeoutKind, Timeout: h.idle}, 0
	}
	if h.total > 0 && check(h.total, ex.start) {
		return &TimeoutError{Kind: TotalTimeoutKind, Timeout: h.total}, 0
	}
	return nil, wait
}

// timeoutLocked answers the client for a timeout: 504 and the message if
// the response has not started, else the message appended to the body (the
// status already went out), as Knative does. ex.mu must be held.
func (ex *exchange) timeoutLocked(err *TimeoutError, now time.Time) {
	ex.timedOut = true
	ex.outcome, ex.answered = timeoutOutcome(err.Kind), now
	msg := err.Error() + "\n"
	if !ex.committed {
		ex.committed = true
		hdr := ex.w.Header()
		clear(hdr)
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		hdr.Set("X-Content-Type-Options", "nosniff")
		ex.w.WriteHeader(http.StatusGatewayTimeout)
		ex.status = http.StatusGatewayTimeout
	}
	_, _ = io.WriteString(ex.w, msg)
}
