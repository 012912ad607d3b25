package traffic

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
)

// slots is how finely a Split divides the key space: one slot per percent,
// since percents are whole numbers.
const slots = 100

// Split picks a revision for a request in O(1) without allocating, at
// random or sticky by key, according to integer percents.
//
// The key space (a uniform 64-bit value: random, or Hash of a sticky key)
// is cut into 100 equal slots and each revision owns as many slots as its
// percent. A pick maps the value to its slot with one multiply and reads
// the owner from a 100-byte table.
//
// Stickiness: the same key lands on the same revision for as long as the
// split is unchanged. When percents change, Rebalance keeps every slot
// whose owner does not shrink and moves only as many slots as the percents
// moved, so exactly the theoretical minimum share of keys — half the sum
// of |old − new| over the revisions — changes revision, for any change of
// any number of revisions. Where possible (always, for a change between
// revisions that sit next to each other, such as a rollout step from the
// newest old revision to the newest), the result is the contiguous layout
// NewSplit would build from scratch, so replicas that rebuilt from scratch
// agree with replicas that followed every step; MarshalJSON carries the
// exact layout for the other cases.
//
// Picking knows nothing of replicas: a key keeps its revision even while
// that revision has no replicas, and its request goes to the revision's
// front door, which holds it in the activator until a replica is up.
//
// The zero Split is empty: it has no revisions (Len is 0), so Index
// returns -1, Random and Sticky return "" (never a revision key), and
// Rebalance from it is a fresh start. NewSplit and Rebalance never return
// an empty Split, since their percents must sum to 100.
//
// A Split is immutable and safe for simultaneous use.
type Split struct {
	revs  []string
	pcts  []int
	owner [slots]uint8 // index into revs, per slot
}

// NewSplit builds a Split from shares whose percents sum to 100, laying the
// revisions out in order as contiguous ranges of the key space. Shares of
// the same revision are added up and revisions at 0% are left out.
func NewSplit(shares []Share) (*Split, error) {
	return (*Split)(nil).Rebalance(shares)
}

// Rebalance returns a Split with the new percents that moves as few keys
// as possible away from s (see Split). A nil or zero s is a fresh start,
// as NewSplit. s is unchanged.
func (s *Split) Rebalance(shares []Share) (*Split, error) {
	// Each share is checked as given, before merging, so that errors name
	// the caller's index and out-of-range percents cannot cancel out
	// (a 150% and a −50% share of one revision).
	sum := 0
	var errs []error
	for i, sh := range shares {
		if !validKey(sh.Revision) {
			errs = append(errs, &FieldError{Path: fmt.Sprintf("shares[%d].revision", i), Value: sh.Revision, Rule: keyRule, kind: ErrInvalidSpec})
		}
		if sh.Percent < 0 || sh.Percent > 100 {
			errs = append(errs, &FieldError{Path: fmt.Sprintf("shares[%d].percent", i), Value: sh.Percent, Rule: fmt.Sprintf("expected 0 <= %d <= 100", sh.Percent), kind: ErrInvalidSpec})
			continue
		}
		sum += sh.Percent
	}
	if sum != 100 {
		errs = append(errs, &FieldError{Path: "shares", Value: sum, Rule: fmt.Sprintf("percents sum to %d, want 100", sum), kind: ErrInvalidSpec})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	n := &Split{}
	for _, sh := range mergeShares(shares) {
		if sh.Percent > 0 {
			n.revs = append(n.revs, sh.Revision)
			n.pcts = append(n.pcts, sh.Percent)
		}
	}
	n.layout(s)
	return n, nil
}

// layout fills n.owner from n.pcts, keeping as much of prev as it can.
//
// Every revision keeps min(old, new) of its old slots; only the slots that
// shrinking or vanished revisions give up change hands, which is the
// minimum. Among the many minimal layouts it prefers, in order: slots that
// the fresh contiguous layout gives the same revision (so a change that the
// fresh layout can make minimally yields exactly the fresh layout), then
// keeping a shrinking revision's lowest slots, then giving a freed slot to
// the growing revision that owns a neighbouring slot, so ranges stay few.
func (n *Split) layout(prev *Split) {
	var fresh [slots]uint8
	at := 0
	for i, p := range n.pcts {
		for range p {
			fresh[at] = uint8(i)
			at++
		}
	}
	if prev == nil || len(prev.revs) == 0 {
		// No previous split (or the zero Split): a fresh start.
		n.owner = fresh
		return
	}
	// prevOwner[slot] is the new index of the slot's old revision, or -1.
	index := make(map[string]int, len(n.revs))
	for i, r := range n.revs {
		index[r] = i
	}
	var prevOwner [slots]int
	for sl := range slots {
		j, ok := index[prev.revs[prev.owner[sl]]]
		if !ok {
			j = -1
		}
		prevOwner[sl] = j
	}
	need := append([]int(nil), n.pcts...)
	var done [slots]bool
	assign := func(sl, j int) {
		n.owner[sl] = uint8(j)
		done[sl] = true
		need[j]--
	}
	// Keep old slots that the fresh layout agrees with.
	for sl := range slots {
		if j := prevOwner[sl]; j >= 0 && int(fresh[sl]) == j && need[j] > 0 {
			assign(sl, j)
		}
	}
	// Keep the rest of each revision's old slots, up to its new percent.
	for sl := range slots {
		if j := prevOwner[sl]; !done[sl] && j >= 0 && need[j] > 0 {
			assign(sl, j)
		}
	}
	// Hand freed slots to growing revisions: where the fresh layout puts
	// them first, then next to a slot they own.
	for sl := range slots {
		if j := int(fresh[sl]); !done[sl] && need[j] > 0 {
			assign(sl, j)
		}
	}
	for sl := range slots {
		if done[sl] {
			continue
		}
		j := -1
		if sl > 0 && done[sl-1] && need[n.owner[sl-1]] > 0 {
			j = int(n.owner[sl-1])
		} else if sl+1 < slots && done[sl+1] && need[n.owner[sl+1]] > 0 {
			j = int(n.owner[sl+1])
		} else {
			for k, v := range need {
				if v > 0 {
					j = k
					break
				}
			}
		}
		assign(sl, j)
	}
}

// Index returns the index (for Revision) of the revision that owns the
// uniform 64-bit value u: rand.Uint64() for a random pick, Hash(key) for a
// sticky one; -1 if the split is empty. O(1), no allocation.
func (s *Split) Index(u uint64) int {
	if len(s.revs) == 0 {
		return -1
	}
	sl, _ := bits.Mul64(u, slots)
	return int(s.owner[sl])
}

// Random picks a revision at random in proportion to the percents, from
// math/rand/v2's per-thread generator: no lock, no allocation. It returns
// "" if the split is empty.
func (s *Split) Random() string { return s.pick(rand.Uint64()) }

// Sticky picks the revision for key: Hash(key) through Index. It returns
// "" if the split is empty.
func (s *Split) Sticky(key string) string { return s.pick(Hash(key)) }

func (s *Split) pick(u uint64) string {
	if len(s.revs) == 0 {
		return ""
	}
	sl, _ := bits.Mul64(u, slots)
	return s.revs[s.owner[sl]]
}

// Len is the number of revisions with a share above 0%.
func (s *Split) Len() int { return len(s.revs) }

// Revision returns the key of revision i, 0 <= i < Len().
func (s *Split) Revision(i int) string { return s.revs[i] }

// Shares returns the revisions and their percents, in the order given to
// NewSplit or Rebalance, without 0% revisions.
func (s *Split) Shares() []Share {
	out := make([]Share, len(s.revs))
	for i := range s.revs {
		out[i] = Share{Revision: s.revs[i], Percent: s.pcts[i]}
	}
	return out
}

// Moved returns the percent of the key space that picks a different
// revision in next than in s: the share of sticky keys a change between
// the two moves. An empty split picks no revision, so between an empty
// split and another one every key moves (100), unless both are empty (0).
func (s *Split) Moved(next *Split) int {
	if len(s.revs) == 0 || len(next.revs) == 0 {
		if len(s.revs) == len(next.revs) {
			return 0
		}
		return slots
	}
	moved := 0
	for sl := range slots {
		if s.revs[s.owner[sl]] != next.revs[next.owner[sl]] {
			moved++
		}
	}
	return moved
}

// String formats the split as "a 90%, b 10%".
func (s *Split) String() string {
	var b strings.Builder
	writeShares(&b, s.Shares())
	return b.String()
}

type splitJSON struct {
	Shares []Share  `json:"shares"`
	Layout [][2]int `json:"layout"` // runs of [revision index, slots]
}

// MarshalJSON encodes the shares and the exact layout, as runs of
// [index into shares, number of slots]. A host that runs several routers
// can ship it with a route so that all of them pick alike even after
// changes that Rebalance could not make contiguous. An empty split encodes
// with no shares and no runs, which UnmarshalJSON rejects as it rejects
// every split whose percents do not sum to 100.
func (s *Split) MarshalJSON() ([]byte, error) {
	j := splitJSON{Shares: s.Shares(), Layout: [][2]int{}}
	for sl := 0; sl < slots && len(s.revs) > 0; {
		run := 1
		for sl+run < slots && s.owner[sl+run] == s.owner[sl] {
			run++
		}
		j.Layout = append(j.Layout, [2]int{int(s.owner[sl]), run})
		sl += run
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON wrote and checks it: the shares
// as in NewSplit, without 0% or repeated revisions, and a layout covering
// exactly 100 slots that gives each revision as many slots as its percent.
func (s *Split) UnmarshalJSON(data []byte) error {
	var j splitJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return fmt.Errorf("traffic: decoding split: %w", err)
	}
	seen := map[string]bool{}
	for i, sh := range j.Shares {
		if sh.Percent == 0 || seen[sh.Revision] {
			return fmt.Errorf("traffic: decoding split: shares[%d] (%q, %d%%) is repeated or at 0%%", i, sh.Revision, sh.Percent)
		}
		seen[sh.Revision] = true
	}
	n, err := NewSplit(j.Shares)
	if err != nil {
		return fmt.Errorf("traffic: decoding split: %w", err)
	}
	count := make([]int, len(n.revs))
	at := 0
	for i, run := range j.Layout {
		if run[0] < 0 || run[0] >= len(n.revs) || run[1] <= 0 || run[1] > slots-at {
			return fmt.Errorf("traffic: decoding split: layout[%d] = %v: want [index < %d, 1..%d slots]", i, run, len(n.revs), slots-at)
		}
		for range run[1] {
			n.owner[at] = uint8(run[0])
			at++
		}
		count[run[0]] += run[1]
	}
	if at != slots {
		return fmt.Errorf("traffic: decoding split: layout covers %d slots, want %d", at, slots)
	}
	for i, c := range count {
		if c != n.pcts[i] {
			return fmt.Errorf("traffic: decoding split: layout gives %q %d slots, its share is %d%%", n.revs[i], c, n.pcts[i])
		}
	}
	*s = *n
	return nil
}
