package autoscaler_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/autoscaler/autoscalertest"
	"github.com/servingkit/servingkit/stats"
)

// dyingLease fails every call once its autoscaler is dead, as a lease
// would for a process that can no longer reach it.
type dyingLease struct {
	autoscaler.Lease
	dead *atomic.Bool
}

var errDead = errors.New("dead")

func (l dyingLease) TryAcquire(ctx context.Context, bucket, holder string) (string, error) {
	if l.dead.Load() {
		return "", errDead
	}
	return l.Lease.TryAcquire(ctx, bucket, holder)
}

// node is one autoscaler process: a Runner and its Shards.
type node struct {
	runner *autoscaler.Runner
	shards *autoscaler.Shards
	dead   atomic.Bool
	stop   context.CancelFunc
	done   sync.WaitGroup
}

type cluster struct {
	t       *testing.T
	lease   *autoscaler.MemoryLease
	backend *autoscalertest.FakeScaler
	mu      sync.Mutex
	nodes   map[string]*node
}

func newCluster(t *testing.T) *cluster {
	lease, err := autoscaler.NewMemoryLease(nil, 3*time.Second)
	require.NoError(t, err)
	return &cluster{t: t, lease: lease, backend: autoscalertest.NewFakeScaler(), nodes: map[string]*node{}}
}

// start runs an autoscaler named name with buckets buckets.
func (c *cluster) start(name string, buckets int) *node {
	n := &node{}
	var err error
	n.runner, err = autoscaler.NewRunner(autoscaler.Options{Scaler: c.backend, Ready: c.backend})
	require.NoError(c.t, err)
	n.shards, err = autoscaler.NewShards(autoscaler.ShardsConfig{
		Runner: n.runner, Lease: dyingLease{c.lease, &n.dead}, Holder: name, Buckets: buckets,
		Forward: func(holder string) stats.Sink {
			c.mu.Lock()
			defer c.mu.Unlock()
			return stats.SinkFunc(c.nodes[holder].shards.Deliver)
		},
	})
	require.NoError(c.t, err)
	c.mu.Lock()
	c.nodes[name] = n
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.done.Go(func() { _ = n.runner.Run(ctx) })
	n.done.Go(func() { _ = n.shards.Run(ctx) })
	c.t.Cleanup(func() { cancel(); n.done.Wait() })
	return n
}

func (n *node) scales(rev string) bool {
	_, ok := n.runner.Decision(rev)
	return ok
}

func TestShardsOneOwnerPerRevision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t)
		a := c.start("a", 4)
		synctest.Wait()
		b := c.start("b", 4)
		synctest.Wait()
		assert.Equal(t, []int{0, 1, 2, 3}, a.shards.OwnedBuckets(), "the first autoscaler takes every free bucket")
		assert.Empty(t, b.shards.OwnedBuckets())

		revs := make([]string, 20)
		for i := range revs {
			revs[i] = fmt.Sprintf("ns/rev-%02d", i)
			for _, n := range []*node{a, b} {
				require.NoError(t, n.shards.Add(revs[i], cc10(t, nil)))
			}
		}
		// a stops cleanly: it releases its buckets and b takes them at
		// its next renewal.
		a.stop()
		a.done.Wait()
		time.Sleep(autoscaler.DefaultRenewInterval)
		synctest.Wait()
		assert.Equal(t, []int{0, 1, 2, 3}, b.shards.OwnedBuckets())
		for _, r := range revs {
			assert.False(t, a.scales(r), r)
			assert.True(t, b.scales(r), r)
			owner, ok := b.shards.Owner(r)
			assert.True(t, ok)
			assert.Equal(t, "b", owner)
		}
		assert.ErrorIs(t, b.shards.Add(revs[0], cc10(t, nil)), autoscaler.ErrRevisionExists)
		assert.True(t, b.shards.Remove(revs[0]))
		assert.False(t, b.scales(revs[0]))
		assert.False(t, b.shards.Remove(revs[0]))
	})
}

// Stats pushed to an autoscaler that does not own the revision reach the
// owner, which scales from zero on them.
func TestShardsForwardStatsToOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t)
		a := c.start("a", 2)
		synctest.Wait()
		b := c.start("b", 2)
		synctest.Wait()
		spec := cc10(t, nil)
		spec.InitialScale = 0
		for _, n := range []*node{a, b} {
			require.NoError(t, n.shards.Add(rev, spec))
		}
		require.True(t, a.shards.Owns(rev))
		require.NoError(t, b.shards.Send(context.Background(), []stats.Message{{Revision: rev, Stat: stats.Stat{Source: "activator", Concurrency: 1}}}))
		synctest.Wait()
		require.NoError(t, a.runner.Flush(context.Background()))
		assert.Equal(t, []int{1}, c.backend.CallsFor(rev), "the owner scaled from zero on the forwarded stat")

		// Forwarded stats are never forwarded again.
		err := b.shards.Deliver(context.Background(), []stats.Message{{Revision: rev, Stat: stats.Stat{Concurrency: 1}}})
		assert.ErrorIs(t, err, autoscaler.ErrNotOwner)
		assert.ErrorContains(t, err, "1 forwarded stats for revisions b does not own")
	})
}

// The owner dies under load: another autoscaler takes the revision over
// within the lease's expiry and a renewal, keeps scaling it (up at once),
// and does not scale it down while its windows refill, though they are
// empty at first.
func TestShardsFailOverUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t)
		a := c.start("a", 1)
		synctest.Wait()
		b := c.start("b", 1)
		for _, n := range []*node{a, b} {
			require.NoError(t, n.shards.Add(rev, cc10(t, nil)))
		}
		// An activator pushes its load to b every second, whoever owns.
		var load atomic.Int64
		load.Store(21) // three replicas at target 7
		ctx, cancel := context.WithCancel(context.Background())
		var pusher sync.WaitGroup
		pusher.Go(func() {
			for ctx.Err() == nil {
				_ = b.shards.Send(ctx, []stats.Message{{Revision: rev, Stat: stats.Stat{Source: "activator", Concurrency: float64(load.Load())}}})
				time.Sleep(time.Second)
			}
		})
		defer func() { cancel(); pusher.Wait() }()

		time.Sleep(10 * time.Second)
		synctest.Wait()
		require.Equal(t, 3, c.backend.CallsFor(rev)[len(c.backend.CallsFor(rev))-1], "a scaled to 3")
		require.True(t, a.scales(rev))

		a.dead.Store(true)
		died := time.Now()
		calls := len(c.backend.CallsFor(rev))
		for !b.scales(rev) {
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(died)
		assert.LessOrEqual(t, took, 3*time.Second+autoscaler.DefaultRenewInterval, "take-over after the lease expired")
		assert.False(t, a.scales(rev), "a stopped deciding when its lease failed")

		// More load: b scales up at once, with windows a few seconds old.
		load.Store(35)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		got := c.backend.CallsFor(rev)[calls:]
		require.NotEmpty(t, got)
		assert.Equal(t, 5, got[len(got)-1], "b scaled up")

		// Load drops to nothing: no scale-down within a stable window of
		// the take-over, then it goes.
		// Until b's windows saw the new load it may confirm a's 3 (the load
		// at take-over); from its first 5 on, nothing lower.
		load.Store(0)
		time.Sleep(60*time.Second - time.Since(died) - time.Second)
		synctest.Wait()
		floor := 3
		for _, n := range c.backend.CallsFor(rev)[calls:] {
			assert.GreaterOrEqual(t, n, floor, "no scale-down before a full stable window of data")
			floor = max(floor, n)
		}
		assert.Equal(t, 5, floor, "b reached 5 before the load dropped")
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		all := c.backend.CallsFor(rev)
		assert.Less(t, all[len(all)-1], 5, "scaled down once the windows were full")
	})
}

func TestShardsConfigValidate(t *testing.T) {
	err := autoscaler.ShardsConfig{Buckets: 1001, RenewInterval: -1}.Validate()
	for _, want := range []string{
		"ShardsConfig.Runner is nil", "ShardsConfig.Lease is nil", "ShardsConfig.Holder is empty",
		"ShardsConfig.Buckets = 1001, must be in [0, 1000]", "ShardsConfig.RenewInterval = -1ns, must be >= 0",
	} {
		assert.ErrorContains(t, err, want)
	}
	_, err = autoscaler.NewMemoryLease(nil, 0)
	assert.ErrorContains(t, err, "ttl = 0s, must be > 0")
}

func TestBucketIsStable(t *testing.T) {
	// The same key hashes to the same bucket in every process: pinned.
	assert.Equal(t, autoscaler.Bucket("default/hello-00001", 10), autoscaler.Bucket("default/hello-00001", 10))
	seen := map[int]int{}
	for i := range 1000 {
		seen[autoscaler.Bucket(fmt.Sprintf("ns/rev-%d", i), 10)]++
	}
	assert.Len(t, seen, 10)
	for b, n := range seen {
		assert.InDelta(t, 100, n, 40, "bucket %d", b)
	}
	assert.Equal(t, "autoscaler-bucket-03-of-10", autoscaler.BucketName(3, 10))
	assert.Zero(t, autoscaler.Bucket("x", 0))
}

// Adopt makes no initial-scale call (a revision taken over at zero stays
// there) and holds scale-down for a stable window: here the previous
// owner's scale-up lands after the take-over, so the decider does not start
// in panic, and the first seconds of low load would otherwise scale the
// new replicas away.
func TestRunnerAdoptHoldsScaleDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		backend := autoscalertest.NewFakeScaler()
		r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: backend, Ready: backend})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = r.Run(ctx) })
		defer func() { cancel(); wg.Wait() }()

		require.NoError(t, r.Adopt("ns/idle", cc10(t, nil)))
		backend.SetReady("ns/busy", 1)
		require.NoError(t, r.Adopt("ns/busy", cc10(t, nil)))
		assert.ErrorIs(t, r.Adopt("ns/busy", cc10(t, nil)), autoscaler.ErrRevisionExists)
		adopted := time.Now()
		backend.SetReady("ns/busy", 4) // the previous owner's scale-up lands
		for time.Since(adopted) < 50*time.Second {
			require.NoError(t, r.Record("ns/busy", stats.Stat{Source: "activator", Concurrency: 7}))
			time.Sleep(time.Second)
		}
		synctest.Wait()
		assert.Empty(t, backend.CallsFor("ns/idle"), "no initial scale on adoption")
		for _, n := range backend.CallsFor("ns/busy") {
			assert.Equal(t, 4, n, "no scale-down within a stable window of the take-over")
		}
		d, _ := r.Decision("ns/busy")
		assert.Equal(t, 4, d.Desired, "floored at the ready count")
		assert.Less(t, d.Recommended, 4, "the decider alone would scale down")
		for time.Since(adopted) < 70*time.Second {
			require.NoError(t, r.Record("ns/busy", stats.Stat{Source: "activator", Concurrency: 7}))
			time.Sleep(time.Second)
		}
		synctest.Wait()
		calls := backend.CallsFor("ns/busy")
		require.NotEmpty(t, calls)
		assert.Less(t, calls[len(calls)-1], 4, "scaled down once the window was full")
	})
}

// Before the first renewal nobody is known to own anything: stats are
// refused with ErrNotOwner, never silently dropped, and pokes are ignored.
func TestShardsSendWithoutOwner(t *testing.T) {
	backend := autoscalertest.NewFakeScaler()
	r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: backend, Ready: backend})
	require.NoError(t, err)
	lease, err := autoscaler.NewMemoryLease(nil, time.Second)
	require.NoError(t, err)
	s, err := autoscaler.NewShards(autoscaler.ShardsConfig{Runner: r, Lease: lease, Holder: "a"})
	require.NoError(t, err)
	require.NoError(t, s.Add(rev, cc10(t, nil)))
	_, ok := s.Owner(rev)
	assert.False(t, ok)
	err = s.Send(context.Background(), []stats.Message{{Revision: rev, Stat: stats.Stat{Concurrency: 1}}, {Revision: rev}})
	assert.ErrorIs(t, err, autoscaler.ErrNotOwner)
	assert.ErrorContains(t, err, "2 stats dropped, their bucket has no known owner yet")
	s.Poke(rev, stats.Stat{Concurrency: 1})
	assert.Zero(t, r.Len(), "the runner has nothing until this autoscaler owns a bucket")
	assert.ErrorIs(t, s.Update("other", cc10(t, nil)), autoscaler.ErrUnknownRevision)
}

func ExampleShards() {
	backend := autoscalertest.NewFakeScaler()
	lease, _ := autoscaler.NewMemoryLease(nil, 3*time.Second) // FileLease on one machine; a Kubernetes Lease across
	runner, _ := autoscaler.NewRunner(autoscaler.Options{Scaler: backend, Ready: backend})
	shards, _ := autoscaler.NewShards(autoscaler.ShardsConfig{
		Runner: runner, Lease: lease, Buckets: 4,
		Holder: "http://10.0.0.7:9090/stats/forwarded", // where this autoscaler serves stats.Handler(shards.Deliver)
	})
	spec, _ := autoscaler.DefaultConfig().RevisionSpec(nil, 10)
	_ = shards.Add("default/hello-00001", spec) // on every autoscaler, for every revision

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = shards.Run(ctx); close(done) }()
	for len(shards.OwnedBuckets()) < 4 {
		time.Sleep(time.Millisecond)
	}
	owner, _ := shards.Owner("default/hello-00001")
	fmt.Println(owner, runner.Len())
	cancel() // releases the buckets for the other autoscalers
	<-done
	fmt.Println(lease.Holder(autoscaler.BucketName(0, 4)) == "", runner.Len())
	// Output:
	// http://10.0.0.7:9090/stats/forwarded 1
	// true 0
}

// slowLease never answers for one bucket until the caller gives up.
type slowLease struct {
	autoscaler.Lease
	slow string
}

func (l slowLease) TryAcquire(ctx context.Context, bucket, holder string) (string, error) {
	if bucket == l.slow {
		<-ctx.Done()
		return "", ctx.Err()
	}
	return l.Lease.TryAcquire(ctx, bucket, holder)
}

// A bucket whose lease call does not answer within the round's deadline is
// not owned; the others are, in the same round.
func TestShardsDropBucketNotConfirmedInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem, err := autoscaler.NewMemoryLease(nil, 3*time.Second)
		require.NoError(t, err)
		backend := autoscalertest.NewFakeScaler()
		r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: backend, Ready: backend})
		require.NoError(t, err)
		s, err := autoscaler.NewShards(autoscaler.ShardsConfig{
			Runner: r, Lease: slowLease{mem, autoscaler.BucketName(1, 4)}, Holder: "a", Buckets: 4,
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = s.Run(ctx) })
		defer func() { cancel(); wg.Wait() }()
		time.Sleep(autoscaler.DefaultRenewInterval / 2)
		synctest.Wait()
		assert.Empty(t, s.OwnedBuckets(), "the first round is still waiting for bucket 1")
		time.Sleep(autoscaler.DefaultRenewInterval / 2)
		synctest.Wait()
		assert.Equal(t, []int{0, 2, 3}, s.OwnedBuckets())
	})
}
