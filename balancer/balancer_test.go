package balancer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTest(t testing.TB, cfg Config, addrs ...string) *Balancer {
	t.Helper()
	b, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, b.SetReplicas(addrs))
	return b
}

func seeded(seed uint64) func() uint64 { return rand.New(rand.NewPCG(seed, seed)).Uint64 }

func TestParsePolicy(t *testing.T) {
	n := 0
	for p := PolicyDefault; p.Valid(); p++ {
		got, err := ParsePolicy(" " + strings.ToUpper(p.String()) + " ")
		require.NoError(t, err)
		assert.Equal(t, p, got)
		n++
	}
	assert.Equal(t, 5, n, "policies compared")
	got, err := ParsePolicy("")
	require.NoError(t, err)
	assert.Equal(t, PolicyDefault, got)
	_, err = ParsePolicy("fastest")
	assert.EqualError(t, err, `balancer: unknown policy "fastest", want one of default, first-available, round-robin, power-of-two, random`)
	assert.Equal(t, "Policy(42)", Policy(42).String())
}

func TestConfigValidate(t *testing.T) {
	err := Config{Policy: 9, ContainerConcurrency: -1}.Validate()
	assert.ErrorContains(t, err, "balancer: Config.Policy = 9, must be one of default,")
	assert.ErrorContains(t, err, "balancer: Config.ContainerConcurrency = -1, must be in [0, 2147483647]")
	_, err = New(Config{ContainerConcurrency: -1})
	assert.Error(t, err)
	require.NoError(t, Config{}.Validate())
}

func TestDefaultPolicyResolved(t *testing.T) {
	for _, tc := range []struct {
		cc   int
		want Policy
	}{{0, PolicyPowerOfTwo}, {1, PolicyFirstAvailable}, {3, PolicyFirstAvailable}, {4, PolicyRoundRobin}, {100, PolicyRoundRobin}} {
		b := newTest(t, Config{ContainerConcurrency: tc.cc})
		assert.Equal(t, tc.want, b.Policy(), "cc %d", tc.cc)
	}
	b := newTest(t, Config{Policy: PolicyRandom, ContainerConcurrency: 1})
	assert.Equal(t, PolicyRandom, b.Policy())
}

func TestSetReplicasValidate(t *testing.T) {
	b := newTest(t, Config{}, "a:1")
	err := b.SetReplicas([]string{"b:1", "", "b:1"})
	assert.ErrorContains(t, err, "empty address")
	assert.ErrorContains(t, err, `address "b:1" listed twice`)
	assert.Equal(t, []string{"a:1"}, b.Replicas(), "a rejected list changes nothing")
}

func TestNoReplicas(t *testing.T) {
	b := newTest(t, Config{})
	_, ok := b.Pick()
	assert.False(t, ok)
	assert.Panics(t, Reservation{}.Release)
}

// First available packs up to the limit, then overflows to the less loaded
// of two instead of refusing: the Serve path never waits.
func TestFirstAvailablePacksThenOverflows(t *testing.T) {
	b := newTest(t, Config{ContainerConcurrency: 2}, "c:1", "a:1", "b:1")
	var got []string
	for range 6 {
		r, ok := b.Pick()
		require.True(t, ok)
		got = append(got, r.Addr())
	}
	assert.Equal(t, []string{"a:1", "a:1", "b:1", "b:1", "c:1", "c:1"}, got)
	r, ok := b.Pick()
	require.True(t, ok, "a full set still picks")
	assert.Equal(t, int64(3), b.InFlight(r.Addr()))
	r.Release()
	assert.Equal(t, int64(2), b.InFlight(r.Addr()))
}

func TestRoundRobinRotates(t *testing.T) {
	b := newTest(t, Config{Policy: PolicyRoundRobin}, "a:1", "b:1", "c:1")
	var got []string
	for range 6 {
		r, _ := b.Pick()
		got = append(got, r.Addr())
		r.Release()
	}
	assert.Equal(t, []string{"a:1", "b:1", "c:1", "a:1", "b:1", "c:1"}, got)
}

// Power of two choices keeps the in-flight counts within one of each other
// when requests only arrive (the worst case for random picks).
func TestPowerOfTwoBalances(t *testing.T) {
	b := newTest(t, Config{}, "a:1", "b:1", "c:1", "d:1")
	b.rand = seeded(1)
	for range 400 {
		_, ok := b.Pick()
		require.True(t, ok)
	}
	lo, hi, sum := int64(1<<62), int64(0), int64(0)
	for _, a := range b.Replicas() {
		lo, hi, sum = min(lo, b.InFlight(a)), max(hi, b.InFlight(a)), sum+b.InFlight(a)
	}
	assert.Equal(t, int64(400), sum)
	assert.LessOrEqual(t, hi-lo, int64(3), "spread after 400 picks over 4 replicas")
}

// A replica that stays keeps its count across updates; one removed takes
// no new requests, and still counts its requests in flight until they
// release (a host waits for that before it stops the replica).
func TestSetReplicasKeepsCounts(t *testing.T) {
	b := newTest(t, Config{ContainerConcurrency: 1}, "a:1", "b:1")
	ra, _ := b.Pick()
	rb, _ := b.Pick()
	require.Equal(t, []string{"a:1", "b:1"}, []string{ra.Addr(), rb.Addr()})
	require.NoError(t, b.SetReplicas([]string{"b:1", "c:1"}))
	assert.Equal(t, int64(1), b.InFlight("b:1"), "b kept its count")
	assert.Equal(t, int64(1), b.InFlight("a:1"), "a is no longer listed, its request still in flight")
	r, _ := b.Pick()
	assert.Equal(t, "c:1", r.Addr(), "first available skips the full b")
	require.NoError(t, b.SetReplicas([]string{"b:1", "c:1", "d:1"}))
	assert.Equal(t, int64(1), b.InFlight("a:1"), "still counted across another update")
	ra.Release() // released after removal: no panic
	assert.Equal(t, int64(0), b.InFlight("a:1"))
	rb.Release()
	r.Release()
	assert.Equal(t, int64(0), b.InFlight("b:1"))
	require.NoError(t, b.SetReplicas([]string{"b:1"}))
	assert.Equal(t, int64(0), b.InFlight("a:1"), "forgotten once idle")
}

// A replica removed with a request in flight and listed again keeps that
// request's count, so it never gets more than its limit.
func TestSetReplicasRelistedKeepsCount(t *testing.T) {
	b := newTest(t, Config{ContainerConcurrency: 1}, "a:1")
	ra, _ := b.Pick()
	require.NoError(t, b.SetReplicas([]string{"b:1"}))
	require.NoError(t, b.SetReplicas([]string{"a:1", "b:1"}))
	assert.Equal(t, int64(1), b.InFlight("a:1"))
	r, _ := b.Pick()
	assert.Equal(t, "b:1", r.Addr(), "a is at its limit")
	ra.Release()
	r.Release()
	assert.Equal(t, int64(0), b.InFlight("a:1"))
}

func TestPickRelease0Allocs(t *testing.T) {
	for _, p := range []Policy{PolicyFirstAvailable, PolicyRoundRobin, PolicyPowerOfTwo, PolicyRandom} {
		b := newTest(t, Config{Policy: p, ContainerConcurrency: 10}, "a:1", "b:1", "c:1", "d:1")
		allocs := testing.AllocsPerRun(1000, func() {
			r, ok := b.Pick()
			if !ok {
				panic("no pick")
			}
			r.Release()
		})
		assert.Zero(t, allocs, "policy %v", p)
	}
}

func TestConcurrentPicksAndUpdates(t *testing.T) {
	b := newTest(t, Config{ContainerConcurrency: 2}, "a:1", "b:1", "c:1")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				if g == 0 && i%100 == 0 {
					_ = b.SetReplicas([]string{"a:1", fmt.Sprintf("x:%d", i%3), "c:1"})
					continue
				}
				if r, ok := b.Pick(); ok {
					r.Release()
				}
			}
		})
	}
	wg.Wait()
	for _, a := range b.Replicas() {
		assert.Zero(t, b.InFlight(a), a)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		addrs := make([]string, n)
		for i := range addrs {
			addrs[i] = fmt.Sprintf("10.0.0.%d:8012", i)
		}
		for _, p := range []Policy{PolicyFirstAvailable, PolicyRoundRobin, PolicyPowerOfTwo} {
			bl := newTest(b, Config{Policy: p, ContainerConcurrency: 100}, addrs...)
			b.Run(fmt.Sprintf("%v/replicas=%d", p, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					r, _ := bl.Pick()
					r.Release()
				}
			})
			b.Run(fmt.Sprintf("%v/replicas=%d/parallel", p, n), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						r, _ := bl.Pick()
						r.Release()
					}
				})
			})
		}
	}
}

func TestPickExcept(t *testing.T) {
	b := newTest(t, Config{ContainerConcurrency: 1}, "a:1", "b:1", "c:1")
	r, ok := b.PickExcept([]string{"a:1"})
	require.True(t, ok)
	assert.Equal(t, "b:1", r.Addr(), "first available after the excluded one")
	r2, ok := b.PickExcept([]string{"a:1"})
	require.True(t, ok)
	assert.Equal(t, "c:1", r2.Addr())
	r3, ok := b.PickExcept([]string{"a:1"})
	require.True(t, ok, "past the limit it overflows")
	assert.NotEqual(t, "a:1", r3.Addr())
	_, ok = b.PickExcept([]string{"a:1", "b:1", "c:1"})
	assert.False(t, ok)
	for _, x := range []Reservation{r, r2, r3} {
		x.Release()
	}
}
