package revision

import "fmt"

// Mode is where a revision's traffic goes: through the activator (Proxy) or
// straight to the replicas (Serve). It is Knative's ServerlessService
// operation mode.
type Mode uint8

// Modes. The zero value is Proxy, the safe one: the activator holds
// requests until there is capacity.
const (
	// Proxy sends requests to the activator.
	Proxy Mode = iota
	// Serve sends requests to the replicas.
	Serve
)

// String returns "Proxy" or "Serve", as Knative spells them.
func (m Mode) String() string {
	switch m {
	case Proxy:
		return "Proxy"
	case Serve:
		return "Serve"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// WantMode is the mode the autoscaler's decision asks for: Serve when it
// wants replicas (desired > 0) and there is enough spare capacity to absorb
// a burst without the activator (excess burst capacity >= 0); Proxy
// otherwise, including while the desired scale is unknown (-1). This is
// Knative's rule in the PodAutoscaler reconciler.
func WantMode(desired, excessBurstCapacity int32) Mode {
	if desired > 0 && excessBurstCapacity >= 0 {
		return Serve
	}
	return Proxy
}

// EffectiveMode is the mode actually used, given the wanted one and what is
// ready: Proxy when no replica is ready (there is nothing to serve from),
// then Serve when no activator is ready (there is nothing to proxy through),
// the later rule winning when both hold. This is Knative's rule in the
// ServerlessService reconciler.
func EffectiveMode(want Mode, readyReplicas, readyActivators int) Mode {
	m := want
	if readyReplicas <= 0 {
		m = Proxy
	}
	if readyActivators <= 0 {
		m = Serve
	}
	return m
}
