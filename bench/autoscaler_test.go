package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"

	ocstats "go.opencensus.io/stats"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/types"
	pkgmetrics "knative.dev/pkg/metrics"
	"knative.dev/serving/pkg/autoscaler/aggregation"
	"knative.dev/serving/pkg/autoscaler/scaling"

	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/autoscaler/autoscalertest"
	"github.com/servingkit/servingkit/stats"
)

// knInputs feeds Knative's decider: its metric client and pod counter
// return whatever the current step says.
type knInputs struct {
	ready         int
	stable, panic float64
}

func (k *knInputs) StableAndPanicConcurrency(types.NamespacedName, time.Time) (float64, float64, error) {
	return k.stable, k.panic, nil
}

func (k *knInputs) StableAndPanicRPS(types.NamespacedName, time.Time) (float64, float64, error) {
	return k.stable, k.panic, nil
}

func (k *knInputs) ReadyCount() (int, error)    { return k.ready, nil }
func (k *knInputs) NotReadyCount() (int, error) { return 0, nil }

func knSpec(s autoscaler.DeciderSpec) *scaling.DeciderSpec {
	return &scaling.DeciderSpec{
		MaxScaleUpRate:      s.MaxScaleUpRate,
		MaxScaleDownRate:    s.MaxScaleDownRate,
		ScalingMetric:       "concurrency",
		TargetValue:         s.TargetValue,
		TotalValue:          s.TotalValue,
		TargetBurstCapacity: s.TargetBurstCapacity,
		ActivatorCapacity:   100,
		PanicThreshold:      s.PanicThreshold,
		StableWindow:        s.StableWindow,
		ScaleDownDelay:      s.ScaleDownDelay,
		InitialScale:        int32(s.InitialScale),
		Reachable:           !s.Unreachable,
		ActivationScale:     int32(s.ActivationScale),
	}
}

// knPanicking reads the unexported panic state of Knative's decider.
func knPanicking(u scaling.UniScaler) bool { return knPanicReader(u)() }

// knPanicReader returns a function that reads the unexported panic state
// of Knative's decider u with one load, finding the field once: it costs
// as little as reading servingkit's Recommendation.Panicking and does not
// allocate, so that it adds nothing to Knative's side of a benchmark.
func knPanicReader(u scaling.UniScaler) func() bool {
	v := reflect.ValueOf(u).Elem()
	f, ok := v.Type().FieldByName("panicTime")
	if !ok || f.Type != reflect.TypeFor[time.Time]() {
		panic("bench: Knative's autoscaler has no panicTime time.Time field")
	}
	pt := (*time.Time)(unsafe.Add(v.Addr().UnsafePointer(), f.Offset))
	return func() bool { return !pt.IsZero() }
}

// TestKnativeDeciderScenarios runs servingkit's decider scenario tables
// against Knative's own decider (knative.dev/serving v0.42.2): desired
// scale, excess burst capacity and panic state must agree at every step.
func TestKnativeDeciderScenarios(t *testing.T) {
	logger := zap.NewNop().Sugar()
	for _, sc := range autoscalertest.DeciderScenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			start := time.Unix(1_700_000_000, 0)
			if sc.Ready > 1 {
				// Knative starts in panic at time.Now(): start the
				// scenario at the even second that has just begun.
				next := time.Now().Truncate(2 * time.Second).Add(2 * time.Second)
				time.Sleep(time.Until(next))
				start = next
			}
			in := &knInputs{ready: sc.Ready}
			kn := scaling.New(context.Background(), "ns", "rev", in, in, knSpec(sc.Spec))
			differs := 0
			for i, st := range sc.Steps {
				in.ready, in.stable, in.panic = st.Ready, st.Stable, st.Panic
				got := kn.Scale(logger, start.Add(st.At))
				if !got.ScaleValid {
					t.Fatalf("step %d: Knative returned an invalid result", i)
				}
				knRec := autoscaler.Recommendation{
					Desired:             int(got.DesiredPodCount),
					ExcessBurstCapacity: int(got.ExcessBurstCapacity),
					Panicking:           knPanicking(kn),
				}
				if knRec != st.Want {
					if sc.KnativeDiffers == "" {
						t.Errorf("step %d at +%v: Knative %+v, servingkit table %+v", i, st.At, knRec, st.Want)
					} else {
						t.Logf("step %d at +%v: Knative %+v, servingkit %+v", i, st.At, knRec, st.Want)
					}
					differs++
				}
			}
			if sc.KnativeDiffers != "" {
				if differs == 0 {
					t.Errorf("marked as differing (%s) but Knative agrees", sc.KnativeDiffers)
				}
				t.Logf("differs from v0.42.2 as expected: %s", sc.KnativeDiffers)
			}
		})
	}
}

// TestKnativeWindowsAgree records the same random sequences (forward,
// same-second, out of order, gaps longer than the window) into servingkit's
// windows and Knative's buckets and compares every average bit for bit.
func TestKnativeWindowsAgree(t *testing.T) {
	for _, alg := range []autoscaler.Algorithm{autoscaler.Linear, autoscaler.WeightedExponential} {
		for _, n := range []int{1, 6, 60} {
			t.Run(fmt.Sprintf("%v/%ds", alg, n), func(t *testing.T) {
				size := time.Duration(n) * time.Second
				rng := rand.New(rand.NewPCG(uint64(n), 7))
				for seq := range 50 {
					ours := autoscaler.NewWindow(alg, size)
					var record func(time.Time, float64)
					var average func(time.Time) float64
					if alg == autoscaler.Linear {
						kn := aggregation.NewTimedFloat64Buckets(size, time.Second)
						record, average = kn.Record, kn.WindowAverage
					} else {
						kn := aggregation.NewWeightedFloat64Buckets(size, time.Second)
						record, average = kn.Record, kn.WindowAverage
					}
					sec := int64(1_700_000_000)
					for step := range 300 {
						switch p := rng.IntN(100); {
						case p < 60:
							sec += int64(rng.IntN(2))
						case p < 75:
							sec += int64(rng.IntN(3 * n))
						case p < 90:
							sec -= int64(rng.IntN(n + 2))
						default:
							sec += int64(n + rng.IntN(2*n))
						}
						now := time.Unix(sec, int64(rng.IntN(int(time.Second))))
						v := rng.Float64() * 100
						ours.Record(now, v)
						record(now, v)
						q := time.Unix(sec+int64(rng.IntN(2*n+2))-int64(n/2), int64(rng.IntN(int(time.Second))))
						if a, b := ours.Average(q), average(q); a != b {
							t.Fatalf("seq %d step %d: servingkit %v, Knative %v", seq, step, a, b)
						}
					}
				}
			})
		}
	}
}

// TestKnativeResizeAgrees resizes windows holding recent data (Knative's
// ResizeWindow reads time.Now(), so the data is placed around now).
func TestKnativeResizeAgrees(t *testing.T) {
	for _, tc := range []struct{ from, to time.Duration }{
		{60 * time.Second, 10 * time.Second}, {10 * time.Second, 60 * time.Second}, {6 * time.Second, 7 * time.Second},
	} {
		for _, alg := range []autoscaler.Algorithm{autoscaler.Linear, autoscaler.WeightedExponential} {
			t.Run(fmt.Sprintf("%v/%v-%v", alg, tc.from, tc.to), func(t *testing.T) {
				now := time.Now()
				ours := autoscaler.NewWindow(alg, tc.from)
				var record func(time.Time, float64)
				var average func(time.Time) float64
				var resize func(time.Duration)
				if alg == autoscaler.Linear {
					kn := aggregation.NewTimedFloat64Buckets(tc.from, time.Second)
					record, average, resize = kn.Record, kn.WindowAverage, kn.ResizeWindow
				} else {
					kn := aggregation.NewWeightedFloat64Buckets(tc.from, time.Second)
					record, average, resize = kn.Record, kn.WindowAverage, kn.ResizeWindow
				}
				for i := 5; i >= 1; i-- {
					at := now.Add(-time.Duration(i) * time.Second)
					ours.Record(at, float64(i*3))
					record(at, float64(i*3))
				}
				ours.Resize(time.Now(), tc.to)
				resize(tc.to)
				for _, q := range []time.Duration{-time.Second, 0, 3 * time.Second, tc.to} {
					if a, b := ours.Average(now.Add(q)), average(now.Add(q)); a != b {
						t.Errorf("average at %v after resize: servingkit %v, Knative %v", q, a, b)
					}
				}
			})
		}
	}
}

// BenchmarkDeciderStep runs one decision with the same spec and inputs
// through servingkit's Decider and Knative's autoscaler.Scale (with a
// no-op logger and in-memory metric client and pod counter). Equal work:
// both are created with 5 ready replicas at the same even second near
// time.Now() (Knative starts a decider with more than one ready replica in
// panic from time.Now(), so both start in panic), step every 2 s of
// simulated time with 5 ready replicas, a stable load of 42 and a panic
// load of 55 (target 10: under the panic threshold), so both leave panic
// after the 60 s stable window and then decide in stable mode. Both sides
// read the panic state after each step with a plain field load (Knative's
// through an offset found once, outside the loop).
//
// Knative's Scale also calls its metrics package on every step
// (pkgmetrics.RecordBatch with five measurements), which servingkit's
// decider does not do: a host reads the returned Recommendation instead.
// With no metrics exporter configured, as here, that call asks the
// metrics package's worker goroutine for its configuration over a channel
// and records nothing. knative-metrics-call measures that call alone, so
// that Knative's arithmetic is about knative minus knative-metrics-call.
func BenchmarkDeciderStep(b *testing.B) {
	spec := autoscalertest.BaseDeciderSpec()
	spec.TargetBurstCapacity, spec.TotalValue = 200, 100
	start := time.Now().Truncate(2 * time.Second)
	const ready = 5
	b.Run("servingkit", func(b *testing.B) {
		d, err := autoscaler.NewDecider(spec, start, ready)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		i, panicked := 0, 0
		for b.Loop() {
			if d.Step(start.Add(time.Duration(i)*2*time.Second), ready, 42, 55).Panicking {
				panicked++
			}
			i++
		}
		b.ReportMetric(float64(panicked), "panicking-steps")
	})
	b.Run("knative", func(b *testing.B) {
		in := &knInputs{ready: ready, stable: 42, panic: 55}
		kn := scaling.New(context.Background(), "ns", "rev", in, in, knSpec(spec))
		logger := zap.NewNop().Sugar()
		b.ReportAllocs()
		i, panicked := 0, 0
		panicking := knPanicReader(kn)
		for b.Loop() {
			kn.Scale(logger, start.Add(time.Duration(i)*2*time.Second))
			if panicking() {
				panicked++
			}
			i++
		}
		b.ReportMetric(float64(panicked), "panicking-steps")
	})
	b.Run("knative-metrics-call", func(b *testing.B) {
		// The call Scale makes in stable and panic mode alike, with the
		// same context and as many measurements of the same kinds.
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			pkgmetrics.RecordBatch(ctx,
				benchEBC.M(-1), benchDesired.M(5), benchStable.M(42), benchPanic.M(55), benchTarget.M(10))
		}
	})
}

// Measures of the kinds Knative's Scale records (its own are unexported),
// for BenchmarkDeciderStep's knative-metrics-call.
var (
	benchEBC     = ocstats.Float64("servingkit_bench_ebc", "", ocstats.UnitDimensionless)
	benchDesired = ocstats.Int64("servingkit_bench_desired", "", ocstats.UnitDimensionless)
	benchStable  = ocstats.Float64("servingkit_bench_stable", "", ocstats.UnitDimensionless)
	benchPanic   = ocstats.Float64("servingkit_bench_panic", "", ocstats.UnitDimensionless)
	benchTarget  = ocstats.Float64("servingkit_bench_target", "", ocstats.UnitDimensionless)
)

// BenchmarkWindow records one value and reads the average, per second, in
// a 60 s window.
func BenchmarkWindow(b *testing.B) {
	start := time.Unix(1_700_000_000, 0)
	for _, alg := range []autoscaler.Algorithm{autoscaler.Linear, autoscaler.WeightedExponential} {
		b.Run(alg.String()+"/servingkit", func(b *testing.B) {
			w := autoscaler.NewWindow(alg, time.Minute)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				now := start.Add(time.Duration(i) * time.Second)
				w.Record(now, 1)
				_ = w.Average(now)
				i++
			}
		})
		b.Run(alg.String()+"/knative", func(b *testing.B) {
			var record func(time.Time, float64)
			var average func(time.Time) float64
			if alg == autoscaler.Linear {
				kn := aggregation.NewTimedFloat64Buckets(time.Minute, time.Second)
				record, average = kn.Record, kn.WindowAverage
			} else {
				kn := aggregation.NewWeightedFloat64Buckets(time.Minute, time.Second)
				record, average = kn.Record, kn.WindowAverage
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				now := start.Add(time.Duration(i) * time.Second)
				record(now, 1)
				_ = average(now)
				i++
			}
		})
	}
}

// BenchmarkMemoryPerRevision reports the heap held per revision for its
// four averagers at the default windows (60 s stable, 6 s panic):
// servingkit's Collector (including its map slot) against Knative's four
// TimedFloat64Buckets (without any map, goroutine or decider).
func BenchmarkMemoryPerRevision(b *testing.B) {
	const n = 1000
	measure := func(b *testing.B, build func() any) {
		for b.Loop() {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			keep := build()
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/revision")
			runtime.KeepAlive(keep)
		}
	}
	b.Run("servingkit/collector", func(b *testing.B) {
		measure(b, func() any {
			var c autoscaler.Collector
			spec := autoscaler.CollectorSpec{StableWindow: time.Minute, PanicWindow: 6 * time.Second}
			for i := range n {
				_ = c.Set(fmt.Sprint("rev-", i), spec, time.Unix(0, 0))
			}
			return &c
		})
	})
	b.Run("knative/4-averagers", func(b *testing.B) {
		measure(b, func() any {
			keep := make([][4]*aggregation.TimedFloat64Buckets, n)
			for i := range keep {
				keep[i] = [4]*aggregation.TimedFloat64Buckets{
					aggregation.NewTimedFloat64Buckets(time.Minute, time.Second),
					aggregation.NewTimedFloat64Buckets(6*time.Second, time.Second),
					aggregation.NewTimedFloat64Buckets(time.Minute, time.Second),
					aggregation.NewTimedFloat64Buckets(6*time.Second, time.Second),
				}
			}
			return keep
		})
	})
	b.Run("servingkit/runner", func(b *testing.B) {
		measure(b, func() any {
			fake := autoscalertest.NewFakeScaler()
			r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: fake, Ready: fake})
			if err != nil {
				b.Fatal(err)
			}
			spec, _ := autoscaler.DefaultConfig().RevisionSpec(nil, 0)
			for i := range n {
				_ = r.Add(fmt.Sprint("rev-", i), spec)
			}
			_ = r.Send(context.Background(), []stats.Message{{Revision: "rev-0", Stat: stats.Stat{Concurrency: 1}}})
			return r
		})
	})
}
