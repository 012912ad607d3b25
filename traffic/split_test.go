package traffic

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Critical values of the chi-square distribution at p = 0.001.
const (
	chi2df1  = 10.828
	chi2df3  = 16.266
	chi2df99 = 148.230
)

func chiSquare(observed []int, expected []float64) float64 {
	x := 0.0
	for i, o := range observed {
		d := float64(o) - expected[i]
		x += d * d / expected[i]
	}
	return x
}

func mustSplit(t testing.TB, prev *Split, shares ...Share) *Split {
	t.Helper()
	s, err := prev.Rebalance(shares)
	require.NoError(t, err)
	return s
}

func sh(rev string, pct int) Share { return Share{Revision: rev, Percent: pct} }

func TestSplitRandomChiSquare(t *testing.T) {
	tests := []struct {
		name     string
		shares   []Share
		critical float64
	}{
		{"90/10", []Share{sh("a", 90), sh("b", 10)}, chi2df1},
		{"50/30/15/5", []Share{sh("a", 50), sh("b", 30), sh("c", 15), sh("d", 5)}, chi2df3},
	}
	const n = 100_000
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSplit(t, nil, tc.shares...)
			// A fixed seed: the statistic is the same on every run, so the
			// test cannot flake; it fails only if picking is biased.
			src := rand.New(rand.NewPCG(1, 2))
			counts := make([]int, s.Len())
			for range n {
				counts[s.Index(src.Uint64())]++
			}
			expected := make([]float64, s.Len())
			for i, sh := range s.Shares() {
				expected[i] = n * float64(sh.Percent) / 100
			}
			x := chiSquare(counts, expected)
			t.Logf("counts %v, chi-square %.3f (critical %.3f)", counts, x, tc.critical)
			assert.Less(t, x, tc.critical)
		})
	}
}

func TestSplitRandomUsesEveryRevision(t *testing.T) {
	s := mustSplit(t, nil, sh("a", 50), sh("b", 50))
	seen := map[string]int{}
	for range 1000 {
		seen[s.Random()]++
	}
	// P(fewer than 350 of 1000 at 50%) is below 1e-20.
	assert.Greater(t, seen["a"], 350)
	assert.Greater(t, seen["b"], 350)
}

func TestHashSpreadsSequentialKeys(t *testing.T) {
	const n = 100_000
	var perSlot [slots]int
	split := mustSplit(t, nil, sh("a", 90), sh("b", 10))
	var ab [2]int
	for i := range n {
		k := fmt.Sprintf("session-%d", i)
		u := Hash(k)
		sl := int((u >> 32) * slots >> 32)
		perSlot[sl]++
		ab[split.Index(u)]++
	}
	expected := make([]float64, slots)
	for i := range expected {
		expected[i] = n / slots
	}
	x := chiSquare(perSlot[:], expected)
	assert.Less(t, x, chi2df99, "keys per slot")
	x = chiSquare(ab[:], []float64{0.9 * n, 0.1 * n})
	assert.Less(t, x, chi2df1, "sticky 90/10: %v", ab)
	assert.Equal(t, Hash("session-1"), Hash("session-1"))
	assert.NotEqual(t, Hash(""), Hash("\x00"))
	assert.NotEqual(t, Hash("12345678"), Hash("123456789"))
}

// minMoved is the theoretical minimum share of keys (in percent) that must
// change revision when the split goes from a to b: half the L1 distance.
func minMoved(a, b []Share) int {
	pa, pb := map[string]int{}, map[string]int{}
	for _, s := range a {
		pa[s.Revision] += s.Percent
	}
	for _, s := range b {
		pb[s.Revision] += s.Percent
	}
	moved := 0
	for r, p := range pa {
		if p > pb[r] {
			moved += p - pb[r]
		}
	}
	return moved
}

// keysMoved measures, over n fixed keys, the fraction that picks a different
// revision in b than in a.
func keysMoved(a, b *Split, n int) float64 {
	moved := 0
	for i := range n {
		k := fmt.Sprintf("user-%d", i)
		if a.Sticky(k) != b.Sticky(k) {
			moved++
		}
	}
	return float64(moved) / float64(n)
}

func TestStickyMovesOnlyTheMovedShare(t *testing.T) {
	tests := []struct {
		name        string
		from, to    []Share
		contiguous  int // what a fresh contiguous layout would move
		wantMinimum int
	}{{
		name: "10% from a to b", from: []Share{sh("a", 90), sh("b", 10)}, to: []Share{sh("a", 80), sh("b", 20)},
		contiguous: 10, wantMinimum: 10,
	}, {
		name: "10% from a to c past b", from: []Share{sh("a", 40), sh("b", 30), sh("c", 30)}, to: []Share{sh("a", 30), sh("b", 30), sh("c", 40)},
		contiguous: 20, wantMinimum: 10,
	}, {
		name: "a new revision takes from two", from: []Share{sh("a", 50), sh("b", 50)}, to: []Share{sh("a", 40), sh("c", 20), sh("b", 40)},
		contiguous: 20, wantMinimum: 20,
	}, {
		name: "10% from first to last of four", from: []Share{sh("a", 25), sh("b", 25), sh("c", 25), sh("d", 25)}, to: []Share{sh("a", 15), sh("b", 25), sh("c", 25), sh("d", 35)},
		contiguous: 30, wantMinimum: 10,
	}, {
		name: "a revision leaves, the others absorb it", from: []Share{sh("a", 25), sh("b", 50), sh("c", 25)}, to: []Share{sh("a", 50), sh("c", 50)},
		contiguous: 50, wantMinimum: 50,
	}, {
		name: "unchanged split moves nothing", from: []Share{sh("a", 33), sh("b", 33), sh("c", 34)}, to: []Share{sh("a", 33), sh("b", 33), sh("c", 34)},
		contiguous: 0, wantMinimum: 0,
	}}
	const keys = 100_000
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			from := mustSplit(t, nil, tc.from...)
			to := mustSplit(t, from, tc.to...)
			require.Equal(t, tc.wantMinimum, minMoved(tc.from, tc.to))
			assert.Equal(t, tc.wantMinimum, from.Moved(to), "slots moved")
			assert.Equal(t, tc.contiguous, from.Moved(mustSplit(t, nil, tc.to...)), "a fresh layout moves")
			frac := keysMoved(from, to, keys)
			// The keys' hashes are fixed, so this is deterministic; the
			// band is 5 standard deviations of a binomial share.
			want := float64(tc.wantMinimum) / 100
			tol := 5*sqrt(want*(1-want)/keys) + 1e-9
			t.Logf("moved %.4f of keys, theoretical minimum %.2f", frac, want)
			assert.InDelta(t, want, frac, tol)
		})
	}
}

func sqrt(x float64) float64 {
	z := x
	if z == 0 {
		return 0
	}
	for range 50 {
		z = (z + x/z) / 2
	}
	return z
}

// TestRebalanceProperty drives random sequences of splits — revisions
// joining, leaving, growing and shrinking — and checks each step against a
// dumb reference: slot counts equal percents, the moved share equals the
// theoretical minimum, and when the fresh contiguous layout is itself
// minimal the result is that layout.
func TestRebalanceProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for seq := range 300 {
		var prevShares []Share
		var prev *Split
		for step := range 20 {
			shares := randomShares(rng, prevShares)
			next, err := prev.Rebalance(shares)
			require.NoError(t, err)
			counts := map[string]int{}
			for sl := range slots {
				counts[next.revs[next.owner[sl]]]++
			}
			for _, s := range shares {
				require.Equal(t, s.Percent, counts[s.Revision], "seq %d step %d: slots of %s", seq, step, s.Revision)
			}
			if prev != nil {
				require.Equal(t, minMoved(prevShares, shares), prev.Moved(next), "seq %d step %d: %v -> %v", seq, step, prevShares, shares)
				fresh := mustSplit(t, nil, shares...)
				if prev.Moved(fresh) == minMoved(prevShares, shares) {
					require.Equal(t, fresh.owner, next.owner, "seq %d step %d: fresh layout is minimal but not chosen", seq, step)
				}
			}
			prev, prevShares = next, shares
		}
	}
}

// randomShares returns 1–6 revisions summing to 100, mostly reusing those
// of prev so that revisions persist, grow and shrink.
func randomShares(rng *rand.Rand, prev []Share) []Share {
	var names []string
	for _, s := range prev {
		if rng.IntN(5) > 0 {
			names = append(names, s.Revision)
		}
	}
	for len(names) == 0 || (len(names) < 6 && rng.IntN(3) == 0) {
		names = append(names, fmt.Sprintf("r%d", rng.IntN(1000)))
	}
	names = uniq(names)
	cuts := make([]int, len(names)-1)
	for i := range cuts {
		cuts[i] = rng.IntN(101)
	}
	sortInts(cuts)
	out := make([]Share, 0, len(names))
	last := 0
	for i, n := range names {
		end := 100
		if i < len(cuts) {
			end = cuts[i]
		}
		out = append(out, Share{Revision: n, Percent: end - last})
		last = end
	}
	return out
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// A Knative rollout moves traffic from the newest old revision to the newest
// one; every step is then a move between neighbours, so the layout stays the
// contiguous one and replicas that rebuilt from scratch agree.
func TestRebalanceRolloutStaysContiguous(t *testing.T) {
	steps := [][]Share{
		{sh("a", 100)},
		{sh("a", 99), sh("b", 1)},
		{sh("a", 80), sh("b", 20)},
		{sh("a", 80), sh("b", 19), sh("c", 1)}, // c arrives mid-rollout and takes 1% from b
		{sh("a", 80), sh("b", 10), sh("c", 10)},
		{sh("a", 70), sh("c", 30)},
		{sh("c", 100)},
	}
	var prev *Split
	for i, shares := range steps {
		next := mustSplit(t, prev, shares...)
		assert.Equal(t, mustSplit(t, nil, shares...).owner, next.owner, "step %d", i)
		if prev != nil {
			assert.Equal(t, minMoved(steps[i-1], shares), prev.Moved(next), "step %d", i)
		}
		prev = next
	}
}

func TestSplitErrors(t *testing.T) {
	_, err := NewSplit([]Share{sh("a", 90)})
	assert.EqualError(t, err, "traffic: shares = 90: percents sum to 90, want 100")
	_, err = NewSplit([]Share{sh("", 50), sh("b", 150)})
	assert.Equal(t, []string{
		`traffic: shares[0].revision = "": ` + keyRule,
		`traffic: shares[1].percent = 150: expected 0 <= 150 <= 100`,
		`traffic: shares = 50: percents sum to 50, want 100`,
	}, fieldErrors(t, err))

	// Percents are checked per share as given, before shares of one
	// revision are added up: out-of-range values cannot cancel out, and
	// the index is the caller's.
	_, err = NewSplit([]Share{sh("a", 150), sh("a", -50)})
	assert.Equal(t, []string{
		`traffic: shares[0].percent = 150: expected 0 <= 150 <= 100`,
		`traffic: shares[1].percent = -50: expected 0 <= -50 <= 100`,
		`traffic: shares = 0: percents sum to 0, want 100`,
	}, fieldErrors(t, err))
	_, err = NewSplit([]Share{sh("a", 50), sh("b", 50), sh("a", 101)})
	assert.Equal(t, []string{
		`traffic: shares[2].percent = 101: expected 0 <= 101 <= 100`,
	}, fieldErrors(t, err))
}

// The zero Split has no layout to keep: Rebalance starts afresh.
func TestZeroSplitRebalance(t *testing.T) {
	var z Split
	s, err := z.Rebalance([]Share{sh("a", 60), sh("b", 40)})
	require.NoError(t, err)
	assert.Equal(t, mustSplit(t, nil, sh("a", 60), sh("b", 40)).owner, s.owner)
}

// The zero Split is an empty split: every method answers, picks name no
// revision, and every key moves between it and a non-empty split.
func TestZeroSplitIsEmpty(t *testing.T) {
	var z Split
	full := mustSplit(t, nil, sh("a", 60), sh("b", 40))
	assert.Equal(t, 0, z.Len())
	assert.Equal(t, -1, z.Index(0))
	assert.Equal(t, -1, z.Index(math.MaxUint64))
	assert.Equal(t, "", z.Random())
	assert.Equal(t, "", z.Sticky("user-1"))
	assert.Empty(t, z.Shares())
	assert.Equal(t, "", z.String())
	assert.Equal(t, 0, z.Moved(&Split{}))
	assert.Equal(t, 100, z.Moved(full))
	assert.Equal(t, 100, full.Moved(&z))

	data, err := json.Marshal(&z)
	require.NoError(t, err)
	assert.JSONEq(t, `{"shares":[],"layout":[]}`, string(data))
	var back Split
	assert.EqualError(t, json.Unmarshal(data, &back), "traffic: decoding split: traffic: shares = 0: percents sum to 0, want 100")
}

func TestSplitMergesAndDropsZero(t *testing.T) {
	s := mustSplit(t, nil, sh("a", 40), sh("z", 0), sh("b", 20), sh("a", 40))
	assert.Equal(t, []Share{sh("a", 80), sh("b", 20)}, s.Shares())
	assert.Equal(t, 2, s.Len())
	assert.Equal(t, "b", s.Revision(1))
	assert.Equal(t, "a 80%, b 20%", s.String())
}

func TestSplitJSONRoundTrip(t *testing.T) {
	a := mustSplit(t, nil, sh("a", 40), sh("b", 30), sh("c", 30))
	b := mustSplit(t, a, sh("a", 30), sh("b", 30), sh("c", 40)) // not contiguous
	data, err := json.Marshal(b)
	require.NoError(t, err)
	var back Split
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, b.owner, back.owner)
	assert.Equal(t, b.Shares(), back.Shares())

	for name, in := range map[string]string{
		"short layout":     `{"shares":[{"revision":"a","percent":100}],"layout":[[0,99]]}`,
		"wrong count":      `{"shares":[{"revision":"a","percent":50},{"revision":"b","percent":50}],"layout":[[0,60],[1,40]]}`,
		"bad index":        `{"shares":[{"revision":"a","percent":100}],"layout":[[1,100]]}`,
		"overlong run":     `{"shares":[{"revision":"a","percent":100}],"layout":[[0,101]]}`,
		"zero share":       `{"shares":[{"revision":"a","percent":100},{"revision":"b","percent":0}],"layout":[[0,100]]}`,
		"repeated":         `{"shares":[{"revision":"a","percent":50},{"revision":"a","percent":50}],"layout":[[0,100]]}`,
		"bad sum":          `{"shares":[{"revision":"a","percent":90}],"layout":[[0,100]]}`,
		"not JSON":         `{"shares":`,
		"negative run len": `{"shares":[{"revision":"a","percent":100}],"layout":[[0,-1]]}`,
	} {
		t.Run(name, func(t *testing.T) {
			var s Split
			assert.Error(t, json.Unmarshal([]byte(in), &s))
		})
	}
}

func FuzzSplitJSON(f *testing.F) {
	f.Add([]byte(`{"shares":[{"revision":"a","percent":40},{"revision":"b","percent":60}],"layout":[[0,40],[1,60]]}`))
	f.Add([]byte(`{"shares":[{"revision":"a","percent":100}],"layout":[[0,100]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Split
		if json.Unmarshal(data, &s) != nil {
			return
		}
		out, err := json.Marshal(&s)
		require.NoError(t, err)
		var back Split
		require.NoError(t, json.Unmarshal(out, &back))
		require.Equal(t, s.owner, back.owner)
		_ = s.Sticky(string(data))
	})
}

func BenchmarkPick(b *testing.B) {
	s, err := NewSplit([]Share{sh("a", 90), sh("b", 10)})
	if err != nil {
		b.Fatal(err)
	}
	const key = "4f1c2a9e8b7d6c5f4f1c2a9e8b7d6c5f" // a 32-character session id
	b.Run("random/sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = s.Random()
		}
	})
	b.Run("random/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = s.Random()
			}
		})
	})
	b.Run("sticky/sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = s.Sticky(key)
		}
	})
	b.Run("sticky/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = s.Sticky(key)
			}
		})
	})
	// The naive baseline: a linear walk over cumulative percents.
	shares := s.Shares()
	naive := func(u int) string {
		for _, sh := range shares {
			if u < sh.Percent {
				return sh.Revision
			}
			u -= sh.Percent
		}
		return shares[len(shares)-1].Revision
	}
	b.Run("naive-linear/sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = naive(rand.IntN(100))
		}
	})
}

func BenchmarkRebalance(b *testing.B) {
	from, _ := NewSplit([]Share{sh("a", 40), sh("b", 30), sh("c", 30)})
	to := []Share{sh("a", 30), sh("b", 30), sh("c", 40)}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = from.Rebalance(to)
	}
}
