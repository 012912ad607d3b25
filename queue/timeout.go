package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
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

// serveTimed runs a request with timeouts. The application runs on this
// goroutine, as untimed; the timeouts are the Handler's deadline heap's
// (see deadlines), which holds the request from its arrival until the
// application returns. When a timeout passes, the heap's timer goroutine
// answers the client itself (see expire): the 504, complete and flushed, or
// the message appended to a response already started; it cancels the
// application's context with the *TimeoutError as cause, and from then on
// the application's writes fail with http.ErrHandlerTimeout.
//
// ServeHTTP returns when the application does: net/http ends a response
// only then. A proxying application, or any that listens to its context,
// returns at once. One that ignores its context keeps its connection, its
// slot and this goroutine until it returns; its client already has the
// whole 504 (with Content-Length, and on HTTP/1 Connection: close, so that
// it does not wait for the end of the connection nor send another request
// on it), except that an HTTP/2 stream ends only when ServeHTTP returns.
//
// What a request allocates is its appRequest, the request copy and its
// context together, from the Handler's current slab of 16. A panic of the application passes through, as untimed,
// unless a timeout has answered the client: then it is logged (but for
// http.ErrAbortHandler, net/http's way to abort, which a proxy uses when
// its upstream request is canceled) and the response ends as answered.
func (h *Handler) serveTimed(w http.ResponseWriter, r *http.Request) {
	ex := h.getExchange(w, true)
	// The application sees what outer middleware already set.
	copyHeader(ex.header, w.Header())
	now := h.now()
	ex.start, ex.lastWrite = now, now
	ex.http1 = r.ProtoMajor < 2
	ex.live.Store(1)
	ex.refs.Store(1)
	req, ctx := ex.shard.newAppRequest(r)
	ex.req, ex.ctx = req, ctx
	ex.shard.deadlines.set(ex, now, now.Add(h.firstWait))

	returned := false
	defer func() {
		if returned {
			return
		}
		// The application panicked (or called runtime.Goexit, which
		// recover does not stop): ex.end has not run.
		if ex.end() {
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				h.logger.Error("queue: application panicked after its request timed out", "panic", p, "method", r.Method, "path", r.URL.Path)
			}
		}
	}()
	h.serve(ex, req, now)
	returned = true
	ex.end()
}

// end ends the timed exchange once the application has returned (or
// panicked), on the ServeHTTP goroutine, and reports whether a timeout
// answered the client. From here on the response is net/http's to finish:
// no timeout applies to it any more, so none is appended to it.
func (ex *exchange) end() (timedOut bool) {
	ctx := ex.ctx
	ex.mu.Lock()
	ex.returned = true
	timedOut = ex.timedOut
	if !timedOut {
		if !ex.committed {
			// The application wrote nothing: the server sends 200 with
			// its headers.
			ex.commitLocked()
		} else {
			// Trailers: the application sets them in its own map after
			// the response started. The server reads them once
			// ServeHTTP returns.
			copyHeader(ex.w.Header(), ex.header)
		}
	}
	ex.mu.Unlock()
	ex.shard.deadlines.remove(ex)
	ctx.cancel(nil)
	ex.unref()
	return timedOut
}

// expire looks at the request for the deadline heap, which took it out of
// the heap and holds a reference to it for us; it runs on the heap's timer
// goroutine. A timeout that has passed answers the client and cancels the
// application's context; a request not yet due (a write moved its idle
// deadline) goes back into the heap for its next deadline; one that has
// returned or hijacked its connection is left out.
func (ex *exchange) expire() {
	h := ex.h
	ex.mu.Lock()
	now := h.now()
	err, wait := ex.checkLocked(now)
	switch {
	case err != nil:
		// The context first: the application stops waiting on its
		// upstream while the client is being answered.
		ex.ctx.cancel(err)
		ex.timeoutLocked(err, now)
	case wait > 0:
		// Under mu, so that it cannot go back in once ServeHTTP has seen
		// returned and taken it out.
		ex.shard.deadlines.set(ex, now, now.Add(wait))
	}
	ex.mu.Unlock()
	if err != nil && h.logger.Enabled(context.Background(), slog.LevelDebug) {
		h.logger.Debug("queue: request timed out", "error", err, "method", ex.req.Method, "path", ex.req.URL.Path)
	}
	ex.unref()
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

// timeoutLocked answers the client for a timeout: a complete 504 with the
// message if the response has not started, else the message appended to
// the body (the status already went out), as Knative does; either way
// flushed, so that the client has it now rather than when the application
// returns. It runs on the timer goroutine; ex.mu must be held.
//
// The 504 carries its Content-Length, and on HTTP/1 Connection: close: the
// connection cannot serve another request before the application returns.
// Not on HTTP/2, where the server would take Connection: close as a reason
// to shut down the whole connection, with every other stream on it.
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
		hdr.Set("Content-Length", strconv.Itoa(len(msg)))
		if ex.http1 {
			hdr.Set("Connection", "close")
		}
		ex.w.WriteHeader(http.StatusGatewayTimeout)
		ex.status = http.StatusGatewayTimeout
	}
	_, _ = io.WriteString(ex.w, msg)
	// A writer that cannot flush sends it when ServeHTTP returns.
	_ = http.NewResponseController(ex.w).Flush()
}
