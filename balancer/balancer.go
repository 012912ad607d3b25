package balancer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// Config is how a Balancer picks. The zero value is Knative's default
// revision: unlimited concurrency, power of two choices.
type Config struct {
	// Policy picks a replica for each request. Zero (PolicyDefault) means
	// DefaultPolicy(ContainerConcurrency).
	Policy Policy
	// ContainerConcurrency is how many requests the policies put on one
	// replica before they look further: the revision's
	// containerConcurrency. Zero means unlimited. Range [0, MaxInt32].
	ContainerConcurrency int
}

// Validate reports every out-of-range field, naming the field, its value
// and the allowed range.
func (c Config) Validate() error {
	var errs []error
	if !c.Policy.Valid() {
		errs = append(errs, fmt.Errorf("balancer: Config.Policy = %d, must be one of %s", int(c.Policy), PolicyNames()))
	}
	if c.ContainerConcurrency < 0 || c.ContainerConcurrency > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("balancer: Config.ContainerConcurrency = %d, must be in [0, %d] (0 means unlimited)", c.ContainerConcurrency, math.MaxInt32))
	}
	return errors.Join(errs...)
}

// Balancer spreads one revision's requests over its ready replicas on the
// Serve path, with the activator's policies (see Policy). The host tells it
// the replicas with SetReplicas; each request takes a Reservation with Pick
// and gives it back with Release.
//
// Unlike the activator, a Balancer never makes a request wait: when every
// replica has ContainerConcurrency requests in flight through it, Pick
// still returns the less loaded of two random replicas, whose own queue
// holds the request (on the Serve path of Knative, a Kubernetes Service,
// nothing waits either). Pick fails only when there is no replica.
//
// Pick and Release take no lock and do not allocate. SetReplicas keeps the
// in-flight count of every replica that stays. A Balancer is safe for
// simultaneous use.
type Balancer struct {
	policy Policy
	limit  int64

	set    atomic.Pointer[set] // never nil
	cursor atomic.Uint64       // round-robin position
	mu     sync.Mutex          // serializes SetReplicas
	// rand, if set by a test before any pick, replaces math/rand/v2.
	rand func() uint64
}

// set is an immutable snapshot of the replicas, sorted by address.
type set struct {
	addrs []string
	slots []*Slot
	// retired are the closed slots of replicas no longer listed whose
	// requests were still in flight at the last SetReplicas.
	retired map[string]*Slot
}

// Reservation is one request's hold on a replica, from Pick until Release.
// The zero Reservation holds nothing.
type Reservation struct {
	addr string
	slot *Slot
}

// Addr returns the replica's address, as given to SetReplicas.
func (r Reservation) Addr() string { return r.addr }

// Release gives the replica's slot back. Call it exactly once per
// Reservation that Pick returned. It does not allocate.
func (r Reservation) Release() {
	if r.slot == nil || !r.slot.Release() {
		panic("balancer: Reservation.Release called more than once or on a zero Reservation")
	}
}

// New returns a Balancer with no replicas, or an error naming each invalid
// field of cfg.
func New(cfg Config) (*Balancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Balancer{policy: cfg.Policy.Resolve(cfg.ContainerConcurrency), limit: Unlimited}
	if cfg.ContainerConcurrency > 0 {
		b.limit = int64(cfg.ContainerConcurrency)
	}
	b.set.Store(&set{})
	return b, nil
}

// Policy returns the policy in effect (never PolicyDefault).
func (b *Balancer) Policy() Policy { return b.policy }

// SetReplicas makes addrs the replicas, replacing the previous list: new
// ones take requests at once, those no longer listed take no new ones (the
// requests in flight finish). Each address must be non-empty and listed
// once; on error nothing changes. An empty list means no replica: Pick
// fails until some are set.
func (b *Balancer) SetReplicas(addrs []string) error {
	sorted := slices.Clone(addrs)
	slices.Sort(sorted)
	var errs []error
	for i, a := range sorted {
		if a == "" {
			errs = append(errs, errors.New("balancer: SetReplicas: empty address"))
		} else if i > 0 && sorted[i-1] == a {
			errs = append(errs, fmt.Errorf("balancer: SetReplicas: address %q listed twice", a))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.set.Load()
	next := &set{addrs: sorted, slots: make([]*Slot, len(sorted))}
	retire := func(addr string, s *Slot) {
		s.Close()
		if s.InFlight() == 0 {
			return // closed at 0: it can never count again
		}
		if next.retired == nil {
			next.retired = map[string]*Slot{}
		}
		next.retired[addr] = s
	}
	i := 0
	for j, a := range sorted {
		for i < len(old.addrs) && old.addrs[i] < a {
			retire(old.addrs[i], old.slots[i])
			i++
		}
		switch rs, ok := old.retired[a]; {
		case i < len(old.addrs) && old.addrs[i] == a:
			next.slots[j] = old.slots[i]
			i++
		case ok:
			// Listed again while its old requests finish: it keeps their
			// count, so it never sees more than its limit.
			rs.Open()
			next.slots[j] = rs
		default:
			next.slots[j] = new(Slot)
		}
	}
	for ; i < len(old.addrs); i++ {
		retire(old.addrs[i], old.slots[i])
	}
	for a, rs := range old.retired {
		if _, listed := slices.BinarySearch(sorted, a); !listed {
			retire(a, rs)
		}
	}
	b.set.Store(next)
	return nil
}

// Replicas returns the replicas' addresses, sorted. The caller may keep
// and modify the slice.
func (b *Balancer) Replicas() []string { return slices.Clone(b.set.Load().addrs) }

// Len returns the number of replicas.
func (b *Balancer) Len() int { return len(b.set.Load().addrs) }

// InFlight returns the requests in flight to addr through this balancer:
// those reserved with Pick and not yet released. A replica that
// SetReplicas removed takes no new reservation but keeps counting the ones
// it had, so a host can wait for InFlight to reach 0 before it stops the
// replica: from then on nothing picked it and nothing will. It returns 0 for
// an address never listed.
func (b *Balancer) InFlight(addr string) int64 {
	s := b.set.Load()
	if i, ok := slices.BinarySearch(s.addrs, addr); ok {
		return s.slots[i].InFlight()
	}
	if rs, ok := s.retired[addr]; ok {
		return rs.InFlight()
	}
	return 0
}

// Pick reserves a replica by the policy, past the concurrency limit if
// every replica is at it, and reports false only when there is no replica.
// It takes no lock and does not allocate.
func (b *Balancer) Pick() (Reservation, bool) {
	s := b.set.Load()
	if i := Pick(b.policy, s.slots, b.limit, &b.cursor, b.rand); i >= 0 {
		return Reservation{addr: s.addrs[i], slot: s.slots[i]}, true
	}
	// Every replica is at the limit, or closed by a concurrent update:
	// overflow onto the less loaded of two, as the replica's queue will
	// hold the request.
	if len(s.slots) == 0 {
		return Reservation{}, false
	}
	if i := Pick(PolicyPowerOfTwo, s.slots, Unlimited, &b.cursor, b.rand); i >= 0 {
		return Reservation{addr: s.addrs[i], slot: s.slots[i]}, true
	}
	return Reservation{}, false
}

// PickExcept is Pick over the replicas not in except: for a request that a
// replica refused, to retry on another. It reports false when no other
// replica is listed. It allocates only past 16 replicas.
func (b *Balancer) PickExcept(except []string) (Reservation, bool) {
	s := b.set.Load()
	var slotBuf [16]*Slot
	var idxBuf [16]int
	slots, idx := slotBuf[:0], idxBuf[:0]
	for i, a := range s.addrs {
		if !slices.Contains(except, a) {
			slots = append(slots, s.slots[i])
			idx = append(idx, i)
		}
	}
	if len(slots) == 0 {
		return Reservation{}, false
	}
	j := Pick(b.policy, slots, b.limit, &b.cursor, b.rand)
	if j < 0 {
		j = Pick(PolicyPowerOfTwo, slots, Unlimited, &b.cursor, b.rand)
	}
	if j < 0 {
		return Reservation{}, false
	}
	return Reservation{addr: s.addrs[idx[j]], slot: s.slots[idx[j]]}, true
}
