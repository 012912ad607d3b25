package autoscaler

import (
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/stats"
)

var defaultWindows = CollectorSpec{StableWindow: 60 * time.Second, PanicWindow: 6 * time.Second}

func TestCollectorUnknownRevision(t *testing.T) {
	var c Collector // the zero value works
	assert.ErrorIs(t, c.Record("r", t0, stats.Stat{}), ErrNotCollecting)
	_, _, err := c.StableAndPanicConcurrency("r", t0)
	assert.ErrorIs(t, err, ErrNotCollecting)
	_, _, err = c.StableAndPanicRPS("r", t0)
	assert.ErrorIs(t, err, ErrNotCollecting)
	c.Delete("r")
}

func TestCollectorSubtractsProxiedLoad(t *testing.T) {
	var c Collector
	require.NoError(t, c.Set("r", defaultWindows, t0))
	require.NoError(t, c.Record("r", at(0), stats.Stat{Concurrency: 10, ProxiedConcurrency: 4, RPS: 20, ProxiedRPS: 5}))
	// The activator reports what it proxied; the same second adds up.
	require.NoError(t, c.Record("r", at(0.5), stats.Stat{Concurrency: 4, RPS: 5}))
	s, p, err := c.StableAndPanicConcurrency("r", at(0))
	require.NoError(t, err)
	assert.Equal(t, [2]float64{10, 10}, [2]float64{s, p})
	s, p, err = c.StableAndPanicRPS("r", at(0))
	require.NoError(t, err)
	assert.Equal(t, [2]float64{20, 20}, [2]float64{s, p})
}

func TestCollectorStableAndPanicWindows(t *testing.T) {
	var c Collector
	require.NoError(t, c.Set("r", CollectorSpec{StableWindow: 10 * time.Second, PanicWindow: 2 * time.Second}, t0))
	for i := range 10 {
		require.NoError(t, c.Record("r", at(float64(i)), stats.Stat{Concurrency: float64(i)}))
	}
	s, p, err := c.StableAndPanicConcurrency("r", at(9))
	require.NoError(t, err)
	assert.Equal(t, 4.5, s)
	assert.Equal(t, 8.5, p)
}

func TestCollectorNoData(t *testing.T) {
	var c Collector
	require.NoError(t, c.Set("scraped", CollectorSpec{StableWindow: 6 * time.Second, PanicWindow: time.Second, RequireData: true}, t0))
	require.NoError(t, c.Set("activator-only", CollectorSpec{StableWindow: 6 * time.Second, PanicWindow: time.Second}, t0))

	_, _, err := c.StableAndPanicConcurrency("scraped", at(0))
	assert.ErrorIs(t, err, ErrNoData)
	s, p, err := c.StableAndPanicConcurrency("activator-only", at(0))
	require.NoError(t, err, "without replica stats, silence is zero load")
	assert.Equal(t, [2]float64{0, 0}, [2]float64{s, p})

	require.NoError(t, c.Record("scraped", at(1), stats.Stat{Concurrency: 3}))
	s, _, err = c.StableAndPanicConcurrency("scraped", at(6))
	require.NoError(t, err)
	assert.Equal(t, 3.0, s)
	// As in Knative, the linear average ends a second before the window
	// counts as empty.
	s, _, err = c.StableAndPanicConcurrency("scraped", at(7))
	require.NoError(t, err)
	assert.Equal(t, 0.0, s)
	_, _, err = c.StableAndPanicConcurrency("scraped", at(8))
	assert.ErrorIs(t, err, ErrNoData, "a stable window without data")
}

func TestCollectorSetUpdates(t *testing.T) {
	var c Collector
	require.NoError(t, c.Set("r", CollectorSpec{StableWindow: 10 * time.Second, PanicWindow: 2 * time.Second}, t0))
	for i := range 10 {
		require.NoError(t, c.Record("r", at(float64(i)), stats.Stat{Concurrency: 10}))
	}
	require.NoError(t, c.Set("r", CollectorSpec{StableWindow: 20 * time.Second, PanicWindow: 4 * time.Second, Algorithm: WeightedExponential, RequireData: true}, at(9)))
	col := c.get("r")
	assert.Equal(t, 20*time.Second, col.stableConc.Size())
	assert.Equal(t, 4*time.Second, col.panicRPS.Size())
	assert.Equal(t, WeightedExponential, col.panicConc.Algorithm())
	s, _, err := c.StableAndPanicConcurrency("r", at(9))
	require.NoError(t, err)
	// Ten seconds of 10 under the weights of a 20 s window.
	assert.InDelta(t, 10*(1-math.Pow(1-smoothingCoefficient(20), 10)), s, 1e-9, "the data survived the resize")

	assert.Error(t, c.Set("r", CollectorSpec{}, t0))
	c.Delete("r")
	assert.ErrorIs(t, c.Record("r", t0, stats.Stat{}), ErrNotCollecting)
}

func TestCollectorRace(t *testing.T) {
	var c Collector
	require.NoError(t, c.Set("r", defaultWindows, t0))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				now := at(float64(i) / 10)
				switch g {
				case 0:
					_, _, _ = c.StableAndPanicConcurrency("r", now)
				case 1:
					_ = c.Set("r", CollectorSpec{StableWindow: time.Duration(6+i%5) * time.Second, PanicWindow: time.Second}, now)
				default:
					_ = c.Record("r", now, stats.Stat{Concurrency: 1})
				}
			}
		})
	}
	wg.Wait()
}

// knativeBytesPerRevision is Knative's measured heap cost of one revision's
// four linear averagers at the default windows (reference §3.1).
const knativeBytesPerRevision = 1567.4

func TestCollectionMemory(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { _ = newCollection(defaultWindows) })
	assert.Equal(t, 2.0, allocs, "the struct and one buffer for all four windows")

	const n = 1000
	keep := make([]*collection, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = newCollection(defaultWindows)
	}
	runtime.ReadMemStats(&after)
	perRevision := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("collection at 60s/6s: %.0f bytes per revision (Knative: %.1f)", perRevision, knativeBytesPerRevision)
	assert.LessOrEqual(t, perRevision, knativeBytesPerRevision)
	runtime.KeepAlive(keep)
}

func BenchmarkCollection(b *testing.B) {
	b.Run("new/60s-6s", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = newCollection(defaultWindows)
		}
	})
	b.Run("record+averages", func(b *testing.B) {
		c := newCollection(defaultWindows)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			now := t0.Add(time.Duration(i) * time.Second)
			c.record(now, stats.Stat{Concurrency: 5, RPS: 7})
			_, _, _ = c.averages(Concurrency, now)
			i++
		}
	})
}

func TestCollectorRefusesInvalidStats(t *testing.T) {
	var c Collector
	require.NoError(t, c.Set("r", CollectorSpec{StableWindow: 60 * time.Second, PanicWindow: 6 * time.Second}, t0))
	for _, s := range []stats.Stat{
		{Concurrency: math.NaN()},
		{RPS: math.Inf(1)},
		{ProxiedConcurrency: -1},
	} {
		assert.Error(t, c.Record("r", t0, s), "%+v", s)
	}
	require.NoError(t, c.Record("r", t0, stats.Stat{Concurrency: 3, RPS: 2}))
	st, p, err := c.StableAndPanicConcurrency("r", t0)
	require.NoError(t, err)
	assert.Equal(t, [2]float64{3, 3}, [2]float64{st, p})
	st, p, err = c.StableAndPanicRPS("r", t0)
	require.NoError(t, err)
	assert.Equal(t, [2]float64{2, 2}, [2]float64{st, p})
}

// TestCollectionRecordAllocs pins that recording and reading do not
// allocate once a collection has seen a second with as many stats as this
// one (the open second's buffer keeps its capacity): two sources a second,
// read by a tick and by a poke.
func TestCollectionRecordAllocs(t *testing.T) {
	c := newCollection(defaultWindows)
	t0 := time.Unix(1_700_000_000, 0)
	sec := 0
	step := func() {
		now := t0.Add(time.Duration(sec) * time.Second)
		_ = c.record(now, stats.Stat{Concurrency: 3})
		_ = c.record(now.Add(time.Millisecond), stats.Stat{Concurrency: 4, RPS: 2})
		_, _, _ = c.completeAverages(Concurrency, now.Add(time.Second))
		_, _, _ = c.averages(RPS, now)
		sec++
	}
	step() // the open second's buffer grows to two
	assert.Zero(t, testing.AllocsPerRun(1000, step))
}
