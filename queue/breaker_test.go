package queue

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newBreaker(t testing.TB, p BreakerParams) *Breaker {
	t.Helper()
	b, err := NewBreaker(p)
	require.NoError(t, err)
	return b
}

func TestBreakerParamsValidate(t *testing.T) {
	_, err := NewBreaker(BreakerParams{QueueDepth: -1, MaxConcurrency: -2, InitialCapacity: 3, MaxWait: -time.Second})
	require.Error(t, err)
	for _, want := range []string{
		"BreakerParams.QueueDepth = -1, must be in [0, 2147483647]",
		"BreakerParams.MaxConcurrency = -2, must be in [0, 2147483647]",
		"BreakerParams.InitialCapacity = 3, must be in [0, MaxConcurrency=-2]",
		"BreakerParams.MaxWait = -1s, must be >= 0",
	} {
		assert.Contains(t, err.Error(), want)
	}
	b := newBreaker(t, BreakerParams{MaxConcurrency: 5, InitialCapacity: 5})
	assert.ErrorContains(t, b.UpdateConcurrency(6), "UpdateConcurrency(6): must be in [0, MaxConcurrency=5]")
	assert.ErrorContains(t, b.UpdateConcurrency(-1), "UpdateConcurrency(-1)")
	assert.Equal(t, 5, b.Capacity(), "a rejected update changes nothing")
}

func TestBreakerQueueFullAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, BreakerParams{QueueDepth: 2, MaxConcurrency: 1, InitialCapacity: 1})
		require.True(t, b.TryAcquire())
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- b.Acquire(context.Background()) }()
		}
		synctest.Wait()
		assert.Equal(t, 2, b.Waiting())
		assert.ErrorIs(t, b.Acquire(context.Background()), ErrQueueFull)
		assert.False(t, b.TryAcquire(), "no barging past waiters")
		b.Release()
		require.NoError(t, <-errs)
		b.Release()
		require.NoError(t, <-errs)
		b.Release()
		assert.Equal(t, 0, b.Pending())
	})
}

func TestBreakerFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, BreakerParams{QueueDepth: 10, MaxConcurrency: 1, InitialCapacity: 1})
		require.True(t, b.TryAcquire())
		var order []int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				require.NoError(t, b.Acquire(context.Background()))
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				b.Release()
			}()
			synctest.Wait() // queue them in a known order
		}
		b.Release()
		wg.Wait()
		assert.Equal(t, []int{0, 1, 2, 3, 4}, order)
	})
}

func TestBreakerCancelLeavesItUnchanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, BreakerParams{QueueDepth: 5, MaxConcurrency: 1, InitialCapacity: 1})
		require.True(t, b.TryAcquire())
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() { errc <- b.Acquire(ctx) }()
		synctest.Wait()
		require.Equal(t, 1, b.Waiting())
		time.Sleep(3 * time.Second)
		cancel()
		err := <-errc
		assert.ErrorIs(t, err, context.Canceled)
		var we *WaitError
		require.True(t, errors.As(err, &we))
		assert.Equal(t, 3*time.Second, we.Waited)
		assert.Equal(t, 0, b.Waiting())
		assert.Equal(t, 1, b.InFlight())
		b.Release()
		assert.True(t, b.TryAcquire(), "fast path works again once the queue is empty")
	})
}

func TestBreakerMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, BreakerParams{QueueDepth: 5, MaxConcurrency: 1, InitialCapacity: 1, MaxWait: 250 * time.Millisecond})
		require.True(t, b.TryAcquire())
		start := time.Now()
		err := b.Acquire(context.Background())
		assert.ErrorIs(t, err, ErrQueueTimeout)
		assert.Equal(t, 250*time.Millisecond, time.Since(start))
		assert.EqualError(t, err, "queue: request waited too long in the queue after waiting 250ms for a slot")
		assert.Equal(t, 0, b.Waiting())
	})
}

func TestBreakerUpdateConcurrencyWithWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, BreakerParams{QueueDepth: 100, MaxConcurrency: 10, InitialCapacity: 0})
		var running atomic.Int32
		hold := make(chan struct{})
		var wg sync.WaitGroup
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = b.Do(context.Background(), func() { running.Add(1); <-hold })
			}()
		}
		synctest.Wait()
		assert.Equal(t, int32(0), running.Load())
		require.NoError(t, b.UpdateConcurrency(4))
		synctest.Wait()
		assert.Equal(t, int32(4), running.Load())
		assert.Equal(t, 2, b.Waiting())
		// Shrinking does not pre-empt; releases do not hand over until below.
		require.NoError(t, b.UpdateConcurrency(1))
		hold <- struct{}{}
		hold <- struct{}{}
		synctest.Wait()
		assert.Equal(t, 2, b.InFlight())
		assert.Equal(t, 2, b.Waiting())
		hold <- struct{}{}
		synctest.Wait()
		assert.Equal(t, 1, b.InFlight(), "one left running, still at capacity 1")
		hold <- struct{}{} // the fourth finishes; a waiter takes its slot
		synctest.Wait()
		assert.Equal(t, 1, b.InFlight())
		assert.Equal(t, 1, b.Waiting())
		close(hold)
		wg.Wait()
		assert.Equal(t, 0, b.Pending())
	})
}

// TestBreakerStress checks the limits under concurrent load while the
// capacity moves up and down: never more in flight than the largest
// capacity set (below MaxConcurrency, so that the bound can fail), never
// more than the queue depth waiting, and nothing lost.
func TestBreakerStress(t *testing.T) {
	t.Parallel()
	const maxCC, depth = 16, 16
	caps := []int{1, 6, 3, 0, 5, 6}
	const largest = 6
	b := newBreaker(t, BreakerParams{QueueDepth: depth, MaxConcurrency: maxCC, InitialCapacity: 4})
	var inFlight, peak, peakWaiting, ok, full atomic.Int64
	raise := func(p *atomic.Int64, n int64) {
		for {
			m := p.Load()
			if n <= m || p.CompareAndSwap(m, n) {
				return
			}
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	updater := make(chan struct{})
	go func() {
		defer close(updater)
		for i := 0; ; i++ {
			select {
			case <-stop:
				_ = b.UpdateConcurrency(largest)
				return
			default:
			}
			_ = b.UpdateConcurrency(caps[i%len(caps)])
			raise(&peakWaiting, int64(b.Waiting()))
			runtime.Gosched()
		}
	}()
	for range 32 {
		wg.Go(func() {
			for range 300 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
				err := b.Do(ctx, func() {
					raise(&peak, inFlight.Add(1))
					raise(&peakWaiting, int64(b.Waiting()))
					runtime.Gosched()
					inFlight.Add(-1)
				})
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrQueueFull):
					full.Add(1)
				case errors.Is(err, context.DeadlineExceeded):
				default:
					t.Errorf("unexpected error %v", err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-updater
	assert.LessOrEqual(t, peak.Load(), int64(largest))
	assert.LessOrEqual(t, peakWaiting.Load(), int64(depth))
	assert.Positive(t, ok.Load())
	assert.Equal(t, 0, b.Pending(), "every slot and waiter accounted for")
	assert.True(t, b.TryAcquire(), "the fast path works again")
	t.Logf("ok=%d full=%d peak=%d peakWaiting=%d", ok.Load(), full.Load(), peak.Load(), peakWaiting.Load())
}

func TestBreakerReleaseWithoutAcquirePanics(t *testing.T) {
	b := newBreaker(t, BreakerParams{MaxConcurrency: 1, InitialCapacity: 1})
	assert.PanicsWithValue(t, "queue: Breaker.Release called without a matching Acquire", b.Release)
}

func BenchmarkBreakerAcquireRelease(b *testing.B) {
	br := newBreaker(b, BreakerParams{QueueDepth: 10000, MaxConcurrency: 1000, InitialCapacity: 1000})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		br.Release()
	}
}

func BenchmarkBreakerAcquireReleaseParallel(b *testing.B) {
	br := newBreaker(b, BreakerParams{QueueDepth: 10000, MaxConcurrency: 1000, InitialCapacity: 1000})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := br.Acquire(ctx); err != nil {
				b.Fatal(err)
			}
			br.Release()
		}
	})
}

// TestBreakerAllocs pins "no allocation" for an acquire and a release with
// a free slot, blocking and non-blocking.
func TestBreakerAllocs(t *testing.T) {
	br := newBreaker(t, BreakerParams{QueueDepth: 10000, MaxConcurrency: 1000, InitialCapacity: 1000})
	ctx := context.Background()
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		if err := br.Acquire(ctx); err != nil {
			panic(err)
		}
		br.Release()
	}), "Acquire")
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		if br.TryAcquire() {
			br.Release()
		}
	}), "TryAcquire")
}
