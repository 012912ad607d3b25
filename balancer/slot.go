package balancer

import (
	"math"
	"sync/atomic"
)

// A slot's state word holds the requests in flight to its replica and, in a
// high bit, whether the replica was closed. Keeping both in one word lets a
// reservation check the limit and the closing in one compare-and-swap: once
// the bit is set no new request can reserve the replica, while the ones in
// flight release normally.
const (
	closedBit = int64(1) << 62
	countMask = closedBit - 1

	// Unlimited is the per-replica limit that never refuses a
	// reservation; in-flight counts stay far below it.
	Unlimited = int64(math.MaxInt32)
)

// Slot counts one replica's requests in flight and says whether the
// replica still takes new ones. The zero value is an open slot with nothing
// in flight. Every method is lock-free, does not allocate, and is safe for
// simultaneous use.
type Slot struct {
	state atomic.Int64
}

// TryReserve takes one of the replica's limit slots if fewer than limit
// requests are in flight and the slot is open, and reports whether it did.
func (s *Slot) TryReserve(limit int64) bool {
	for {
		v := s.state.Load()
		if v&closedBit != 0 || v&countMask >= limit {
			return false
		}
		if s.state.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// Release gives back a slot taken by TryReserve. It returns false, and
// changes nothing, if no request was in flight: a double release, which
// the caller should treat as a bug.
func (s *Slot) Release() bool {
	if s.state.Add(-1)&countMask == countMask {
		s.state.Add(1)
		return false
	}
	return true
}

// InFlight returns the requests in flight.
func (s *Slot) InFlight() int64 { return s.state.Load() & countMask }

// Close stops new reservations; requests in flight finish and release.
func (s *Slot) Close() {
	for {
		v := s.state.Load()
		if v&closedBit != 0 || s.state.CompareAndSwap(v, v|closedBit) {
			return
		}
	}
}

// Open lets a closed slot take reservations again, keeping its count.
func (s *Slot) Open() {
	for {
		v := s.state.Load()
		if v&closedBit == 0 || s.state.CompareAndSwap(v, v&^closedBit) {
			return
		}
	}
}

// Closed reports whether Close was called (and Open not since).
func (s *Slot) Closed() bool { return s.state.Load()&closedBit != 0 }
