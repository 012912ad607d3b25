package gateway

import (
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/revision"
)

// ReplicaSetter is an activator's side of the endpoints: *activator.Handler
// and *activator.Throttler implement it.
type ReplicaSetter interface {
	SetReplicas(revision string, addrs []string) error
}

// SubsetSetter is the optional side of an activator that takes its share
// of a revision's replicas: *activator.Handler and *activator.Throttler
// implement it. See EndpointsConfig.Self.
type SubsetSetter interface {
	SetRevisionSubset(revision string, s activator.Subset) error
}

// InFlightCounter is the optional side of an activator that counts its
// requests in flight to a replica, also after the replica was removed:
// *activator.Handler and *activator.Throttler implement it. See
// Endpoints.InFlight.
type InFlightCounter interface {
	InFlight(revision, addr string) int64
}

// EndpointsConfig is what one revision's Endpoints fans out to. Reconciler
// is required; Serve and Activator are each optional (a host without an
// activator in its process, or without a Serve path, leaves one out).
type EndpointsConfig struct {
	// Reconciler is the revision's reconciler: it switches the front door
	// between Proxy and Serve from the ready replicas and activators.
	// Required.
	Reconciler *revision.Reconciler
	// Serve is the revision's Serve-path balancer (see ServeHandler). Nil
	// means none.
	Serve *balancer.Balancer
	// Activator is this process's activator. Nil means none (the
	// revision's activators are remote, see Activators).
	Activator ReplicaSetter
	// Self is this process's activator's address as listed to
	// SetActivators. With it, and an Activator that is a SubsetSetter,
	// the activator takes its share of the replicas (activator.Subset)
	// from its place in the revision's activator subset, as Knative's
	// activators do, so that activators in several processes together
	// keep each replica within its concurrency limit. Empty means the
	// activator uses every replica.
	Self string
	// Remote, if not nil, is given the revision's activator subset
	// whenever the reconciler publishes it in Proxy mode, so the front
	// door's Proxy path forwards to those activators.
	Remote *RevisionActivators
}

// Endpoints is one place for a revision's ready replicas and activators.
// SetReady hands a new ready-replica set to the Serve balancer, the
// activator and the reconciler, in that order: on a scale-down the Serve
// path and the activator stop sending new requests to a replica before the
// reconciler may switch modes, and on a scale-up the new replicas are in
// the balancer before the reconciler switches to Serve, so no request is
// sent to a replica no longer there nor finds an empty Serve path.
//
// Taking a replica out of the set stops new requests, but a request the
// Serve path or the activator sent its way just before may still be on
// its way to it: a host stops a removed replica only once InFlight(addr)
// is 0 (then nothing was sent to it and nothing will be), and then lets
// it drain (queue.Handler.Drain), so no request finds it gone.
//
// Calls are serialized, so the three always end on the same set. The
// reconciler's observers run on the calling goroutine (see
// revision.Reconciler) while that serialization is held: they must not
// call SetReady or SetActivators on the same Endpoints.
type Endpoints struct {
	key string
	cfg EndpointsConfig

	mu         sync.Mutex // serializes updates; protects ready, activators
	ready      []string
	activators []string
}

// NewEndpoints returns the endpoints of the revision named key. With
// cfg.Remote it subscribes to the reconciler's endpoints.
func NewEndpoints(key string, cfg EndpointsConfig) (*Endpoints, error) {
	var errs []error
	if key == "" {
		errs = append(errs, errors.New("gateway: NewEndpoints: key is empty, must name the revision"))
	}
	if cfg.Reconciler == nil {
		errs = append(errs, errors.New("gateway: EndpointsConfig.Reconciler is nil, want the revision's reconciler"))
	} else if cfg.Reconciler.Key() != key {
		errs = append(errs, errors.New("gateway: EndpointsConfig.Reconciler is revision "+cfg.Reconciler.Key()+"'s, want "+key+"'s"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	e := &Endpoints{key: key, cfg: cfg}
	subsets, _ := cfg.Activator.(SubsetSetter)
	if cfg.Self == "" {
		subsets = nil
	}
	if cfg.Remote != nil || subsets != nil {
		cfg.Reconciler.OnEndpoints(func(_ string, eps revision.Endpoints) {
			// In Serve mode the activators stay as they were: a request
			// already on its way to one still finds it.
			if eps.Mode != revision.Proxy {
				return
			}
			if cfg.Remote != nil {
				cfg.Remote.SetAddresses(eps.Addresses)
			}
			if subsets != nil {
				// Every process sorts the same subset the same way, so
				// the shares split the replicas without overlap.
				s := activator.Subset{Index: 0, Count: 1} // not in the subset: every replica
				if i := slices.Index(eps.Addresses, cfg.Self); i >= 0 {
					s = activator.Subset{Index: i, Count: len(eps.Addresses)}
				}
				_ = subsets.SetRevisionSubset(key, s) // fails only for a revision not set on the activator
			}
		})
	}
	return e, nil
}

// Key returns the revision's key.
func (e *Endpoints) Key() string { return e.key }

// SetReady makes addrs ("host:port" each) the revision's ready replicas at
// now: the Serve balancer first, then the activator, then the reconciler.
// An address list the balancer or the activator rejects (empty or
// duplicate addresses, not host:port) is an error, and nothing is changed.
func (e *Endpoints) SetReady(now time.Time, addrs []string) error {
	addrs = slices.Clone(addrs)
	slices.Sort(addrs)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := validHostPorts(addrs); err != nil {
		return err
	}
	if e.cfg.Serve != nil {
		if err := e.cfg.Serve.SetReplicas(addrs); err != nil {
			return err
		}
	}
	if e.cfg.Activator != nil {
		if err := e.cfg.Activator.SetReplicas(e.key, addrs); err != nil {
			return err
		}
	}
	e.ready = addrs
	e.cfg.Reconciler.SetReplicas(now, addrs)
	return nil
}

// SetActivators makes addrs the ready activators at now (the reconciler
// picks the revision's subset of them); with Remote, the front door's Proxy
// path then forwards to that subset.
func (e *Endpoints) SetActivators(now time.Time, addrs []string) {
	addrs = slices.Clone(addrs)
	slices.Sort(addrs)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.activators = addrs
	e.cfg.Reconciler.SetActivators(now, addrs)
}

// InFlight returns the requests in flight to the replica addr through the
// Serve balancer and, if it is an InFlightCounter, the activator: picked
// and not yet finished. It keeps counting after SetReady removed addr, and
// since a removed replica gets no new request, once it reads 0 it stays 0
// until addr is listed again. It takes no lock of the Endpoints.
func (e *Endpoints) InFlight(addr string) int64 {
	var n int64
	if e.cfg.Serve != nil {
		n += e.cfg.Serve.InFlight(addr)
	}
	if c, ok := e.cfg.Activator.(InFlightCounter); ok {
		n += c.InFlight(e.key, addr)
	}
	return n
}

// Ready returns the ready replicas as last set, sorted.
func (e *Endpoints) Ready() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ready)
}

// Activators returns the ready activators as last set, sorted.
func (e *Endpoints) Activators() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.activators)
}
