package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/gateway"
	"github.com/servingkit/servingkit/revision"
)

// A removed replica is stopped only once no request is on its way to it:
// awaitUnrouted returns when the count reaches 0, not before, and gives up
// at its limit.
func TestAwaitUnrouted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		n.Store(2)
		start := time.Now()
		go func() {
			time.Sleep(300 * time.Millisecond)
			n.Add(-1)
			time.Sleep(time.Second)
			n.Add(-1)
		}()
		assert.True(t, awaitUnrouted(time.Minute, n.Load))
		took := time.Since(start)
		assert.GreaterOrEqual(t, took, 1300*time.Millisecond, "waited for both requests")
		assert.Less(t, took, 1400*time.Millisecond)

		n.Store(1)
		start = time.Now()
		assert.False(t, awaitUnrouted(time.Second, n.Load), "a request that never ends")
		assert.Less(t, time.Since(start), 1100*time.Millisecond)

		n.Store(0)
		assert.True(t, awaitUnrouted(0, n.Load), "nothing in flight: at once")
	})
}

// servingSlot returns a slot whose process serves at addr.
func servingSlot(name, addr string) *slot {
	pr := &proc{listening: make(chan struct{}), hs: handshake{Serve: addr}}
	close(pr.listening)
	s := &slot{name: name, proc: pr}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Once a scale-down has published a replica set without a replica, no
// later publication lists it again: changed reads the replicas and hands
// them on as one step. (Two changed calls that each read, then set, could
// publish in the other order: a call that read before the removal set the
// removed, draining replica again after the removal's own call.) A -race
// stress test: changes race with removals, and a watcher checks the
// published set.
func TestPoolPublishesNoStaleSet(t *testing.T) {
	t.Parallel()
	now := time.Now()
	rec, err := revision.NewReconciler("ns/r", now, revision.Config{}, revision.ReconcilerOptions{})
	require.NoError(t, err)
	bl, err := balancer.New(balancer.Config{})
	require.NoError(t, err)
	eps, err := gateway.NewEndpoints("ns/r", gateway.EndpointsConfig{Reconciler: rec, Serve: bl})
	require.NoError(t, err)
	p := &Platform{log: slog.New(slog.DiscardHandler)}
	r := &rev{key: "ns/r", rec: rec, serve: bl, eps: eps}
	pl := newPool(p, r)
	r.pool = pl
	const n = 300
	for i := range n {
		pl.slots = append(pl.slots, servingSlot(fmt.Sprintf("r-%d", i), fmt.Sprintf("127.0.0.1:%d", 10000+i)))
	}
	pl.changed()

	var removed sync.Map // addresses whose removal was published
	var done atomic.Bool
	var wg sync.WaitGroup
	for range 2 { // other changes: probes, back-offs, starts
		wg.Go(func() {
			for !done.Load() {
				pl.changed()
			}
		})
	}
	wg.Go(func() { // the watcher
		for !done.Load() {
			var gone []string
			removed.Range(func(k, _ any) bool { gone = append(gone, k.(string)); return true })
			ready := bl.Replicas()
			for _, a := range gone {
				if slices.Contains(ready, a) {
					t.Errorf("%s is routed again after its removal was published", a)
					return
				}
			}
		}
	})
	for range n - 1 { // scale down one at a time
		pl.mu.Lock()
		victims := pl.pickVictimsLocked(1)
		pl.mu.Unlock()
		pl.removed(victims)
		removed.Store(victims[0].proc.hs.Serve, true)
	}
	done.Store(true)
	wg.Wait()
	assert.Len(t, bl.Replicas(), 1)
}
