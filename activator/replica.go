package activator

import (
	"context"
	"sync/atomic"

	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/proxy"
)

// unlimitedSlots is the per-replica limit when container concurrency is
// unlimited; in-flight counts stay far below it.
const unlimitedSlots = balancer.Unlimited

// replica is one address of a revision, shared by every replicaSet that
// lists it, so its in-flight count survives updates.
type replica struct {
	addr string
	// rev is the revision whose waiters a release serves. It changes only
	// when a revision removed while this replica still had requests in
	// flight is created again under the same key, and the new revision
	// adopts the replica (see Throttler.SetRevision).
	rev  atomic.Pointer[revision]
	slot balancer.Slot // in flight from this activator; closed once unlisted

	// proxy forwards to addr; set at creation by a Handler, nil for a bare
	// Throttler.
	proxy *proxy.Forwarder

	// Guarded by rev.mu.
	ready       bool               // probed (or probing is off)
	cancelProbe context.CancelFunc // stops the readiness probe loop, if any
}

// inFlight returns the requests this activator has in flight to r.
func (r *replica) inFlight() int64 { return r.slot.InFlight() }

// release gives back a slot taken by reserve and, if requests wait for the
// revision, hands capacity to the oldest.
func (r *replica) release() {
	if !r.slot.Release() {
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
func (r *replica) markRemoved() { r.slot.Close() }

// revive lets a removed replica that is listed again take requests.
func (r *replica) revive() { r.slot.Open() }

// replicaSet is an immutable snapshot of a revision's settings and of the
// replicas assigned to this activator. The request path reads it with one
// atomic load; updates build a new one.
type replicaSet struct {
	cfg      RevisionConfig   // with defaults filled in
	replicas []*replica       // assigned, ready, sorted by address
	slots    []*balancer.Slot // replicas[i].slot, for balancer.Pick
	limit    int64            // per-replica in-flight limit
	capacity int              // cc × len(replicas), Unlimited, or 0
	ready    int              // ready replicas before subsetting
}

func newReplicaSet(cfg RevisionConfig, replicas []*replica, ready int) *replicaSet {
	s := &replicaSet{cfg: cfg, replicas: replicas, limit: unlimitedSlots, ready: ready}
	s.slots = make([]*balancer.Slot, len(replicas))
	for i, r := range replicas {
		s.slots[i] = &r.slot
	}
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
