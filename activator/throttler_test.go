package activator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/balancer"
)

func acquireN(t *testing.T, th *Throttler, rev string, n int) []Lease {
	t.Helper()
	ls := make([]Lease, n)
	for i := range ls {
		l, err := th.Acquire(context.Background(), rev)
		require.NoError(t, err, "acquire %d", i)
		ls[i] = l
	}
	return ls
}

func perAddr(ls []Lease) map[string]int {
	out := map[string]int{}
	for _, l := range ls {
		out[l.Addr()]++
	}
	return out
}

func TestDefaultPolicy(t *testing.T) {
	for _, tc := range []struct {
		cc   int
		want Policy
	}{
		{0, PolicyPowerOfTwo},
		{1, PolicyFirstAvailable},
		{3, PolicyFirstAvailable},
		{4, PolicyRoundRobin},
		{1000, PolicyRoundRobin},
	} {
		t.Run(fmt.Sprint("cc=", tc.cc), func(t *testing.T) {
			assert.Equal(t, tc.want, DefaultPolicy(tc.cc))
			th := newTestThrottler(t, ThrottlerOptions{})
			require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: tc.cc}))
			st, _ := th.Status("rev")
			assert.Equal(t, tc.want, st.Config.Policy)
		})
	}
	t.Run("overridden per revision", func(t *testing.T) {
		th := newTestThrottler(t, ThrottlerOptions{})
		require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 2, Policy: PolicyRandom}))
		st, _ := th.Status("rev")
		assert.Equal(t, PolicyRandom, st.Config.Policy)
	})
}

func TestFirstAvailablePacks(t *testing.T) {
	th := newTestThrottler(t, ThrottlerOptions{})
	require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 3}))
	a := addrs(3)
	require.NoError(t, th.SetReplicas("rev", a))
	ls := acquireN(t, th, "rev", 7)
	assert.Equal(t, map[string]int{a[0]: 3, a[1]: 3, a[2]: 1}, perAddr(ls))
	ls[1].Release() // frees a slot on the first replica
	l := acquireN(t, th, "rev", 1)[0]
	assert.Equal(t, a[0], l.Addr(), "the first replica with room wins")
}

func TestRoundRobinRotates(t *testing.T) {
	th := newTestThrottler(t, ThrottlerOptions{})
	require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 10}))
	a := addrs(3)
	require.NoError(t, th.SetReplicas("rev", a))

	var seq []string
	for range 6 {
		l := acquireN(t, th, "rev", 1)[0]
		seq = append(seq, l.Addr())
		l.Release()
	}
	assert.Equal(t, []string{a[0], a[1], a[2], a[0], a[1], a[2]}, seq)

	held := acquireN(t, th, "rev", 30)
	assert.Equal(t, map[string]int{a[0]: 10, a[1]: 10, a[2]: 10}, perAddr(held))
	_, err := th.Acquire(ctxTimeout(t), "rev")
	assert.Error(t, err, "all 30 slots are taken")
	held[4].Release() // on a[1]
	l := acquireN(t, th, "rev", 1)[0]
	assert.Equal(t, a[1], l.Addr(), "round robin skips full replicas")
}

// Knative's round robin resumes after the replica it picked, so a full
// replica does not tilt the rotation towards the one after it: with a[0]
// full, a[1] and a[2] alternate.
func TestRoundRobinResumesAfterPick(t *testing.T) {
	th := newTestThrottler(t, ThrottlerOptions{})
	require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 100, Policy: PolicyRoundRobin}))
	a := addrs(3)
	require.NoError(t, th.SetReplicas("rev", a))
	// Fill a[0]: the first of every three picks lands on it while it has room.
	var full []Lease
	for len(full) < 100 {
		l := acquireN(t, th, "rev", 1)[0]
		if l.Addr() == a[0] {
			full = append(full, l)
		} else {
			l.Release()
		}
	}
	var seq []string
	for range 6 {
		l := acquireN(t, th, "rev", 1)[0]
		seq = append(seq, l.Addr())
		l.Release()
	}
	got := perAddr(nil)
	for _, addr := range seq {
		got[addr]++
	}
	assert.Equal(t, map[string]int{a[1]: 3, a[2]: 3}, got, "sequence %v", seq)
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

// newSeededThrottler returns a Throttler whose policies draw from a PCG
// seeded with seed, so that picks made from the test's goroutine, and the
// assertions on them, come out the same on every run.
func newSeededThrottler(t testing.TB, o ThrottlerOptions, seed uint64) *Throttler {
	t.Helper()
	th := newTestThrottler(t, o)
	th.rand = rand.New(rand.NewPCG(seed, seed)).Uint64
	return th
}

// Power of two choices keeps in-flight counts close: with 400 requests held
// on 4 replicas the spread (most loaded minus least loaded) averages about
// 1.3 requests, where uniform random choice averages about 20. The mean over
// 20 trials stays far from the bounds; the seeds make it the same mean on
// every run, so the test cannot fail by chance.
func TestPowerOfTwoBalancesInFlight(t *testing.T) {
	a := addrs(4)
	spread := func(p Policy) float64 {
		total := 0
		for trial := range 20 {
			th := newSeededThrottler(t, ThrottlerOptions{}, uint64(trial))
			require.NoError(t, th.SetRevision("rev", RevisionConfig{Policy: p}))
			require.NoError(t, th.SetReplicas("rev", a))
			counts := perAddr(acquireN(t, th, "rev", 400))
			lo, hi := 400, 0
			for _, addr := range a {
				lo, hi = min(lo, counts[addr]), max(hi, counts[addr])
			}
			total += hi - lo
		}
		return float64(total) / 20
	}
	assert.Less(t, spread(PolicyPowerOfTwo), 4.0)
	assert.Greater(t, spread(PolicyRandom), 8.0, "the yardstick: random spreads much wider")

	th := newSeededThrottler(t, ThrottlerOptions{}, 42)
	require.NoError(t, th.SetRevision("rev", RevisionConfig{})) // CC 0 → power of two
	require.NoError(t, th.SetReplicas("rev", a))
	held := acquireN(t, th, "rev", 400)
	// An emptied replica wins every draw it takes part in (half of them
	// with 4 replicas), so it takes more new requests than any other:
	// about 30 of 60 against about 10 each.
	for _, l := range held {
		if l.Addr() == a[2] {
			l.Release()
		}
	}
	got := perAddr(acquireN(t, th, "rev", 60))
	for _, addr := range a {
		if addr != a[2] {
			assert.Greater(t, got[a[2]], got[addr], "the emptied replica wins every draw it is in: %v", got)
		}
	}
}

func TestPowerOfTwoRespectsLimit(t *testing.T) {
	th := newTestThrottler(t, ThrottlerOptions{})
	require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 2, Policy: PolicyPowerOfTwo}))
	a := addrs(5)
	require.NoError(t, th.SetReplicas("rev", a))
	held := acquireN(t, th, "rev", 10)
	want := map[string]int{}
	for _, addr := range a {
		want[addr] = 2
	}
	assert.Equal(t, want, perAddr(held), "it falls back to any replica with room")
}

func TestRandomIsUniform(t *testing.T) {
	th := newSeededThrottler(t, ThrottlerOptions{}, 7)
	require.NoError(t, th.SetRevision("rev", RevisionConfig{Policy: PolicyRandom}))
	a := addrs(4)
	require.NoError(t, th.SetReplicas("rev", a))
	counts := map[string]int{}
	const n = 40000
	for range n {
		l := acquireN(t, th, "rev", 1)[0]
		counts[l.Addr()]++
		l.Release()
	}
	for _, addr := range a {
		// The standard deviation is about 87; 500 is more than 5 of them,
		// and the seed fixes the counts.
		assert.InDelta(t, n/4, counts[addr], 500, "counts %v", counts)
	}
}

// Every row of the "Measured capacities" table in the reference (Knative's
// calculateCapacity and assignSlice, pod routing). Knative shows CC = 0 as
// capacity 1 because its infinite breaker only knows open (1) and closed
// (0); here open is Unlimited.
func TestCapacityTable(t *testing.T) {
	for _, tc := range []struct {
		cc, pods      int
		subset        Subset
		wantAssigned  int
		wantCapacity  int
		wantAddrIndex []int // indices into the sorted addresses, if checked
	}{
		{cc: 10, pods: 3, subset: Subset{Index: -1}, wantAssigned: 3, wantCapacity: 30},
		{cc: 10, pods: 3, subset: Subset{Index: 0, Count: 2}, wantAssigned: 2, wantCapacity: 20, wantAddrIndex: []int{0, 2}},
		{cc: 10, pods: 3, subset: Subset{Index: 1, Count: 2}, wantAssigned: 1, wantCapacity: 10, wantAddrIndex: []int{1}},
		{cc: 1, pods: 5, subset: Subset{Index: 0, Count: 2}, wantAssigned: 3, wantCapacity: 3, wantAddrIndex: []int{0, 1, 4}},
		{cc: 1, pods: 5, subset: Subset{Index: 1, Count: 2}, wantAssigned: 2, wantCapacity: 2, wantAddrIndex: []int{2, 3}},
		{cc: 10, pods: 20, subset: Subset{Index: 0, Count: 3}, wantAssigned: 7, wantCapacity: 70},
		{cc: 10, pods: 20, subset: Subset{Index: 2, Count: 3}, wantAssigned: 6, wantCapacity: 60},
		{cc: 10, pods: 2, subset: Subset{Index: 3, Count: 5}, wantAssigned: 1, wantCapacity: 10, wantAddrIndex: []int{1}},
		{cc: 0, pods: 3, subset: Subset{Index: 1, Count: 2}, wantAssigned: 3, wantCapacity: Unlimited},
	} {
		name := fmt.Sprintf("cc=%d pods=%d na=%d idx=%d", tc.cc, tc.pods, tc.subset.Count, tc.subset.Index)
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.wantCapacity, Capacity(tc.cc, tc.pods, tc.subset))

			th := newTestThrottler(t, ThrottlerOptions{Subset: tc.subset})
			require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: tc.cc}))
			a := addrs(tc.pods)
			require.NoError(t, th.SetReplicas("rev", a))
			st, _ := th.Status("rev")
			assert.Len(t, st.Assigned, tc.wantAssigned)
			assert.Equal(t, tc.wantCapacity, st.Capacity)
			if tc.wantAddrIndex != nil {
				sorted := slices.Sorted(slices.Values(a))
				var want []string
				for _, i := range tc.wantAddrIndex {
					want = append(want, sorted[i])
				}
				sort.Strings(want)
				assert.Equal(t, want, st.Assigned)
			}
			if tc.cc > 0 {
				// The throttler enforces it: exactly capacity requests get in.
				held := acquireN(t, th, "rev", tc.wantCapacity)
				_, err := th.Acquire(ctxTimeout(t), "rev")
				assert.Error(t, err)
				for _, l := range held {
					l.Release()
				}
			}
		})
	}
	t.Run("per-revision subset overrides the default", func(t *testing.T) {
		th := newTestThrottler(t, ThrottlerOptions{Subset: Subset{Index: 0, Count: 2}})
		require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 10, Subset: Subset{Index: 0, Count: 1}}))
		require.NoError(t, th.SetReplicas("rev", addrs(3)))
		st, _ := th.Status("rev")
		assert.Equal(t, 30, st.Capacity)
	})
	t.Run("SetSubset recomputes every revision", func(t *testing.T) {
		th := newTestThrottler(t, ThrottlerOptions{})
		require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 10}))
		require.NoError(t, th.SetReplicas("rev", addrs(3)))
		require.NoError(t, th.SetSubset(Subset{Index: 1, Count: 2}))
		st, _ := th.Status("rev")
		assert.Equal(t, 10, st.Capacity)
		assert.EqualError(t, th.SetSubset(Subset{Index: 2, Count: 2}), "activator: Subset.Index = 2, must be in [-1, 2) (-1 means unknown)")
	})
	t.Run("no replicas", func(t *testing.T) {
		assert.Equal(t, 0, Capacity(10, 0, Subset{}))
		assert.Equal(t, 0, Capacity(0, 0, Subset{}))
	})
}

// The shares of N activators cover every replica; with no more activators
// than replicas they do not overlap, so their capacities sum to CC × n.
func TestSubsetSharesSumToWhole(t *testing.T) {
	for n := 0; n <= 40; n++ {
		for na := 1; na <= 12; na++ {
			checkShares(t, n, na)
		}
	}
}

func checkShares(t *testing.T, n, na int) {
	t.Helper()
	seen := make([]int, n)
	total := 0
	for idx := range na {
		s := Subset{Index: idx, Count: na}
		share := s.Share(n)
		require.True(t, slices.IsSorted(share), "n=%d na=%d idx=%d share %v", n, na, idx, share)
		for _, i := range share {
			require.True(t, i >= 0 && i < n, "n=%d na=%d idx=%d: index %d out of range", n, na, idx, i)
			seen[i]++
		}
		total += Capacity(7, n, s)
		if na > n && n > 0 {
			require.Len(t, share, 1, "more activators than replicas: one each")
		}
	}
	for i, c := range seen {
		require.Positive(t, c, "n=%d na=%d: replica %d unassigned", n, na, i)
		if na <= n {
			require.Equal(t, 1, c, "n=%d na=%d: replica %d assigned %d times", n, na, i, c)
		}
	}
	if na <= n {
		require.Equal(t, 7*n, total, "n=%d na=%d: capacities", n, na)
	}
}

func FuzzSubsetShares(f *testing.F) {
	f.Add(uint8(3), uint8(2))
	f.Add(uint8(20), uint8(3))
	f.Add(uint8(2), uint8(5))
	f.Add(uint8(0), uint8(1))
	f.Fuzz(func(t *testing.T, n, na uint8) {
		if na == 0 {
			return
		}
		checkShares(t, int(n), int(na))
	})
}

func TestRevisionConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  RevisionConfig
		want []string
	}{
		{"zero is valid", RevisionConfig{}, nil},
		{"no timeout is valid", RevisionConfig{Timeout: NoTimeout}, nil},
		{"everything wrong", RevisionConfig{ContainerConcurrency: -1, Policy: 9, MaxWaiting: -2, MaxWait: -time.Second, Timeout: -2 * time.Second, Subset: Subset{Index: -2, Count: 3}}, []string{
			"RevisionConfig.ContainerConcurrency = -1, must be in [0, 2147483647] (0 means unlimited)",
			"RevisionConfig.Policy = 9, must be one of default, first-available, round-robin, power-of-two, random",
			"RevisionConfig.MaxWaiting = -2, must be in [0, 2147483647] (0 means 10000)",
			"RevisionConfig.MaxWait = -1s, must be >= 0 (0 means no limit)",
			"RevisionConfig.Timeout = -2s, must be >= 0 (0 means 5m0s) or NoTimeout",
			"RevisionConfig.Subset.Index = -2, must be in [-1, 3) (-1 means unknown)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			th := newTestThrottler(t, ThrottlerOptions{})
			assert.ErrorContains(t, th.SetRevision("rev", tc.cfg), `SetRevision("rev")`)
			_, known := th.Status("rev")
			assert.False(t, known, "a rejected configuration creates nothing")
		})
	}
}

func TestSetReplicasValidate(t *testing.T) {
	th := newTestThrottler(t, ThrottlerOptions{})
	require.NoError(t, th.SetRevision("rev", RevisionConfig{}))
	err := th.SetReplicas("rev", []string{"10.0.0.1:80", "nohost", ":80", "10.0.0.1:80"})
	require.Error(t, err)
	for _, w := range []string{
		`SetReplicas("rev")`,
		`addrs[1] = "nohost": want host:port`,
		`addrs[2] = ":80": want host:port with both parts`,
		`addrs[3] = "10.0.0.1:80": duplicate of addrs[0]`,
	} {
		assert.Contains(t, err.Error(), w)
	}
	st, _ := th.Status("rev")
	assert.Equal(t, 0, st.Listed, "a rejected list changes nothing")
	assert.ErrorIs(t, th.SetReplicas("other", nil), ErrUnknownRevision)
	_, err = th.Acquire(context.Background(), "other")
	assert.ErrorIs(t, err, ErrUnknownRevision)
}

func TestParsePolicy(t *testing.T) {
	for p := PolicyDefault; p.Valid(); p++ {
		got, err := ParsePolicy(" " + p.String() + " ")
		require.NoError(t, err)
		assert.Equal(t, p, got)
	}
	got, err := ParsePolicy("Round-Robin")
	require.NoError(t, err)
	assert.Equal(t, PolicyRoundRobin, got)
	_, err = ParsePolicy("fastest")
	assert.EqualError(t, err, `activator: unknown policy "fastest", want one of default, first-available, round-robin, power-of-two, random`)
	assert.Equal(t, "Policy(42)", Policy(42).String())
}

func FuzzParsePolicy(f *testing.F) {
	for _, n := range strings.Split(balancer.PolicyNames(), ", ") {
		f.Add(n)
	}
	f.Add("ROUND-robin ")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		require.True(t, p.Valid())
		again, err := ParsePolicy(p.String())
		require.NoError(t, err)
		require.Equal(t, p, again)
	})
}

// Raising the concurrency hands the new room to waiting requests at once;
// lowering it lets requests in flight finish and admits no more.
func TestConcurrencyChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newTestThrottler(t, ThrottlerOptions{})
		require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1}))
		require.NoError(t, th.SetReplicas("rev", addrs(1)))
		held := acquireN(t, th, "rev", 1)
		got := make(chan Lease, 3)
		for range 3 {
			go func() {
				l, err := th.Acquire(context.Background(), "rev")
				assert.NoError(t, err)
				got <- l
			}()
		}
		synctest.Wait()
		require.Equal(t, 3, th.Waiting("rev"))
		require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 3}))
		synctest.Wait()
		assert.Equal(t, 1, th.Waiting("rev"))
		assert.Len(t, got, 2)

		require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1}))
		held[0].Release()
		(<-got).Release()
		synctest.Wait()
		assert.Equal(t, 1, th.Waiting("rev"), "one still in flight fills the lowered limit")
		(<-got).Release()
		synctest.Wait()
		assert.Equal(t, 0, th.Waiting("rev"))
		(<-got).Release()
		st, _ := th.Status("rev")
		assert.Equal(t, 0, st.InFlight)
	})
}

// A replica unlisted and listed again while its old requests still run
// keeps its count, so it still never exceeds CC.
func TestRelistedReplicaKeepsCount(t *testing.T) {
	th := newTestThrottler(t, ThrottlerOptions{})
	require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 2}))
	a := addrs(1)
	require.NoError(t, th.SetReplicas("rev", a))
	held := acquireN(t, th, "rev", 2)
	require.NoError(t, th.SetReplicas("rev", nil))
	require.NoError(t, th.SetReplicas("rev", a))
	_, err := th.Acquire(ctxTimeout(t), "rev")
	assert.Error(t, err, "still two in flight on the replica")
	held[0].Release()
	l := acquireN(t, th, "rev", 1)
	held[1].Release()
	l[0].Release()
	st, _ := th.Status("rev")
	assert.Equal(t, 0, st.InFlight)
}

// InFlight counts a replica's leases while it is listed and after it is
// unlisted, until they are released: a host stops the replica only then.
func TestInFlightOfUnlistedReplica(t *testing.T) {
	th := newTestThrottler(t, ThrottlerOptions{})
	require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 2}))
	a := addrs(2)
	require.NoError(t, th.SetReplicas("rev", a[:1]))
	held := acquireN(t, th, "rev", 2)
	assert.Equal(t, int64(2), th.InFlight("rev", a[0]))
	require.NoError(t, th.SetReplicas("rev", a[1:]))
	assert.Equal(t, int64(2), th.InFlight("rev", a[0]), "unlisted, its requests still in flight")
	held[0].Release()
	assert.Equal(t, int64(1), th.InFlight("rev", a[0]))
	held[1].Release()
	assert.Equal(t, int64(0), th.InFlight("rev", a[0]))
	assert.Equal(t, int64(0), th.InFlight("rev", a[1]))
	assert.Equal(t, int64(0), th.InFlight("nope", a[0]), "unknown revision")
}

// A revision removed while requests run and created again under the same
// key: its replicas still never exceed CC, and the old requests' releases
// hand their slots to the new revision's waiters.
func TestRecreatedRevisionKeepsCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newTestThrottler(t, ThrottlerOptions{})
		require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1}))
		a := addrs(2)
		require.NoError(t, th.SetReplicas("rev", a))
		old := acquireN(t, th, "rev", 2)
		assert.True(t, th.RemoveRevision("rev"))

		require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1}))
		require.NoError(t, th.SetReplicas("rev", a[:1]))
		st, _ := th.Status("rev")
		assert.Equal(t, 2, st.InFlight, "the old requests still count")
		got := make(chan Lease, 1)
		go func() {
			l, err := th.Acquire(context.Background(), "rev")
			assert.NoError(t, err)
			got <- l
		}()
		synctest.Wait()
		require.Equal(t, 1, th.Waiting("rev"), "a[0] still has the old request in flight")

		old[1].Release() // on a[1], not listed in the new revision
		synctest.Wait()
		assert.Equal(t, 1, th.Waiting("rev"))
		old[0].Release()
		synctest.Wait()
		l := <-got
		assert.Equal(t, a[0], l.Addr(), "the old release woke the new revision's waiter")
		l.Release()
		st, _ = th.Status("rev")
		assert.Equal(t, 0, st.InFlight)

		// Orphans whose requests finished are forgotten.
		assert.True(t, th.RemoveRevision("rev"))
		th.mu.Lock()
		assert.Empty(t, th.orphans)
		th.mu.Unlock()
	})
}

func TestDoubleReleasePanics(t *testing.T) {
	th := newTestThrottler(t, ThrottlerOptions{})
	require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 2}))
	require.NoError(t, th.SetReplicas("rev", addrs(1)))
	l := acquireN(t, th, "rev", 1)[0]
	l.Release()
	assert.PanicsWithValue(t, "activator: Lease.Release called more than once or on a zero Lease", l.Release)
}

// SetRevisionSubset changes the share alone and keeps the rest of the
// revision's config.
func TestSetRevisionSubset(t *testing.T) {
	th := newTestThrottler(t, ThrottlerOptions{})
	require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 2, MaxWaiting: 7}))
	require.NoError(t, th.SetReplicas("rev", addrs(4)))
	require.NoError(t, th.SetRevisionSubset("rev", Subset{Index: 1, Count: 2}))
	st, _ := th.Status("rev")
	assert.Equal(t, addrs(4)[2:], st.Assigned, "the second half")
	assert.Equal(t, 4, st.Capacity)
	assert.Equal(t, 7, st.Config.MaxWaiting)
	assert.ErrorIs(t, th.SetRevisionSubset("other", Subset{}), ErrUnknownRevision)
	assert.ErrorContains(t, th.SetRevisionSubset("rev", Subset{Index: 2, Count: 2}), "Subset.Index = 2")
}
