package autoscaler

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRevisionSpecDefaults(t *testing.T) {
	s, err := DefaultConfig().RevisionSpec(nil, 0)
	require.NoError(t, err)
	assert.Equal(t, Spec{
		DeciderSpec: DeciderSpec{
			TargetValue:         70,
			TotalValue:          100,
			TargetBurstCapacity: 211,
			PanicThreshold:      2,
			MaxScaleUpRate:      1000,
			MaxScaleDownRate:    2,
			StableWindow:        60 * time.Second,
			InitialScale:        1,
		},
		Metric:                 Concurrency,
		Algorithm:              Linear,
		PanicWindow:            6 * time.Second,
		ReplicaStats:           true,
		EnableScaleToZero:      true,
		ScaleToZeroGracePeriod: 30 * time.Second,
		ActivationTimeout:      DefaultActivationTimeout,
	}, s)
	assert.Equal(t, -111, s.InitialExcessBurstCapacity())
}

// ResolveMetricTarget's cases (reference §1.2).
func TestRevisionSpecTarget(t *testing.T) {
	tests := []struct {
		name          string
		ann           map[string]string
		cc            int
		target, total float64
	}{
		{"concurrency defaults", nil, 0, 70, 100},
		{"container concurrency", nil, 10, 7, 10},
		{"rps defaults", map[string]string{MetricAnnotation: "rps"}, 10, 140, 200},
		{"target annotation", map[string]string{TargetAnnotation: "50"}, 0, 35, 50},
		{"target capped by container concurrency", map[string]string{TargetAnnotation: "50"}, 10, 7, 10},
		{"target below container concurrency", map[string]string{TargetAnnotation: "5"}, 10, 3.5, 5},
		{"rps target ignores container concurrency", map[string]string{MetricAnnotation: "rps", TargetAnnotation: "50"}, 10, 35, 50},
		{"utilization annotation", map[string]string{TargetUtilizationPercentageAnnotation: "50"}, 10, 5, 10},
		{"legacy utilization alias", map[string]string{AnnotationPrefix + "targetUtilizationPercentage": "50"}, 10, 5, 10},
		{"target floor 0.01", map[string]string{TargetAnnotation: "0.01", TargetUtilizationPercentageAnnotation: "1"}, 0, 0.01, 0.01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := DefaultConfig().RevisionSpec(tt.ann, tt.cc)
			require.NoError(t, err)
			assert.InDelta(t, tt.target, s.TargetValue, 1e-12)
			assert.Equal(t, tt.total, s.TotalValue)
		})
	}
}

func TestRevisionSpecWindowsAndSettings(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(*Config)
		ann   map[string]string
		check func(t *testing.T, s Spec)
	}{
		{"panic window rounds to a second", nil,
			map[string]string{WindowAnnotation: "7s", PanicWindowPercentageAnnotation: "50"},
			func(t *testing.T, s Spec) {
				assert.Equal(t, 7*time.Second, s.StableWindow)
				assert.Equal(t, 4*time.Second, s.PanicWindow) // 3.5 s rounds up
			}},
		{"panic window at least 1s", nil,
			map[string]string{WindowAnnotation: "10s", PanicWindowPercentageAnnotation: "1"},
			func(t *testing.T, s Spec) { assert.Equal(t, time.Second, s.PanicWindow) }},
		{"panic window from config percentage", func(c *Config) { c.PanicWindowPercentage = 25 }, nil,
			func(t *testing.T, s Spec) { assert.Equal(t, 15*time.Second, s.PanicWindow) }},
		{"panic threshold percentage", nil, map[string]string{PanicThresholdPercentageAnnotation: "150"},
			func(t *testing.T, s Spec) { assert.Equal(t, 1.5, s.PanicThreshold) }},
		{"target burst capacity -1 needs no replica stats", nil, map[string]string{TargetBurstCapacityAnnotation: "-1"},
			func(t *testing.T, s Spec) {
				assert.Equal(t, -1.0, s.TargetBurstCapacity)
				assert.False(t, s.ReplicaStats)
			}},
		{"burst capacity from config", func(c *Config) { c.TargetBurstCapacity = 0 }, nil,
			func(t *testing.T, s Spec) { assert.Zero(t, s.TargetBurstCapacity) }},
		{"bounds from annotations", func(c *Config) { c.MinScale, c.MaxScale = 1, 20 },
			map[string]string{MinScaleAnnotation: "2", MaxScaleAnnotation: "8", ActivationScaleAnnotation: "3"},
			func(t *testing.T, s Spec) {
				assert.Equal(t, [3]int{2, 8, 3}, [3]int{s.MinScale, s.MaxScale, s.ActivationScale})
			}},
		{"bounds from config", func(c *Config) { c.MinScale, c.MaxScale = 1, 20 }, nil,
			func(t *testing.T, s Spec) { assert.Equal(t, [2]int{1, 20}, [2]int{s.MinScale, s.MaxScale}) }},
		{"legacy camelCase aliases", nil,
			map[string]string{
				AnnotationPrefix + "minScale": "2", AnnotationPrefix + "maxScale": "9",
				AnnotationPrefix + "initialScale": "3", AnnotationPrefix + "scaleDownDelay": "30s",
				AnnotationPrefix + "scaleToZeroPodRetentionPeriod": "90s", AnnotationPrefix + "targetBurstCapacity": "0",
				AnnotationPrefix + "panicWindowPercentage": "20", AnnotationPrefix + "panicThresholdPercentage": "300",
				AnnotationPrefix + "metricAggregationAlgorithm": "weightedExponential",
			},
			func(t *testing.T, s Spec) {
				assert.Equal(t, 2, s.MinScale)
				assert.Equal(t, 9, s.MaxScale)
				assert.Equal(t, 3, s.InitialScale)
				assert.Equal(t, 30*time.Second, s.ScaleDownDelay)
				assert.Equal(t, 90*time.Second, s.ScaleToZeroPodRetention)
				assert.Zero(t, s.TargetBurstCapacity)
				assert.Equal(t, 12*time.Second, s.PanicWindow)
				assert.Equal(t, 3.0, s.PanicThreshold)
				assert.Equal(t, WeightedExponential, s.Algorithm)
			}},
		{"the key wins over its alias", nil,
			map[string]string{MinScaleAnnotation: "4", AnnotationPrefix + "minScale": "2"},
			func(t *testing.T, s Spec) { assert.Equal(t, 4, s.MinScale) }},
		{"initial scale 0 when allowed", func(c *Config) { c.AllowZeroInitialScale = true },
			map[string]string{InitialScaleAnnotation: "0"},
			func(t *testing.T, s Spec) { assert.Zero(t, s.InitialScale) }},
		{"initial scale from config", func(c *Config) { c.InitialScale = 3 }, nil,
			func(t *testing.T, s Spec) { assert.Equal(t, 3, s.InitialScale) }},
		{"rps and weighted-exponential", nil,
			map[string]string{MetricAnnotation: "rps", MetricAggregationAlgorithmAnnotation: "weighted-exponential"},
			func(t *testing.T, s Spec) {
				assert.Equal(t, RPS, s.Metric)
				assert.Equal(t, WeightedExponential, s.Algorithm)
			}},
		{"scale to zero and grace from config", func(c *Config) {
			c.EnableScaleToZero, c.ScaleToZeroGracePeriod, c.ScaleToZeroPodRetentionPeriod = false, time.Minute, 5*time.Second
		}, nil,
			func(t *testing.T, s Spec) {
				assert.False(t, s.EnableScaleToZero)
				assert.Equal(t, time.Minute, s.ScaleToZeroGracePeriod)
				assert.Equal(t, 5*time.Second, s.ScaleToZeroPodRetention)
			}},
		{"explicit kpa class", nil, map[string]string{ClassAnnotation: KPAClass},
			func(t *testing.T, s Spec) { assert.Equal(t, 70.0, s.TargetValue) }},
		{"unrelated annotations are ignored", nil,
			map[string]string{AnnotationPrefix + "unknown": "x", "example.com/foo": "bar"},
			func(t *testing.T, s Spec) { assert.Equal(t, 70.0, s.TargetValue) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&c)
			}
			s, err := c.RevisionSpec(tt.ann, 0)
			require.NoError(t, err)
			tt.check(t, s)
		})
	}
}

func TestRevisionSpecBoundariesAccepted(t *testing.T) {
	_, err := DefaultConfig().RevisionSpec(map[string]string{
		WindowAnnotation:                        "6s",
		PanicWindowPercentageAnnotation:         "100",
		PanicThresholdPercentageAnnotation:      "110",
		TargetUtilizationPercentageAnnotation:   "1",
		TargetBurstCapacityAnnotation:           "-1",
		ScaleDownDelayAnnotation:                "1h",
		ScaleToZeroPodRetentionPeriodAnnotation: "1h",
		ActivationScaleAnnotation:               "2",
		TargetAnnotation:                        "0.01",
		MinScaleAnnotation:                      "0",
		MaxScaleAnnotation:                      "2147483647",
	}, 0)
	require.NoError(t, err)
}

// The reference's measured annotation errors (§2.3), as FieldErrors.
func TestRevisionSpecErrors(t *testing.T) {
	limit10 := func(c *Config) { c.MaxScaleLimit, c.MaxScale = 10, 10 }
	tests := []struct {
		cfg       func(*Config)
		ann       map[string]string
		key, want string
	}{
		{nil, map[string]string{ClassAnnotation: "foo.knative.dev"}, ClassAnnotation, KPAClass},
		{nil, map[string]string{MinScaleAnnotation: "-1"}, MinScaleAnnotation, "[0, 2147483647]"},
		{nil, map[string]string{MinScaleAnnotation: "abc"}, MinScaleAnnotation, "[0, 2147483647]"},
		{nil, map[string]string{MinScaleAnnotation: "5", MaxScaleAnnotation: "3"}, MaxScaleAnnotation, "at least min-scale (5)"},
		{limit10, map[string]string{MaxScaleAnnotation: "11"}, MaxScaleAnnotation, "[1, 10]"},
		{limit10, map[string]string{MaxScaleAnnotation: "0"}, MaxScaleAnnotation, "0, unbounded, is not allowed"},
		{nil, map[string]string{ActivationScaleAnnotation: "1"}, ActivationScaleAnnotation, "[2, 2147483647] (≥ 2"},
		{nil, map[string]string{ActivationScaleAnnotation: "-5"}, ActivationScaleAnnotation, "[2, 2147483647]"},
		{nil, map[string]string{MinScaleAnnotation: "3", ActivationScaleAnnotation: "2"}, ActivationScaleAnnotation, "[3, 2147483647] (≥ 2, at least min-scale (3))"},
		{nil, map[string]string{MaxScaleAnnotation: "3", ActivationScaleAnnotation: "4"}, ActivationScaleAnnotation, "[2, 3] (≥ 2, at least min-scale (0), at most max-scale (3))"},
		{nil, map[string]string{ActivationScaleAnnotation: "two"}, ActivationScaleAnnotation, "[2, 2147483647]"},
		{nil, map[string]string{PanicWindowPercentageAnnotation: "0.5"}, PanicWindowPercentageAnnotation, "[1, 100]"},
		{nil, map[string]string{PanicThresholdPercentageAnnotation: "105"}, PanicThresholdPercentageAnnotation, "[110, 1000]"},
		{nil, map[string]string{TargetAnnotation: "0.001"}, TargetAnnotation, "≥ 0.01"},
		{nil, map[string]string{TargetAnnotation: "Inf"}, TargetAnnotation, "≥ 0.01"},
		{nil, map[string]string{TargetUtilizationPercentageAnnotation: "101"}, TargetUtilizationPercentageAnnotation, "[1, 100]"},
		{nil, map[string]string{TargetBurstCapacityAnnotation: "-2"}, TargetBurstCapacityAnnotation, "or -1"},
		{nil, map[string]string{ScaleDownDelayAnnotation: "2h"}, ScaleDownDelayAnnotation, "[0s, 1h0m0s]"},
		{nil, map[string]string{ScaleDownDelayAnnotation: "1500ms"}, ScaleDownDelayAnnotation, "whole seconds"},
		{nil, map[string]string{WindowAnnotation: "5s"}, WindowAnnotation, "[6s, 1h0m0s]"},
		{nil, map[string]string{WindowAnnotation: "10500ms"}, WindowAnnotation, "whole seconds"},
		{nil, map[string]string{ScaleToZeroPodRetentionPeriodAnnotation: "-1s"}, ScaleToZeroPodRetentionPeriodAnnotation, "[0s, 1h0m0s]"},
		{nil, map[string]string{MetricAnnotation: "cpu"}, MetricAnnotation, `"concurrency" or "rps"`},
		{nil, map[string]string{MetricAggregationAlgorithmAnnotation: "median"}, MetricAggregationAlgorithmAnnotation, `"linear"`},
		{nil, map[string]string{InitialScaleAnnotation: "0"}, InitialScaleAnnotation, "allow-zero-initial-scale"},
		{nil, map[string]string{InitialScaleAnnotation: "-1"}, InitialScaleAnnotation, "[0, 2147483647]"},
		{nil, map[string]string{AnnotationPrefix + "minScale": "-4"}, AnnotationPrefix + "minScale", "[0, 2147483647]"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.ann[tt.key], func(t *testing.T) {
			c := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&c)
			}
			_, err := c.RevisionSpec(tt.ann, 0)
			require.Error(t, err)
			fes := fieldErrors(t, err)
			require.Len(t, fes, 1, "%v", err)
			assert.Equal(t, tt.key, fes[0].Field)
			assert.Equal(t, tt.ann[tt.key], fes[0].Value)
			assert.Contains(t, fes[0].Want, tt.want)
			assert.False(t, errors.Is(err, ErrNotKPA))
		})
	}
}

func TestRevisionSpecReportsEveryProblem(t *testing.T) {
	_, err := DefaultConfig().RevisionSpec(map[string]string{
		WindowAnnotation:                   "1s",
		TargetAnnotation:                   "x",
		MetricAnnotation:                   "memory",
		PanicThresholdPercentageAnnotation: "2000",
		InitialScaleAnnotation:             "-5",
	}, -1)
	require.Error(t, err)
	var keys []string
	for _, fe := range fieldErrors(t, err) {
		keys = append(keys, fe.Field)
	}
	assert.ElementsMatch(t, []string{WindowAnnotation, TargetAnnotation, MetricAnnotation,
		PanicThresholdPercentageAnnotation, InitialScaleAnnotation, "containerConcurrency"}, keys)
}

func TestRevisionSpecNotKPA(t *testing.T) {
	for _, tc := range []struct {
		cfgClass string
		ann      map[string]string
	}{
		{KPAClass, map[string]string{ClassAnnotation: HPAClass}},
		{KPAClass, map[string]string{ClassAnnotation: "acme.example.com"}},
		{HPAClass, nil},
	} {
		c := DefaultConfig()
		c.PodAutoscalerClass = tc.cfgClass
		_, err := c.RevisionSpec(tc.ann, 0)
		assert.ErrorIs(t, err, ErrNotKPA, "%v %v", tc.cfgClass, tc.ann)
	}
}

// TestRevisionSpecMixedSourcesRejected: bounds from the annotations and
// the config that conflict (Knative checks the annotations alone) are an
// error on the annotation, with the config's bound in the range.
func TestRevisionSpecMixedSourcesRejected(t *testing.T) {
	tests := []struct {
		name       string
		cfg        func(*Config)
		ann        map[string]string
		key, value string
		want       string
	}{
		{"annotated min above the config's max", func(c *Config) { c.MaxScale = 3 },
			map[string]string{MinScaleAnnotation: "5"}, MinScaleAnnotation, "5", "[0, 3] (at most the config's max-scale)"},
		{"legacy alias", func(c *Config) { c.MaxScale = 3 },
			map[string]string{AnnotationPrefix + "minScale": "4"}, AnnotationPrefix + "minScale", "4", "[0, 3]"},
		{"annotated max below the config's min", func(c *Config) { c.MinScale = 4 },
			map[string]string{MaxScaleAnnotation: "2"}, MaxScaleAnnotation, "2", "≥ 4 (at least the config's min-scale)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.cfg(&c)
			_, err := c.RevisionSpec(tt.ann, 0)
			require.Error(t, err)
			fes := fieldErrors(t, err)
			require.Len(t, fes, 1, "%v", err)
			assert.Equal(t, tt.key, fes[0].Field)
			assert.Equal(t, tt.value, fes[0].Value)
			assert.Contains(t, fes[0].Want, tt.want)
		})
	}
	// An annotated max of 0 (unbounded) does not conflict with a config min.
	c := DefaultConfig()
	c.MinScale = 4
	s, err := c.RevisionSpec(map[string]string{MaxScaleAnnotation: "0"}, 0)
	require.NoError(t, err)
	assert.Equal(t, [2]int{4, 0}, [2]int{s.MinScale, s.MaxScale})
}

// TestSettingFor: a Spec field is named after the annotation it came from
// (as given) or else its config key.
func TestSettingFor(t *testing.T) {
	a := annotations{m: map[string]string{AnnotationPrefix + "scaleDownDelay": "10s", WindowAnnotation: "30s"}}
	for _, tt := range []struct {
		field  string
		metric Metric
		want   string
	}{
		{"ScaleDownDelay", Concurrency, AnnotationPrefix + "scaleDownDelay"},
		{"StableWindow", Concurrency, WindowAnnotation},
		{"ScaleToZeroPodRetention", Concurrency, keyPodRetentionPeriod},
		{"TargetValue", Concurrency, keyTargetDefault},
		{"TotalValue", RPS, keyRPSTargetDefault},
		{"MaxScaleUpRate", Concurrency, keyMaxScaleUpRate},
		{"MinScale", Concurrency, keyMinScale},
		{"ActivationScale", Concurrency, "ActivationScale"}, // no config key; only set by annotation
		{"Metric", Concurrency, "Metric"},
	} {
		assert.Equal(t, tt.want, a.settingFor(tt.field, tt.metric), tt.field)
	}
}

func TestRevisionSpecInvalidConfig(t *testing.T) {
	c := DefaultConfig()
	c.StableWindow = time.Second
	_, err := c.RevisionSpec(nil, 0)
	require.Error(t, err)
	assert.Equal(t, keyStableWindow, fieldErrors(t, err)[0].Field)
}

func FuzzRevisionSpec(f *testing.F) {
	keys := []string{
		ClassAnnotation, MetricAnnotation, TargetAnnotation, TargetUtilizationPercentageAnnotation,
		TargetBurstCapacityAnnotation, WindowAnnotation, PanicWindowPercentageAnnotation,
		PanicThresholdPercentageAnnotation, MinScaleAnnotation, MaxScaleAnnotation, InitialScaleAnnotation,
		ActivationScaleAnnotation, ScaleDownDelayAnnotation, ScaleToZeroPodRetentionPeriodAnnotation,
		MetricAggregationAlgorithmAnnotation,
	}
	for _, k := range keys {
		if a, ok := aliases[k]; ok {
			keys = append(keys, a)
		}
	}
	f.Add(uint8(8), "2", uint8(9), "5", uint8(11), "3", 0, uint8(0), uint8(0))
	f.Add(uint8(1), "rps", uint8(2), "100", uint8(3), "50", 10, uint8(0), uint8(0))
	f.Add(uint8(5), "10500ms", uint8(6), "0.5", uint8(4), "-1", 0, uint8(0), uint8(0))
	f.Add(uint8(0), "foo.knative.dev", uint8(14), "weightedExponential", uint8(16), "2", -3, uint8(0), uint8(0))
	f.Add(uint8(8), "5", uint8(1), "rps", uint8(3), "50", 0, uint8(0), uint8(3))
	f.Add(uint8(9), "2", uint8(1), "rps", uint8(3), "50", 0, uint8(4), uint8(0))
	f.Fuzz(func(t *testing.T, k1 uint8, v1 string, k2 uint8, v2 string, k3 uint8, v3 string, cc int, cfgMin, cfgMax uint8) {
		ann := map[string]string{
			keys[int(k1)%len(keys)]: v1,
			keys[int(k2)%len(keys)]: v2,
			keys[int(k3)%len(keys)]: v3,
		}
		// A valid config with bounds, which annotations may contradict.
		c := DefaultConfig()
		c.MinScale, c.MaxScale = int(cfgMin%8), int(cfgMax%8)
		if c.MaxScale != 0 && c.MinScale > c.MaxScale {
			c.MinScale, c.MaxScale = c.MaxScale, c.MinScale
		}
		s, err := c.RevisionSpec(ann, cc)
		if err != nil {
			for _, fe := range fieldErrors(t, err) {
				if fe.Want == "" {
					t.Fatalf("FieldError without a range: %v", fe)
				}
				if _, given := ann[fe.Field]; !given && fe.Field != "containerConcurrency" {
					t.Fatalf("error names %q, which was not given: %v", fe.Field, err)
				}
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("RevisionSpec returned an invalid spec: %v", err)
		}
		if _, err := NewDecider(s.DeciderSpec, t0, 0); err != nil {
			t.Fatal(err)
		}
		if s.TargetValue < TargetMin || s.PanicWindow < time.Second || s.PanicWindow > s.StableWindow {
			t.Fatalf("bad resolved spec %+v", s)
		}
	})
}
