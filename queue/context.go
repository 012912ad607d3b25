package queue

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// appRequest is all that a timed request allocates: the application's
// copy of the request and the context it carries, in one allocation.
// Neither is pooled: the application may keep both after it returns.
type appRequest struct {
	req http.Request
	ctx requestContext
}

// newAppRequest returns r carrying a requestContext under r's context.
func newAppRequest(r *http.Request) (*http.Request, *requestContext) {
	a := &appRequest{ctx: requestContext{parent: r.Context()}}
	// WithContext is inlined and the copy it makes does not escape: the
	// request is copied straight into a.
	a.req = *r.WithContext(&a.ctx)
	return &a.req, &a.ctx
}

// requestContext is the application's context of a timed request: its
// parent's values and deadline, canceled when the parent is, when a timeout
// fires (context.Cause gives the *TimeoutError), and when ServeHTTP returns.
//
// The context package's cancelable context costs two allocations (the
// context and its cancel function), three with its done channel, and more
// for its parent's map of children. Most applications that answer at once
// never wait on their context, so this one, which lives in the appRequest,
// makes that context only when somebody first asks for Done: from then on
// it is the inner context, a child of the parent (canceled with it, by the
// context package, without a goroutine), and everything is asked of it.
// Contexts derived from this one find the inner context through Value, as
// the context package looks for its own, and hang from it directly.
// Before that, Err looks at the parent itself, and a cancellation costs
// nothing but the error it records, unless it is a timeout's: then an
// inner context is made to carry the cause.
type requestContext struct {
	parent context.Context

	mu          sync.Mutex
	inner       context.Context         // nil until Done, or a timeout
	cancelInner context.CancelCauseFunc // inner's
	err         error                   // canceled while inner was nil
}

// closedChan is the Done of a context canceled before anybody asked.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (c *requestContext) Deadline() (time.Time, bool) { return c.parent.Deadline() }

func (c *requestContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		if c.err != nil {
			return closedChan
		}
		// Under mu: the parent is not this context, and the context
		// package calls nothing of ours while it registers with it.
		c.inner, c.cancelInner = context.WithCancelCause(c.parent)
	}
	return c.inner.Done()
}

func (c *requestContext) Err() error {
	c.mu.Lock()
	inner, err := c.inner, c.err
	c.mu.Unlock()
	switch {
	case inner != nil:
		return inner.Err()
	case err != nil:
		return err
	}
	// Done, when asked, makes an inner context that the parent's
	// cancellation has already reached: they agree.
	return c.parent.Err()
}

// Value answers from the inner context once there is one (the context
// package's own key, which context.Cause and derived contexts ask for,
// gives the inner context itself), from the parent before.
func (c *requestContext) Value(key any) any {
	c.mu.Lock()
	inner := c.inner
	c.mu.Unlock()
	if inner != nil {
		return inner.Value(key)
	}
	return c.parent.Value(key)
}

// cancel cancels the context, with timeout as its cause if not nil. Only
// the first call counts, and a parent's cancellation that reached the inner
// context first stays. What it runs (the context package's cancellation of
// derived contexts) neither blocks nor calls the application.
func (c *requestContext) cancel(timeout *TimeoutError) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	if c.inner == nil {
		if timeout == nil {
			c.mu.Unlock()
			return
		}
		// The cause needs a context to carry it; the parent's values
		// stay visible through it, its cancellation no longer matters.
		c.inner, c.cancelInner = context.WithCancelCause(context.WithoutCancel(c.parent))
	}
	cancel := c.cancelInner
	c.mu.Unlock()
	var cause error
	if timeout != nil {
		cause = timeout
	}
	cancel(cause)
}

func (c *requestContext) String() string { return "queue.requestContext" }
