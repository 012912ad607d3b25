package autoscaler

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fieldErrors flattens an errors.Join tree into its *FieldErrors; any other
// leaf fails the test.
func fieldErrors(t testing.TB, err error) []*FieldError {
	t.Helper()
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		var fe *FieldError
		if errors.As(e, &fe) && fe == e {
			out = append(out, fe)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		default:
			if !errors.Is(e, ErrNotKPA) {
				t.Fatalf("error %q is not a FieldError", e)
			}
		}
	}
	walk(err)
	return out
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig(nil)
	require.NoError(t, err)
	assert.Equal(t, DefaultConfig(), c)
	require.NoError(t, DefaultConfig().Validate())
	// Values from the reference (NewConfigFromMap of an empty map).
	assert.True(t, c.EnableScaleToZero)
	assert.Equal(t, 0.7, c.ContainerConcurrencyTargetFraction)
	assert.Equal(t, 100.0, c.ContainerConcurrencyTargetDefault)
	assert.Equal(t, 200.0, c.RPSTargetDefault)
	assert.Equal(t, 211.0, c.TargetBurstCapacity)
	assert.Equal(t, 60*time.Second, c.StableWindow)
	assert.Equal(t, 10.0, c.PanicWindowPercentage)
	assert.Equal(t, 200.0, c.PanicThresholdPercentage)
	assert.Equal(t, 1000.0, c.MaxScaleUpRate)
	assert.Equal(t, 2.0, c.MaxScaleDownRate)
	assert.Equal(t, 30*time.Second, c.ScaleToZeroGracePeriod)
	assert.Equal(t, 1, c.InitialScale)
	assert.Equal(t, KPAClass, c.PodAutoscalerClass)
}

func TestParseConfigAllKeys(t *testing.T) {
	c, err := ParseConfig(map[string]string{
		"enable-scale-to-zero":                    "false",
		"container-concurrency-target-percentage": "80",
		"container-concurrency-target-default":    "50",
		"requests-per-second-target-default":      "300",
		"target-burst-capacity":                   "-1",
		"stable-window":                           "2m",
		"panic-window-percentage":                 "20",
		"panic-threshold-percentage":              "50",
		"max-scale-up-rate":                       "10",
		"max-scale-down-rate":                     "4",
		"activator-capacity":                      "200",
		"scale-to-zero-grace-period":              "45s",
		"scale-to-zero-pod-retention-period":      "1m",
		"scale-down-delay":                        "15s",
		"pod-autoscaler-class":                    "custom",
		"allow-zero-initial-scale":                "true",
		"initial-scale":                           "0",
		"min-scale":                               "2",
		"max-scale":                               "9",
		"max-scale-limit":                         "10",
		"_example":                                "ignored",
	})
	require.NoError(t, err)
	want := DefaultConfig()
	want.EnableScaleToZero = false
	want.ContainerConcurrencyTargetFraction = 0.8
	want.ContainerConcurrencyTargetDefault = 50
	want.RPSTargetDefault = 300
	want.TargetBurstCapacity = -1
	want.StableWindow = 2 * time.Minute
	want.PanicWindowPercentage = 20
	want.PanicThresholdPercentage = 50 // not range-checked in the ConfigMap, as in Knative
	want.MaxScaleUpRate = 10
	want.MaxScaleDownRate = 4
	want.ActivatorCapacity = 200
	want.ScaleToZeroGracePeriod = 45 * time.Second
	want.ScaleToZeroPodRetentionPeriod = time.Minute
	want.ScaleDownDelay = 15 * time.Second
	want.PodAutoscalerClass = "custom"
	want.AllowZeroInitialScale = true
	want.InitialScale = 0
	want.MinScale = 2
	want.MaxScale = 9
	want.MaxScaleLimit = 10
	assert.Equal(t, want, c)
}

func TestParseConfigTargetPercentage(t *testing.T) {
	for in, want := range map[string]float64{"70": 0.7, "100": 1, "0.5": 0.5, "1": 1, "1.5": 0.015} {
		c, err := ParseConfig(map[string]string{"container-concurrency-target-percentage": in})
		require.NoError(t, err, in)
		assert.InDelta(t, want, c.ContainerConcurrencyTargetFraction, 1e-15, in)
	}
}

// The reference's measured Knative errors (§2.3), each as our FieldError.
func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		data      map[string]string
		key, want string
	}{
		{map[string]string{"scale-to-zero-grace-period": "0s"}, "scale-to-zero-grace-period", "> 0s"},
		{map[string]string{"scale-down-delay": "-1s"}, "scale-down-delay", "[0s, 1h0m0s] in whole seconds"},
		{map[string]string{"scale-down-delay": "61m"}, "scale-down-delay", "[0s, 1h0m0s] in whole seconds"},
		{map[string]string{"scale-to-zero-pod-retention-period": "-1s"}, "scale-to-zero-pod-retention-period", "[0s, 1h0m0s]"},
		{map[string]string{"scale-to-zero-pod-retention-period": "2h"}, "scale-to-zero-pod-retention-period", "[0s, 1h0m0s]"},
		{map[string]string{"scale-down-delay": "1.5s"}, "scale-down-delay", "whole seconds"},
		{map[string]string{"target-burst-capacity": "-2"}, "target-burst-capacity", "or -1"},
		{map[string]string{"container-concurrency-target-percentage": "101"}, "container-concurrency-target-percentage", "(0, 100]"},
		{map[string]string{"container-concurrency-target-percentage": "0"}, "container-concurrency-target-percentage", "(0, 100]"},
		{map[string]string{"container-concurrency-target-default": "0.001", "container-concurrency-target-percentage": "100"}, "container-concurrency-target-default", "at least 0.01"},
		{map[string]string{"requests-per-second-target-default": "0.001"}, "requests-per-second-target-default", "≥ 0.01"},
		{map[string]string{"activator-capacity": "0.5"}, "activator-capacity", "≥ 1"},
		{map[string]string{"max-scale-up-rate": "1"}, "max-scale-up-rate", "> 1"},
		{map[string]string{"max-scale-down-rate": "1"}, "max-scale-down-rate", "> 1"},
		{map[string]string{"stable-window": "5s"}, "stable-window", "[6s, 1h0m0s]"},
		{map[string]string{"stable-window": "6.5s"}, "stable-window", "whole seconds"},
		{map[string]string{"stable-window": "61m"}, "stable-window", "[6s, 1h0m0s]"},
		{map[string]string{"panic-window-percentage": "0.5"}, "panic-window-percentage", "[1, 100]"},
		{map[string]string{"initial-scale": "0"}, "initial-scale", "allow-zero-initial-scale"},
		{map[string]string{"min-scale": "-1"}, "min-scale", "[0, 2147483647]"},
		{map[string]string{"max-scale-limit": "10"}, "max-scale", "[1, 10]"},
		{map[string]string{"max-scale-limit": "-1"}, "max-scale-limit", "[0, 2147483647]"},
		{map[string]string{"min-scale": "5", "max-scale": "3"}, "min-scale", "at most max-scale (3)"},
		{map[string]string{"max-scale-up-rate": "abc"}, "max-scale-up-rate", "a finite number"},
		{map[string]string{"max-scale-up-rate": "NaN"}, "max-scale-up-rate", "a finite number"},
		{map[string]string{"enable-scale-to-zero": "maybe"}, "enable-scale-to-zero", "a boolean"},
		{map[string]string{"min-scale": "3000000000"}, "min-scale", "an integer in"},
		{map[string]string{"stable-window": "60"}, "stable-window", "a duration"},
		{map[string]string{"panic-threshold-percentage": "0"}, "panic-threshold-percentage", "> 0"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+strings.Join(values(tt.data), ","), func(t *testing.T) {
			_, err := ParseConfig(tt.data)
			require.Error(t, err)
			fes := fieldErrors(t, err)
			require.Len(t, fes, 1, "%v", err)
			assert.Equal(t, tt.key, fes[0].Field)
			assert.Contains(t, fes[0].Want, tt.want)
			if v, ok := tt.data[tt.key]; ok {
				assert.Equal(t, v, fes[0].Value, "the value as given")
			}
			assert.Contains(t, err.Error(), "autoscaler: "+tt.key+" = ")
		})
	}
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestConfigCapsDelayAndRetention: Knative's config takes any
// scale-down-delay and pod retention ≥ 0, but its annotations, and Spec,
// at most 1h. A longer config value is refused by its key, so that
// RevisionSpec never fails on a Spec field for a config Validate accepted.
func TestConfigCapsDelayAndRetention(t *testing.T) {
	c, err := ParseConfig(map[string]string{"scale-down-delay": "1h", "scale-to-zero-pod-retention-period": "1h"})
	require.NoError(t, err, "1h is allowed")
	_, err = c.RevisionSpec(nil, 0)
	require.NoError(t, err)

	for _, tt := range []struct {
		name string
		set  func(*Config)
		key  string
	}{
		{"scale-down-delay", func(c *Config) { c.ScaleDownDelay = time.Hour + time.Second }, keyScaleDownDelay},
		{"pod retention", func(c *Config) { c.ScaleToZeroPodRetentionPeriod = 2 * time.Hour }, keyPodRetentionPeriod},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.set(&c)
			for _, err := range []error{c.Validate(), func() error { _, err := c.RevisionSpec(nil, 0); return err }()} {
				require.Error(t, err)
				fes := fieldErrors(t, err)
				require.Len(t, fes, 1, "%v", err)
				assert.Equal(t, tt.key, fes[0].Field)
				assert.Contains(t, fes[0].Want, "[0s, 1h0m0s]")
			}
		})
	}
}

func TestParseConfigReportsEveryProblem(t *testing.T) {
	_, err := ParseConfig(map[string]string{
		"stable-window":              "5s",
		"max-scale-up-rate":          "abc",
		"target-burst-capacity":      "-7",
		"scale-to-zero-grace-period": "-1s",
		"min-scale":                  "x",
	})
	require.Error(t, err)
	var keys []string
	for _, fe := range fieldErrors(t, err) {
		keys = append(keys, fe.Field)
	}
	assert.ElementsMatch(t, []string{"stable-window", "max-scale-up-rate", "target-burst-capacity", "scale-to-zero-grace-period", "min-scale"}, keys)
}

func FuzzParseConfig(f *testing.F) {
	keys := []string{
		keyEnableScaleToZero, keyAllowZeroInitialScale, keyMaxScaleUpRate, keyMaxScaleDownRate,
		keyTargetPercentage, keyTargetDefault, keyRPSTargetDefault, keyTargetBurstCapacity,
		keyPanicWindowPercentage, keyActivatorCapacity, keyPanicThresholdPercent, keyInitialScale,
		keyMinScale, keyMaxScale, keyMaxScaleLimit, keyStableWindow, keyScaleDownDelay,
		keyScaleToZeroGracePeriod, keyPodRetentionPeriod, keyPodAutoscalerClass,
	}
	f.Add(uint8(0), "true", uint8(15), "60s", uint8(4), "70")
	f.Add(uint8(13), "5", uint8(12), "3", uint8(14), "10")
	f.Add(uint8(7), "-1", uint8(16), "1.5s", uint8(11), "0")
	f.Add(uint8(2), "NaN", uint8(5), "1e308", uint8(4), "0.0000001")
	f.Add(uint8(16), "61m", uint8(18), "2h", uint8(0), "true")
	f.Fuzz(func(t *testing.T, k1 uint8, v1 string, k2 uint8, v2 string, k3 uint8, v3 string) {
		data := map[string]string{
			keys[int(k1)%len(keys)]: v1,
			keys[int(k2)%len(keys)]: v2,
			keys[int(k3)%len(keys)]: v3,
		}
		c, err := ParseConfig(data)
		if err != nil {
			for _, fe := range fieldErrors(t, err) {
				if fe.Want == "" {
					t.Fatalf("FieldError without a range: %v", fe)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted a config Validate rejects: %v", err)
		}
		if _, err := c.RevisionSpec(nil, 0); err != nil && c.PodAutoscalerClass == KPAClass {
			t.Fatalf("valid config gives no spec: %v", err)
		}
	})
}
