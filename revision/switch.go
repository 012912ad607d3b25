package revision

import (
	"errors"
	"slices"
	"time"
)

// Endpoints is where a revision's traffic goes now: the mode, and the
// addresses behind it — a consistent subset of the ready activators in
// Proxy mode, the ready replicas in Serve mode. Addresses is sorted; treat
// it as read-only (it is shared, never modified after publication).
type Endpoints struct {
	Mode      Mode
	Addresses []string
}

// Equal reports whether e and o have the same mode and addresses.
func (e Endpoints) Equal(o Endpoints) bool {
	return e.Mode == o.Mode && slices.Equal(e.Addresses, o.Addresses)
}

// SwitchInput is what the switch decides from: the autoscaler's decision and
// what is ready.
type SwitchInput struct {
	// Desired is the autoscaler's desired scale; negative means unknown.
	Desired int32
	// ExcessBurstCapacity is the autoscaler's excess burst capacity (spare
	// capacity minus the target burst capacity); negative means the activator
	// should stay in the path to absorb bursts.
	ExcessBurstCapacity int32
	// Replicas are the addresses (or any names) of the ready replicas.
	Replicas []string
	// Activators are the addresses (or names) of the ready activators.
	Activators []string
}

// Switch is a revision's proxy/serve switch, Knative's ServerlessService as
// a plain value: from the autoscaler's decision and what is ready it derives
// the wanted mode (WantMode), the effective mode (EffectiveMode), how many
// activators the revision needs (ActivatorSizing.NumActivators), the
// consistent subset of activators it uses (ChooseSubset, seeded with the
// revision's key) and the endpoints traffic should go to. It records when it
// last entered Proxy mode, for ProxyFor.
//
// Before the first Update it is in Knative's creation state: Proxy, no
// endpoints, MinActivators activators. It does no I/O and is not safe for
// concurrent use; Reconciler is the concurrent shell that publishes its
// endpoints and drives a FrontDoor.
type Switch struct {
	key    string
	sizing ActivatorSizing

	want          Mode
	eps           Endpoints
	numActivators int
	proxySince    time.Time // when the effective mode last became Proxy; zero in Serve mode
}

// NewSwitch returns the switch of the revision named key (the seed of its
// activator subset), created at now. It fails for an empty key or invalid
// sizing.
func NewSwitch(key string, now time.Time, sizing ActivatorSizing) (*Switch, error) {
	if key == "" {
		return nil, errors.New("revision: NewSwitch: key is empty, must name the revision")
	}
	if err := sizing.Validate(); err != nil {
		return nil, err
	}
	return &Switch{
		key:           key,
		sizing:        sizing,
		want:          Proxy,
		eps:           Endpoints{Mode: Proxy},
		numActivators: MinActivators,
		proxySince:    now,
	}, nil
}

// Update applies in at now and reports whether the endpoints (mode or
// addresses) changed. It copies the slices it keeps.
func (s *Switch) Update(now time.Time, in SwitchInput) bool {
	replicas := ChooseSubset(in.Replicas, 0, "") // sorted, de-duplicated copy
	s.want = WantMode(in.Desired, in.ExcessBurstCapacity)
	s.numActivators = s.sizing.NumActivators(len(replicas))
	mode := EffectiveMode(s.want, len(replicas), len(in.Activators))

	next := Endpoints{Mode: mode, Addresses: replicas}
	if mode == Proxy {
		next.Addresses = ChooseSubset(in.Activators, s.numActivators, s.key)
	}
	switch {
	case mode == Serve:
		s.proxySince = time.Time{}
	case s.eps.Mode == Serve || s.proxySince.IsZero():
		s.proxySince = now
	}
	if next.Equal(s.eps) {
		return false
	}
	s.eps = next
	return true
}

// Mode returns the effective mode.
func (s *Switch) Mode() Mode { return s.eps.Mode }

// Want returns the mode the last decision asked for, before the
// no-replica/no-activator overrides.
func (s *Switch) Want() Mode { return s.want }

// NumActivators returns how many activators the revision needs, from the
// last Update's ready replicas.
func (s *Switch) NumActivators() int { return s.numActivators }

// Endpoints returns where traffic goes now. The slice is shared: do not
// modify it.
func (s *Switch) Endpoints() Endpoints { return s.eps }

// ProxyFor returns how long the switch has been in Proxy mode at now, and 0
// in Serve mode. Knative's scale-to-zero grace period waits on it, so that
// the activator is in the path before the last replica goes. Hand it to
// autoscaler.Options.ProxyTimer (Reconciler.ProxyFor returns the same), or
// to a scale-to-zero step of the host's own.
//
// Knative measures the time since its ActivatorEndpointsPopulated condition
// turned True (no ready replica, or Proxy wanted), and its autoscaler
// separately probes that the activator really answers. The effective mode
// here is Proxy exactly when that condition holds and an activator is
// ready, so it covers both.
func (s *Switch) ProxyFor(now time.Time) time.Duration {
	if s.eps.Mode != Proxy || s.proxySince.IsZero() {
		return 0
	}
	return max(now.Sub(s.proxySince), 0)
}
