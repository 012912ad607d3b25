package revision

import (
	"cmp"
	"slices"
)

// ChooseSubset returns n distinct members of from for target, chosen by
// rendezvous (highest-random-weight) hashing: every member gets a
// pseudo-random weight from hash(target, member) and the n heaviest win.
// The result is sorted, and does not alias from.
//
// The choice is consistent: the same inputs give the same subset in any
// process, and a small change to from moves the least possible. Removing a
// member outside the subset changes nothing; removing one inside replaces
// it with exactly one other; adding one changes at most one member. Targets
// spread evenly, so each member serves about n/len(from) of them. This is
// the job Knative's hash.ChooseSubset does for activator subsetting; the
// algorithm is different (and cheaper), so the subsets differ from
// Knative's.
//
// n <= 0 means all members, as Knative's NumActivators 0 does. Duplicates
// in from count once.
func ChooseSubset(from []string, n int, target string) []string {
	if n <= 0 || n >= len(from) {
		all := slices.Clone(from)
		slices.Sort(all)
		return slices.Compact(all)
	}
	type weighted struct {
		w uint64
		m string
	}
	ws := make([]weighted, len(from))
	for i, m := range from {
		ws[i] = weighted{rendezvousWeight(target, m), m}
	}
	// Heaviest first; equal weights (vanishingly rare, or duplicates) fall
	// back to the member, so the order is total and duplicates are adjacent.
	slices.SortFunc(ws, func(a, b weighted) int {
		if c := cmp.Compare(b.w, a.w); c != 0 {
			return c
		}
		return cmp.Compare(a.m, b.m)
	})
	out := make([]string, 0, n)
	for i, w := range ws {
		if i > 0 && w.m == ws[i-1].m {
			continue
		}
		if out = append(out, w.m); len(out) == n {
			break
		}
	}
	slices.Sort(out)
	return out
}

// rendezvousWeight hashes target and member with 64-bit FNV-1a (a separator
// byte between them, so "ab"+"c" and "a"+"bc" differ), then runs the
// SplitMix64 finalizer, because FNV alone mixes short, similar keys such as
// IP addresses poorly in the high bits the comparison depends on.
func rendezvousWeight(target, member string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(target); i++ {
		h ^= uint64(target[i])
		h *= prime64
	}
	h ^= 0xff
	h *= prime64
	for i := 0; i < len(member); i++ {
		h ^= uint64(member[i])
		h *= prime64
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
