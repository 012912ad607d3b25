package activator

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servingkit/servingkit/internal/waitlist"
)

// revision is the throttler's state for one revision: its replicas, the
// requests waiting for one, and its load statistics.
//
// The request path reads set (one atomic load) and reserves a slot on a
// replica with a compare-and-swap, with no lock. Waiting and every update
// take mu. A request queues only when no assigned replica has a free slot
// or others already wait (no barging), and queued requests get replicas in
// arrival order: whoever frees capacity — a release, an update adding
// replicas, a probe passing — calls dispatchLocked, which hands replicas to
// the oldest waiters while slots are free.
type revision struct {
	name string
	t    *Throttler

	set    atomic.Pointer[replicaSet] // never nil
	cursor atomic.Uint64              // round-robin position

	mu       sync.Mutex // protects the fields below; writes of set happen under it
	waiters  waitlist.List[chan *replica]
	cfg      RevisionConfig      // as given, without defaults
	replicas map[string]*replica // listed by the host
	retired  map[string]*replica // unlisted with requests still in flight
	removed  bool

	stats revisionStats

	// readyAt is when a replica last became ready (Unix nanoseconds on the
	// throttler's clock; 0: never), for Timing.Ready.
	readyAt atomic.Int64
}

// waiter is one request waiting for a replica. The replica is handed over
// by sending on Value (buffered, so the sender never blocks) after
// unlinking the waiter, both under mu; nil means the revision was removed.
type waiter = waitlist.Node[chan *replica]

func newRevision(t *Throttler, name string, cfg RevisionConfig) *revision {
	rv := &revision{
		name:     name,
		t:        t,
		cfg:      cfg,
		replicas: make(map[string]*replica),
		retired:  make(map[string]*replica),
	}
	rv.set.Store(newReplicaSet(cfg.withDefaults(t.defaultSubset()), nil, 0))
	return rv
}

// acquire reserves a replica for one request, waiting in line if none has a
// free slot. On error the returned Lease has no replica but says how long
// the request waited.
func (rv *revision) acquire(ctx context.Context) (Lease, error) {
	if rv.waiters.Len() == 0 {
		if r := rv.set.Load().pick(rv); r != nil {
			return Lease{r: r}, nil
		}
	}
	return rv.acquireSlow(ctx)
}

func (rv *revision) acquireSlow(ctx context.Context) (Lease, error) {
	clk := rv.t.clock
	start := clk.Now()
	rv.mu.Lock()
	set := rv.set.Load()
	cold := len(set.replicas) == 0
	if rv.removed {
		rv.mu.Unlock()
		return Lease{cold: cold}, &WaitError{Revision: rv.name, Cold: cold, Err: ErrRevisionRemoved}
	}
	if rv.waiters.Len() == 0 {
		// A slot may have freed up since the lock-free attempt.
		if r := set.pick(rv); r != nil {
			rv.mu.Unlock()
			return Lease{r: r}, nil
		}
	}
	if n := rv.waiters.Len(); n >= int64(set.cfg.MaxWaiting) {
		rv.mu.Unlock()
		return Lease{queued: true, cold: cold}, &queueFullError{revision: rv.name, waiting: int(n), maxWaiting: set.cfg.MaxWaiting}
	}
	// Waiters are not pooled: a channel made inside a testing/synctest
	// bubble must not be used outside it, and this is the slow path.
	w := &waiter{Value: make(chan *replica, 1)}
	rv.waiters.PushBack(w)
	// A release that decremented before we raised waiting did not see us;
	// its slot is still free, and this hands it to the oldest waiter.
	rv.dispatchLocked()
	rv.mu.Unlock()

	var timeout <-chan time.Time
	if d := set.cfg.MaxWait; d > 0 {
		tm := clk.Timer(d)
		defer tm.Stop()
		timeout = tm.C
	}
	var err error
	select {
	case r := <-w.Value:
		if r != nil {
			return Lease{r: r, waited: clk.Since(start), queued: true, cold: cold}, nil
		}
		err = ErrRevisionRemoved
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = ErrMaxWait
	}
	if err != ErrRevisionRemoved {
		rv.mu.Lock()
		if w.Linked() {
			rv.waiters.Remove(w)
			rv.mu.Unlock()
		} else {
			// A replica was handed over as we gave up: pass it on.
			rv.mu.Unlock()
			if r := <-w.Value; r != nil {
				r.release()
			}
		}
	}
	waited := clk.Since(start)
	return Lease{waited: waited, queued: true, cold: cold}, &WaitError{Revision: rv.name, Waited: waited, Cold: cold, Err: err}
}

// kick hands free capacity to waiters.
func (rv *revision) kick() {
	rv.mu.Lock()
	rv.dispatchLocked()
	rv.mu.Unlock()
}

// dispatchLocked hands replicas to the oldest waiters while any has a free
// slot. rv.mu must be held.
func (rv *revision) dispatchLocked() {
	for rv.waiters.Len() > 0 {
		r := rv.set.Load().pick(rv)
		if r == nil {
			return
		}
		rv.waiters.PopFront().Value <- r
	}
}

// setConfig replaces the configuration. rv.mu must not be held.
func (rv *revision) setConfig(cfg RevisionConfig) bool {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.removed {
		return false
	}
	rv.cfg = cfg
	rv.publishLocked()
	return true
}

// setReplicas makes addrs (valid and distinct) the revision's replicas.
func (rv *revision) setReplicas(addrs []string) bool {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.removed {
		return false
	}
	want := make(map[string]struct{}, len(addrs))
	for _, a := range addrs {
		want[a] = struct{}{}
	}
	for addr, r := range rv.replicas {
		if _, ok := want[addr]; !ok {
			rv.dropLocked(r)
			delete(rv.replicas, addr)
			rv.retired[addr] = r
		}
	}
	for addr, r := range rv.retired {
		if r.inFlight() == 0 {
			delete(rv.retired, addr)
		}
	}
	for _, addr := range addrs {
		if _, ok := rv.replicas[addr]; ok {
			continue
		}
		// A replica listed again while its old requests finish keeps its
		// count, so it never sees more than its limit.
		r, ok := rv.retired[addr]
		if ok {
			delete(rv.retired, addr)
		} else {
			r = rv.t.newReplica(rv, addr)
		}
		rv.replicas[addr] = r
		if !rv.t.startProbe(rv, r) {
			r.ready = true
			r.revive()
			rv.readyAt.Store(rv.t.clock.Now().UnixNano())
		}
	}
	rv.publishLocked()
	return true
}

// dropLocked stops new requests to r. rv.mu must be held.
func (rv *revision) dropLocked(r *replica) {
	r.markRemoved()
	r.ready = false
	if r.cancelProbe != nil {
		r.cancelProbe()
		r.cancelProbe = nil
	}
}

// markReady is called by a probe loop when r passed its probe.
func (rv *revision) markReady(r *replica) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.removed || rv.replicas[r.addr] != r || r.ready {
		return
	}
	r.ready = true
	if r.cancelProbe != nil {
		r.cancelProbe()
		r.cancelProbe = nil
	}
	r.revive()
	rv.readyAt.Store(rv.t.clock.Now().UnixNano())
	rv.publishLocked()
}

// markUnreachable takes r out of rotation after a connection to it failed:
// no new request goes to it until it passes a probe — the Prober's, or
// without one a TCP connection — or the host lists it again after
// unlisting it. Requests in flight to it finish.
func (rv *revision) markUnreachable(r *replica) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.removed || rv.replicas[r.addr] != r || !r.ready {
		return // already out, or the host's list changed meanwhile
	}
	r.ready = false
	r.markRemoved()
	p := rv.t.opts.Prober
	if p == nil {
		p = dialProber{}
	}
	rv.t.startProbeWith(rv, r, p)
	rv.publishLocked()
}

// remove drops every replica and turns every waiter away. It returns the
// replicas, listed or retired, that still have requests in flight.
func (rv *revision) remove() (busy []*replica) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.removed = true
	for _, r := range rv.replicas {
		rv.dropLocked(r)
	}
	rv.set.Store(newReplicaSet(rv.set.Load().cfg, nil, 0))
	for w := rv.waiters.PopFront(); w != nil; w = rv.waiters.PopFront() {
		w.Value <- nil
	}
	for _, m := range []map[string]*replica{rv.replicas, rv.retired} {
		for _, r := range m {
			if r.inFlight() > 0 {
				busy = append(busy, r)
			}
		}
	}
	return busy
}

// publishLocked builds and stores a new replica set from the current
// configuration and ready replicas, then serves waiters from it. rv.mu must
// be held.
func (rv *revision) publishLocked() {
	cfg := rv.cfg.withDefaults(rv.t.defaultSubset())
	ready := make([]*replica, 0, len(rv.replicas))
	for _, r := range rv.replicas {
		if r.ready {
			ready = append(ready, r)
		}
	}
	slices.SortFunc(ready, func(a, b *replica) int { return cmp.Compare(a.addr, b.addr) })
	rv.set.Store(newReplicaSet(cfg, assign(ready, cfg), len(ready)))
	rv.dispatchLocked()
}

// status snapshots the revision.
func (rv *revision) status() RevisionStatus {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	set := rv.set.Load()
	st := RevisionStatus{
		Config:   set.cfg,
		Listed:   len(rv.replicas),
		Ready:    set.ready,
		Capacity: set.capacity,
		Waiting:  int(rv.waiters.Len()),
		Assigned: make([]string, len(set.replicas)),
	}
	for i, r := range set.replicas {
		st.Assigned[i] = r.addr
	}
	for _, r := range rv.replicas {
		st.InFlight += int(r.inFlight())
	}
	for _, r := range rv.retired {
		st.InFlight += int(r.inFlight())
	}
	return st
}
