package balancer

import (
	"fmt"
	"strings"
)

// Policy is how a replica is picked among those with a free slot. Every
// policy falls back to scanning all replicas, so a pick fails only when no
// replica has a free slot.
type Policy int

const (
	// PolicyDefault is Knative's rule: PolicyPowerOfTwo when container
	// concurrency is unlimited, PolicyFirstAvailable when it is 1–3,
	// PolicyRoundRobin above. See DefaultPolicy.
	PolicyDefault Policy = iota
	// PolicyFirstAvailable takes the first replica, in address order, with
	// a free slot. It packs requests onto few replicas, which suits very low
	// concurrency limits.
	PolicyFirstAvailable
	// PolicyRoundRobin starts each pick one replica after the one the last
	// pick took and takes the first with a free slot, as Knative does.
	PolicyRoundRobin
	// PolicyPowerOfTwo draws two distinct replicas at random and takes the
	// one with fewer requests in flight (ties broken at random).
	PolicyPowerOfTwo
	// PolicyRandom starts at a random replica and takes the first with a
	// free slot.
	PolicyRandom

	numPolicies
)

var policyNames = [numPolicies]string{"default", "first-available", "round-robin", "power-of-two", "random"}

// Valid reports whether p is one of the policies above.
func (p Policy) Valid() bool { return p >= 0 && p < numPolicies }

// String returns the policy's name as ParsePolicy reads it.
func (p Policy) String() string {
	if p.Valid() {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// PolicyNames returns the policies' names, comma-separated, for error
// messages.
func PolicyNames() string { return strings.Join(policyNames[:], ", ") }

// ParsePolicy reads a policy name as String writes it ("round-robin", …),
// ignoring case and surrounding space. The empty string is PolicyDefault.
func ParsePolicy(s string) (Policy, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return PolicyDefault, nil
	}
	for i, n := range policyNames {
		if s == n {
			return Policy(i), nil
		}
	}
	return PolicyDefault, fmt.Errorf("balancer: unknown policy %q, want one of %s", s, PolicyNames())
}

// DefaultPolicy returns the policy Knative's activator uses for container
// concurrency cc: power of two choices for 0 (unlimited), first available
// for 1–3, round robin above.
func DefaultPolicy(cc int) Policy {
	switch {
	case cc == 0:
		return PolicyPowerOfTwo
	case cc <= 3:
		return PolicyFirstAvailable
	default:
		return PolicyRoundRobin
	}
}

// Resolve returns p, or DefaultPolicy(cc) for PolicyDefault.
func (p Policy) Resolve(cc int) Policy {
	if p == PolicyDefault {
		return DefaultPolicy(cc)
	}
	return p
}
