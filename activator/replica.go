package activator

import (
	"context"
	"math"
	"net/http/httputil"
	"sync/atomic"
)

// A replica's state word holds the requests this activator has in flight to
// it and, in a high bit, whether it was removed. Keeping both in one word
// lets a reservation check the limit and the removal in one
// compare-and-swap: once the bit is set no new request can reserve the
// replica, while the ones in flight release normally.
const (
	removedBit = int64(1) << 62
	countMask  = removedBit - 1

	// unlimitedSlots is the per-replica limit when container concurrency is
	// unlimited; in-flight counts stay far below it.
	unlimitedSlots = int64(math.MaxInt32)
)

// replica is one address of a revision, shared by every replicaSet that
// lists it, so its in-flight count survives updates.
type replica struct {
	addr string
	// rev is the revision whose waiters a release serves. It changes only
	// when a revision removed while this replica still had requests in
	// flight is created again under the same key, and the new revision
	// adopts the replica (see Throttler.SetRevision).
	rev   atomic.Pointer[revision]
	state atomic.Int64 // in flight | removedBit

	// proxy forwards to addr; set at creation by a Handler, nil for a bare
	// Throttler.
	proxy *httputil.ReverseProxy

	// Guarded by rev.mu.
	ready       bool               // probed (or probing is off)
	cancelProbe context.CancelFunc // stops the readiness probe loop, if any
}

// reserve takes one of the replica's limit slots if one is free and the
// replica was not removed. It does not allocate.
func (r *replica) reserve(limit int64) bool {
	for {
		s := r.state.Load()
		if s&removedBit != 0 || s&countMask >= limit {
			return false
		}
		if r.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// inFlight returns the requests this activator has in flight to r.
func (r *replica) inFlight() int64 { return r.state.Load() & countMask }

// release gives back a slot taken by reserve and, if requests wait for the
// revision, hands capacity to the oldest.
func (r *replica) release() {
	if r.state.Add(-1)&countMask == countMask {
		panic("activator: Lease.Release called more than once or on a zero Lease")
	}
	// The decrement above and the increment of waiting under rev.mu are
	// both sequentially consistent: either this load sees the waiter, or
	// the waiter's dispatch after queueing sees the free slot. A release
	// that still loads the revision that lost r to adoption decremented
	// before the adopting revision could list r and dispatch, which then
	// sees the free slot.
	if rv := r.rev.Load(); rv.waiters.Len() > 0 {
		rv.kick()
	}
}

// markRemoved stops new reservations; requests in flight finish.
func (r *replica) markRemoved() {
	for {
		s := r.state.Load()
		if s&removedBit != 0 || r.state.CompareAndSwap(s, s|removedBit) {
			return
		}
	}
}

// revive lets a removed replica that is listed again take requests.
func (r *replica) revive() {
	for {
		s := r.state.Load()
		if s&removedBit == 0 || r.state.CompareAndSwap(s, s&^removedBit) {
			return
		}
	}
}

// replicaSet is an immutable snapshot of a revision's settings and of the
// replicas assigned to this activator. The request path reads it with one
// atomic load; updates build a new one.
type replicaSet struct {
	cfg      RevisionConfig // with defaults filled in
	replicas []*replica     // assigned, ready, sorted by address
	limit    int64          // per-replica in-flight limit
	capacity int            // cc × len(replicas), Unlimited, or 0
	ready    int            // ready replicas before subsetting
}

func newReplicaSet(cfg RevisionConfig, replicas []*replica, ready int) *replicaSet {
	s := &replicaSet{cfg: cfg, replicas: replicas, limit: unlimitedSlots, ready: ready}
	if cc := cfg.ContainerConcurrency; cc > 0 {
		s.limit = int64(cc)
		s.capacity = int(min(int64(cc)*int64(len(replicas)), Unlimited))
	} else if len(replicas) > 0 {
		s.capacity = Unlimited
	}
	return s
}

// assign returns the share of ready (sorted by address) that this activator
// uses: every replica when concurrency is unlimited, as Knative does.
func assign(ready []*replica, cfg RevisionConfig) []*replica {
	if cfg.ContainerConcurrency == 0 {
		return ready
	}
	lo, hi, extra := cfg.Subset.Span(len(ready))
	out := make([]*replica, 0, hi-lo+1)
	out = append(out, ready[lo:hi]...)
	if extra >= 0 {
		out = append(out, ready[extra])
	}
	return out
}
