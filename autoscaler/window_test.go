package autoscaler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// t0 is an even Unix second, so that 2 s delay slots line up with ticks.
var t0 = time.Unix(1_700_000_000, 0)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// Measured facts from the reference (§3.1).
func TestLinearWindowMeasured(t *testing.T) {
	t.Run("single write of 10 in a 60s window", func(t *testing.T) {
		w := NewWindow(Linear, 60*time.Second)
		w.Record(at(0), 10)
		for _, s := range []float64{0, 1, 30, 59} {
			assert.Equal(t, 10.0, w.Average(at(s)), "at +%vs", s)
		}
		assert.Equal(t, 0.0, w.Average(at(60)))
	})
	t.Run("values 1..5 in a 5s window", func(t *testing.T) {
		w := NewWindow(Linear, 5*time.Second)
		for i := range 5 {
			w.Record(at(float64(i)), float64(i+1))
		}
		assert.Equal(t, 3.0, w.Average(at(4)))
		assert.Equal(t, 4.0, w.Average(at(6)))
		assert.Equal(t, 0.0, w.Average(at(10)))
	})
}

func TestWeightedWindowMeasured(t *testing.T) {
	t.Run("smoothing coefficient", func(t *testing.T) {
		for n, want := range map[int]float64{
			1: 0.9999, 2: 0.99, 3: 0.953584, 5: 0.841511, 6: 0.784557, 10: 0.601893,
			12: 0.535841, 20: 0.369043, 30: 0.264358, 40: 0.205672, 46: 0.2, 60: 0.2, 3600: 0.2,
		} {
			assert.InDelta(t, want, smoothingCoefficient(n), 5e-7, "N=%d", n)
		}
	})
	t.Run("constant 10 over a full window", func(t *testing.T) {
		for size, want := range map[time.Duration]float64{6 * time.Second: 9.999, 60 * time.Second: 9.999985} {
			w := NewWindow(WeightedExponential, size)
			n := int(size / time.Second)
			for i := range n {
				w.Record(at(float64(i)), 10)
			}
			assert.InDelta(t, want, w.Average(at(float64(n-1))), 5e-7, "window %v", size)
		}
	})
	t.Run("2..6 in a 5s window decays fast", func(t *testing.T) {
		w := NewWindow(WeightedExponential, 5*time.Second)
		for i := range 5 {
			w.Record(at(float64(i)), float64(i+2))
		}
		assert.InDelta(t, 5.811580, w.Average(at(4)), 5e-7)
		assert.InDelta(t, 0.920905, w.Average(at(5)), 5e-7)
		assert.Equal(t, 0.0, w.Average(at(10.5)))
	})
}

func TestWindowRecord(t *testing.T) {
	tests := []struct {
		name    string
		size    time.Duration
		records [][2]float64 // second offset, value
		at      float64
		want    float64
	}{
		{"same second adds up", 10 * time.Second, [][2]float64{{0, 1}, {0.2, 2}, {0.9, 3}}, 0, 6},
		{"partial window divides by seconds with data", 10 * time.Second, [][2]float64{{0, 4}, {1, 8}}, 1, 6},
		{"gap counts as zero", 10 * time.Second, [][2]float64{{0, 6}, {2, 6}}, 2, 4},
		{"seconds still in the window count", 4 * time.Second, [][2]float64{{0, 8}, {1, 4}}, 3, 6},
		{"seconds out of the window drop out", 4 * time.Second, [][2]float64{{0, 8}, {1, 4}}, 4, 4},
		{"older than a window before the last write is ignored", 4 * time.Second, [][2]float64{{10, 5}, {6, 100}}, 10, 5},
		{"late record within the window counts", 4 * time.Second, [][2]float64{{10, 5}, {8, 3}}, 10, 2.666666},
		{"a full window without data starts afresh", 4 * time.Second, [][2]float64{{0, 100}, {4, 2}}, 4, 2},
		{"average before the last write", 10 * time.Second, [][2]float64{{0, 2}, {5, 4}}, 3, 1},
		{"rounds down to six decimals", 10 * time.Second, [][2]float64{{0, 1}, {1, 1}, {2, 0}}, 2, 0.666666},
		{"non-whole window size compares exactly", 5500 * time.Millisecond, [][2]float64{{0, 6}}, 5, 6},
		{"non-whole window size ends after its size", 5500 * time.Millisecond, [][2]float64{{0, 6}}, 6, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWindow(Linear, tt.size)
			for _, r := range tt.records {
				w.Record(at(r[0]), r[1])
			}
			assert.Equal(t, tt.want, w.Average(at(tt.at)))
		})
	}
}

func TestWindowIsEmpty(t *testing.T) {
	w := NewWindow(Linear, 6*time.Second)
	assert.True(t, w.IsEmpty(at(0)), "never written")
	w.Record(at(0), 0)
	assert.False(t, w.IsEmpty(at(0)), "a zero value is data")
	assert.False(t, w.IsEmpty(at(6)))
	assert.True(t, w.IsEmpty(at(7)))
}

func TestWindowResize(t *testing.T) {
	t.Run("shrink keeps the newest buckets", func(t *testing.T) {
		w := NewWindow(Linear, 10*time.Second)
		for i := range 10 {
			w.Record(at(float64(i)), float64(i))
		}
		w.Resize(at(9), 4*time.Second)
		assert.Equal(t, 4*time.Second, w.Size())
		assert.Equal(t, 7.5, w.Average(at(9))) // (6+7+8+9)/4
	})
	t.Run("grow keeps data and takes the old window as written", func(t *testing.T) {
		w := NewWindow(Linear, 4*time.Second)
		w.Record(at(8), 8)
		w.Record(at(9), 4)
		w.Resize(at(9), 8*time.Second)
		// Knative sets the first write a full old window back: 12/4, not 12/2.
		assert.Equal(t, 3.0, w.Average(at(9)))
		w.Record(at(10), 12)
		assert.Equal(t, 24.0/5, w.Average(at(10)))
	})
	t.Run("resize after the data expired forgets it", func(t *testing.T) {
		w := NewWindow(Linear, 4*time.Second)
		w.Record(at(0), 8)
		w.Resize(at(10), 8*time.Second)
		w.Record(at(11), 2)
		assert.Equal(t, 2.0, w.Average(at(11)))
	})
	t.Run("same size is a no-op", func(t *testing.T) {
		w := NewWindow(WeightedExponential, 6*time.Second)
		w.Record(at(0), 6)
		before := w.Average(at(0))
		w.Resize(at(100), 6*time.Second)
		assert.Equal(t, before, w.Average(at(0)))
	})
	t.Run("weighted recomputes the coefficient", func(t *testing.T) {
		w := NewWindow(WeightedExponential, 6*time.Second)
		w.Record(at(0), 10)
		w.Resize(at(0), 2*time.Second)
		assert.Equal(t, WeightedExponential, w.Algorithm())
		assert.InDelta(t, 10*0.99, w.Average(at(0)), 1e-12)
	})
}

func TestNewWindowPanicsOnBadSize(t *testing.T) {
	assert.PanicsWithValue(t, "autoscaler: window size 0s must be positive", func() { NewWindow(Linear, 0) })
}

// refWindow is a deliberately simple model of Knative's window semantics:
// every accepted record stays in a map keyed by second, and averages are
// computed from their definition, term by term.
type refWindow struct {
	n           int64 // window in whole seconds
	m           float64
	vals        map[int64]float64
	first, last int64
	written     bool
}

func newRef(alg Algorithm, n int) *refWindow {
	r := &refWindow{n: int64(n), vals: map[int64]float64{}}
	if alg == WeightedExponential {
		r.m = smoothingCoefficient(n)
	}
	return r
}

func (r *refWindow) record(b int64, v float64) {
	switch {
	case !r.written:
		r.written, r.first, r.last = true, b, b
	case b <= r.last-r.n:
		return // a window older than the last write
	default:
		r.first = min(r.first, b)
		if b > r.last {
			if b-r.last >= r.n {
				r.vals = map[int64]float64{}
				r.first = b
			}
			r.last = b
		}
	}
	r.vals[b] += v
}

func (r *refWindow) average(now int64) float64 {
	if !r.written {
		return 0
	}
	gap := max(now-r.last, 0)
	if r.m != 0 {
		if gap > r.n {
			return 0
		}
		sum := 0.
		for i := int64(0); i < r.n-gap; i++ {
			sum += r.vals[r.last-i] * r.m * math.Pow(1-r.m, float64(gap+i))
		}
		return sum
	}
	if gap >= r.n {
		return 0
	}
	sum := 0.
	for s := max(now, r.last) - r.n + 1; s <= r.last; s++ {
		sum += r.vals[s]
	}
	return math.Floor(sum/float64(min(r.last-r.first+1, r.n-gap))*1e6) / 1e6
}

// TestWindowMatchesReference drives both windows with random records —
// mostly forward, with same-second writes, gaps longer than the window and
// out-of-order writes — and compares averages at random times. Values are
// multiples of 1/4, so sums are exact and linear averages must agree bit
// for bit.
func TestWindowMatchesReference(t *testing.T) {
	for _, alg := range []Algorithm{Linear, WeightedExponential} {
		for _, n := range []int{1, 2, 5, 6, 60} {
			t.Run(fmt.Sprintf("%v/%ds", alg, n), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(n), uint64(alg)))
				for seq := range 60 {
					w := NewWindow(alg, time.Duration(n)*time.Second)
					ref := newRef(alg, n)
					sec := int64(1_700_000_000)
					for step := range 200 {
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
						v := float64(rng.IntN(80)) / 4
						ns := time.Duration(rng.IntN(int(time.Second)))
						w.Record(time.Unix(sec, 0).Add(ns), v)
						ref.record(sec, v)
						q := sec + int64(rng.IntN(2*n+2)) - int64(n/2)
						got, want := w.Average(time.Unix(q, int64(ns))), ref.average(q)
						if alg == Linear {
							require.Equal(t, want, got, "seq %d step %d: average at %d", seq, step, q-1_700_000_000)
						} else {
							require.InDelta(t, want, got, 1e-9*math.Max(1, want), "seq %d step %d", seq, step)
						}
						require.Equal(t, seconds(q-ref.last) > time.Duration(n)*time.Second || !ref.written,
							w.IsEmpty(time.Unix(q, 0)), "IsEmpty seq %d step %d", seq, step)
					}
				}
			})
		}
	}
}

func BenchmarkWindow(b *testing.B) {
	for _, alg := range []Algorithm{Linear, WeightedExponential} {
		b.Run(alg.String()+"/record", func(b *testing.B) {
			w := NewWindow(alg, 60*time.Second)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				w.Record(t0.Add(time.Duration(i)*time.Second), 1)
				i++
			}
		})
		b.Run(alg.String()+"/record+average", func(b *testing.B) {
			w := NewWindow(alg, 60*time.Second)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				now := t0.Add(time.Duration(i) * time.Second)
				w.Record(now, 1)
				_ = w.Average(now)
				i++
			}
		})
	}
}
