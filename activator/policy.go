package activator

import (
	"fmt"
	"strings"

	"github.com/servingkit/servingkit/balancer"
)

// Policy is how the activator picks a replica among those with a free slot:
// package balancer's policies, which the Serve path shares. Every policy
// falls back to scanning all replicas, so a request waits only when no
// assigned replica has a free slot.
type Policy = balancer.Policy

// The policies; see package balancer for each.
const (
	PolicyDefault        = balancer.PolicyDefault
	PolicyFirstAvailable = balancer.PolicyFirstAvailable
	PolicyRoundRobin     = balancer.PolicyRoundRobin
	// PolicyPowerOfTwo counts requests in flight from this activator.
	PolicyPowerOfTwo = balancer.PolicyPowerOfTwo
	PolicyRandom     = balancer.PolicyRandom
)

// ParsePolicy reads a policy name as Policy.String writes it
// ("round-robin", …), ignoring case and surrounding space. The empty
// string is PolicyDefault.
func ParsePolicy(s string) (Policy, error) {
	p, err := balancer.ParsePolicy(s)
	if err != nil {
		return PolicyDefault, fmt.Errorf("activator: unknown policy %q, want one of %s", strings.ToLower(strings.TrimSpace(s)), balancer.PolicyNames())
	}
	return p, nil
}

// DefaultPolicy returns the policy Knative's activator uses for container
// concurrency cc: power of two choices for 0 (unlimited), first available
// for 1–3, round robin above.
func DefaultPolicy(cc int) Policy { return balancer.DefaultPolicy(cc) }

// pick reserves a slot on a replica of s chosen by s's policy, or returns
// nil if none has a free slot. It does not allocate and takes no lock.
func (s *replicaSet) pick(rv *revision) *replica {
	i := balancer.Pick(s.cfg.Policy, s.slots, s.limit, &rv.cursor, rv.t.rand)
	if i < 0 {
		return nil
	}
	return s.replicas[i]
}
