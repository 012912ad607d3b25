package autoscaler_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/autoscaler/autoscalertest"
)

var start = time.Unix(1_700_000_000, 0) // an even second

// TestDeciderScenarios runs the shared step tables: (time, ready, stable,
// panic) → (desired, EBC, panicking). The bench module runs the same tables
// against Knative's decider.
func TestDeciderScenarios(t *testing.T) {
	for _, sc := range autoscalertest.DeciderScenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			d, err := autoscaler.NewDecider(sc.Spec, start, sc.Ready)
			require.NoError(t, err)
			for i, st := range sc.Steps {
				got := d.Step(start.Add(st.At), st.Ready, st.Stable, st.Panic)
				require.Equal(t, st.Want, got, "step %d at +%v (ready %d, stable %v, panic %v)", i, st.At, st.Ready, st.Stable, st.Panic)
				require.Equal(t, st.Want.Panicking, d.Panicking())
			}
		})
	}
}

func TestDeciderStartsInPanicWithMoreThanOneReady(t *testing.T) {
	for ready, want := range map[int]bool{-1: false, 0: false, 1: false, 2: true, 10: true} {
		d, err := autoscaler.NewDecider(autoscalertest.BaseDeciderSpec(), start, ready)
		require.NoError(t, err)
		assert.Equal(t, want, d.Panicking(), "ready %d", ready)
	}
}

func TestDeciderNaNLoadIsZero(t *testing.T) {
	d, err := autoscaler.NewDecider(autoscalertest.BaseDeciderSpec(), start, 0)
	require.NoError(t, err)
	nan := func() float64 { var z float64; return z / z }()
	assert.Equal(t, autoscaler.Recommendation{}, d.Step(start.Add(2*time.Second), 0, nan, nan))
}

func TestDeciderUpdate(t *testing.T) {
	spec := autoscalertest.BaseDeciderSpec()
	d, err := autoscaler.NewDecider(spec, start, 1)
	require.NoError(t, err)
	step := func(s int, ready int, load float64) int {
		return d.Step(start.Add(time.Duration(s)*time.Second), ready, load, load).Desired
	}
	require.Equal(t, 5, step(2, 5, 50))

	// Turning a scale-down delay on holds the decisions from then on.
	spec.ScaleDownDelay = 6 * time.Second
	require.NoError(t, d.Update(spec))
	assert.Equal(t, 5, step(4, 5, 50))
	assert.Equal(t, 5, step(6, 5, 0), "held by the delay")
	assert.Equal(t, 5, step(8, 5, 0))
	assert.Equal(t, 2, step(10, 5, 0), "the 5 recorded at 4 s has left the 6 s window")

	// Lengthening the delay keeps what is still recorded.
	require.Equal(t, 5, step(12, 5, 50))
	spec.ScaleDownDelay = 20 * time.Second
	require.NoError(t, d.Update(spec))
	assert.Equal(t, 5, step(20, 5, 0), "the 5 at 12 s is within 20 s")

	// Turning it off applies the decision at once.
	spec.ScaleDownDelay = 0
	require.NoError(t, d.Update(spec))
	assert.Equal(t, 2, step(22, 5, 0))

	bad := spec
	bad.TargetValue = 0
	require.Error(t, d.Update(bad))
	assert.Equal(t, spec, d.Spec(), "a rejected update changes nothing")
}

func TestDeciderSpecValidate(t *testing.T) {
	valid := autoscalertest.BaseDeciderSpec()
	require.NoError(t, valid.Validate())

	bad := autoscaler.DeciderSpec{
		TargetValue:         0.001,
		TotalValue:          0,
		TargetBurstCapacity: -2,
		PanicThreshold:      0,
		MaxScaleUpRate:      1,
		MaxScaleDownRate:    0.5,
		StableWindow:        0,
		ScaleDownDelay:      2 * time.Hour,
		InitialScale:        -1,
		ActivationScale:     -3,
	}
	err := bad.Validate()
	require.Error(t, err)
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *autoscaler.FieldError
		require.True(t, errors.As(e, &fe), "%v is a FieldError", e)
		fields = append(fields, fe.Field)
	}
	assert.Equal(t, []string{
		"TargetValue", "TotalValue", "TargetBurstCapacity", "PanicThreshold", "MaxScaleUpRate",
		"MaxScaleDownRate", "StableWindow", "ScaleDownDelay", "InitialScale", "ActivationScale",
	}, fields)
	assert.Contains(t, err.Error(), `autoscaler: TargetBurstCapacity = "-2": want a number ≥ 0, or -1 (activator always in path)`)

	_, err = autoscaler.NewDecider(bad, start, 0)
	assert.Error(t, err)
}

func TestInitialExcessBurstCapacity(t *testing.T) {
	tests := []struct {
		name             string
		tbc, total       float64
		initial, wantEBC int
	}{
		{"defaults start behind the activator", 211, 100, 1, -111},
		{"zero", 0, 100, 1, 0},
		{"unlimited", -1, 100, 1, -1},
		{"enough initial capacity", 150, 100, 2, 50},
		{"truncates toward zero", 211.5, 100, 1, -111},
		{"initial scale 0", 211, 100, 0, -211},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := autoscalertest.BaseDeciderSpec()
			s.TargetBurstCapacity, s.TotalValue, s.InitialScale = tt.tbc, tt.total, tt.initial
			assert.Equal(t, tt.wantEBC, s.InitialExcessBurstCapacity())
		})
	}
}

func TestDeciderStepDoesNotAllocate(t *testing.T) {
	for _, delay := range []time.Duration{0, time.Minute} {
		spec := autoscalertest.BaseDeciderSpec()
		spec.ScaleDownDelay = delay
		d, err := autoscaler.NewDecider(spec, start, 3)
		require.NoError(t, err)
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			d.Step(start.Add(time.Duration(i)*time.Second), 3+i%7, float64(i%50), float64(i%90))
			i++
		})
		assert.Zero(t, allocs, "scale-down delay %v", delay)
	}
}

func BenchmarkDeciderStep(b *testing.B) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{{"plain", 0}, {"with-delay", 5 * time.Minute}} {
		b.Run(tc.name, func(b *testing.B) {
			spec := autoscalertest.BaseDeciderSpec()
			spec.ScaleDownDelay = tc.delay
			d, err := autoscaler.NewDecider(spec, start, 5)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				d.Step(start.Add(time.Duration(i)*2*time.Second), 5, 42, 55)
				i++
			}
		})
	}
}
