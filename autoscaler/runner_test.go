package autoscaler_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/autoscaler/autoscalertest"
	"github.com/servingkit/servingkit/stats"
)

const rev = "default/hello-00001"

// cc10 is Knative's spec for container concurrency 10: target 7 per
// replica, total 10, burst capacity 211 (activator in the path).
func cc10(t *testing.T, ann map[string]string) autoscaler.Spec {
	t.Helper()
	s, err := autoscaler.DefaultConfig().RevisionSpec(ann, 10)
	require.NoError(t, err)
	return s
}

// idle is a replica's report of no load (a zero Stat would stop SetLoad).
var idle = stats.Stat{Source: "replica"}

func TestRunnerScalesUpWithLoad(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, nil))
	assert.Equal(t, 1, h.Scale(rev), "initial scale at once")
	assert.Equal(t, autoscaler.Activating, h.Decision(rev).Activity)
	assert.Equal(t, 7.0, h.Decision(rev).Target, "CC 10 at Knative's 70% utilization")

	h.SetLoad(rev, stats.Stat{Concurrency: 35})
	h.Advance(60 * time.Second)
	assert.Equal(t, 5, h.Scale(rev))
	assert.Equal(t, []int{1, 5}, h.Scaler.CallsFor(rev))
	d := h.Decision(rev)
	assert.Equal(t, 5, d.Desired)
	assert.Equal(t, 5, d.Ready)
	assert.Equal(t, autoscaler.Active, d.Activity)
	assert.True(t, d.Panicking, "one replica with load for five panicked at the first tick")
	assert.Equal(t, 35.0, d.StableLoad)
	assert.Equal(t, 7.0, d.Target)
	assert.Equal(t, autoscaler.Concurrency, d.Metric)
	assert.Equal(t, 5*10-211-35, d.ExcessBurstCapacity)
	assert.True(t, d.ActivatorInPath())
	assert.Len(t, h.Decisions(rev), 30, "one decision per tick")
}

// firstRecommendingZero is the time of the first decision recommending 0.
func firstRecommendingZero(t *testing.T, ds []autoscaler.Decision) time.Time {
	t.Helper()
	for _, d := range ds {
		if d.Recommended == 0 {
			return d.Time
		}
	}
	t.Fatal("never recommended 0")
	return time.Time{}
}

func TestRunnerScalesToZeroWhenTheActivatorIsAlreadyInThePath(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, nil))
	h.SetLoad(rev, stats.Stat{Concurrency: 35})
	h.Advance(60 * time.Second)
	h.SetLoad(rev, idle)
	h.Advance(90 * time.Second)

	ds := h.Decisions(rev)
	idleAt := firstRecommendingZero(t, ds)
	for _, d := range ds {
		switch {
		case d.Time.Before(idleAt):
			assert.NotEqual(t, autoscaler.Inactive, d.Activity, "at %v", d.Time)
		case d.Time.Equal(idleAt):
			// Active for more than a stable window: inactive, not yet zero.
			assert.Equal(t, autoscaler.Inactive, d.Activity)
			assert.Equal(t, 0, d.Desired)
		}
	}
	// EBC was always negative, so the activator has been in the path longer
	// than the grace period: zero on the next tick.
	calls := h.Scaler.CallsFor(rev)
	assert.Equal(t, 0, calls[len(calls)-1])
	assert.Equal(t, 0, h.Scale(rev))
	zeroAt := time.Time{}
	for _, d := range ds {
		if d.Ready == 0 && zeroAt.IsZero() {
			zeroAt = d.Time
		}
	}
	assert.Equal(t, idleAt.Add(4*time.Second), zeroAt, "scaled at idle+2s, seen at idle+4s")
}

func TestRunnerGracePeriodCountsFromTheActivatorTakingOver(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, map[string]string{autoscaler.TargetBurstCapacityAnnotation: "0"}))
	h.SetLoad(rev, stats.Stat{Concurrency: 14})
	h.Advance(70 * time.Second)
	require.False(t, h.Decision(rev).ActivatorInPath(), "EBC 0: replicas serve directly")
	h.SetLoad(rev, idle)
	h.Advance(120 * time.Second)

	ds := h.Decisions(rev)
	idleAt := firstRecommendingZero(t, ds)
	for _, d := range ds {
		if d.Time.Before(idleAt.Add(30 * time.Second)) {
			assert.NotZero(t, d.Ready, "the last replica stays for the grace period (at %v)", d.Time)
		}
	}
	for _, d := range ds {
		if d.Time.Equal(idleAt.Add(32 * time.Second)) {
			assert.Zero(t, d.Ready, "scaled to zero at idle+30s")
		}
	}
}

// TestRunnerKeepsTheLastReplicaWithoutAnActivator: the front door serves
// from the replicas (no activator is ready), so the runner, told so by its
// ProxyTimer, does not remove the last replica, however long the revision
// has been idle; once the activator is in the path it does, at once.
func TestRunnerKeepsTheLastReplicaWithoutAnActivator(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, nil)) // TBC 211: the runner alone would think the activator is in the path
	h.SetProxyMode(rev, false)
	h.SetLoad(rev, stats.Stat{Concurrency: 35})
	h.Advance(60 * time.Second)
	h.SetLoad(rev, idle)
	h.Advance(5 * time.Minute)

	d := h.Decision(rev)
	require.Equal(t, autoscaler.Inactive, d.Activity)
	assert.Equal(t, 0, d.Desired, "the front door is told to take the activator")
	assert.Equal(t, 1, h.Scale(rev))
	assert.NotContains(t, h.Scaler.CallsFor(rev), 0)

	h.SetProxyMode(rev, true)
	h.Advance(2 * time.Second)
	assert.Equal(t, 0, h.Scale(rev), "inactive longer than the grace period: zero once the activator is in")
}

// TestRunnerGracePeriodCountsFromTheFrontDoor: the front door put the
// activator in the path 20 s before the revision went inactive (the runner
// would infer it entered only then), so the last replica goes when the
// front door has been in proxy mode for the grace period.
func TestRunnerGracePeriodCountsFromTheFrontDoor(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, map[string]string{autoscaler.TargetBurstCapacityAnnotation: "0"}))
	h.SetProxyMode(rev, false)
	h.SetLoad(rev, stats.Stat{Concurrency: 14})
	h.Advance(70 * time.Second)
	h.SetLoad(rev, idle)
	h.Advance(40 * time.Second)
	proxyAt := h.Clock.Now()
	h.SetProxyMode(rev, true)

	zeroAt := time.Time{}
	for range 60 {
		h.Advance(2 * time.Second)
		if h.Scale(rev) == 0 {
			zeroAt = h.Clock.Now()
			break
		}
	}
	inactiveAt := time.Time{}
	for _, d := range h.Decisions(rev) {
		if d.Activity == autoscaler.Inactive {
			inactiveAt = d.Time
			break
		}
	}
	require.True(t, inactiveAt.After(proxyAt), "inactive at %v, after the front door turned at %v", inactiveAt, proxyAt)
	assert.Equal(t, proxyAt.Add(30*time.Second), zeroAt, "the grace period after the front door turned (inactive at %v)", inactiveAt)
}

func TestRunnerScaleToZeroDisabled(t *testing.T) {
	c := autoscaler.DefaultConfig()
	c.EnableScaleToZero = false
	spec, err := c.RevisionSpec(nil, 10)
	require.NoError(t, err)
	h := autoscalertest.NewHarness(t)
	h.Add(rev, spec)
	h.SetLoad(rev, idle)
	h.Advance(5 * time.Minute)
	assert.Equal(t, 1, h.Scale(rev))
	assert.Equal(t, autoscaler.Active, h.Decision(rev).Activity)
}

func TestRunnerPokeScalesFromZeroAtOnce(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, nil))
	h.SetLoad(rev, idle)
	h.Advance(100 * time.Second)
	require.Equal(t, 0, h.Scale(rev))
	h.SetLoad(rev, stats.Stat{}) // no replicas, no reports
	h.Advance(11 * time.Second)  // an odd second: no tick now
	require.Equal(t, 0, h.Decision(rev).Recommended)

	before := len(h.Decisions(rev))
	h.Push(rev, stats.Stat{Source: "activator", Concurrency: 1, RPS: 1})
	assert.Equal(t, 1, h.Scale(rev), "scaled before the next tick")
	ds := h.Decisions(rev)
	require.Len(t, ds, before+1)
	d := ds[len(ds)-1]
	assert.Equal(t, h.Clock.Now(), d.Time)
	assert.Equal(t, 1, d.Desired)
	assert.Equal(t, autoscaler.Activating, d.Activity)

	// A second poke while the revision is waking does not decide again.
	h.Push(rev, stats.Stat{Source: "activator", Concurrency: 1, RPS: 1})
	assert.Len(t, h.Decisions(rev), before+1)
}

// TestRunnerPokeBeforeTheFirstTick: a revision created at initial scale 0
// whose first request arrives before its first tick is decided at once.
func TestRunnerPokeBeforeTheFirstTick(t *testing.T) {
	c := autoscaler.DefaultConfig()
	c.AllowZeroInitialScale = true
	spec, err := c.RevisionSpec(map[string]string{autoscaler.InitialScaleAnnotation: "0"}, 10)
	require.NoError(t, err)
	h := autoscalertest.NewHarness(t)
	h.Add(rev, spec)
	require.Empty(t, h.Decisions(rev), "no tick yet")
	h.Push(rev, stats.Stat{Source: "activator", Concurrency: 1, RPS: 1})
	assert.Equal(t, 1, h.Scale(rev), "scaled without waiting for a tick")
	require.Len(t, h.Decisions(rev), 1)
	assert.Equal(t, h.Clock.Now(), h.Decisions(rev)[0].Time)
}

func TestRunnerPokeNeedsConcurrencyAndZero(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, map[string]string{autoscaler.TargetBurstCapacityAnnotation: "-1"}))
	h.Advance(2 * time.Second)
	require.Equal(t, 0, h.Decision(rev).Recommended)
	n := len(h.Decisions(rev))
	h.Push(rev, stats.Stat{RPS: 3})
	assert.Len(t, h.Decisions(rev), n, "no concurrency: no decision")
	h.Push(rev, stats.Stat{Concurrency: 20})
	assert.Len(t, h.Decisions(rev), n+1)
	h.Push(rev, stats.Stat{Concurrency: 20})
	assert.Len(t, h.Decisions(rev), n+1, "the last recommendation is no longer 0")
}

func TestRunnerRetriesAFailedScaleOnTheNextTick(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, nil))
	h.Scaler.SetError(errors.New("backend down"))
	h.SetLoad(rev, stats.Stat{Concurrency: 21})
	h.Advance(2 * time.Second)
	assert.Equal(t, []int{1, 3}, h.Scaler.CallsFor(rev))
	assert.Equal(t, 1, h.Scale(rev))
	h.Advance(2 * time.Second)
	assert.Equal(t, []int{1, 3, 3}, h.Scaler.CallsFor(rev), "retried")
	h.Scaler.SetError(nil)
	h.Advance(2 * time.Second)
	assert.Equal(t, []int{1, 3, 3, 3}, h.Scaler.CallsFor(rev))
	assert.Equal(t, 3, h.Scale(rev))
	h.Advance(2 * time.Second)
	assert.Len(t, h.Scaler.CallsFor(rev), 4, "no call while the count stays")
}

// TestRunnerRetriesAFailedInitialScale: the initial Scale from Add failed
// and the next decisions leave the scale alone (no metrics yet, or
// activating at zero): it is still retried on the next tick, instead of
// leaving the new revision without replicas until its activation timeout.
func TestRunnerRetriesAFailedInitialScale(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
	}{
		{"replica stats, no data yet", nil},
		{"activator stats only, idle", map[string]string{autoscaler.TargetBurstCapacityAnnotation: "-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := autoscalertest.NewHarness(t)
			h.Scaler.SetError(errors.New("backend down"))
			h.Add(rev, cc10(t, tc.ann))
			require.Equal(t, []int{1}, h.Scaler.CallsFor(rev))
			h.Advance(2 * time.Second)
			assert.Equal(t, []int{1, 1}, h.Scaler.CallsFor(rev), "retried while still failing")
			h.Scaler.SetError(nil)
			h.Advance(2 * time.Second)
			assert.Equal(t, []int{1, 1, 1}, h.Scaler.CallsFor(rev))
			assert.Equal(t, 1, h.Scale(rev))
			h.Advance(4 * time.Second)
			assert.Len(t, h.Scaler.CallsFor(rev), 3, "accepted: no more calls")
			assert.Equal(t, autoscaler.Active, h.Decision(rev).Activity)
		})
	}
}

func TestRunnerAdoptsARunningRevisionInPanic(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Scaler.SetReady(rev, 5)
	h.Add(rev, cc10(t, nil))
	assert.Empty(t, h.Scaler.Calls(), "5 ready ≥ initial scale: nothing to create")
	assert.True(t, h.Decision(rev).Panicking)
	h.SetLoad(rev, idle)
	h.Advance(60 * time.Second)
	assert.Equal(t, []int{5}, h.Scaler.CallsFor(rev), "held for a stable window")
	h.Advance(2 * time.Second)
	assert.Equal(t, []int{5, 2}, h.Scaler.CallsFor(rev), "then down at max-scale-down-rate")
	assert.False(t, h.Decision(rev).Panicking)
}

func TestRunnerBoundsAndActivationScale(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add("bounded", cc10(t, map[string]string{autoscaler.MinScaleAnnotation: "2", autoscaler.MaxScaleAnnotation: "4"}))
	h.Add("activation", cc10(t, map[string]string{autoscaler.ActivationScaleAnnotation: "3", autoscaler.TargetBurstCapacityAnnotation: "-1"}))
	assert.Equal(t, 1, h.Scale("bounded"))
	h.SetLoad("bounded", stats.Stat{Concurrency: 70})
	h.Advance(4 * time.Second)
	assert.Equal(t, 4, h.Scale("bounded"), "max-scale")
	assert.Equal(t, 10, h.Decision("bounded").Recommended)
	h.SetLoad("bounded", idle)
	h.Advance(5 * time.Minute)
	assert.Equal(t, 2, h.Scale("bounded"), "min-scale")

	h.Advance(2 * time.Minute)
	require.Equal(t, 0, h.Scale("activation"))
	h.Push("activation", stats.Stat{Concurrency: 1, RPS: 1})
	assert.Equal(t, 3, h.Scale("activation"), "activation scale from zero")
}

func TestRunnerInitialScale(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, map[string]string{autoscaler.InitialScaleAnnotation: "4"}))
	assert.Equal(t, 4, h.Scale(rev))
	h.SetLoad(rev, idle)
	h.Advance(2 * time.Second)
	assert.Equal(t, 4, h.Scale(rev), "initialized: ready reached the initial scale")
	h.Advance(2 * time.Second)
	assert.Equal(t, 2, h.Scale(rev), "then the decider's count, limited by max-scale-down-rate")
}

func TestRunnerRPS(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, map[string]string{autoscaler.MetricAnnotation: "rps", autoscaler.TargetAnnotation: "10"}))
	h.SetLoad(rev, stats.Stat{Concurrency: 1, RPS: 70, ProxiedRPS: 20})
	h.Advance(10 * time.Second)
	assert.Equal(t, 50.0, h.Decision(rev).StableLoad, "proxied requests subtracted")
	assert.Equal(t, 8, h.Scale(rev), "ceil(50 / 7)")
}

func TestRunnerAddUpdateRemove(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	spec := cc10(t, nil)
	h.Add(rev, spec)
	assert.ErrorIs(t, h.Runner.Add(rev, spec), autoscaler.ErrRevisionExists)
	assert.ErrorIs(t, h.Runner.Update("nope", spec), autoscaler.ErrUnknownRevision)
	bad := spec
	bad.PanicWindow = 0
	assert.Error(t, h.Runner.Add("bad", bad))
	assert.Error(t, h.Runner.Update(rev, bad))

	h.SetLoad(rev, stats.Stat{Concurrency: 28})
	h.Advance(4 * time.Second)
	assert.Equal(t, 4, h.Scale(rev))
	spec.TargetValue = 14
	require.NoError(t, h.Runner.Update(rev, spec))
	h.Advance(70 * time.Second)
	assert.Equal(t, 2, h.Scale(rev), "the new target")

	assert.Equal(t, 1, h.Runner.Len())
	n := len(h.Decisions(rev))
	h.Remove(rev)
	assert.False(t, h.Runner.Remove(rev))
	h.Advance(10 * time.Second)
	assert.Len(t, h.Decisions(rev), n, "no decisions after removal")
	_, ok := h.Runner.Decision(rev)
	assert.False(t, ok)
	assert.ErrorIs(t, h.Runner.Record(rev, stats.Stat{}), autoscaler.ErrNotCollecting)
}

func TestRunnerSend(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, nil))
	var sink stats.Sink = h.Runner
	err := sink.Send(context.Background(), []stats.Message{
		{Revision: rev, Stat: stats.Stat{Concurrency: 30}},
		{Revision: "unknown", Stat: stats.Stat{Concurrency: 1}},
		{Revision: rev, Stat: stats.Stat{Concurrency: -1}},
		{Revision: rev, Stat: stats.Stat{Concurrency: 5, ProxiedConcurrency: 0}},
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, autoscaler.ErrNotCollecting)
	assert.ErrorContains(t, err, "message 1")
	assert.ErrorContains(t, err, "message 2")
	assert.NotContains(t, err.Error(), "message 3")
	h.Advance(2 * time.Second)
	assert.Equal(t, 35.0, h.Decision(rev).StableLoad, "the two valid stats added up")
}

func TestRunnerSubscribers(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	var mu sync.Mutex
	var got []string
	unsubscribe := h.Runner.Subscribe(func(d autoscaler.Decision) {
		// Subscribers run with no runner lock held: calling back is safe.
		_, _ = h.Runner.Decision(d.Revision)
		_ = h.Runner.Len()
		mu.Lock()
		got = append(got, fmt.Sprintf("%s@%v", d.Revision, d.Time.Sub(time.Unix(0, 0))))
		mu.Unlock()
	})
	h.Add("a", cc10(t, nil))
	h.Add("b", cc10(t, nil))
	h.Advance(4 * time.Second)
	unsubscribe()
	unsubscribe()
	h.Advance(4 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	assert.ElementsMatch(t, []string{"a@2s", "b@2s", "a@4s", "b@4s"}, got)
}

func TestNewRunnerValidates(t *testing.T) {
	_, err := autoscaler.NewRunner(autoscaler.Options{TickInterval: -1, ScaleWorkers: -2})
	require.Error(t, err)
	for _, want := range []string{"Options.Scaler is nil", "Options.Ready is nil", "Options.TickInterval = -1", "Options.ScaleWorkers = -2"} {
		assert.ErrorContains(t, err, want)
	}
}

func TestRunnerRunTwice(t *testing.T) {
	fake := autoscalertest.NewFakeScaler()
	r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: fake, Ready: fake, Clock: clock.NewMock()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- r.Run(ctx) }()
	go func() { done <- r.Run(ctx) }()
	// Whichever starts second returns at once; the other runs until ctx ends.
	second := <-done
	assert.ErrorContains(t, second, "Run called twice")
	cancel()
	assert.NoError(t, <-done)
}

// TestRunnerScrapesOnTheRealClock runs a runner with a scraper in a
// synctest bubble, where the real clock is fake.
func TestRunnerScrapesOnTheRealClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := autoscalertest.NewFakeScaler()
		var replicas atomic.Int64
		var scrapes atomic.Int64
		scraper := autoscaler.ScraperFunc(func(_ context.Context, revision string, window time.Duration) (stats.Stat, error) {
			scrapes.Add(1)
			if revision != rev || window != time.Minute {
				return stats.Stat{}, fmt.Errorf("scraped %q with window %v", revision, window)
			}
			if replicas.Load() == 0 {
				return stats.Stat{}, autoscaler.ErrNoReplicas
			}
			return stats.Stat{Concurrency: 21}, nil
		})
		r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: fake, Ready: fake, Scraper: scraper})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = r.Run(ctx) }()
		require.NoError(t, r.Add(rev, cc10(t, map[string]string{autoscaler.InitialScaleAnnotation: "1"})))

		time.Sleep(4*time.Second + time.Millisecond)
		synctest.Wait()
		d, _ := r.Decision(rev)
		assert.Equal(t, -1, d.Recommended, "no replicas to scrape: no data, no decision")
		assert.Equal(t, -1, d.Desired)
		assert.Equal(t, int64(4), scrapes.Load(), "once a second")

		replicas.Store(1)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		d, _ = r.Decision(rev)
		assert.Equal(t, 3, d.Recommended)
		n, _ := fake.Current(rev)
		assert.Equal(t, 3, n)
	})
}

// TestRunnerReadyCountErrorSkipsTheRevision uses the real clock in a
// synctest bubble.
func TestRunnerReadyCountErrorSkipsTheRevision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failing atomic.Bool
		ready := autoscaler.ReadyCounterFunc(func(string) (int, error) {
			if failing.Load() {
				return 0, errors.New("cache not synced")
			}
			return 1, nil
		})
		r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: autoscalertest.NewFakeScaler(), Ready: ready})
		require.NoError(t, err)
		var decisions atomic.Int64
		r.Subscribe(func(autoscaler.Decision) { decisions.Add(1) })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = r.Run(ctx) }()
		require.NoError(t, r.Add(rev, cc10(t, nil)))
		time.Sleep(2*time.Second + time.Millisecond)
		synctest.Wait()
		assert.Equal(t, int64(1), decisions.Load())
		failing.Store(true)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		assert.Equal(t, int64(1), decisions.Load(), "skipped while counting fails")
		failing.Store(false)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		assert.Equal(t, int64(2), decisions.Load())
	})
}

// TestRunnerStress exercises every entry point at once on the real clock
// with a fast tick; run with -race.
func TestRunnerStress(t *testing.T) {
	fake := autoscalertest.NewFakeScaler()
	r, err := autoscaler.NewRunner(autoscaler.Options{
		Scaler: fake, Ready: fake, TickInterval: time.Millisecond,
		Scraper: autoscaler.ScraperFunc(func(context.Context, string, time.Duration) (stats.Stat, error) {
			return stats.Stat{Concurrency: 3}, nil
		}),
		ScrapeInterval: time.Millisecond,
	})
	require.NoError(t, err)
	var published atomic.Int64
	r.Subscribe(func(autoscaler.Decision) { published.Add(1) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()

	spec := cc10(t, nil)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 300 {
				name := fmt.Sprintf("rev-%d", i%20)
				switch g {
				case 0:
					_ = r.Add(name, spec)
				case 1:
					r.Poke(name, stats.Stat{Concurrency: float64(i % 3)})
				case 2:
					_ = r.Send(ctx, []stats.Message{{Revision: name, Stat: stats.Stat{Concurrency: 4, RPS: 2}}})
				case 3:
					s := spec
					s.TargetValue = float64(1 + i%10)
					_ = r.Update(name, s)
				case 4:
					if i%7 == 0 {
						r.Remove(name)
					}
					_, _ = r.Decision(name)
				case 5:
					unsubscribe := r.Subscribe(func(autoscaler.Decision) {})
					unsubscribe()
					_ = r.Len()
				}
			}
		})
	}
	wg.Wait()
	flushCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	require.NoError(t, r.Flush(flushCtx))
	cancel()
	<-done
}

// TestRunnerStopsScalingWhenCancelled: after ctx ends, the scale workers
// do not go on calling the backend (with a cancelled ctx) for every
// revision still queued.
func TestRunnerStopsScalingWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int64
	scaler := autoscaler.ScalerFunc(func(ctx context.Context, _ string, _ int) error {
		if calls.Add(1) == 1 {
			cancel() // the host shuts down while the first call runs
		}
		return ctx.Err()
	})
	ready := autoscaler.ReadyCounterFunc(func(string) (int, error) { return 0, nil })
	r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: scaler, Ready: ready, Clock: clock.NewMock(), ScaleWorkers: 1})
	require.NoError(t, err)
	for i := range 5 {
		require.NoError(t, r.Add(fmt.Sprint("rev-", i), cc10(t, nil)), "each queues its initial scale")
	}
	require.NoError(t, r.Run(ctx))
	assert.Equal(t, int64(1), calls.Load())
}

// scaleRecorder is a Scaler that blocks the calls it is told to until
// released, and records every call, the counts that landed last and the
// most calls it saw at once for one revision.
type scaleRecorder struct {
	mu      sync.Mutex
	calls   []int
	last    map[string]int
	running map[string]int
	most    int
	block   map[int]chan struct{} // by call index
}

func newScaleRecorder() *scaleRecorder {
	return &scaleRecorder{last: map[string]int{}, running: map[string]int{}, block: map[int]chan struct{}{}}
}

func (s *scaleRecorder) Scale(ctx context.Context, revision string, n int) error {
	s.mu.Lock()
	s.running[revision]++
	s.most = max(s.most, s.running[revision])
	wait := s.block[len(s.calls)]
	s.calls = append(s.calls, n)
	s.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
	s.mu.Lock()
	s.running[revision]--
	s.last[revision] = n
	s.mu.Unlock()
	return nil
}

func (s *scaleRecorder) state(revision string) (calls []int, last, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls), s.last[revision], s.most
}

// TestRunnerReAddWaitsForTheRemovedScaleCall: a revision removed while its
// Scale call runs and added again makes no call until that one returns, so
// the backend never gets two at once for one revision and the newest count
// lands last. Run in a synctest bubble with the real clock.
func TestRunnerReAddWaitsForTheRemovedScaleCall(t *testing.T) {
	initial := func(n int) autoscaler.Spec {
		return cc10(t, map[string]string{autoscaler.InitialScaleAnnotation: strconv.Itoa(n)})
	}
	tests := []struct {
		name  string
		churn func(t *testing.T, r *autoscaler.Runner) // after Add(rev, initial 3), while its call blocks
		calls []int                                    // after the blocked call returns
		last  int
	}{
		{"added again", func(t *testing.T, r *autoscaler.Runner) {
			require.True(t, r.Remove(rev))
			require.NoError(t, r.Add(rev, initial(1)))
		}, []int{3, 1}, 1},
		{"added again twice: the one removed before its call makes none", func(t *testing.T, r *autoscaler.Runner) {
			require.True(t, r.Remove(rev))
			require.NoError(t, r.Add(rev, initial(2)))
			require.True(t, r.Remove(rev))
			require.NoError(t, r.Add(rev, initial(1)))
		}, []int{3, 1}, 1},
		{"added again, then removed for good", func(t *testing.T, r *autoscaler.Runner) {
			require.True(t, r.Remove(rev))
			require.NoError(t, r.Add(rev, initial(1)))
			require.True(t, r.Remove(rev))
		}, []int{3}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newScaleRecorder()
				release := make(chan struct{})
				rec.block[0] = release
				ready := autoscaler.ReadyCounterFunc(func(string) (int, error) { return 0, nil })
				r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: rec, Ready: ready, ScaleWorkers: 4})
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { _ = r.Run(ctx); close(done) }()

				require.NoError(t, r.Add(rev, initial(3)))
				synctest.Wait()
				calls, _, _ := rec.state(rev)
				require.Equal(t, []int{3}, calls, "the first call is blocked")

				tt.churn(t, r)
				synctest.Wait()
				calls, _, most := rec.state(rev)
				assert.Equal(t, []int{3}, calls, "no call while the removed revision's runs")
				assert.Equal(t, 1, most)

				close(release)
				require.NoError(t, r.Flush(ctx))
				calls, last, most := rec.state(rev)
				assert.Equal(t, tt.calls, calls)
				assert.Equal(t, tt.last, last, "the newest count lands last")
				assert.Equal(t, 1, most, "never two calls at once for one revision")
				cancel()
				<-done
			})
		})
	}
}

// TestRunnerReAddStress removes and adds a few revisions again and again
// while their Scale calls run, on the real clock; the backend must never
// see two calls at once for one revision. Run with -race.
func TestRunnerReAddStress(t *testing.T) {
	var mu sync.Mutex
	running := map[string]int{}
	var overlaps, calls atomic.Int64
	scaler := autoscaler.ScalerFunc(func(_ context.Context, revision string, _ int) error {
		mu.Lock()
		running[revision]++
		if running[revision] > 1 {
			overlaps.Add(1)
		}
		mu.Unlock()
		calls.Add(1)
		for range 20 {
			runtime.Gosched() // a slow backend: let the churn catch the call running
		}
		mu.Lock()
		running[revision]--
		mu.Unlock()
		return nil
	})
	ready := autoscaler.ReadyCounterFunc(func(string) (int, error) { return 0, nil })
	r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: scaler, Ready: ready, ScaleWorkers: 8, TickInterval: time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()

	spec := cc10(t, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				name := fmt.Sprintf("rev-%d", (g+i)%3)
				r.Remove(name)
				_ = r.Add(name, spec)
			}
		})
	}
	wg.Wait()
	flushCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	require.NoError(t, r.Flush(flushCtx))
	cancel()
	<-done
	assert.NotZero(t, calls.Load())
	assert.Zero(t, overlaps.Load(), "calls at once for one revision")
}

// TestRunnerRefusesInvalidStats: a NaN or an infinity would stay in a
// window's running total for good and every later average would read as
// no load, so Record refuses it and Poke ignores it.
func TestRunnerRefusesInvalidStats(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, nil))
	err := h.Runner.Record(rev, stats.Stat{Concurrency: math.NaN()})
	require.Error(t, err)
	assert.ErrorContains(t, err, "concurrency = NaN")
	h.Runner.Poke(rev, stats.Stat{Concurrency: 1, RPS: math.Inf(1)})
	h.Runner.Poke(rev, stats.Stat{Concurrency: math.Inf(1)})
	h.SetLoad(rev, stats.Stat{Concurrency: 35})
	h.Advance(60 * time.Second)
	assert.Equal(t, 35.0, h.Decision(rev).StableLoad)
	assert.Equal(t, 5, h.Scale(rev))
}
