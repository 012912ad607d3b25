package queue

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []string // substrings of the error; none means valid
	}{
		{name: "zero value", c: Config{}},
		{name: "all set", c: Config{ContainerConcurrency: 10, QueueDepth: 5, MaxWait: time.Second, TotalTimeout: time.Minute,
			ResponseStartTimeout: time.Second, IdleTimeout: time.Second, QuietPeriod: time.Second, MaxQuietPeriod: time.Second, HijackedDrainTimeout: time.Second}},
		{name: "negative concurrency", c: Config{ContainerConcurrency: -1},
			want: []string{"Config.ContainerConcurrency = -1, must be in [0, 2147483647] (0 means no limit)"}},
		{name: "negative queue depth", c: Config{QueueDepth: -3},
			want: []string{"Config.QueueDepth = -3, must be in [0, 2147483647] (0 means 10 × ContainerConcurrency)"}},
		{name: "negative durations", c: Config{MaxWait: -1, TotalTimeout: -time.Second, ResponseStartTimeout: -2 * time.Second,
			IdleTimeout: -3 * time.Second, QuietPeriod: -4 * time.Second, MaxQuietPeriod: -5 * time.Second, HijackedDrainTimeout: -6 * time.Second},
			want: []string{
				"Config.MaxWait = -1ns, must be >= 0 (0 means no limit)",
				"Config.TotalTimeout = -1s, must be >= 0 (0 means no limit)",
				"Config.ResponseStartTimeout = -2s, must be >= 0 (0 means no limit)",
				"Config.IdleTimeout = -3s, must be >= 0 (0 means no limit)",
				"Config.QuietPeriod = -4s, must be >= 0 (0 means 30s)",
				"Config.MaxQuietPeriod = -5s, must be >= 0 (0 means 10 × QuietPeriod)",
				"Config.HijackedDrainTimeout = -6s, must be >= 0 (0 means 1m0s)",
			}},
		{name: "cap below quiet period", c: Config{QuietPeriod: time.Minute, MaxQuietPeriod: time.Second},
			want: []string{"Config.MaxQuietPeriod = 1s, must be >= QuietPeriod (1m0s) or 0"}},
		{name: "cap below default quiet period", c: Config{MaxQuietPeriod: time.Second},
			want: []string{"Config.MaxQuietPeriod = 1s, must be >= QuietPeriod (30s) or 0"}},
	}
	if math.MaxInt > MaxCapacity {
		// Only where an int holds more than MaxCapacity (not on 32-bit).
		tooLarge := MaxCapacity
		tooLarge++
		tests = append(tests, struct {
			name string
			c    Config
			want []string
		}{name: "concurrency too large", c: Config{ContainerConcurrency: tooLarge, QueueDepth: tooLarge},
			want: []string{
				"Config.ContainerConcurrency = 2147483648, must be in [0, 2147483647]",
				"Config.QueueDepth = 2147483648, must be in [0, 2147483647]",
			}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			_, newErr := New(okApp, tc.c)
			if len(tc.want) == 0 {
				assert.NoError(t, err)
				assert.NoError(t, newErr)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Len(t, strings.Split(err.Error(), "\n"), len(tc.want), "one line per problem")
			assert.EqualError(t, newErr, err.Error(), "New reports the same problems")
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name                           string
		c                              Config
		depth                          int
		quiet, maxQuiet, hijackedDrain time.Duration
	}{
		{name: "zero", c: Config{}, depth: 0, quiet: 30 * time.Second, maxQuiet: 300 * time.Second, hijackedDrain: time.Minute},
		{name: "knative queue depth", c: Config{ContainerConcurrency: 7}, depth: 70, quiet: 30 * time.Second, maxQuiet: 300 * time.Second, hijackedDrain: time.Minute},
		{name: "queue depth capped", c: Config{ContainerConcurrency: MaxCapacity}, depth: MaxCapacity, quiet: 30 * time.Second, maxQuiet: 300 * time.Second, hijackedDrain: time.Minute},
		// 10 × this overflows a 32-bit int.
		{name: "queue depth saturates", c: Config{ContainerConcurrency: MaxCapacity/queueDepthPerSlot + 1}, depth: MaxCapacity, quiet: 30 * time.Second, maxQuiet: 300 * time.Second, hijackedDrain: time.Minute},
		{name: "queue depth just below the cap", c: Config{ContainerConcurrency: MaxCapacity / queueDepthPerSlot}, depth: MaxCapacity / queueDepthPerSlot * queueDepthPerSlot, quiet: 30 * time.Second, maxQuiet: 300 * time.Second, hijackedDrain: time.Minute},
		{name: "explicit", c: Config{ContainerConcurrency: 7, QueueDepth: 1, QuietPeriod: time.Second, HijackedDrainTimeout: 2 * time.Second},
			depth: 1, quiet: time.Second, maxQuiet: 10 * time.Second, hijackedDrain: 2 * time.Second},
		{name: "the default cap of a huge quiet period saturates", c: Config{QuietPeriod: 100 * 365 * 24 * time.Hour},
			quiet: 100 * 365 * 24 * time.Hour, maxQuiet: math.MaxInt64, hijackedDrain: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.depth, tc.c.queueDepth())
			assert.Equal(t, tc.quiet, tc.c.quietPeriod())
			assert.Equal(t, tc.maxQuiet, tc.c.maxQuietPeriod())
			assert.Equal(t, tc.hijackedDrain, tc.c.hijackedDrainTimeout())
		})
	}
}

func TestNewWithoutConcurrencyHasNoBreaker(t *testing.T) {
	h, err := New(okApp, Config{})
	require.NoError(t, err)
	assert.Nil(t, h.Breaker(), "no container concurrency, no breaker (as Knative)")

	h, err = New(okApp, Config{ContainerConcurrency: 3})
	require.NoError(t, err)
	require.NotNil(t, h.Breaker())
	assert.Equal(t, 3, h.Breaker().Capacity())

	_, err = New(nil, Config{})
	assert.EqualError(t, err, "queue: New: app handler is nil")
}

func TestSidecarConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    SidecarConfig
		want []string
	}{
		{name: "minimal", c: SidecarConfig{Target: "127.0.0.1:8080"}},
		{name: "no target", c: SidecarConfig{}, want: []string{`SidecarConfig.Target = "", must be host:port`}},
		{name: "target without port", c: SidecarConfig{Target: "localhost"}, want: []string{`SidecarConfig.Target = "localhost", must be host:port`}},
		{name: "bad config and probe", c: SidecarConfig{Target: "127.0.0.1:1", Config: Config{ContainerConcurrency: -1},
			Probe: AppProbeConfig{Path: "healthz", Period: -time.Second}},
			want: []string{"Config.ContainerConcurrency = -1", `AppProbeConfig.Path = "healthz", must be empty (TCP probe) or start with "/"`,
				"AppProbeConfig.Period = -1s, must be >= 0 (0 means 50ms)"}},
		{name: "own readiness skips the probe", c: SidecarConfig{Target: "127.0.0.1:1", Probe: AppProbeConfig{Period: -1},
			Config: Config{Readiness: CheckerFunc(func(context.Context) error { return nil })}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			_, newErr := NewSidecar(tc.c)
			if len(tc.want) == 0 {
				assert.NoError(t, err)
				assert.NoError(t, newErr)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Error(t, newErr)
		})
	}
}

func TestAppProbeConfigValidate(t *testing.T) {
	err := AppProbeConfig{Address: "x", Path: "p", Period: -1, Timeout: -2, MaxWait: -3}.Validate()
	require.Error(t, err)
	for _, w := range []string{
		`AppProbeConfig.Address = "x", must be host:port`,
		`AppProbeConfig.Path = "p", must be empty (TCP probe) or start with "/"`,
		"AppProbeConfig.Period = -1ns, must be >= 0 (0 means 50ms)",
		"AppProbeConfig.Timeout = -2ns, must be >= 0 (0 means 100ms)",
		"AppProbeConfig.MaxWait = -3ns, must be >= 0 (0 means 10s)",
	} {
		assert.Contains(t, err.Error(), w)
	}
	assert.NoError(t, AppProbeConfig{Address: "127.0.0.1:80", Path: "/healthz"}.Validate())
}

func TestReporterConfigValidate(t *testing.T) {
	err := ReporterConfig{Period: -time.Second}.Validate()
	require.Error(t, err)
	for _, w := range []string{
		`ReporterConfig.Revision = "", must be the revision's key`,
		`ReporterConfig.Replica = "", must name the replica`,
		"ReporterConfig.Period = -1s, must be >= 0 (0 means 1s)",
	} {
		assert.Contains(t, err.Error(), w)
	}
	h, err := New(okApp, Config{})
	require.NoError(t, err)
	_, err = NewReporter(h.Recorder(), ReporterConfig{})
	assert.Error(t, err)
	_, err = NewReporter(nil, ReporterConfig{Revision: "r", Replica: "p"})
	assert.EqualError(t, err, "queue: NewReporter: recorder is nil")
}
