package activator

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestThrottlerAllocs pins "Acquire and Release do not allocate when a slot
// is free", for each default policy (container concurrency 1, 10 and
// unlimited).
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
}

// TestHeaderResolverAllocs pins "HeaderResolver does not allocate".
func TestHeaderResolverAllocs(t *testing.T) {
	r := request("default/hello-00001", 0)
	res := HeaderResolver(RevisionHeader)
	var got string
	assert.Zero(t, testing.AllocsPerRun(1000, func() { got, _ = res.Revision(r) }))
	assert.Equal(t, "default/hello-00001", got)
}
