package autoscaler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/servingkit/servingkit/internal/race"
	"github.com/servingkit/servingkit/stats"
)

// TestWindowAllocs pins "0 allocs" for a window's record and read
// (BENCHMARKS, autoscaler), for both algorithms.
func TestWindowAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race")
	}
	for _, alg := range []Algorithm{Linear, WeightedExponential} {
		w := NewWindow(alg, 60*time.Second)
		i := 0
		assert.Zero(t, testing.AllocsPerRun(1000, func() {
			w.Record(t0.Add(time.Duration(i)*time.Second), 1)
			i++
		}), "%v: Record", alg)
		assert.Zero(t, testing.AllocsPerRun(1000, func() {
			now := t0.Add(time.Duration(i) * time.Second)
			w.Record(now, 1)
			_ = w.Average(now)
			i++
		}), "%v: Record and Average", alg)
	}
}

// TestRunnerHotPathAllocs pins "0 allocs" for a pushed stat (Record, and a
// Poke of a revision already waiting to be decided) and for a tick over
// many revisions, as BenchmarkRunnerRecord and BenchmarkRunnerTick measure
// them: once the runner's buffers have grown, neither allocates.
func TestRunnerHotPathAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race")
	}
	r, names := benchRunner(t, 100)
	s := stats.Stat{Concurrency: 3, RPS: 10, Time: t0}
	i := 0
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		_ = r.Record(names[i%len(names)], s)
		i++
	}), "Record")
	for _, name := range names { // each now waits for the runner's goroutine
		r.Poke(name, s)
	}
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		r.Poke(names[i%len(names)], s)
		i++
	}), "Poke")

	r.Subscribe(func(Decision) {})
	now := t0
	tick := func() {
		for j, name := range names {
			_ = r.Record(name, stats.Stat{Concurrency: float64((i + j) % 40), RPS: 10, Time: now})
		}
		now = now.Add(2 * time.Second)
		r.tick(now)
		i++
	}
	tick() // grow the tick's buffers once
	assert.Zero(t, testing.AllocsPerRun(100, tick), "a tick over %d revisions, with a stat for each", len(names))
}
