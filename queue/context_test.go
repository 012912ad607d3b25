package queue

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/internal/race"
)

// TestTimedAllocs pins the timed path's allocations: a slab of 16 request
// copies and their contexts per 16 requests (appSlabSize), so 100 in 1,600
// requests (AllocsPerRun warms up with 1,600 first: the slabs line up),
// with one timeout or all three, with or without an observer.
func TestTimedAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector makes sync.Pool drop objects: allocation counts are checked without -race")
	}
	req := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"total", Config{ContainerConcurrency: 1000, TotalTimeout: 5 * time.Minute}},
		{"all three", Config{ContainerConcurrency: 1000, TotalTimeout: time.Minute, ResponseStartTimeout: time.Minute, IdleTimeout: time.Minute}},
		{"total and observer", Config{ContainerConcurrency: 1000, TotalTimeout: time.Minute, Observer: func(Observation) {}}},
	} {
		h, err := New(okApp, tc.c)
		require.NoError(t, err)
		w := &benchWriter{h: make(http.Header)}
		h.ServeHTTP(w, req) // the first slab
		// Requests 2 to 1,601 use the rest of the first slab and 100 more.
		allocs := testing.AllocsPerRun(1, func() {
			for range 1600 {
				h.ServeHTTP(w, req)
			}
		})
		// A collection during the run may empty the exchange pool:
		// a few exchanges made anew on top.
		assert.GreaterOrEqual(t, allocs, 100.0, tc.name)
		assert.LessOrEqual(t, allocs, 110.0, tc.name)
	}
}

// Each timed request gets an appRequest of its own, never one another
// request had: the application may keep its request and context.
func TestTimedRequestsNeverShared(t *testing.T) {
	seen := make(map[*http.Request]bool)
	ctxs := make(map[context.Context]bool)
	h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen[r] || ctxs[r.Context()] {
			t.Errorf("request %p or its context was handed out before", r)
		}
		seen[r], ctxs[r.Context()] = true, true
	}), Config{TotalTimeout: time.Minute})
	req := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	for range 5*appSlabSize + 3 {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	assert.Len(t, seen, 5*appSlabSize+3)
}

// TestTimedContext: the application's context carries its parent's values
// and deadline, is canceled with the *TimeoutError as its cause when a
// timeout fires, and contexts derived from it follow without a goroutine
// of their own.
func TestTimedContext(t *testing.T) {
	type key struct{}
	synctest.Test(t, func(t *testing.T) {
		derivedCause := make(chan error, 1)
		h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			assert.Equal(t, "v", ctx.Value(key{}), "the parent's values")
			_, ok := ctx.Deadline()
			assert.True(t, ok, "the parent's deadline")
			assert.NoError(t, ctx.Err())
			before := runtime.NumGoroutine()
			derived, cancel := context.WithCancel(ctx)
			defer cancel()
			assert.Equal(t, before, runtime.NumGoroutine(), "derived without a goroutine")
			<-derived.Done()
			derivedCause <- context.Cause(derived)
			assert.ErrorIs(t, ctx.Err(), context.Canceled)
		}), Config{TotalTimeout: 2 * time.Second})

		parent, cancel := context.WithTimeout(context.WithValue(context.Background(), key{}, "v"), time.Hour)
		defer cancel()
		start := time.Now()
		w := serve(h, get().WithContext(parent))
		assert.Equal(t, 2*time.Second, time.Since(start))
		assert.Equal(t, http.StatusGatewayTimeout, w.Code)
		var te *TimeoutError
		require.ErrorAs(t, <-derivedCause, &te)
		assert.Equal(t, TotalTimeoutKind, te.Kind)
	})
}

// TestTimedContextParentCanceled: a client that goes away cancels the
// application's context, with the parent's cause, whether the application
// waits on Done or only asks Err.
func TestTimedContextParentCanceled(t *testing.T) {
	gone := errors.New("client gone")
	for _, wait := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			got := make(chan error, 1)
			h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx := r.Context()
				if wait {
					<-ctx.Done()
				} else {
					time.Sleep(time.Second)
					require.ErrorIs(t, ctx.Err(), context.Canceled)
					select {
					case <-ctx.Done():
					default:
						t.Error("Err is set but Done is open")
					}
				}
				got <- context.Cause(ctx)
			}), Config{TotalTimeout: time.Minute})
			parent, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(500*time.Millisecond, func() { cancel(gone) })
			start := time.Now()
			serve(h, get().WithContext(parent))
			assert.ErrorIs(t, <-got, gone, "wait=%v", wait)
			if wait {
				assert.Equal(t, 500*time.Millisecond, time.Since(start))
			}
		})
	}
}

// TestTimedContextCanceledOnReturn: once ServeHTTP has returned, the
// application's context is done, also for a goroutine the application left
// behind, and a context derived afterwards is born canceled.
func TestTimedContextCanceledOnReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var kept context.Context
		h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			kept = r.Context()
			_ = kept.Done() // somebody waits on it
		}), Config{TotalTimeout: time.Minute})
		serve(h, get())
		select {
		case <-kept.Done():
		default:
			t.Fatal("the context is not done after ServeHTTP returned")
		}
		assert.ErrorIs(t, kept.Err(), context.Canceled)
		derived, cancel := context.WithCancel(kept)
		defer cancel()
		assert.ErrorIs(t, derived.Err(), context.Canceled)
	})
}

// TestDeadlinesHeap checks the heap against a sorted reference over random
// sets, moves and removals: the timer's firing takes out exactly the
// requests whose time has come, earliest first.
func TestDeadlinesHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := &deadlines{}
	t0 := time.Unix(0, 0)
	exs := make([]*exchange, 50)
	for i := range exs {
		exs[i] = &exchange{}
	}
	in := map[*exchange]bool{}
	checked := 0
	for range 5000 {
		ex := exs[rng.IntN(len(exs))]
		if rng.IntN(3) == 0 {
			d.mu.Lock()
			if i := ex.heapIndex - 1; i >= 0 {
				d.removeAt(i)
			}
			d.mu.Unlock()
			delete(in, ex)
		} else {
			d.mu.Lock()
			ex.checkAt = t0.Add(time.Duration(rng.IntN(1000)))
			if ex.heapIndex == 0 {
				d.heap = append(d.heap, ex)
				ex.heapIndex = len(d.heap)
				d.up(len(d.heap) - 1)
			} else {
				d.fix(ex.heapIndex - 1)
			}
			d.mu.Unlock()
			in[ex] = true
		}
		require.Len(t, d.heap, len(in))
		for i, e := range d.heap {
			require.Equal(t, i+1, e.heapIndex)
			if i > 0 {
				require.False(t, e.checkAt.Before(d.heap[(i-1)/2].checkAt), "heap order at %d", i)
			}
		}
		checked++
	}
	// Drain in order.
	var want []time.Time
	for ex := range in {
		want = append(want, ex.checkAt)
	}
	slices.SortFunc(want, func(a, b time.Time) int { return a.Compare(b) })
	var got []time.Time
	for len(d.heap) > 0 {
		got = append(got, d.heap[0].checkAt)
		d.removeAt(0)
	}
	assert.Equal(t, want, got)
	assert.Equal(t, 5000, checked)
	assert.NotEmpty(t, want, "the drain compared something")
}

// A cancellation racing the application's first Done is never lost: the
// channel Done returned is closed once both are over, whichever came
// first, and a timeout's cause survives the race.
func TestRequestContextCancelRacesDone(t *testing.T) {
	timeout := &TimeoutError{Kind: TotalTimeoutKind, Timeout: time.Second}
	for i := range 2000 {
		c := &requestContext{parent: context.Background()}
		var done <-chan struct{}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); done = c.Done() }()
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				c.cancel(nil)
			} else {
				c.cancel(timeout)
			}
		}()
		wg.Wait()
		select {
		case <-done:
		default:
			t.Fatalf("run %d: Done not closed after cancel", i)
		}
		require.ErrorIs(t, c.Err(), context.Canceled, "run %d", i)
		if i%2 == 1 {
			require.Equal(t, error(timeout), context.Cause(c), "run %d", i)
		}
	}
}

// The window the race above can only hit by luck, made certain: the
// request ends after Done made its inner context but before Done
// published it. The cancel sees no inner context; Done must notice the
// cancellation and cancel it itself.
func TestRequestContextCancelInDonesWindow(t *testing.T) {
	c := &requestContext{parent: context.Background()}
	testHookInnerMade = func(c *requestContext) { c.cancel(nil) }
	defer func() { testHookInnerMade = nil }()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed: the cancellation in its window was lost")
	}
	require.ErrorIs(t, c.Err(), context.Canceled)
}
