package balancer

import (
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
)

// Pick reserves a slot, with at most limit requests in flight each, on one
// of slots chosen by policy p (resolved: PolicyDefault is taken as
// PolicyPowerOfTwo), and returns its index, or -1 if none is free.
//
// cursor is the round-robin position, shared by the picks over one set of
// replicas. rnd, if not nil, replaces math/rand/v2's generator (tests pass a
// seeded one to make picks repeatable from one goroutine). Pick takes no
// lock and does not allocate.
func Pick(p Policy, slots []*Slot, limit int64, cursor *atomic.Uint64, rnd func() uint64) int {
	n := len(slots)
	switch n {
	case 0:
		return -1
	case 1:
		if slots[0].TryReserve(limit) {
			return 0
		}
		return -1
	}
	start := 0
	switch p {
	case PolicyFirstAvailable:
	case PolicyRoundRobin:
		c := cursor.Add(1) - 1
		i, skipped := scan(slots, limit, int(c%uint64(n)))
		if i >= 0 && skipped > 0 {
			// Resume after the replica taken, as Knative does, so that a
			// full replica does not send its turns to the one after it.
			// If a concurrent pick moved the cursor meanwhile, it stays.
			cursor.CompareAndSwap(c+1, c+1+uint64(skipped))
		}
		return i
	case PolicyRandom:
		start = randIntN(draw(rnd), n)
	default: // PolicyPowerOfTwo, PolicyDefault
		if i := pickTwo(slots, limit, draw(rnd)); i >= 0 {
			return i
		}
		start = randIntN(draw(rnd), n)
	}
	i, _ := scan(slots, limit, start)
	return i
}

func draw(rnd func() uint64) uint64 {
	if rnd != nil {
		return rnd()
	}
	return rand.Uint64()
}

// scan takes the first slot with room from start on, wrapping, and says
// how many full ones it skipped.
func scan(slots []*Slot, limit int64, start int) (int, int) {
	for i := range slots {
		j := start + i
		if j >= len(slots) {
			j -= len(slots)
		}
		if slots[j].TryReserve(limit) {
			return j, i
		}
	}
	return -1, 0
}

// pickTwo is the power-of-two-choices draw over at least two slots: the
// less loaded of two distinct random ones, else the other if the less
// loaded one is full. It returns -1 if both are full. x is the draw's
// uniform random value.
func pickTwo(slots []*Slot, limit int64, x uint64) int {
	i, j := two(len(slots), x)
	li, lj := slots[i].InFlight(), slots[j].InFlight()
	if lj < li || (lj == li && x&1 == 0) {
		i, j = j, i
	}
	if slots[i].TryReserve(limit) {
		return i
	}
	if slots[j].TryReserve(limit) {
		return j
	}
	return -1
}

// two maps x to two distinct indices in [0, n), n >= 2: one random draw
// gives both (multiply-shift on each 32-bit half); the lowest bit, which
// barely moves j, is left for a tie-break.
func two(n int, x uint64) (int, int) {
	if n == 2 {
		return 0, 1
	}
	u := uint64(n)
	i, j := (x>>32)*u>>32, (x&0xffffffff)*(u-1)>>32
	if j >= i {
		j++
	}
	return int(i), int(j)
}

// randIntN maps the uniform value x to [0, n) by multiply-shift; its bias,
// n/2⁶⁴, is far below anything a balancing policy could notice.
func randIntN(x uint64, n int) int {
	hi, _ := bits.Mul64(x, uint64(n))
	return int(hi)
}
