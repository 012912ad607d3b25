package autoscaler

import (
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/internal/race"
	"github.com/servingkit/servingkit/stats"
)

// oneBucketPanic is the tour's windows: a 10 s stable window at 10 %, so
// the panic window is one bucket and reads exactly one second's sum.
var oneBucketPanic = CollectorSpec{StableWindow: 10 * time.Second, PanicWindow: time.Second}

// report is one stat a source sends, at a time in seconds after t0.
type report struct {
	at   float64
	src  string
	conc float64
}

// replay records reports and, at each whole second from 1 to last, reads
// the collection as a tick does (through the previous second); it returns
// the panic and stable concurrency each tick read, by the second it read
// through. Events run in time order; a tick at a whole second comes before
// a report at the same time.
func replay(t *testing.T, reports []report, last int) (panicLoad, stable map[int]float64) {
	t.Helper()
	c := newCollection(oneBucketPanic)
	sort.SliceStable(reports, func(i, j int) bool { return reports[i].at < reports[j].at })
	panicLoad, stable = map[int]float64{}, map[int]float64{}
	i := 0
	for tick := 1; tick <= last; tick++ {
		for ; i < len(reports) && reports[i].at < float64(tick); i++ {
			r := reports[i]
			require.NoError(t, c.record(at(r.at), stats.Stat{Source: r.src, Concurrency: r.conc, RPS: 2 * r.conc}))
		}
		s, p, err := c.completeAverages(Concurrency, at(float64(tick)))
		require.NoError(t, err)
		panicLoad[tick-1], stable[tick-1] = p, s
		sr, pr, err := c.completeAverages(RPS, at(float64(tick)))
		require.NoError(t, err)
		assert.Equal(t, [2]float64{2 * s, 2 * p}, [2]float64{sr, pr}, "RPS through second %d", tick-1)
	}
	return panicLoad, stable
}

// jittering returns the reports of a source with a 1 s period whose
// reports land a millisecond either side of each whole second from first
// to last: early at even seconds, late at odd ones, so that each odd
// second gets two of its stats and each even second none.
func jittering(src string, conc float64, first, last int) []report {
	var rs []report
	for n := first; n <= last; n++ {
		d := 0.001
		if n%2 == 0 {
			d = -0.001
		}
		rs = append(rs, report{float64(n) + d, src, conc})
	}
	return rs
}

// steady returns the reports of a source that sends one stat in the
// middle of each second from first to last.
func steady(src string, conc float64, first, last int) []report {
	var rs []report
	for n := first; n <= last; n++ {
		rs = append(rs, report{float64(n) + 0.5, src, conc})
	}
	return rs
}

func TestCollectionCountsAJitteringSourceOnce(t *testing.T) {
	t.Run("alternating a millisecond either side of the second", func(t *testing.T) {
		panicLoad, stable := replay(t, jittering("pod-a", 10, 1, 30), 30)
		for sec := 1; sec < 30; sec++ {
			assert.Equal(t, 10.0, panicLoad[sec], "panic load through second %d", sec)
			assert.Equal(t, 10.0, stable[sec], "stable load through second %d", sec)
		}
	})
	t.Run("twice in a second, then none in the next", func(t *testing.T) {
		var rs []report
		for n := 1; n <= 31; n += 3 {
			// Seconds n and n+1 twice, n+2 skipped.
			rs = append(rs, report{float64(n) + 0.3, "pod-a", 10}, report{float64(n) + 0.7, "pod-a", 10},
				report{float64(n+1) + 0.3, "pod-a", 10}, report{float64(n+1) + 0.9, "pod-a", 10})
		}
		panicLoad, stable := replay(t, rs, 32)
		for sec := 1; sec < 32; sec++ {
			assert.Equal(t, 10.0, panicLoad[sec], "panic load through second %d", sec)
			assert.Equal(t, 10.0, stable[sec], "stable load through second %d", sec)
		}
	})
}

func TestCollectionSumsSourcesOneJittering(t *testing.T) {
	rs := append(steady("pod-a", 4, 1, 20), jittering("pod-b", 6, 1, 20)...)
	rs = append(rs, jittering("activator-0", 1.5, 1, 20)...)
	panicLoad, stable := replay(t, rs, 20)
	for sec := 1; sec < 20; sec++ {
		assert.Equal(t, 11.5, panicLoad[sec], "panic load through second %d", sec)
		assert.Equal(t, 11.5, stable[sec], "stable load through second %d", sec)
	}
}

func TestCollectionHoldsAStoppedSourceOneSecond(t *testing.T) {
	rs := append(steady("pod-a", 4, 1, 12), steady("pod-b", 6, 1, 5)...)
	panicLoad, _ := replay(t, rs, 12)
	for sec := 1; sec <= 5; sec++ {
		assert.Equal(t, 10.0, panicLoad[sec], "both report through second %d", sec)
	}
	assert.Equal(t, 10.0, panicLoad[6], "pod-b held at its last stat for one second")
	for sec := 7; sec < 12; sec++ {
		assert.Equal(t, 4.0, panicLoad[sec], "pod-b gone through second %d", sec)
	}

	c := newCollection(oneBucketPanic)
	for n := 1; n <= 12; n++ {
		require.NoError(t, c.record(at(float64(n)), stats.Stat{Source: "pod-a", Concurrency: 4}))
		if n <= 5 {
			require.NoError(t, c.record(at(float64(n)), stats.Stat{Source: "pod-b", Concurrency: 6}))
		}
	}
	_, _, _ = c.completeAverages(Concurrency, at(13))
	assert.Len(t, c.sources, 1, "pod-b forgotten")
	assert.Contains(t, c.sources, "pod-a")
}

// TestCollectionWithoutSourceSums pins that stats without a Source count
// as they come, as in Knative: two in a second add up and a second with
// none reads 0 — the same as a bare Window fed the same values.
func TestCollectionWithoutSourceSums(t *testing.T) {
	rs := jittering("", 10, 1, 12)
	panicLoad, _ := replay(t, rs, 12)
	w := NewWindow(Linear, time.Second)
	for sec := 1; sec < 12; sec++ {
		for _, r := range rs {
			if int(r.at) == sec {
				w.Record(at(r.at), r.conc)
			}
		}
		assert.Equal(t, w.Average(at(float64(sec))), panicLoad[sec], "second %d", sec)
		want := 20.0
		if sec%2 == 0 {
			want = 0
		}
		assert.Equal(t, want, panicLoad[sec], "second %d", sec)
	}
}

// TestCollectionLateStatOfAHeldSecond pins that a stat landing after its
// second was closed replaces what the windows hold for its source there,
// whether the source was held in that second or had a stat in it already.
func TestCollectionLateStatOfAHeldSecond(t *testing.T) {
	c := newCollection(oneBucketPanic)
	panicAt := func(tick float64) float64 {
		t.Helper()
		_, p, err := c.completeAverages(Concurrency, at(tick))
		require.NoError(t, err)
		return p
	}
	rec := func(sec float64, src string, conc float64) {
		t.Helper()
		require.NoError(t, c.record(at(sec), stats.Stat{Source: src, Concurrency: conc}))
	}
	rec(1.5, "pod-a", 4)
	rec(2.5, "pod-a", 4)
	rec(3.5, "pod-b", 1)
	assert.Equal(t, 5.0, panicAt(4), "second 3: pod-a held at 4, pod-b 1")
	rec(3.999, "pod-a", 8) // pod-a's stat of second 3, after the tick
	assert.Equal(t, 9.0, panicAt(4), "the late stat replaces the held one")
	rec(3.9995, "pod-a", 7) // and again: its latest counts
	assert.Equal(t, 8.0, panicAt(4))

	rec(4.2, "pod-a", 4)
	assert.Equal(t, 5.0, panicAt(5), "second 4: pod-a 4, pod-b held at 1")
	rec(4.9, "pod-a", 6) // a second stat of second 4, after the tick
	assert.Equal(t, 7.0, panicAt(5), "counted once, with its latest stat")
	assert.Equal(t, 6.0, panicAt(6), "second 5: pod-a held at its latest stat, pod-b gone")

	rec(5.5, "", 2) // no Source: adds up
	assert.Equal(t, 8.0, panicAt(6))
}

// TestCollectionRepeatAfterAKnativeRead pins that a Knative read
// (averages), which puts the open second's stats in the windows, does not
// make a source's second stat in that second count twice.
func TestCollectionRepeatAfterAKnativeRead(t *testing.T) {
	c := newCollection(oneBucketPanic)
	require.NoError(t, c.record(at(1.2), stats.Stat{Source: "pod-a", Concurrency: 4}))
	_, p, err := c.averages(Concurrency, at(1.3))
	require.NoError(t, err)
	assert.Equal(t, 4.0, p)
	require.NoError(t, c.record(at(1.8), stats.Stat{Source: "pod-a", Concurrency: 6}))
	_, p, err = c.averages(Concurrency, at(1.9))
	require.NoError(t, err)
	assert.Equal(t, 6.0, p)
	require.NoError(t, c.record(at(1.95), stats.Stat{Source: "pod-a", Concurrency: 5}))
	_, p, err = c.completeAverages(Concurrency, at(2))
	require.NoError(t, err)
	assert.Equal(t, 5.0, p)
	_, p, err = c.averages(Concurrency, at(2.5))
	require.NoError(t, err)
	assert.Equal(t, 0.0, p, "a Knative read of second 2, which pod-a has not reported in yet")
	_, p, err = c.completeAverages(Concurrency, at(3))
	require.NoError(t, err)
	assert.Equal(t, 5.0, p, "second 2 closed: pod-a held")
}

// TestCollectionSourceAllocs pins that recording stats with sources, a
// source repeating within a second and one held across a second included,
// and reading them do not allocate once the collection has seen them.
func TestCollectionSourceAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race")
	}
	c := newCollection(oneBucketPanic)
	a, b := stats.Stat{Source: "pod-a", Concurrency: 3}, stats.Stat{Source: "pod-b", Concurrency: 4, RPS: 2}
	sec := 0
	step := func() {
		now := t0.Add(time.Duration(sec) * time.Second)
		_ = c.record(now, a)
		_ = c.record(now.Add(time.Millisecond), b)
		_ = c.record(now.Add(2*time.Millisecond), b) // twice in a second
		_ = c.record(now.Add(3*time.Millisecond), stats.Stat{Concurrency: 1})
		_, _, _ = c.averages(RPS, now.Add(4*time.Millisecond))
		_ = c.record(now.Add(5*time.Millisecond), a)
		_, _, _ = c.completeAverages(Concurrency, now.Add(time.Second))
		now = now.Add(time.Second)
		_ = c.record(now, a) // pod-b held
		_, _, _ = c.completeAverages(Concurrency, now.Add(time.Second))
		sec += 2
	}
	step()
	step()
	assert.Zero(t, testing.AllocsPerRun(1000, step))
}
