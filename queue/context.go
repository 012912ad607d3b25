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

// newAppRequest returns r carrying a requestContext under r's context;
// wake is the ServeHTTP goroutine's, told when the context needs watching.
func newAppRequest(r *http.Request, wake wakeChan) (*http.Request, *requestContext) {
	a := &appRequest{ctx: requestContext{parent: r.Context(), wake: wake}}
	// WithContext is inlined and the copy it makes does not escape: the
	// request is copied straight into a.
	a.req = *r.WithContext(&a.ctx)
	return &a.req, &a.ctx
}

// requestContext is the application's context of a timed request: its
// parent's values and deadline, canceled when the parent is, when a timeout
// fires (context.Cause gives the *TimeoutError), and when ServeHTTP returns.
//
// The context package's cancelable contexts cost two allocations of their
// own (the context and its cancel function); this one lives in the
// appRequest. Nothing watches the parent until somebody asks for Done: then
// the request's ServeHTTP goroutine, which waits anyway, adds the parent's
// Done to what it waits on (see serveTimed). Err looks at the parent itself.
// Contexts derived from it are canceled through AfterFunc, which the
// context package uses instead of starting a goroutine per derived context.
type requestContext struct {
	parent context.Context

	mu    sync.Mutex
	done  chan struct{}   // made by the first Done; closed when canceled
	err   error           // set once, when canceled
	cause context.Context // canceled with the timeout, for context.Cause; nil otherwise
	wake  wakeChan        // until canceled: ServeHTTP's, told when done is made
	after []func()        // run once, when canceled; stopped ones are nil
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
	if c.done == nil {
		if c.err != nil {
			c.done = closedChan
		} else {
			c.done = make(chan struct{})
			c.wake.signal()
		}
	}
	return c.done
}

func (c *requestContext) Err() error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if perr := c.parent.Err(); perr != nil {
		// Canceled now rather than when ServeHTTP notices, so that Err
		// and Done agree.
		c.cancel(perr, nil)
		return c.Err()
	}
	return nil
}

// Value answers the context package's own key, which context.Cause asks
// for, with a context canceled with the timeout, when one fired; every
// other key, and that one otherwise, goes to the parent.
func (c *requestContext) Value(key any) any {
	c.mu.Lock()
	cause := c.cause
	c.mu.Unlock()
	if cause != nil {
		if v := cause.Value(key); v != nil {
			return v
		}
	}
	return c.parent.Value(key)
}

// AfterFunc runs f once the context is canceled, on the goroutine that
// cancels it: the context package uses it to cancel a derived context.
func (c *requestContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	c.after = append(c.after, f)
	i := len(c.after) - 1
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if i >= len(c.after) || c.after[i] == nil {
			return false
		}
		c.after[i] = nil
		return true
	}
}

// parentDone returns the parent's Done when somebody waits on this
// context's and it is not canceled yet; nil otherwise.
func (c *requestContext) parentDone() <-chan struct{} {
	c.mu.Lock()
	watch := c.done != nil && c.err == nil
	c.mu.Unlock()
	if !watch {
		return nil
	}
	return c.parent.Done()
}

// cancel cancels the context with err (context.Canceled, or the parent's),
// and with timeout as its cause if not nil. Only the first call counts.
func (c *requestContext) cancel(err error, timeout *TimeoutError) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if timeout != nil {
		cause, cancel := context.WithCancelCause(context.Background())
		cancel(timeout)
		c.cause = cause
	}
	c.wake = nil
	if c.done == nil {
		c.done = closedChan
	} else {
		close(c.done)
	}
	after := c.after
	c.after = nil
	c.mu.Unlock()
	for _, f := range after {
		if f != nil {
			f()
		}
	}
}

// cancelFromParent cancels the context because its parent is done.
func (c *requestContext) cancelFromParent() {
	if err := c.parent.Err(); err != nil {
		c.cancel(err, nil)
	}
}

func (c *requestContext) String() string { return "queue.requestContext" }
