package revision

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTestReconciler(t *testing.T, cfg Config) *Reconciler {
	t.Helper()
	r, err := NewReconciler("default/hello-00001", t0, cfg, ReconcilerOptions{
		Activator: tagHandler("activator"), Serve: tagHandler("serve"),
	})
	require.NoError(t, err)
	return r
}

// TestReconcilerWiring drives a reconciler through a cold start, steady
// serving, a burst that brings the activator back, and scale to zero,
// checking status, mode, endpoints and the front door at each step.
func TestReconcilerWiring(t *testing.T) {
	r := newTestReconciler(t, Config{Activators: ActivatorSizing{TargetBurstCapacity: 200}})
	acts := []string{"act-a", "act-b", "act-c", "act-d"}
	type stepT struct {
		name   string
		at     time.Duration
		do     func(now time.Time) State
		mode   Mode
		ready  ConditionStatus
		active ConditionStatus
		addrs  []string
		numAct int
	}
	steps := []stepT{
		{"creation: Proxy, nothing ready", 0, func(now time.Time) State { return r.State() }, Proxy, Unknown, Unknown, nil, 2},
		{"activators ready", time.Second, func(now time.Time) State { return r.SetActivators(now, acts) }, Proxy, Unknown, Unknown,
			ChooseSubset(acts, 2, "default/hello-00001"), 2},
		{"autoscaler wants one, EBC negative", 2 * time.Second, func(now time.Time) State {
			return r.Decide(now, Decision{Desired: 1, ExcessBurstCapacity: -111})
		}, Proxy, Unknown, Unknown, ChooseSubset(acts, 2, "default/hello-00001"), 2},
		{"replica ready: still Proxy (EBC < 0), now Ready and Active", 4 * time.Second, func(now time.Time) State {
			return r.SetReplicas(now, []string{"10.1.0.7"})
		}, Proxy, True, True, ChooseSubset(acts, 3, "default/hello-00001"), 3},
		{"enough capacity: Serve", 6 * time.Second, func(now time.Time) State {
			return r.Decide(now, Decision{Desired: 3, ExcessBurstCapacity: 20})
		}, Serve, True, True, []string{"10.1.0.7"}, 3},
		{"burst: back to Proxy", 8 * time.Second, func(now time.Time) State {
			return r.Decide(now, Decision{Desired: 5, ExcessBurstCapacity: -4, Panicking: true})
		}, Proxy, True, True, ChooseSubset(acts, 3, "default/hello-00001"), 3},
		{"scale to zero: inactive, still Ready", 100 * time.Second, func(now time.Time) State {
			r.Decide(now, Decision{Desired: 0})
			return r.SetReplicas(now, nil)
		}, Proxy, True, False, ChooseSubset(acts, 2, "default/hello-00001"), 2},
	}
	for _, s := range steps {
		st := s.do(at(s.at))
		assert.Equal(t, s.mode, st.Endpoints.Mode, s.name)
		assert.Equal(t, s.mode, r.FrontDoor().Mode(), "%s: front door follows", s.name)
		assert.Equal(t, s.ready, st.Status.Ready.Status, "%s: %v", s.name, st.Status)
		assert.Equal(t, s.active, st.Status.Active.Status, "%s: %v", s.name, st.Status)
		assert.Equal(t, s.addrs, st.Endpoints.Addresses, s.name)
		assert.Equal(t, s.numAct, st.NumActivators, s.name)
		assert.Equal(t, st, r.State(), "%s: returned state is the current state", s.name)
	}
	st := r.State()
	assert.Equal(t, Decision{Desired: 0}, st.Decision)
	assert.Equal(t, at(8*time.Second), st.ProxySince)
	assert.Equal(t, 92*time.Second, r.ProxyFor(at(100*time.Second)))

	_, body := do(r.FrontDoor(), httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, "activator default/hello-00001", body)
}

func TestReconcilerObserversInOrder(t *testing.T) {
	r := newTestReconciler(t, Config{})
	var log []string
	r.OnStatus(func(key string, from, to Status) {
		log = append(log, fmt.Sprintf("status %s: Active %v→%v, desired %d→%d",
			key, from.Active.Status, to.Active.Status, from.DesiredReplicas, to.DesiredReplicas))
	})
	r.OnStatus(func(key string, from, to Status) { log = append(log, "second observer") })
	r.SetActivators(t0, []string{"a"})
	r.OnEndpoints(func(key string, e Endpoints) { log = append(log, fmt.Sprintf("endpoints %v %v", e.Mode, e.Addresses)) })
	r.Decide(at(time.Second), Decision{Desired: 1})
	r.SetReplicas(at(2*time.Second), []string{"p"})
	r.Decide(at(3*time.Second), Decision{Desired: 1, ExcessBurstCapacity: 6}) // no visible change
	r.Decide(at(4*time.Second), Decision{Desired: 1, ExcessBurstCapacity: -1})
	assert.Equal(t, []string{
		"status default/hello-00001: Active Unknown→Unknown, desired -1→-1", // Deploying → Queued
		"second observer",
		"endpoints Proxy [a]", // delivered on subscription
		"status default/hello-00001: Active Unknown→Unknown, desired -1→1",
		"second observer",
		"status default/hello-00001: Active Unknown→True, desired 1→1",
		"second observer",
		"endpoints Serve [p]",
		"endpoints Proxy [a]",
	}, log)
}

// TestReconcilerReentrantObserver changes the reconciler from inside an
// observer: no deadlock, and the nested change is delivered after the one
// being delivered.
func TestReconcilerReentrantObserver(t *testing.T) {
	r := newTestReconciler(t, Config{})
	var seen []int32
	r.OnStatus(func(_ string, from, to Status) {
		seen = append(seen, to.DesiredReplicas)
		if to.DesiredReplicas == 1 {
			st := r.Decide(at(2*time.Second), Decision{Desired: 2})
			assert.Equal(t, int32(2), st.Status.DesiredReplicas, "the nested call applies at once")
			assert.Equal(t, []int32{1}, seen, "but is delivered after this one returns")
		}
	})
	r.Decide(at(time.Second), Decision{Desired: 1})
	assert.Equal(t, []int32{1, 2}, seen)
}

func TestReconcilerPanickingObserver(t *testing.T) {
	r := newTestReconciler(t, Config{})
	calls := 0
	r.OnStatus(func(string, Status, Status) {
		calls++
		if calls == 1 {
			panic("observer bug")
		}
	})
	assert.Panics(t, func() { r.Decide(at(time.Second), Decision{Desired: 1}) })
	r.Decide(at(2*time.Second), Decision{Desired: 2})
	assert.Equal(t, 2, calls, "delivery goes on after a panic")
}

func TestReconcilerSetFailures(t *testing.T) {
	r := newTestReconciler(t, Config{})
	r.Decide(t0, Decision{Desired: 1})
	before := r.State()
	st, err := r.SetFailures(at(time.Second), Failure{Condition: Active, Reason: "X"})
	assert.ErrorIs(t, err, ErrInvalidFailure)
	assert.Equal(t, before, st)

	st, err = r.SetFailures(at(time.Second), ImageMissing("ex/a", "manifest unknown"))
	require.NoError(t, err)
	assert.Equal(t, False, st.Status.Ready.Status)
	assert.Equal(t, ReasonContainerMissing, st.Status.Ready.Reason)
	st, err = r.SetFailures(at(2 * time.Second))
	require.NoError(t, err)
	assert.Equal(t, Unknown, st.Status.Ready.Status)
}

func TestReconcilerSetRouted(t *testing.T) {
	r := newTestReconciler(t, Config{MinScale: 3})
	r.SetActivators(t0, []string{"a"})
	r.Decide(t0, Decision{Desired: 3})
	st := r.SetReplicas(at(time.Second), []string{"p1", "p2", "p3"})
	assert.Equal(t, True, st.Status.Active.Status)
	st = r.SetReplicas(at(2*time.Second), []string{"p1"})
	assert.Equal(t, Unknown, st.Status.Active.Status, "below min scale while routed")
	st = r.SetRouted(at(3*time.Second), false)
	assert.Equal(t, True, st.Status.Active.Status, "min scale ignored while unrouted")
}

func TestNewReconcilerErrors(t *testing.T) {
	_, err := NewReconciler("", t0, Config{}, ReconcilerOptions{})
	assert.ErrorContains(t, err, "key is empty")
	_, err = NewReconciler("k", t0, Config{MinScale: -1}, ReconcilerOptions{Activator: noop})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Config.MinScale = -1")
	assert.Contains(t, err.Error(), "Activator and Serve must be both set")

	r, err := NewReconciler("k", t0, Config{}, ReconcilerOptions{})
	require.NoError(t, err)
	assert.Nil(t, r.FrontDoor())
	assert.Equal(t, "k", r.Key())
}

// TestReconcilerRunFiresDeadlines runs Run in a synctest bubble: with no
// input after the first decision, the progress deadline still turns
// ResourcesAvailable False, at exactly the deadline.
func TestReconcilerRunFiresDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		r, err := NewReconciler("ns/slow-00001", start, Config{ProgressDeadline: time.Minute}, ReconcilerOptions{})
		require.NoError(t, err)
		var mu sync.Mutex
		var changes []time.Time
		r.OnStatus(func(_ string, from, to Status) {
			if to.ResourcesAvailable.Status == False && from.ResourcesAvailable.Status != False {
				mu.Lock()
				changes = append(changes, time.Now())
				mu.Unlock()
			}
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()

		time.Sleep(10 * time.Second)
		r.Decide(time.Now(), Decision{Desired: 1})
		next, ok := r.NextDeadline()
		require.True(t, ok)
		assert.Equal(t, start.Add(70*time.Second), next)

		time.Sleep(59 * time.Second)
		synctest.Wait()
		assert.Equal(t, ReasonQueued, r.State().Status.Active.Reason)
		assert.NotEqual(t, False, r.State().Status.ResourcesAvailable.Status)

		time.Sleep(time.Second)
		synctest.Wait()
		st := r.State().Status
		assert.Equal(t, False, st.ResourcesAvailable.Status)
		assert.Equal(t, ReasonProgressDeadlineExceeded, st.ResourcesAvailable.Reason)
		mu.Lock()
		assert.Equal(t, []time.Time{start.Add(70 * time.Second)}, changes)
		mu.Unlock()

		cancel()
		<-done
	})
}

// TestReconcilerConcurrentStress hammers one reconciler from several
// goroutines: observers must see an unbroken chain (each change starts
// where the previous ended), subscribers must end on the final endpoints,
// and the front door must agree with the state. Run with -race.
func TestReconcilerConcurrentStress(t *testing.T) {
	r := newTestReconciler(t, Config{Activators: ActivatorSizing{TargetBurstCapacity: 200}})
	var mu sync.Mutex
	var last *Status
	var lastEps Endpoints
	broken := 0
	r.OnStatus(func(_ string, from, to Status) {
		mu.Lock()
		defer mu.Unlock()
		if last != nil && *last != from {
			broken++
		}
		last = &to
		_ = r.State() // reading back from an observer must not deadlock
	})
	r.OnEndpoints(func(_ string, e Endpoints) {
		mu.Lock()
		lastEps = e
		mu.Unlock()
	})

	var clockMu sync.Mutex
	tick := t0
	now := func() time.Time { // a shared, monotonic fake time
		clockMu.Lock()
		defer clockMu.Unlock()
		tick = tick.Add(time.Millisecond)
		return tick
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 7))
			for range 500 {
				switch rnd.IntN(4) {
				case 0:
					r.Decide(now(), Decision{Desired: int32(rnd.IntN(5)) - 1, ExcessBurstCapacity: int32(rnd.IntN(20)) - 10})
				case 1:
					r.SetReplicas(now(), names("pod", rnd.IntN(4)))
				case 2:
					r.SetActivators(now(), names("act", rnd.IntN(5)))
				case 3:
					r.Tick(now())
				}
			}
		})
	}
	wg.Wait()
	st := r.State()
	mu.Lock()
	defer mu.Unlock()
	assert.Zero(t, broken, "status changes delivered out of order")
	require.NotNil(t, last)
	assert.Equal(t, st.Status, *last, "the last delivered status is the current one")
	assert.True(t, st.Endpoints.Equal(lastEps), "the last delivered endpoints are the current ones")
	assert.Equal(t, st.Endpoints.Mode, r.FrontDoor().Mode())
}

func TestReconcilerCountsDistinctReplicas(t *testing.T) {
	r := newTestReconciler(t, Config{InitialScale: 2})
	st := r.SetReplicas(t0, []string{"p1", "p1"})
	assert.Equal(t, int32(1), st.Status.ActualReplicas)
	assert.False(t, st.Status.Initialized)
	st = r.SetReplicas(t0, []string{"p2", "p1", "p1"})
	assert.Equal(t, int32(2), st.Status.ActualReplicas)
	assert.True(t, st.Status.Initialized)
}
