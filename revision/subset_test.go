package revision

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ips(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d", i/200, i%200+1)
	}
	return out
}

func TestChooseSubsetBasics(t *testing.T) {
	from := []string{"c", "a", "b", "a", "d"}
	tests := []struct {
		name string
		n    int
		want []string
	}{
		{"zero means all, sorted and de-duplicated", 0, []string{"a", "b", "c", "d"}},
		{"negative means all", -1, []string{"a", "b", "c", "d"}},
		{"n at the distinct count means all", 4, []string{"a", "b", "c", "d"}},
		{"n above means all", 9, []string{"a", "b", "c", "d"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, ChooseSubset(from, tc.n, "rev")) })
	}
	assert.Empty(t, ChooseSubset(nil, 3, "rev"))
	for i := range 50 {
		// Duplicates count once also when choosing: n distinct members.
		dup := []string{"x", "y", "x", "y", "z", "x"}
		got := ChooseSubset(dup, 2, fmt.Sprint("rev-", i))
		assert.Len(t, got, 2)
		assert.NotEqual(t, got[0], got[1])
		assert.Equal(t, got, ChooseSubset([]string{"x", "y", "z"}, 2, fmt.Sprint("rev-", i)))
	}
	assert.Equal(t, []string{"c", "a", "b", "a", "d"}, from, "input untouched")
}

// TestChooseSubsetPicksHeaviest checks the definition against the weights
// directly: every chosen member outweighs every member left out.
func TestChooseSubsetPicksHeaviest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		all := ips(1 + r.IntN(40))
		n := 1 + r.IntN(len(all))
		target := fmt.Sprintf("ns/rev-%05d", trial)
		got := ChooseSubset(all, n, target)
		require.Len(t, got, min(n, len(all)))
		require.True(t, slices.IsSorted(got))
		minChosen := ^uint64(0)
		for _, m := range got {
			require.Contains(t, all, m)
			minChosen = min(minChosen, rendezvousWeight(target, m))
		}
		for _, m := range all {
			if !slices.Contains(got, m) {
				require.Less(t, rendezvousWeight(target, m), minChosen, "left-out %s outweighs a chosen one", m)
			}
		}
	}
}

func diff(a, b []string) (onlyA, onlyB int) {
	for _, x := range a {
		if !slices.Contains(b, x) {
			onlyA++
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			onlyB++
		}
	}
	return
}

// TestChooseSubsetStability checks the minimal-disruption property on many
// targets: removing an activator outside the subset changes nothing,
// removing one inside swaps exactly one, adding one swaps at most one.
func TestChooseSubsetStability(t *testing.T) {
	all := ips(12)
	const n = 4
	addedIn := 0
	for i := range 500 {
		target := fmt.Sprintf("default/svc-%d-00001", i)
		base := ChooseSubset(all, n, target)
		for _, gone := range all {
			rest := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == gone })
			got := ChooseSubset(rest, n, target)
			out, in := diff(base, got)
			if slices.Contains(base, gone) {
				assert.Equal(t, 1, out, "removing chosen %s from %s", gone, target)
				assert.Equal(t, 1, in)
			} else {
				assert.Equal(t, base, got, "removing unchosen %s from %s", gone, target)
			}
		}
		grown := ChooseSubset(append(slices.Clone(all), "10.9.9.9"), n, target)
		out, in := diff(base, grown)
		assert.LessOrEqual(t, out, 1)
		assert.Equal(t, out, in)
		addedIn += in
	}
	// A new member should win about n/(len+1) of the targets: 4/13 of 500 ≈ 154.
	assert.InDelta(t, 154, addedIn, 45, "the new activator takes its fair share")
}

func TestChooseSubsetBalance(t *testing.T) {
	all := ips(10)
	const n, targets = 3, 20000
	counts := map[string]int{}
	for i := range targets {
		for _, m := range ChooseSubset(all, n, fmt.Sprintf("ns-%d/rev-%05d", i%7, i)) {
			counts[m]++
		}
	}
	want := float64(n*targets) / float64(len(all)) // 6000
	for _, m := range all {
		assert.InEpsilon(t, want, float64(counts[m]), 0.05, "%s chosen %d times", m, counts[m])
	}
}

func TestRendezvousWeightSeparatesJoins(t *testing.T) {
	assert.NotEqual(t, rendezvousWeight("ab", "c"), rendezvousWeight("a", "bc"))
	assert.Equal(t, rendezvousWeight("ns/rev", "10.0.0.1"), rendezvousWeight("ns/rev", "10.0.0.1"))
}

func BenchmarkChooseSubset(b *testing.B) {
	all := ips(100)
	b.ReportAllocs()
	for b.Loop() {
		_ = ChooseSubset(all, 10, "default/hello-00001")
	}
}
