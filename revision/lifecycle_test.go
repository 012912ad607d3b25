package revision

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// TestActiveTransitionTable enumerates every row of the Active transition
// table in Lifecycle's doc: want in {-1, 0, >0} × ready below/at-or-above
// min × min zero/positive × Active before in {Unknown, True, False}. With
// min == 0 ready is always >= min, so there are 9 + 18 = 27 rows.
func TestActiveTransitionTable(t *testing.T) {
	type row struct {
		want       int32
		ready, min int32
		before     ConditionStatus
		after      ConditionStatus
		reason     string
	}
	rows := []row{
		// min == 0: always inactive, NoTraffic (TimedOut needs min > 0).
		{-1, 0, 0, Unknown, False, ReasonNoTraffic},
		{-1, 0, 0, True, False, ReasonNoTraffic},
		{-1, 0, 0, False, False, ReasonNoTraffic},
		{0, 0, 0, Unknown, False, ReasonNoTraffic},
		{0, 0, 0, True, False, ReasonNoTraffic},
		{0, 0, 0, False, False, ReasonNoTraffic},
		{3, 1, 0, Unknown, False, ReasonNoTraffic},
		{3, 1, 0, True, False, ReasonNoTraffic},
		{3, 1, 0, False, False, ReasonNoTraffic},
		// want 0, min > 0.
		{0, 0, 1, Unknown, False, ReasonTimedOut},
		{0, 0, 1, True, False, ReasonNoTraffic},
		{0, 0, 1, False, False, ReasonNoTraffic},
		{0, 2, 1, Unknown, False, ReasonTimedOut},
		{0, 2, 1, True, False, ReasonNoTraffic},
		{0, 2, 1, False, False, ReasonNoTraffic},
		// want > 0, min > 0.
		{3, 0, 1, Unknown, Unknown, ReasonQueued},
		{3, 0, 1, True, Unknown, ReasonQueued},
		{3, 0, 1, False, Unknown, ReasonQueued},
		{3, 1, 1, Unknown, True, ""},
		{3, 1, 1, True, True, ""},
		{3, 1, 1, False, True, ""},
		// want unknown (-1), min > 0.
		{-1, 0, 1, Unknown, Unknown, ReasonQueued},
		{-1, 0, 1, True, Unknown, ReasonQueued},
		{-1, 0, 1, False, False, ReasonNoTraffic},
		{-1, 1, 1, Unknown, True, ""},
		{-1, 1, 1, True, True, ""},
		{-1, 1, 1, False, False, "Earlier"}, // unchanged: keeps its reason
	}
	seen := map[string]bool{}
	for _, r := range rows {
		name := fmt.Sprintf("want=%d/ready=%d/min=%d/%v", r.want, r.ready, r.min, r.before)
		t.Run(name, func(t *testing.T) {
			cur := Condition{Type: Active, Status: r.before, Reason: "Earlier", LastTransition: t0}
			got := nextActive(at(time.Minute), cur, r.want, r.ready, r.min)
			assert.Equal(t, r.after, got.Status)
			assert.Equal(t, r.reason, got.Reason)
			switch r.reason {
			case ReasonQueued:
				assert.Equal(t, MessageQueued, got.Message)
			case ReasonNoTraffic:
				assert.Equal(t, MessageNoTraffic, got.Message)
			case ReasonTimedOut:
				assert.Equal(t, MessageTimedOut, got.Message)
			}
			if r.after == r.before {
				assert.Equal(t, t0, got.LastTransition, "same status keeps the transition time")
			} else {
				assert.Equal(t, at(time.Minute), got.LastTransition)
			}
		})
		wantClass := map[bool]string{true: "pos", false: fmt.Sprint(r.want)}[r.want > 0]
		seen[fmt.Sprint(wantClass, r.ready >= r.min, r.min > 0, r.before)] = true
	}
	assert.Len(t, seen, 27, "every combination has a row")
}

// step is one observation in a life-cycle scenario and what must follow.
type step struct {
	at   time.Duration
	obs  Observation
	tick bool // re-evaluate the previous observation instead of obs

	ready, resources, container, active ConditionStatus
	readyReason, resourcesReason        string
	containerReason, activeReason       string
	desired                             int32
}

func runSteps(t *testing.T, cfg Config, steps []step) *Lifecycle {
	t.Helper()
	l, err := NewLifecycle(t0, cfg)
	require.NoError(t, err)
	for i, s := range steps {
		obs := s.obs
		if s.tick {
			obs = l.last
		}
		st, err := l.Observe(at(s.at), obs)
		require.NoError(t, err)
		where := fmt.Sprintf("step %d at %v (%+v)", i, s.at, obs)
		assert.Equal(t, s.ready, st.Ready.Status, "Ready %s: %v", where, st)
		assert.Equal(t, s.readyReason, st.Ready.Reason, "Ready reason %s", where)
		assert.Equal(t, s.resources, st.ResourcesAvailable.Status, "ResourcesAvailable %s: %v", where, st)
		assert.Equal(t, s.resourcesReason, st.ResourcesAvailable.Reason, "ResourcesAvailable reason %s", where)
		assert.Equal(t, s.container, st.ContainerHealthy.Status, "ContainerHealthy %s", where)
		assert.Equal(t, s.containerReason, st.ContainerHealthy.Reason, "ContainerHealthy reason %s", where)
		assert.Equal(t, s.active, st.Active.Status, "Active %s: %v", where, st)
		assert.Equal(t, s.activeReason, st.Active.Reason, "Active reason %s", where)
		assert.Equal(t, s.desired, st.DesiredReplicas, "DesiredReplicas %s", where)
		assert.Equal(t, obs.Ready, st.ActualReplicas, "ActualReplicas %s", where)
	}
	return l
}

// Shorthands for the expected condition columns.
const (
	dep = ReasonDeploying
	q   = ReasonQueued
	nt  = ReasonNoTraffic
	to  = ReasonTimedOut
	pde = ReasonProgressDeadlineExceeded
)

func TestLifecycleScenarios(t *testing.T) {
	crash := ContainerFailed(1, "boom")
	unsched := ResourcesUnavailable("Unschedulable", "0/3 nodes are available")
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{{
		name: "cold start, serve, scale to zero and stay Ready, wake up again",
		steps: []step{
			{at: 0, obs: Observation{Desired: -1}, ready: Unknown, readyReason: dep, resources: Unknown, resourcesReason: dep, container: Unknown, containerReason: dep, active: Unknown, activeReason: q, desired: -1},
			{at: time.Second, obs: Observation{Desired: 1}, ready: Unknown, readyReason: dep, resources: Unknown, resourcesReason: dep, container: Unknown, containerReason: dep, active: Unknown, activeReason: q, desired: 1},
			{at: 3 * time.Second, obs: Observation{Desired: 1, Ready: 1}, ready: True, resources: True, container: True, active: True, desired: 1},
			{at: 90 * time.Second, obs: Observation{Desired: 0, Ready: 1}, ready: True, resources: True, container: True, active: False, activeReason: nt, desired: 0},
			{at: 95 * time.Second, obs: Observation{Desired: 0, Ready: 0}, ready: True, resources: True, container: True, active: False, activeReason: nt, desired: 0},
			// Metrics lost (autoscaler restart): stays inactive, desired kept.
			{at: 96 * time.Second, obs: Observation{Desired: -1, Ready: 0}, ready: True, resources: True, container: True, active: False, activeReason: nt, desired: 0},
			{at: 100 * time.Second, obs: Observation{Desired: 1, Ready: 0}, ready: True, resources: True, container: True, active: Unknown, activeReason: q, desired: 1},
			{at: 102 * time.Second, obs: Observation{Desired: 1, Ready: 1}, ready: True, resources: True, container: True, active: True, desired: 1},
		},
	}, {
		name: "activation guard, progress deadline, then TimedOut and initial scale never achieved",
		steps: []step{
			{at: 0, obs: Observation{Desired: 1}, ready: Unknown, readyReason: dep, resources: Unknown, resourcesReason: dep, container: Unknown, containerReason: dep, active: Unknown, activeReason: q, desired: 1},
			// Zero while activating is held as unknown: desired stays 1.
			{at: 100 * time.Second, obs: Observation{Desired: 0}, ready: Unknown, readyReason: dep, resources: Unknown, resourcesReason: dep, container: Unknown, containerReason: dep, active: Unknown, activeReason: q, desired: 1},
			{at: 599 * time.Second, tick: true, ready: Unknown, readyReason: dep, resources: Unknown, resourcesReason: dep, container: Unknown, containerReason: dep, active: Unknown, activeReason: q, desired: 1},
			{at: 600 * time.Second, tick: true, ready: False, readyReason: pde, resources: False, resourcesReason: pde, container: Unknown, containerReason: dep, active: Unknown, activeReason: q, desired: 1},
			{at: 629 * time.Second, tick: true, ready: False, readyReason: pde, resources: False, resourcesReason: pde, container: Unknown, containerReason: dep, active: Unknown, activeReason: q, desired: 1},
			{at: 630 * time.Second, tick: true, ready: False, readyReason: pde, resources: False, resourcesReason: pde, container: Unknown, containerReason: dep, active: False, activeReason: to, desired: 0},
			// Traffic again: activating, the failure lifts while it tries.
			{at: 700 * time.Second, obs: Observation{Desired: 1}, ready: Unknown, readyReason: dep, resources: Unknown, resourcesReason: dep, container: Unknown, containerReason: dep, active: Unknown, activeReason: q, desired: 1},
			{at: 705 * time.Second, obs: Observation{Desired: 1, Ready: 1}, ready: True, resources: True, container: True, active: True, desired: 1},
		},
	}, {
		name: "progress deadline after initialization restarts on each new ready replica",
		cfg:  Config{ProgressDeadline: 100 * time.Second},
		steps: []step{
			{at: 0, obs: Observation{Desired: 1, Ready: 1}, ready: True, resources: True, container: True, active: True, desired: 1},
			{at: 10 * time.Second, obs: Observation{Desired: 3, Ready: 1}, ready: True, resources: True, container: True, active: True, desired: 3},
			{at: 90 * time.Second, obs: Observation{Desired: 3, Ready: 2}, ready: True, resources: True, container: True, active: True, desired: 3},
			{at: 189 * time.Second, tick: true, ready: True, resources: True, container: True, active: True, desired: 3},
			{at: 190 * time.Second, tick: true, ready: False, readyReason: pde, resources: False, resourcesReason: pde, container: True, active: True, desired: 3},
			{at: 200 * time.Second, obs: Observation{Desired: 3, Ready: 3}, ready: True, resources: True, container: True, active: True, desired: 3},
		},
	}, {
		name: "scaling down ends a stalled scale-up",
		cfg:  Config{ProgressDeadline: 100 * time.Second},
		steps: []step{
			{at: 0, obs: Observation{Desired: 2, Ready: 1}, ready: True, resources: True, container: True, active: True, desired: 2},
			{at: 100 * time.Second, tick: true, ready: False, readyReason: pde, resources: False, resourcesReason: pde, container: True, active: True, desired: 2},
			{at: 101 * time.Second, obs: Observation{Desired: 1, Ready: 1}, ready: True, resources: True, container: True, active: True, desired: 1},
		},
	}, {
		name: "host-reported failures hold their condition False while reported",
		steps: []step{
			{at: 0, obs: Observation{Desired: 1, Failures: []Failure{crash}}, ready: False, readyReason: "ExitCode1", resources: Unknown, resourcesReason: dep, container: False, containerReason: "ExitCode1", active: Unknown, activeReason: q, desired: 1},
			{at: time.Second, obs: Observation{Desired: 1, Failures: []Failure{crash, unsched}}, ready: False, readyReason: "Unschedulable", resources: False, resourcesReason: "Unschedulable", container: False, containerReason: "ExitCode1", active: Unknown, activeReason: q, desired: 1},
			{at: 2 * time.Second, obs: Observation{Desired: 1, Ready: 1}, ready: True, resources: True, container: True, active: True, desired: 1},
			{at: 3 * time.Second, obs: Observation{Desired: 1, Ready: 1, Failures: []Failure{crash}}, ready: False, readyReason: "ExitCode1", resources: True, container: False, containerReason: "ExitCode1", active: True, desired: 1},
		},
	}, {
		name: "zero initial scale is initialized and inactive at once",
		cfg:  Config{ZeroInitialScale: true},
		steps: []step{
			{at: 0, obs: Observation{Desired: -1}, ready: True, resources: True, container: True, active: False, activeReason: nt, desired: -1},
			{at: time.Second, obs: Observation{Desired: -1}, ready: True, resources: True, container: True, active: False, activeReason: nt, desired: -1},
			{at: 2 * time.Second, obs: Observation{Desired: 1}, ready: True, resources: True, container: True, active: Unknown, activeReason: q, desired: 1},
			{at: 3 * time.Second, obs: Observation{Desired: 1, Ready: 1}, ready: True, resources: True, container: True, active: True, desired: 1},
		},
	}, {
		name: "initial scale 3 must be reached once, then one replica suffices",
		cfg:  Config{InitialScale: 3},
		steps: []step{
			{at: 0, obs: Observation{Desired: 3, Ready: 2}, ready: Unknown, readyReason: dep, resources: Unknown, resourcesReason: dep, container: Unknown, containerReason: dep, active: Unknown, activeReason: q, desired: 3},
			{at: time.Second, obs: Observation{Desired: 3, Ready: 3}, ready: True, resources: True, container: True, active: True, desired: 3},
			{at: 2 * time.Second, obs: Observation{Desired: 1, Ready: 1}, ready: True, resources: True, container: True, active: True, desired: 1},
		},
	}, {
		name: "min scale counts while routed, not while unrouted",
		cfg:  Config{MinScale: 2},
		steps: []step{
			{at: 0, obs: Observation{Desired: 2, Ready: 1}, ready: Unknown, readyReason: dep, resources: Unknown, resourcesReason: dep, container: Unknown, containerReason: dep, active: Unknown, activeReason: q, desired: 2},
			{at: time.Second, obs: Observation{Desired: 2, Ready: 2}, ready: True, resources: True, container: True, active: True, desired: 2},
			{at: 2 * time.Second, obs: Observation{Desired: 1, Ready: 1}, ready: True, resources: True, container: True, active: Unknown, activeReason: q, desired: 1},
			{at: 3 * time.Second, obs: Observation{Desired: 1, Ready: 1, Unreachable: true}, ready: True, resources: True, container: True, active: True, desired: 1},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, tc.cfg, tc.steps) })
	}
}

func TestLifecycleCreationState(t *testing.T) {
	l, err := NewLifecycle(t0, Config{})
	require.NoError(t, err)
	st := l.Status()
	for _, c := range []Condition{st.Ready, st.ResourcesAvailable, st.ContainerHealthy, st.Active} {
		assert.Equal(t, Unknown, c.Status, c.Type)
		assert.Equal(t, ReasonDeploying, c.Reason, c.Type)
		assert.Equal(t, t0, c.LastTransition, c.Type)
	}
	assert.Equal(t, int32(-1), st.DesiredReplicas)
	assert.False(t, st.Initialized)
	assert.Equal(t, 5*time.Second, st.ActivatingFor(at(5*time.Second)), "a new revision is activating")
	assert.Equal(t, time.Duration(-1), st.ActiveFor(at(5*time.Second)))
	assert.Equal(t, time.Duration(-1), st.InactiveFor(at(5*time.Second)))
}

func TestLifecycleTransitionTimes(t *testing.T) {
	l, err := NewLifecycle(t0, Config{})
	require.NoError(t, err)
	// Deploying → Queued keeps Active Unknown's time: activation counts from creation.
	st, _ := l.Observe(at(time.Second), Observation{Desired: 1})
	assert.Equal(t, t0, st.Active.LastTransition)
	st, _ = l.Observe(at(4*time.Second), Observation{Desired: 1, Ready: 1})
	assert.Equal(t, at(4*time.Second), st.Active.LastTransition)
	assert.Equal(t, at(4*time.Second), st.Ready.LastTransition)
	assert.Equal(t, 6*time.Second, st.ActiveFor(at(10*time.Second)))
	st, _ = l.Observe(at(70*time.Second), Observation{Desired: 0, Ready: 1})
	assert.Equal(t, 30*time.Second, st.InactiveFor(at(100*time.Second)))
	assert.Equal(t, at(4*time.Second), st.Ready.LastTransition, "scaling to zero does not touch Ready")
}

func TestLifecycleNextDeadline(t *testing.T) {
	l, err := NewLifecycle(t0, Config{ProgressDeadline: 100 * time.Second})
	require.NoError(t, err)
	_, ok := l.NextDeadline()
	assert.False(t, ok, "nothing pending before any observation")

	_, _ = l.Observe(at(10*time.Second), Observation{Desired: 2})
	next, ok := l.NextDeadline()
	require.True(t, ok)
	assert.Equal(t, at(110*time.Second), next, "progress window opened at 10 s")

	_, _ = l.Observe(at(20*time.Second), Observation{Desired: 0})
	next, ok = l.NextDeadline()
	require.True(t, ok)
	assert.Equal(t, at(110*time.Second), next, "activation timeout (130 s from creation) is later than the progress deadline")

	_, _ = l.Observe(at(110*time.Second), l.last)
	next, ok = l.NextDeadline()
	require.True(t, ok)
	assert.Equal(t, at(130*time.Second), next, "after the progress deadline, the activation timeout")
	st, _ := l.Observe(next, l.last)
	assert.Equal(t, ReasonTimedOut, st.Active.Reason)
	_, ok = l.NextDeadline()
	assert.False(t, ok)

	_, _ = l.Observe(at(200*time.Second), Observation{Desired: 1, Ready: 1})
	_, ok = l.NextDeadline()
	assert.False(t, ok, "nothing pending when all desired replicas are ready")
}

func TestLifecycleRejectsBadObservations(t *testing.T) {
	l, err := NewLifecycle(t0, Config{})
	require.NoError(t, err)
	before := l.Status()
	tests := []struct {
		name string
		obs  Observation
		is   error
		msg  string
	}{
		{"negative ready", Observation{Desired: 1, Ready: -2}, ErrInvalidObservation, "Observation.Ready = -2, must be >= 0"},
		{"unknown condition", Observation{Failures: []Failure{{Condition: Ready, Reason: "X"}}}, ErrInvalidFailure, `Failure.Condition = "Ready"`},
		{"empty reason", Observation{Failures: []Failure{{Condition: ContainerHealthy}}}, ErrInvalidFailure, "Failure.Reason is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := l.Observe(at(time.Second), tc.obs)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tc.is), err)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Equal(t, before, st)
			assert.Equal(t, before, l.Status())
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		msgs []string
	}{
		{"zero is valid", Config{}, nil},
		{"all set", Config{ProgressDeadline: time.Minute, MinScale: 1, InitialScale: 2, Activators: ActivatorSizing{TotalValue: 10, TargetBurstCapacity: -1, ActivatorCapacity: 50}}, nil},
		{"negatives", Config{ProgressDeadline: -time.Second, MinScale: -1, InitialScale: -3}, []string{
			"Config.ProgressDeadline = -1s, must be >= 0 (0 means 10m0s)",
			"Config.MinScale = -1, must be >= 0",
			"Config.InitialScale = -3, must be >= 0 (0 means 1)",
		}},
		{"zero initial scale conflict", Config{InitialScale: 2, ZeroInitialScale: true}, []string{"Config.InitialScale = 2 with Config.ZeroInitialScale set"}},
		{"bad sizing", Config{Activators: ActivatorSizing{TargetBurstCapacity: -2}}, []string{"ActivatorSizing.TargetBurstCapacity = -2, must be -1 (unlimited) or a finite number >= 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.msgs == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, m := range tc.msgs {
				assert.Contains(t, err.Error(), m)
			}
			_, err = NewLifecycle(t0, tc.cfg)
			assert.Error(t, err)
		})
	}
	assert.Equal(t, 630*time.Second, Config{}.ActivationTimeout())
	assert.Equal(t, 90*time.Second, Config{ProgressDeadline: time.Minute}.ActivationTimeout())
}

func TestFailureHelpers(t *testing.T) {
	assert.Equal(t, Failure{ContainerHealthy, "ExitCode137", "Container failed with: OOMKilled"}, ContainerFailed(137, "OOMKilled"))
	assert.Equal(t, Failure{ContainerHealthy, "ExitCode0", "Container failed with: container exited with no error"}, ContainerFailed(0, ""))
	assert.Equal(t, Failure{ContainerHealthy, ReasonContainerMissing, `Unable to fetch image "ex/a:1": not found`}, ImageMissing("ex/a:1", "not found"))
	assert.Equal(t, Failure{ResourcesAvailable, "Unschedulable", "no nodes"}, ResourcesUnavailable("Unschedulable", "no nodes"))
}

// TestResourcesAvailablePrecedence walks ResourcesAvailable's first-match
// rules from the top: a reported failure beats an exceeded progress
// deadline, which beats initialization.
func TestResourcesAvailablePrecedence(t *testing.T) {
	unsched := ResourcesUnavailable("Unschedulable", "no nodes")
	runSteps(t, Config{ProgressDeadline: 10 * time.Second}, []step{
		{at: 0, obs: Observation{Desired: 2, Ready: 1}, ready: True, resources: True, container: True, active: True, desired: 2},
		{at: 10 * time.Second, tick: true, ready: False, readyReason: pde, resources: False, resourcesReason: pde, container: True, active: True, desired: 2},
		{at: 11 * time.Second, obs: Observation{Desired: 2, Ready: 1, Failures: []Failure{unsched}}, ready: False, readyReason: "Unschedulable", resources: False, resourcesReason: "Unschedulable", container: True, active: True, desired: 2},
		{at: 12 * time.Second, obs: Observation{Desired: 2, Ready: 1}, ready: False, readyReason: pde, resources: False, resourcesReason: pde, container: True, active: True, desired: 2},
		{at: 13 * time.Second, obs: Observation{Desired: 2, Ready: 2}, ready: True, resources: True, container: True, active: True, desired: 2},
	})
	l, _ := NewLifecycle(t0, Config{MinScale: 1})
	assert.Equal(t, Config{MinScale: 1}, l.Config())
}
