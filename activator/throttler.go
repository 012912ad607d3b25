package activator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/proxy"
)

// ThrottlerOptions configure a Throttler. The zero value of each field is a
// working default.
type ThrottlerOptions struct {
	// Clock measures waits, MaxWait and probe timeouts and backoff. Nil
	// means the real clock.
	Clock clock.Clock
	// Subset is this activator's share of every revision's replicas, unless
	// a revision's RevisionConfig.Subset says otherwise. The zero value
	// means every replica. SetSubset changes it later.
	Subset Subset
	// Prober checks each newly listed replica before it gets requests. Nil
	// means replicas are used as soon as they are listed.
	Prober Prober
	// ProbeTimeout bounds one probe. Zero means DefaultProbeTimeout; must not
	// be negative.
	ProbeTimeout time.Duration
	// ProbeInterval is the wait after the first failed probe; it doubles
	// after each failure up to ProbeMaxInterval. Zero means
	// DefaultProbeInterval; must not be negative.
	ProbeInterval time.Duration
	// ProbeMaxInterval caps the wait between probes. Zero means
	// DefaultProbeMaxInterval; must not be below ProbeInterval.
	ProbeMaxInterval time.Duration
	// Logger receives probe failures at debug level. Nil means silent.
	Logger *slog.Logger
}

// Validate reports every out-of-range field, naming the field, its value and
// the allowed range.
func (o ThrottlerOptions) Validate() error {
	var errs []error
	if err := o.Subset.validate("ThrottlerOptions.Subset"); err != nil {
		errs = append(errs, err)
	}
	if o.ProbeTimeout < 0 {
		errs = append(errs, fmt.Errorf("activator: ThrottlerOptions.ProbeTimeout = %v, must be >= 0 (0 means %v)", o.ProbeTimeout, DefaultProbeTimeout))
	}
	if o.ProbeInterval < 0 {
		errs = append(errs, fmt.Errorf("activator: ThrottlerOptions.ProbeInterval = %v, must be >= 0 (0 means %v)", o.ProbeInterval, DefaultProbeInterval))
	}
	// Compared with the interval in effect: a zero ProbeInterval means
	// DefaultProbeInterval.
	interval := o.ProbeInterval
	if interval == 0 {
		interval = DefaultProbeInterval
	}
	if o.ProbeMaxInterval < 0 {
		errs = append(errs, fmt.Errorf("activator: ThrottlerOptions.ProbeMaxInterval = %v, must be >= 0 (0 means %v)", o.ProbeMaxInterval, DefaultProbeMaxInterval))
	} else if o.ProbeMaxInterval > 0 && interval > 0 && o.ProbeMaxInterval < interval {
		errs = append(errs, fmt.Errorf("activator: ThrottlerOptions.ProbeMaxInterval = %v, must be >= ProbeInterval = %v", o.ProbeMaxInterval, interval))
	}
	return errors.Join(errs...)
}

// Throttler holds requests for revisions without free capacity and
// balances the others over the revisions' replicas. The host tells it what
// each revision is (SetRevision) and which replicas it has now
// (SetReplicas); each request takes a Lease on one replica with Acquire and
// gives it back with Lease.Release.
//
// Capacity is per replica: a replica never has more than the revision's
// container concurrency in flight from this throttler. A request that finds
// no free slot waits in a per-revision FIFO queue, bounded in length
// (MaxWaiting) and in time (MaxWait and the request's context), and gets
// a replica the moment one frees up or is added: a release or an update
// hands it over directly, with no polling. Unlisting a replica stops new
// requests to it at once; those in flight finish.
//
// Acquire and Release take no lock and do not allocate when a slot is
// free and nobody waits. A Throttler is safe for simultaneous use.
type Throttler struct {
	opts  ThrottlerOptions
	clock clock.Clock
	log   *slog.Logger

	revs   atomic.Pointer[map[string]*revision] // copy on write
	mu     sync.Mutex                           // serializes writers of revs; protects orphans
	subset atomic.Pointer[Subset]               // default share

	// orphans holds, by revision key, the replicas of removed revisions
	// that still had requests in flight, so that a revision created again
	// under the same key counts those requests against the replicas' limit.
	orphans map[string][]*replica

	// newProxy, set by a Handler, builds the forwarding proxy of a replica.
	newProxy func(*replica) *proxy.Forwarder

	// rand, if set (by tests, before any pick), replaces math/rand/v2's
	// generator in the balancing policies.
	rand func() uint64

	probeCtx    context.Context
	stopProbing context.CancelFunc
	probeMu     sync.Mutex // protects closed; orders probes.Add before probes.Wait
	closed      bool
	probes      sync.WaitGroup
}

// Lease is one request's hold on a replica's slot, from Acquire until
// Release. The zero Lease holds nothing.
type Lease struct {
	r      *replica
	waited time.Duration
	queued bool // it waited in line (or was turned away for a full line)
	cold   bool // no replica was assigned when it arrived
}

// Addr returns the replica's address, as given to SetReplicas.
func (l Lease) Addr() string { return l.r.addr }

// Waited returns how long the request waited for the replica; zero if a
// slot was free when it arrived.
func (l Lease) Waited() time.Duration { return l.waited }

// Release gives the slot back; if requests wait, the oldest may get it at
// once. Call it exactly once per Lease that Acquire returned without error.
// It does not allocate.
func (l Lease) Release() { l.r.release() }

// RevisionStatus is a snapshot of one revision in a Throttler.
type RevisionStatus struct {
	Config   RevisionConfig // in effect, with defaults filled in
	Listed   int            // replicas given by SetReplicas
	Ready    int            // of those, passed their probe (all, without a Prober)
	Assigned []string       // this activator's share of the ready ones, sorted
	Capacity int            // requests this activator may have in flight: CC × assigned, Unlimited or 0
	InFlight int            // requests in flight to its replicas, unlisted ones included
	Waiting  int            // requests waiting for capacity
}

// NewThrottler returns a Throttler, or an error naming each invalid option.
func NewThrottler(o ThrottlerOptions) (*Throttler, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Clock == nil {
		o.Clock = clock.New()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = DefaultProbeTimeout
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.ProbeMaxInterval == 0 {
		o.ProbeMaxInterval = max(DefaultProbeMaxInterval, o.ProbeInterval)
	}
	t := &Throttler{opts: o, clock: o.Clock, log: o.Logger, orphans: map[string][]*replica{}}
	empty := map[string]*revision{}
	t.revs.Store(&empty)
	s := o.Subset
	t.subset.Store(&s)
	t.probeCtx, t.stopProbing = context.WithCancel(context.Background())
	return t, nil
}

func (t *Throttler) lookup(rev string) *revision { return (*t.revs.Load())[rev] }

func (t *Throttler) defaultSubset() Subset { return *t.subset.Load() }

// SetRevision creates the revision rev or changes its configuration. A
// change applies to requests that arrive from now on; requests already
// waiting keep their MaxWait. Raising the concurrency hands the new
// capacity to waiting requests at once; lowering it lets requests in flight
// finish. A revision created again after RemoveRevision counts the old
// one's requests still in flight against its replicas' limit.
func (t *Throttler) SetRevision(rev string, cfg RevisionConfig) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("activator: SetRevision(%q): %w", rev, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rv := t.lookup(rev); rv != nil {
		rv.setConfig(cfg)
		return nil
	}
	rv := newRevision(t, rev, cfg)
	// Adopt the removed revision's busy replicas as retired ones: listed
	// again, each keeps its count, exactly as within one revision.
	for _, r := range t.orphans[rev] {
		if r.inFlight() > 0 {
			r.rev.Store(rv)
			rv.retired[r.addr] = r
		}
	}
	delete(t.orphans, rev)
	next := maps.Clone(*t.revs.Load())
	next[rev] = rv
	t.revs.Store(&next)
	return nil
}

// SetReplicas says that the revision's replicas are now addrs ("host:port"
// each, distinct), replacing the previous list. New replicas take requests
// at once — waiting requests first, in arrival order — or, with a Prober,
// once they pass their probe. Replicas no longer listed get no new requests;
// those in flight finish. An empty list means the revision has no replicas
// (scaled to zero): new requests wait.
func (t *Throttler) SetReplicas(rev string, addrs []string) error {
	if err := validateAddrs(addrs); err != nil {
		return fmt.Errorf("activator: SetReplicas(%q): %w", rev, err)
	}
	rv := t.lookup(rev)
	if rv == nil || !rv.setReplicas(addrs) {
		return fmt.Errorf("%w %q: call SetRevision first", ErrUnknownRevision, rev)
	}
	return nil
}

func validateAddrs(addrs []string) error {
	var errs []error
	seen := make(map[string]int, len(addrs))
	for i, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("addrs[%d] = %q: want host:port: %v", i, a, err))
		case host == "" || port == "":
			errs = append(errs, fmt.Errorf("addrs[%d] = %q: want host:port with both parts", i, a))
		}
		if j, dup := seen[a]; dup {
			errs = append(errs, fmt.Errorf("addrs[%d] = %q: duplicate of addrs[%d]", i, a, j))
		} else {
			seen[a] = i
		}
	}
	return errors.Join(errs...)
}

// SetRevisionSubset changes only the revision's share of its replicas
// (RevisionConfig.Subset), for a host that learns this activator's place
// among the revision's activators, as gateway.Endpoints does when
// activators run in several processes. Waiting requests get the new share
// at once. A later SetRevision replaces it with its config's Subset. It
// returns an error wrapping ErrUnknownRevision for a revision not set.
func (t *Throttler) SetRevisionSubset(rev string, s Subset) error {
	if err := s.validate("Subset"); err != nil {
		return fmt.Errorf("activator: SetRevisionSubset(%q): %w", rev, err)
	}
	rv := t.lookup(rev)
	if rv == nil {
		return fmt.Errorf("%w %q: call SetRevision first", ErrUnknownRevision, rev)
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.removed {
		return fmt.Errorf("%w %q: removed", ErrUnknownRevision, rev)
	}
	rv.cfg.Subset = s
	rv.publishLocked()
	return nil
}

// RemoveRevision forgets the revision rev. Requests waiting for it get a
// *WaitError wrapping ErrRevisionRemoved; requests in flight finish; new
// ones get ErrUnknownRevision. It reports whether rev was known.
func (t *Throttler) RemoveRevision(rev string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	rv := t.lookup(rev)
	if rv == nil {
		return false
	}
	next := maps.Clone(*t.revs.Load())
	delete(next, rev)
	t.revs.Store(&next)
	busy := rv.remove()
	// Forget orphans whose requests have all finished; removed replicas
	// take no new ones, so their counts only fall.
	for k, rs := range t.orphans {
		rs = slices.DeleteFunc(rs, func(r *replica) bool { return r.inFlight() == 0 })
		if len(rs) == 0 {
			delete(t.orphans, k)
		} else {
			t.orphans[k] = rs
		}
	}
	if len(busy) > 0 {
		t.orphans[rev] = append(t.orphans[rev], busy...)
	}
	return true
}

// SetSubset changes this activator's default share of every revision's
// replicas (see Subset), for example when the number of activators changes.
// Revisions with their own RevisionConfig.Subset keep it.
func (t *Throttler) SetSubset(s Subset) error {
	if err := s.Validate(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subset.Store(&s)
	for _, rv := range *t.revs.Load() {
		rv.mu.Lock()
		if !rv.removed {
			rv.publishLocked()
		}
		rv.mu.Unlock()
	}
	return nil
}

// Acquire reserves a slot on one of the revision's replicas, chosen by the
// revision's policy, waiting in line if none is free. It returns
// ErrUnknownRevision for a revision never set; an error wrapping
// ErrQueueFull at once if MaxWaiting requests already wait; or a *WaitError
// if MaxWait passes, ctx ends or the revision is removed first. On success
// the caller must call Release on the Lease once.
//
// When a slot is free and nobody waits, Acquire takes no lock and does not
// allocate.
func (t *Throttler) Acquire(ctx context.Context, rev string) (Lease, error) {
	rv := t.lookup(rev)
	if rv == nil {
		return Lease{}, fmt.Errorf("%w %q", ErrUnknownRevision, rev)
	}
	l, err := rv.acquire(ctx)
	if err != nil {
		return Lease{}, err
	}
	return l, nil
}

// Status returns a snapshot of the revision rev, and false if it is
// unknown.
func (t *Throttler) Status(rev string) (RevisionStatus, bool) {
	rv := t.lookup(rev)
	if rv == nil {
		return RevisionStatus{}, false
	}
	return rv.status(), true
}

// InFlight returns the requests this activator has in flight to the
// replica addr of rev: leased and not yet released. A replica that
// SetReplicas removed gets no new request but keeps counting those it had,
// so a host can wait for InFlight to reach 0 before it stops the replica
// (see gateway.Endpoints.InFlight). It returns 0 for an unknown revision or
// replica.
func (t *Throttler) InFlight(rev, addr string) int64 {
	rv := t.lookup(rev)
	if rv == nil {
		return 0
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if r, ok := rv.replicas[addr]; ok {
		return r.inFlight()
	}
	if r, ok := rv.retired[addr]; ok {
		return r.inFlight()
	}
	return 0
}

// Waiting returns how many requests wait for capacity of rev (0 if it is
// unknown). It takes no lock.
func (t *Throttler) Waiting(rev string) int {
	if rv := t.lookup(rev); rv != nil {
		return int(rv.waiters.Len())
	}
	return 0
}

// Revisions returns the names of the known revisions, in no particular
// order.
func (t *Throttler) Revisions() []string {
	m := *t.revs.Load()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Close stops probing replicas and waits for the probe goroutines to end.
// Replicas still being probed stay unused. Requests are not affected.
func (t *Throttler) Close() {
	t.probeMu.Lock()
	t.closed = true
	t.probeMu.Unlock()
	t.stopProbing()
	t.probes.Wait()
}

func (t *Throttler) newReplica(rv *revision, addr string) *replica {
	r := &replica{addr: addr}
	r.rev.Store(rv)
	if t.newProxy != nil {
		r.proxy = t.newProxy(r)
	}
	return r
}
