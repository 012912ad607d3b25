package revision

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
)

// Decision is the autoscaler's latest decision for one revision, as plain
// values (this package does not import the autoscaler).
type Decision struct {
	// Desired is the scale the autoscaler asked the backend for; negative
	// means unknown (no metrics yet).
	Desired int32
	// ExcessBurstCapacity is the spare capacity beyond the target burst
	// capacity; negative keeps the activator in the path.
	ExcessBurstCapacity int32
	// Panicking says the autoscaler is in panic mode. It does not change the
	// revision's state; it is kept in State for observers.
	Panicking bool
}

// State is a snapshot of a revision: its status and its switch.
type State struct {
	// Status is the life cycle's status.
	Status Status
	// Want is the mode the last decision asked for.
	Want Mode
	// Endpoints is where traffic goes now; Endpoints.Mode is the effective
	// mode (what the front door does).
	Endpoints Endpoints
	// NumActivators is how many activators the revision needs.
	NumActivators int
	// ProxySince is when the effective mode last became Proxy; zero in
	// Serve mode.
	ProxySince time.Time
	// Decision is the last decision received.
	Decision Decision
}

// StatusObserver is told of every status change of a revision: key is the
// revision's key, from and to the status before and after.
type StatusObserver func(key string, from, to Status)

// EndpointsSubscriber is told where a revision's traffic goes whenever that
// changes, and once with the current endpoints when it subscribes.
type EndpointsSubscriber func(key string, e Endpoints)

// ReconcilerOptions are the optional parts of a Reconciler.
type ReconcilerOptions struct {
	// Activator and Serve, when both set, give the revision a FrontDoor
	// (see Reconciler.FrontDoor) that the reconciler switches. Setting only
	// one is an error. Both nil means no front door: the host follows the
	// mode through OnEndpoints.
	Activator, Serve http.Handler
	// Clock times Run's deadline timer. Nil means the real clock. The times
	// passed to the other methods should come from the same clock.
	Clock clock.Clock
}

// Reconciler is the concurrent shell around one revision's Lifecycle and
// Switch. The host feeds it plain values — the autoscaler's decisions
// (Decide), the ready replicas (SetReplicas) and activators
// (SetActivators), the failures it sees (SetFailures), whether the revision
// is routed (SetRouted) — and it keeps the status, the mode and the
// endpoints, switches the front door, and tells observers and subscribers.
//
// Every method is safe for simultaneous use. Observers and subscribers are
// called outside the reconciler's lock, one at a time, in the order the
// changes happened, each change to every observer in registration order.
// They run on the goroutine of the call that made the change, or, when
// another goroutine is already delivering, on that one (the call then
// returns before its change is delivered). They may call the reconciler's
// methods, including the ones that change it: that change is delivered
// after the current one. The front door is switched under the lock, so its
// mode always matches State().Endpoints.Mode.
type Reconciler struct {
	key  string
	clk  clock.Clock
	door *FrontDoor
	wake chan struct{} // capacity 1: tells Run the deadline may have moved

	mu          sync.Mutex // protects the fields below
	life        *Lifecycle
	sw          *Switch
	decision    Decision
	replicas    []string
	activators  []string
	failures    []Failure
	unrouted    bool
	observers   []StatusObserver      // copy-on-write: a delivery may hold the old slice
	subscribers []EndpointsSubscriber // copy-on-write
	pending     []notice              // changes not yet delivered, oldest first
	delivering  bool                  // a goroutine is draining pending
}

// notice is one change to deliver.
type notice struct {
	status   bool // a status change (from, to) rather than endpoints
	from, to Status
	eps      Endpoints
	obs      []StatusObserver
	subs     []EndpointsSubscriber
}

// NewReconciler returns the reconciler of the revision named key, created
// at now, in Knative's creation state (conditions Unknown, Deploying; mode
// Proxy). It fails for an empty key, an invalid cfg, or only one of the two
// front-door handlers.
func NewReconciler(key string, now time.Time, cfg Config, opts ReconcilerOptions) (*Reconciler, error) {
	if key == "" {
		return nil, errors.New("revision: NewReconciler: key is empty, must name the revision")
	}
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if (opts.Activator == nil) != (opts.Serve == nil) {
		errs = append(errs, errors.New("revision: ReconcilerOptions: Activator and Serve must be both set (for a front door) or both nil"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// With the checks above these constructors cannot fail.
	life, _ := NewLifecycle(now, cfg)
	sw, _ := NewSwitch(key, now, cfg.Activators)
	var door *FrontDoor
	if opts.Activator != nil {
		door, _ = NewFrontDoor(key, opts.Activator, opts.Serve)
	}
	if opts.Clock == nil {
		opts.Clock = clock.New()
	}
	return &Reconciler{
		key:      key,
		clk:      opts.Clock,
		door:     door,
		wake:     make(chan struct{}, 1),
		life:     life,
		sw:       sw,
		decision: Decision{Desired: -1},
	}, nil
}

// Key returns the revision's key.
func (r *Reconciler) Key() string { return r.key }

// FrontDoor returns the revision's front door, or nil when the options gave
// no handlers. Hand it to the router.
func (r *Reconciler) FrontDoor() *FrontDoor { return r.door }

// Decide applies the autoscaler's decision d, made at now.
func (r *Reconciler) Decide(now time.Time, d Decision) State {
	return r.update(now, func() { r.decision = d })
}

// SetReplicas sets the ready replicas (addresses or names; only their
// number matters to the status and mode, and they are the endpoints
// published in Serve mode). Duplicates count once; the reconciler keeps a
// copy.
func (r *Reconciler) SetReplicas(now time.Time, ready []string) State {
	ready = ChooseSubset(ready, 0, "") // a sorted, de-duplicated copy
	return r.update(now, func() { r.replicas = ready })
}

// SetActivators sets the ready activators (addresses or names). The
// revision uses a consistent subset of NumActivators of them. With none
// ready the mode is forced to Serve, so a host whose activator is in-process
// reports it here (any one name) before handing out the front door.
func (r *Reconciler) SetActivators(now time.Time, ready []string) State {
	ready = ChooseSubset(ready, 0, "")
	return r.update(now, func() { r.activators = ready })
}

// SetFailures replaces the failures the host sees; none clears them. An
// invalid failure is an error and changes nothing.
func (r *Reconciler) SetFailures(now time.Time, fs ...Failure) (State, error) {
	for _, f := range fs {
		if err := f.Validate(); err != nil {
			return r.State(), err
		}
	}
	fs = slices.Clone(fs)
	return r.update(now, func() { r.failures = fs }), nil
}

// SetRouted says whether any route sends traffic to the revision. A new
// reconciler assumes it is routed (as Knative does when it does not know);
// an unrouted revision ignores MinScale.
func (r *Reconciler) SetRouted(now time.Time, routed bool) State {
	return r.update(now, func() { r.unrouted = !routed })
}

// Tick re-evaluates the last inputs at now, so that the progress deadline
// and the activation timeout take effect without new input. Run calls it
// at NextDeadline.
func (r *Reconciler) Tick(now time.Time) State {
	return r.update(now, func() {})
}

// State returns a snapshot. Its slices are shared: do not modify them.
func (r *Reconciler) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stateLocked()
}

// ProxyFor returns how long the revision has been in Proxy mode at now, and
// 0 in Serve mode (see Switch.ProxyFor).
func (r *Reconciler) ProxyFor(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sw.ProxyFor(now)
}

// NextDeadline returns when Tick may next change the status, and false when
// it will not (see Lifecycle.NextDeadline).
func (r *Reconciler) NextDeadline() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.life.NextDeadline()
}

// OnStatus registers fn to be told of every later status change.
func (r *Reconciler) OnStatus(fn StatusObserver) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.observers = append(slices.Clip(r.observers), fn)
}

// OnEndpoints registers fn to be told of every later change of endpoints,
// and delivers the current endpoints to it first, in order with the other
// changes.
func (r *Reconciler) OnEndpoints(fn EndpointsSubscriber) {
	r.mu.Lock()
	r.subscribers = append(slices.Clip(r.subscribers), fn)
	r.pending = append(r.pending, notice{eps: r.sw.Endpoints(), subs: []EndpointsSubscriber{fn}})
	r.mu.Unlock()
	r.deliver()
}

// Run calls Tick whenever NextDeadline falls due, on the options' clock,
// until ctx is done. It is optional: a host that calls Decide or Tick
// regularly (the autoscaler's 2 s tick does) needs no Run.
func (r *Reconciler) Run(ctx context.Context) {
	for {
		var fire <-chan time.Time
		var timer *clock.Timer
		if at, ok := r.NextDeadline(); ok {
			timer = r.clk.Timer(max(at.Sub(r.clk.Now()), 0))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-fire:
			r.Tick(r.clk.Now())
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// update applies set and recomputes everything at now, then delivers the
// resulting changes outside the lock.
func (r *Reconciler) update(now time.Time, set func()) State {
	r.mu.Lock()
	set()
	from := r.life.Status()
	// The inputs were validated on the way in, so Observe cannot fail.
	to, _ := r.life.Observe(now, Observation{
		Desired:     r.decision.Desired,
		Ready:       int32(min(len(r.replicas), 1<<31-1)),
		Unreachable: r.unrouted,
		Failures:    r.failures,
	})
	moved := r.sw.Update(now, SwitchInput{
		Desired:             r.decision.Desired,
		ExcessBurstCapacity: r.decision.ExcessBurstCapacity,
		Replicas:            r.replicas,
		Activators:          r.activators,
	})
	if r.door != nil {
		r.door.SetMode(r.sw.Mode())
	}
	if to != from && len(r.observers) > 0 {
		r.pending = append(r.pending, notice{status: true, from: from, to: to, obs: r.observers})
	}
	if moved && len(r.subscribers) > 0 {
		r.pending = append(r.pending, notice{eps: r.sw.Endpoints(), subs: r.subscribers})
	}
	st := r.stateLocked()
	r.mu.Unlock()

	select {
	case r.wake <- struct{}{}:
	default:
	}
	r.deliver()
	return st
}

func (r *Reconciler) stateLocked() State {
	eps := r.sw.Endpoints()
	var since time.Time
	if eps.Mode == Proxy {
		since = r.sw.proxySince
	}
	return State{
		Status:        r.life.Status(),
		Want:          r.sw.Want(),
		Endpoints:     eps,
		NumActivators: r.sw.NumActivators(),
		ProxySince:    since,
		Decision:      r.decision,
	}
}

// deliver drains pending outside the lock. Only one goroutine delivers a
// notice at a time and notices leave pending in order, which keeps the
// order; a call that finds a delivery under way leaves its notices to it.
func (r *Reconciler) deliver() {
	for r.deliverOne() {
	}
}

func (r *Reconciler) deliverOne() bool {
	r.mu.Lock()
	if r.delivering || len(r.pending) == 0 {
		r.mu.Unlock()
		return false
	}
	r.delivering = true
	n := r.pending[0]
	r.pending[0] = notice{}
	r.pending = r.pending[1:]
	r.mu.Unlock()
	defer func() { // also when a callback panics, so later notices still go out
		r.mu.Lock()
		r.delivering = false
		r.mu.Unlock()
	}()
	if n.status {
		for _, fn := range n.obs {
			fn(r.key, n.from, n.to)
		}
	} else {
		for _, fn := range n.subs {
			fn(r.key, n.eps)
		}
	}
	return true
}
