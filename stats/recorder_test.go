package stats

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/internal/race"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestRecorderTimeWeighted(t *testing.T) {
	type ev struct {
		ms      int
		in      bool
		proxied bool
	}
	tests := []struct {
		name     string
		events   []ev
		reportMs int
		want     Report
	}{{
		name:     "no events",
		reportMs: 1000,
		want:     Report{Period: time.Second},
	}, {
		// One request for the whole second: concurrency 1.
		name:     "one request spanning the period",
		events:   []ev{{0, true, false}},
		reportMs: 1000,
		want:     Report{Concurrency: 1, Requests: 1, Period: time.Second},
	}, {
		// 1 from 0–250, 2 from 250–500, 1 from 500–1000:
		// (0.25 + 0.5 + 0.5) / 1 = 1.25.
		name:     "overlapping requests",
		events:   []ev{{0, true, false}, {250, true, false}, {500, false, false}},
		reportMs: 1000,
		want:     Report{Concurrency: 1.25, Requests: 2, Period: time.Second},
	}, {
		// Proxied request from 200 to 700 (0.5 s), plain from 0 to 1000:
		// total = 1 + 0.5 = 1.5, proxied = 0.5.
		name:     "proxied part",
		events:   []ev{{0, true, false}, {200, true, true}, {700, false, true}},
		reportMs: 1000,
		want:     Report{Concurrency: 1.5, ProxiedConcurrency: 0.5, Requests: 2, ProxiedRequests: 1, Period: time.Second},
	}, {
		// Event times running backwards add no time but still count.
		name:     "out of order event",
		events:   []ev{{0, true, false}, {600, true, false}, {400, false, false}},
		reportMs: 1000,
		// 1 from 0–600, then 1 (2 in, 1 out) from 600–1000: 1.
		want: Report{Concurrency: 1, Requests: 2, Period: time.Second},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRecorder(t0)
			for _, e := range tt.events {
				if e.in {
					r.In(at(e.ms), e.proxied)
				} else {
					r.Out(at(e.ms), e.proxied)
				}
			}
			got := r.Report(at(tt.reportMs))
			assert.InDelta(t, tt.want.Concurrency, got.Concurrency, 1e-9)
			assert.InDelta(t, tt.want.ProxiedConcurrency, got.ProxiedConcurrency, 1e-9)
			assert.Equal(t, tt.want.Requests, got.Requests)
			assert.Equal(t, tt.want.ProxiedRequests, got.ProxiedRequests)
			assert.Equal(t, tt.want.Period, got.Period)
		})
	}
}

func TestRecorderCarriesConcurrencyAcrossPeriods(t *testing.T) {
	r := NewRecorder(t0)
	r.In(at(0), true)
	r.In(at(500), false)
	first := r.Report(at(1000))
	assert.InDelta(t, 1.5, first.Concurrency, 1e-9)
	assert.InDelta(t, 1.0, first.ProxiedConcurrency, 1e-9)

	// Both still in flight: the next period sees 2 throughout, and no new
	// arrivals.
	second := r.Report(at(2000))
	assert.InDelta(t, 2.0, second.Concurrency, 1e-9)
	assert.InDelta(t, 1.0, second.ProxiedConcurrency, 1e-9)
	assert.Zero(t, second.Requests)

	r.Out(at(2500), true)
	r.Out(at(2500), false)
	third := r.Report(at(3000))
	assert.InDelta(t, 1.0, third.Concurrency, 1e-9) // 2 for half a second
	total, proxied := r.InFlight()
	assert.Zero(t, total)
	assert.Zero(t, proxied)
}

func TestRecorderZeroValueStartsAtFirstEvent(t *testing.T) {
	var r Recorder
	r.In(at(5000), false)
	got := r.Report(at(5500))
	assert.Equal(t, 500*time.Millisecond, got.Period)
	assert.InDelta(t, 1.0, got.Concurrency, 1e-9)
}

func TestReportStat(t *testing.T) {
	rep := Report{Concurrency: 3, ProxiedConcurrency: 1, Requests: 10, ProxiedRequests: 4, Period: 2 * time.Second}
	s := rep.Stat(2 * time.Second)
	assert.Equal(t, Stat{Concurrency: 3, ProxiedConcurrency: 1, RPS: 5, ProxiedRPS: 2}, s)
	assert.Equal(t, 10.0, rep.Stat(0).RPS, "period 0 leaves counts undivided")
}

// TestRecorderConcurrentBalanced hammers a recorder from many goroutines
// and checks the counts balance; run with -race.
func TestRecorderConcurrentBalanced(t *testing.T) {
	t.Parallel()
	r := NewRecorder(t0)
	const workers, perWorker = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				p := (w+i)%3 == 0
				r.In(at(i), p)
				r.Out(at(i+1), p)
			}
		}()
	}
	var reported uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			reported += r.Report(at(i * 20)).Requests
		}
	}()
	wg.Wait()
	<-done
	reported += r.Report(at(perWorker + 10)).Requests
	require.Equal(t, uint64(workers*perWorker), reported)
	total, proxied := r.InFlight()
	assert.Zero(t, total)
	assert.Zero(t, proxied)
}

// TestRecorderAllocs pins "0 allocs" for a request in and out
// (BENCHMARKS, stats.Recorder), proxied or not.
func TestRecorderAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts are checked without -race")
	}
	r := NewRecorder(t0)
	now := t0
	for _, proxied := range []bool{false, true} {
		assert.Zero(t, testing.AllocsPerRun(1000, func() {
			now = now.Add(time.Microsecond)
			r.In(now, proxied)
			r.Out(now, proxied)
		}), "proxied %v", proxied)
	}
}

func BenchmarkRecorderInOut(b *testing.B) {
	r := NewRecorder(t0)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		r.In(now, false)
		r.Out(now, false)
	}
}

func BenchmarkRecorderInOutParallel(b *testing.B) {
	r := NewRecorder(t0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		now := t0
		for pb.Next() {
			now = now.Add(time.Microsecond)
			r.In(now, true)
			r.Out(now, true)
		}
	})
}
