package activator

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestThrottlerAllocs pins "Acquire and Release do not allocate when a slot
// is free", for each default policy (container concurrency 1, 10 and
// unlimited), and "pick does not allocate" for every policy.
func TestThrottlerAllocs(t *testing.T) {
	ctx := context.Background()
	for _, cc := range []int{1, 10, 0} {
		th := newTestThrottler(t, ThrottlerOptions{})
		require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: cc}))
		require.NoError(t, th.SetReplicas("rev", addrs(10)))
		allocs := testing.AllocsPerRun(1000, func() {
			l, err := th.Acquire(ctx, "rev")
			if err != nil {
				panic(err)
			}
			l.Release()
		})
		assert.Zero(t, allocs, "container concurrency %d (%v)", cc, DefaultPolicy(cc))
	}
	// Each policy's pick and release (BENCHMARKS' policy table), at 1, 10
	// and 100 replicas.
	for _, p := range []Policy{PolicyFirstAvailable, PolicyRoundRobin, PolicyPowerOfTwo, PolicyRandom} {
		for _, n := range []int{1, 10, 100} {
			th := newTestThrottler(t, ThrottlerOptions{})
			require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: 10, Policy: p}))
			require.NoError(t, th.SetReplicas("rev", addrs(n)))
			rv := th.lookup("rev")
			set := rv.set.Load()
			assert.Zero(t, testing.AllocsPerRun(1000, func() { set.pick(rv).release() }), "policy %v, %d replicas", p, n)
		}
	}
}

// TestHeaderResolverAllocs pins "HeaderResolver does not allocate".
func TestHeaderResolverAllocs(t *testing.T) {
	r := request("default/hello-00001", 0)
	res := HeaderResolver(RevisionHeader)
	var got string
	assert.Zero(t, testing.AllocsPerRun(1000, func() { got, _ = res.Revision(r) }))
	assert.Equal(t, "default/hello-00001", got)
}
