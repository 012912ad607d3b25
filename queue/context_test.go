package queue

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/internal/race"
)

// TestTimedAllocs pins the timed path's allocations: one (the request copy
// and its context, together), with one timeout or all three, with or
// without an observer.
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
		allocs := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, req) })
		assert.Equal(t, 1.0, allocs, tc.name)
	}
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
