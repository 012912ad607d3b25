package traffic

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeCapacity is a host whose replicas become ready as soon as it scales
// them (when follow is set), per Plan.Replicas.
type fakeCapacity struct {
	needed map[string]int
	ready  map[string]int
}

func (f *fakeCapacity) NeededReplicas(c string) int { return f.needed[c] }
func (f *fakeCapacity) ReadyReplicas(r string) int  { return f.ready[r] }

// The steps of a 10 s rollout of a configuration that needs 4 replicas,
// with room for 1 extra: each row is (time, event) → percents and the
// replicas the plan asks for. Without the budget the same rollout moves
// 11% per second and would run 4 old and up to 4 new replicas.
func TestBudgetScenario(t *testing.T) {
	capy := &fakeCapacity{needed: map[string]int{"hello": 4}, ready: map[string]int{"r1": 4}}
	cfg := RolloutConfig{Duration: 10 * time.Second, Budget: &Budget{MaxExtra: 1, Capacity: capy}}
	steps := []struct {
		at       time.Duration
		latest   string
		ready    bool
		want     string
		replicas map[string]int
	}{
		{at: 0, latest: "r1", want: "default: r1 100%", replicas: map[string]int{}},
		{at: time.Second, latest: "r2", want: "default: r1 99%, r2 1%", replicas: map[string]int{"r1": 4, "r2": 1}},
		{at: 1500 * time.Millisecond, ready: true, want: "default: r1 99%, r2 1%", replicas: map[string]int{"r1": 4, "r2": 1}},
		// Steps of 11% are due every second; one replica of r2 serves 25%.
		{at: 2500 * time.Millisecond, want: "default: r1 88%, r2 12%", replicas: map[string]int{"r1": 4, "r2": 1}},
		{at: 3500 * time.Millisecond, want: "default: r1 77%, r2 23%", replicas: map[string]int{"r1": 4, "r2": 1}},
		// Cut short at 25%; r1 can now shrink to 3, which makes room for r2's second replica.
		{at: 4500 * time.Millisecond, want: "default: r1 75%, r2 25%", replicas: map[string]int{"r1": 3, "r2": 2}},
		{at: 5500 * time.Millisecond, want: "default: r1 64%, r2 36%", replicas: map[string]int{"r1": 3, "r2": 2}},
		{at: 6500 * time.Millisecond, want: "default: r1 53%, r2 47%", replicas: map[string]int{"r1": 3, "r2": 2}},
		{at: 7500 * time.Millisecond, want: "default: r1 50%, r2 50%", replicas: map[string]int{"r1": 2, "r2": 3}},
		{at: 8500 * time.Millisecond, want: "default: r1 39%, r2 61%", replicas: map[string]int{"r1": 2, "r2": 3}},
		{at: 9500 * time.Millisecond, want: "default: r1 28%, r2 72%", replicas: map[string]int{"r1": 2, "r2": 3}},
		{at: 10500 * time.Millisecond, want: "default: r1 25%, r2 75%", replicas: map[string]int{"r1": 1, "r2": 4}},
		{at: 11500 * time.Millisecond, want: "default: r1 14%, r2 86%", replicas: map[string]int{"r1": 1, "r2": 4}},
		{at: 12500 * time.Millisecond, want: "default: r1 3%, r2 97%", replicas: map[string]int{"r1": 1, "r2": 4}},
		{at: 13500 * time.Millisecond, want: "default: r2 100%", replicas: map[string]int{}},
	}
	var state *Rollout
	latest := LatestReadyMap{}
	for i, s := range steps {
		now := t0.Add(s.at)
		if s.latest != "" {
			latest["hello"] = s.latest
			capy.ready[s.latest] = max(capy.ready[s.latest], 1) // a ready revision has a replica
		}
		if s.ready {
			state.ObserveReady(now, cfg.Duration)
		}
		want, err := Resolve(Spec{Traffic: hello(100)}, latest)
		require.NoError(t, err)
		p := cfg.Plan(state, want, now)
		assert.Equal(t, s.want, p.Table.String(), "step %d at %v", i, s.at)
		assert.Equal(t, s.replicas, p.Replicas, "step %d at %v", i, s.at)
		// The newest revision never holds more than its ready replicas serve.
		for _, c := range p.State.Configurations {
			newest := c.Revisions[len(c.Revisions)-1]
			assert.LessOrEqual(t, replicasFor(4, newest.Percent, c.Percent), capy.ready[newest.RevisionName], "step %d", i)
		}
		// The host scales as asked, and replicas are ready at once.
		total := 0
		for rev, n := range p.Replicas {
			capy.ready[rev] = n
			total += n
		}
		assert.LessOrEqual(t, total, 4+1, "step %d: replicas %v", i, p.Replicas)
		state = p.State
	}
}

func TestBudgetWaitsForCapacity(t *testing.T) {
	capy := &fakeCapacity{needed: map[string]int{"hello": 10}, ready: map[string]int{"r1": 10, "r2": 1}}
	cfg := RolloutConfig{Duration: 100 * time.Second, Budget: &Budget{MaxExtra: 2, Capacity: capy}}
	state := &Rollout{Configurations: []ConfigRollout{{ConfigurationName: "hello", Percent: 100,
		Revisions:  []RevisionRollout{{"r1", 90}, {"r2", 10}},
		StepParams: StepParams{StartTime: t0.Add(-time.Minute), StepSize: 10, StepDuration: 5 * time.Second, NextStepTime: t0}}}}
	want, err := Resolve(Spec{Traffic: hello(100)}, LatestReadyMap{"hello": "r2"})
	require.NoError(t, err)

	// r2 has 1 ready replica, which serves its 10% already: the step waits.
	p := cfg.Plan(state, want, t0)
	assert.Equal(t, "default: r1 90%, r2 10%", p.Table.String())
	assert.Equal(t, t0.Add(5*time.Second), p.NextStep, "retried a step later")
	assert.Equal(t, map[string]int{"r1": 9, "r2": 2}, p.Replicas, "r2 should get a replica for its next step")

	// Still not ready at the retry.
	p = cfg.Plan(p.State, want, t0.Add(5*time.Second))
	assert.Equal(t, "default: r1 90%, r2 10%", p.Table.String())

	// The replica is ready: the step goes ahead at the next retry.
	capy.ready["r2"] = 2
	p = cfg.Plan(p.State, want, t0.Add(10*time.Second))
	assert.Equal(t, "default: r1 80%, r2 20%", p.Table.String())
	assert.Equal(t, t0.Add(15*time.Second), p.NextStep)
}

func TestBudgetOffWhenNeedUnknown(t *testing.T) {
	capy := &fakeCapacity{needed: map[string]int{}, ready: map[string]int{}}
	cfg := RolloutConfig{Duration: 100 * time.Second, Budget: &Budget{MaxExtra: 0, Capacity: capy}}
	state := &Rollout{Configurations: []ConfigRollout{{ConfigurationName: "hello", Percent: 100,
		Revisions:  []RevisionRollout{{"r1", 90}, {"r2", 10}},
		StepParams: StepParams{StartTime: t0.Add(-time.Minute), StepSize: 10, StepDuration: 5 * time.Second, NextStepTime: t0}}}}
	want, err := Resolve(Spec{Traffic: hello(100)}, LatestReadyMap{"hello": "r2"})
	require.NoError(t, err)
	p := cfg.Plan(state, want, t0)
	assert.Equal(t, "default: r1 80%, r2 20%", p.Table.String())
	assert.Empty(t, p.Replicas)
}
