package activator

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
)

// Policy is how the activator picks a replica among those with a free slot.
// Every policy falls back to scanning all replicas, so a request waits only
// when no assigned replica has a free slot.
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
	// one with fewer requests in flight from this activator (ties broken at
	// random).
	PolicyPowerOfTwo
	// PolicyRandom starts at a random replica and takes the first with a
	// free slot.
	PolicyRandom

	numPolicies
)

var policyNames = [numPolicies]string{"default", "first-available", "round-robin", "power-of-two", "random"}

func (p Policy) valid() bool { return p >= 0 && p < numPolicies }

// String returns the policy's name as ParsePolicy reads it.
func (p Policy) String() string {
	if p.valid() {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

func policyList() string { return strings.Join(policyNames[:], ", ") }

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
	return PolicyDefault, fmt.Errorf("activator: unknown policy %q, want one of %s", s, policyList())
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

// pick reserves a slot on a replica of s chosen by s's policy, or returns
// nil if none has a free slot. It does not allocate and takes no lock.
func (s *replicaSet) pick(rv *revision) *replica {
	rs := s.replicas
	n := len(rs)
	switch n {
	case 0:
		return nil
	case 1:
		if rs[0].reserve(s.limit) {
			return rs[0]
		}
		return nil
	}
	start := 0
	switch s.cfg.Policy {
	case PolicyRoundRobin:
		c := rv.cursor.Add(1) - 1
		r, skipped := s.scan(int(c % uint64(n)))
		if r != nil && skipped > 0 {
			// Resume after the replica taken, as Knative does, so that a
			// full replica does not send its turns to the one after it.
			// If a concurrent pick moved the cursor meanwhile, it stays.
			rv.cursor.CompareAndSwap(c+1, c+1+uint64(skipped))
		}
		return r
	case PolicyRandom:
		start = randIntN(rv.t.randUint64(), n)
	case PolicyPowerOfTwo:
		if r := s.pickTwo(rv.t.randUint64()); r != nil {
			return r
		}
		start = randIntN(rv.t.randUint64(), n)
	}
	r, _ := s.scan(start)
	return r
}

// scan takes the first replica with a free slot from start on, wrapping,
// and says how many full ones it skipped.
func (s *replicaSet) scan(start int) (*replica, int) {
	rs := s.replicas
	for i := range rs {
		j := start + i
		if j >= len(rs) {
			j -= len(rs)
		}
		if rs[j].reserve(s.limit) {
			return rs[j], i
		}
	}
	return nil, 0
}

// pickTwo is the power-of-two-choices draw over at least two replicas: the
// less loaded of two distinct random ones, else the other if the less
// loaded one is full. It returns nil if both are full. x is the draw's
// uniform random value.
func (s *replicaSet) pickTwo(x uint64) *replica {
	rs := s.replicas
	n := uint64(len(rs))
	// One random draw gives both indices (multiply-shift on each 32-bit
	// half) and the tie-break (the lowest bit, which barely moves j).
	i, j := uint64(0), uint64(1)
	if n > 2 {
		i, j = (x>>32)*n>>32, (x&0xffffffff)*(n-1)>>32
		if j >= i {
			j++
		}
	}
	a, b := rs[i], rs[j]
	la, lb := a.inFlight(), b.inFlight()
	if lb < la || (lb == la && x&1 == 0) {
		a, b = b, a
	}
	if a.reserve(s.limit) {
		return a
	}
	if b.reserve(s.limit) {
		return b
	}
	return nil
}

// randIntN maps the uniform value x to [0, n) by multiply-shift; its bias,
// n/2⁶⁴, is far below anything a balancing policy could notice.
func randIntN(x uint64, n int) int {
	hi, _ := bits.Mul64(x, uint64(n))
	return int(hi)
}

// randUint64 is the policies' randomness: math/rand/v2's per-thread
// generator (no lock, no allocation), unless a test gave the Throttler a
// seeded source, which makes picks repeatable when made from one goroutine.
func (t *Throttler) randUint64() uint64 {
	if t.rand != nil {
		return t.rand()
	}
	return rand.Uint64()
}
