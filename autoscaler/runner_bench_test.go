package autoscaler

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/stats"
)

// benchRunner returns a runner with n revisions at Knative's default spec
// (container concurrency 10) and a ready counter that costs a map lookup,
// as a host's cache would.
func benchRunner(tb testing.TB, n int) (*Runner, []string) {
	tb.Helper()
	ready := make(map[string]int, n)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("namespace-%d/revision-%05d", i%100, i)
		ready[names[i]] = 1 + i%5
	}
	r, err := NewRunner(Options{
		Scaler: ScalerFunc(func(context.Context, string, int) error { return nil }),
		Ready:  ReadyCounterFunc(func(rev string) (int, error) { return ready[rev], nil }),
		Clock:  clock.NewMock(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	spec, err := DefaultConfig().RevisionSpec(nil, 10)
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range names {
		if err := r.Add(name, spec); err != nil {
			tb.Fatal(err)
		}
	}
	return r, names
}

// BenchmarkRunnerTick is one tick over 10,000 revisions on one goroutine:
// for each, a ready count, the stable and panic averages, a decider step,
// the scale-to-zero rules and a published decision. Each revision gets one
// stat per simulated second, outside the timer.
func BenchmarkRunnerTick(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("revisions=%d", n), func(b *testing.B) {
			r, names := benchRunner(b, n)
			r.Subscribe(func(Decision) {})
			now := t0
			r.tick(now) // grow the tick's buffers once
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				for j, name := range names {
					_ = r.Record(name, stats.Stat{Concurrency: float64((i + j) % 40), RPS: 10, Time: now})
				}
				now = now.Add(2 * time.Second)
				b.StartTimer()
				r.tick(now)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/revision")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/tick")
		})
	}
}

// BenchmarkRunnerRecord is a pushed stat (Record, and Poke that does not
// wake anything) on a runner with 10,000 revisions.
func BenchmarkRunnerRecord(b *testing.B) {
	r, names := benchRunner(b, 10000)
	s := stats.Stat{Concurrency: 3, RPS: 10, Time: t0}
	b.Run("record", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_ = r.Record(names[i%len(names)], s)
			i++
		}
	})
	b.Run("poke", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r.Poke(names[i%len(names)], s)
			i++
		}
	})
	b.Run("poke/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				r.Poke(names[i%len(names)], s)
				i++
			}
		})
	})
}

// BenchmarkRunnerMemory reports the heap a runner holds per revision at
// the default windows (60 s / 6 s): entry, decider, collection, map slot.
func BenchmarkRunnerMemory(b *testing.B) {
	const n = 10000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r, _ := benchRunner(b, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/revision")
		runtime.KeepAlive(r)
	}
}

// BenchmarkPokeToScale measures, on the real clock, the time from a Poke
// that wakes a revision at zero to the start of the Scale call: the poke is
// handed to the runner's goroutine, decided there, and the call is made by
// a scale goroutine. ns/op is the mean latency; p50 and p99 are reported.
func BenchmarkPokeToScale(b *testing.B) {
	scaled := make(chan time.Time, 1)
	r, err := NewRunner(Options{
		Scaler: ScalerFunc(func(context.Context, string, int) error {
			scaled <- time.Now()
			return nil
		}),
		Ready:        ReadyCounterFunc(func(string) (int, error) { return 0, nil }),
		TickInterval: time.Hour, // no tick interferes
	})
	if err != nil {
		b.Fatal(err)
	}
	spec, err := DefaultConfig().RevisionSpec(map[string]string{TargetBurstCapacityAnnotation: "-1"}, 10)
	if err != nil {
		b.Fatal(err)
	}
	spec.InitialScale = 0
	if err := r.Add("rev", spec); err != nil {
		b.Fatal(err)
	}
	e := r.lookup("rev")
	// At zero: the last recommendation was 0, nothing applied.
	reset := func() {
		e.lastRec.Store(0)
		e.mu.Lock()
		e.applied, e.pending = 0, 0
		e.mu.Unlock()
	}
	reset()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	stat := stats.Stat{Source: "activator", Concurrency: 1, RPS: 1}
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		r.Poke("rev", stat)
		end := <-scaled
		lat = append(lat, end.Sub(start))
		b.StopTimer()
		if err := r.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		reset()
		b.StartTimer()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
