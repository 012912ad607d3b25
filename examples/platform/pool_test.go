package main

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
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
