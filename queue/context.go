package queue

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// appRequest is what a timed request needs of the heap: the application's
// copy of the request and the context it carries. Neither is pooled: the
// application may keep both after it returns.
type appRequest struct {
	req http.Request
	ctx requestContext
}

// appSlabSize is how many appRequests are allocated together. One
// allocation of 16 costs the allocator (and the collector's pointer
// bitmaps) far less than 16 of one; what it costs in memory is that a
// request the application keeps after it returns keeps its 15 neighbours
// (6 KB) alive too, and that each shard's current slab keeps up to 15
// finished requests (their headers, URLs, contexts, and what their bodies
// hold of their connections) until it is used up.
const appSlabSize = 16

// appSlab is a block of appRequests handed out in order, each once.
type appSlab struct {
	next atomic.Int32 // index of the next free appRequest
	a    [appSlabSize]appRequest
}

// newAppRequest returns r carrying a requestContext under r's context, in
// the next free appRequest of the shard's current slab.
func (s *timedShard) newAppRequest(r *http.Request) (*http.Request, *requestContext) {
	a := s.nextAppRequest()
	a.ctx.parent = r.Context()
	// WithContext is inlined and the copy it makes does not escape: the
	// request is copied straight into a.
	a.req = *r.WithContext(&a.ctx)
	return &a.req, &a.ctx
}

func (s *timedShard) nextAppRequest() *appRequest {
	for {
		cur := s.slab.Load()
		if cur != nil {
			if i := cur.next.Add(1) - 1; i < appSlabSize {
				return &cur.a[i]
			}
		}
		ns := new(appSlab)
		ns.next.Store(1)
		if s.slab.CompareAndSwap(cur, ns) {
			return &ns.a[0]
		}
		// Another request replaced the slab first: take from its.
	}
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

	// state has ctxCanceled once the context is canceled (the first
	// cancellation wins), and ctxInner once inner is set; inner and
	// cancelInner are written once, under mu, before ctxInner is set, and
	// read without mu after it is seen. A cancellation without a cause,
	// the common end of a request, is then one atomic operation.
	state       atomic.Uint32
	mu          sync.Mutex              // serializes the making of inner
	inner       context.Context         // nil until Done, or a timeout
	cancelInner context.CancelCauseFunc // inner's
}

// testHookInnerMade, if set, runs in Done between the making of inner and
// its publication: the window a concurrent cancel may fall in.
var testHookInnerMade func(*requestContext)

const (
	ctxCanceled = 1 << iota
	ctxInner
)

// closedChan is the Done of a context canceled before anybody asked.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (c *requestContext) Deadline() (time.Time, bool) { return c.parent.Deadline() }

func (c *requestContext) Done() <-chan struct{} {
	if c.state.Load()&ctxInner != 0 {
		return c.inner.Done()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.Load()&ctxInner == 0 {
		if c.state.Load()&ctxCanceled != 0 {
			return closedChan
		}
		// Under mu: the parent is not this context, and the context
		// package calls nothing of ours while it registers with it.
		c.inner, c.cancelInner = context.WithCancelCause(c.parent)
		if testHookInnerMade != nil {
			testHookInnerMade(c)
		}
		// Set ctxInner, then look for a cancellation: a cancel that
		// came in between did not see inner, and this one does it.
		// (Both sides store, then load: one of them sees the other.)
		if c.state.Or(ctxInner)&ctxCanceled != 0 {
			c.cancelInner(nil)
		}
	}
	return c.inner.Done()
}

func (c *requestContext) Err() error {
	st := c.state.Load()
	switch {
	case st&ctxInner != 0:
		return c.inner.Err()
	case st&ctxCanceled != 0:
		return context.Canceled
	}
	// Done, when asked, makes an inner context that the parent's
	// cancellation has already reached: they agree.
	return c.parent.Err()
}

// Value answers from the inner context once there is one (the context
// package's own key, which context.Cause and derived contexts ask for,
// gives the inner context itself), from the parent before.
func (c *requestContext) Value(key any) any {
	if c.state.Load()&ctxInner != 0 {
		return c.inner.Value(key)
	}
	return c.parent.Value(key)
}

// cancel cancels the context, with timeout as its cause if not nil. Only
// the first call counts, and a parent's cancellation that reached the inner
// context first stays. What it runs (the context package's cancellation of
// derived contexts) neither blocks nor calls the application.
func (c *requestContext) cancel(timeout *TimeoutError) {
	if timeout == nil {
		// The end of every request: one atomic operation unless the
		// application asked for Done.
		if st := c.state.Or(ctxCanceled); st&ctxCanceled == 0 && st&ctxInner != 0 {
			c.cancelInner(nil)
		}
		return
	}
	c.mu.Lock()
	st := c.state.Or(ctxCanceled)
	if st&ctxCanceled != 0 {
		c.mu.Unlock()
		return
	}
	if st&ctxInner == 0 {
		// The cause needs a context to carry it; the parent's values
		// stay visible through it, its cancellation no longer matters.
		// No Done can have made one: it does so under mu.
		c.inner, c.cancelInner = context.WithCancelCause(context.WithoutCancel(c.parent))
		c.state.Or(ctxInner)
	}
	c.mu.Unlock()
	c.cancelInner(timeout)
}

func (c *requestContext) String() string { return "queue.requestContext" }
