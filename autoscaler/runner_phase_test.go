package autoscaler_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/autoscaler/autoscalertest"
	"github.com/servingkit/servingkit/stats"
)

// phaseRun drives a Runner on a mock clock with one reporter in phase with
// its ticker: at every whole second the reporter sends the load of the
// second that just ended, stamped with that second's end, and every other
// second the runner ticks at the same instant. reportFirst says which of the
// two the runner sees first at a shared instant. The load is 0 until
// surgeAt, then surge. It returns the decisions of the ticks up to end.
// startPhaseRunner runs a Runner for rev with spec until the test ends, on
// a mock clock at the Unix epoch (so it ticks at even seconds), with one
// ready replica; decided gets every decision.
func startPhaseRunner(t *testing.T, spec autoscaler.Spec) (*clock.Mock, *autoscaler.Runner, <-chan autoscaler.Decision) {
	t.Helper()
	mock := clock.NewMock()
	fake := autoscalertest.NewFakeScaler()
	fake.SetReady(rev, 1)
	r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: fake, Ready: fake, Clock: mock})
	require.NoError(t, err)
	decided := make(chan autoscaler.Decision, 64)
	r.Subscribe(func(d autoscaler.Decision) { decided <- d })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.NoError(t, r.Add(rev, spec))
	return mock, r, decided
}

func phaseRun(t *testing.T, spec autoscaler.Spec, surgeAt, end int, surge float64, reportFirst bool) []autoscaler.Decision {
	t.Helper()
	mock, r, decided := startPhaseRunner(t, spec)

	var ds []autoscaler.Decision
	start := mock.Now()
	for sec := 1; sec <= end; sec++ {
		// The report at sec covers the second before it: surge load from
		// the first report after the surge began.
		load := 0.
		if sec > surgeAt {
			load = surge
		}
		report := func() {
			require.NoError(t, r.Record(rev, stats.Stat{Concurrency: load, Time: start.Add(time.Duration(sec) * time.Second)}))
		}
		if reportFirst {
			report()
		}
		mock.Add(time.Second)
		if sec%2 == 0 {
			select {
			case d := <-decided:
				require.Equal(t, mock.Now(), d.Time, "the decision of the tick at %ds", sec)
				ds = append(ds, d)
			case <-time.After(10 * time.Second):
				t.Fatalf("no decision for the tick at %ds", sec)
			}
		}
		if !reportFirst {
			report()
		}
	}
	return ds
}

// TestRunnerDecidesOnCompleteSeconds: reporters whose period ends exactly
// when the runner ticks (as an activator and a runner started together
// do) race the tick for every stat. Whichever wins, the tick decides on the
// seconds that are over, so a surge to 20× a replica's target is seen by
// the first tick after the report that carries it, in a 6 s and in a
// one-second panic window alike, and the excess burst capacity is negative
// there, keeping the activator in the path.
func TestRunnerDecidesOnCompleteSeconds(t *testing.T) {
	for _, stable := range []string{"60s", "10s"} { // panic windows of 6 s and 1 s
		for _, surgeAt := range []int{5, 6} { // first surge report at 6 (a tick) or 7 (between ticks)
			t.Run(fmt.Sprintf("stable %s/surge at %ds", stable, surgeAt), func(t *testing.T) {
				spec := cc10(t, map[string]string{
					autoscaler.WindowAnnotation:                stable,
					autoscaler.PanicWindowPercentageAnnotation: "10",
					autoscaler.TargetBurstCapacityAnnotation:   "10",
				})
				const end = 12
				surge := 20 * spec.TargetValue
				byOrder := map[bool][]autoscaler.Decision{}
				for _, reportFirst := range []bool{true, false} {
					ds := phaseRun(t, spec, surgeAt, end, surge, reportFirst)
					require.Len(t, ds, end/2)
					firstReport := surgeAt + 1
					for _, d := range ds {
						at := int(d.Time.Unix())
						switch {
						case at <= firstReport:
							require.False(t, d.Panicking, "reportFirst=%v: panicking at %ds, before the surge's report was over", reportFirst, at)
							require.GreaterOrEqual(t, d.ExcessBurstCapacity, 0, "reportFirst=%v: EBC at %ds, before the surge", reportFirst, at)
						case at <= firstReport+2: // the first tick after the report
							require.True(t, d.Panicking, "reportFirst=%v: not panicking at %ds, the first tick after the surge's report at %ds (panic load %v)", reportFirst, at, firstReport, d.PanicLoad)
							require.Negative(t, d.ExcessBurstCapacity, "reportFirst=%v: EBC at %ds", reportFirst, at)
							require.Greater(t, d.Desired, 1, "reportFirst=%v: desired at %ds", reportFirst, at)
						}
					}
					byOrder[reportFirst] = ds
				}
				for i := range byOrder[true] {
					a, b := byOrder[true][i], byOrder[false][i]
					require.Equal(t, a, b, "the tick at %v decides the same whichever of report and tick comes first", a.Time)
				}
			})
		}
	}
}

// TestRunnerCountsALateStat: a stat stamped within a second that a tick has
// already read is still recorded, and the windows covering that second
// count it at the next tick.
func TestRunnerCountsALateStat(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, cc10(t, map[string]string{autoscaler.WindowAnnotation: "10s"}))
	second1 := h.Clock.Now().Add(1500 * time.Millisecond)
	require.NoError(t, h.Runner.Record(rev, stats.Stat{Concurrency: 10, Time: second1}))
	h.Advance(2 * time.Second)
	require.Equal(t, 10.0, h.Decision(rev).StableLoad, "the tick at 2s reads the second 1–2")
	require.NoError(t, h.Runner.Record(rev, stats.Stat{Concurrency: 10, Time: second1})) // late
	h.Advance(2 * time.Second)
	require.Equal(t, 20.0, h.Decision(rev).StableLoad, "the tick at 4s counts the late stat in the second 1–2")
}

// TestRunnerJitteringReporter: a replica whose 1 s reports land a
// millisecond either side of each whole second, alternately, puts two
// stats in one second and none in the next. It names its Source, so each
// tick reads its load once a second, held over the empty seconds: a
// one-second panic window reads the steady load at every tick, not twice
// it and 0, and the revision does not panic.
func TestRunnerJitteringReporter(t *testing.T) {
	spec := cc10(t, map[string]string{
		autoscaler.WindowAnnotation:                "10s",
		autoscaler.PanicWindowPercentageAnnotation: "10",
	})
	load := 5.0 // a target of 7: twice that wants 2 replicas, and panics one (200 %)
	require.Equal(t, 7.0, spec.TargetValue)
	for _, earlyOdd := range []bool{true, false} {
		t.Run(fmt.Sprintf("early at odd seconds %v", earlyOdd), func(t *testing.T) {
			mock, r, decided := startPhaseRunner(t, spec)

			start := mock.Now()
			for n := 1; n <= 20; n++ {
				early := (n%2 == 1) == earlyOdd
				stamp := start.Add(time.Duration(n)*time.Second + time.Millisecond)
				if early {
					stamp = stamp.Add(-2 * time.Millisecond)
				}
				report := func() {
					require.NoError(t, r.Record(rev, stats.Stat{Source: "pod-a", Concurrency: load, Time: stamp}))
				}
				if early {
					report()
				}
				mock.Add(time.Second)
				if n%2 == 0 {
					select {
					case d := <-decided:
						require.Equal(t, load, d.PanicLoad, "panic load at the tick at %ds", n)
						require.Equal(t, load, d.StableLoad, "stable load at the tick at %ds", n)
						require.False(t, d.Panicking, "panicking at the tick at %ds", n)
					case <-time.After(10 * time.Second):
						t.Fatalf("no decision for the tick at %ds", n)
					}
				}
				if !early {
					report()
				}
			}
		})
	}
}
