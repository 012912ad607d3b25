package traffic

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Knative's TestObserveReady: a 120 s rollout whose first 1% took
// different times to become live.
func TestObserveReadyKnativeRows(t *testing.T) {
	now := time.Unix(0, 200620092020+1982)
	oldenDays := time.Unix(0, 198219841988) // ≈ 2.4 s before now
	ancientDays := time.Unix(0, 14921812)   // ≈ 200 s before now
	tests := []struct {
		name    string
		percent int
		in      StepParams
		want    StepParams
	}{{
		name: "already has a step duration", percent: 100,
		in:   StepParams{StepDuration: 11},
		want: StepParams{StepDuration: 11},
	}, {
		name: "no step and not started", percent: 100,
	}, {
		name: "ready after < 1 s: 1% steps of 119 s / 99", percent: 100,
		in:   StepParams{StartTime: time.Unix(0, 200620092020)},
		want: StepParams{StartTime: time.Unix(0, 200620092020), StepDuration: 1202020202, StepSize: 1, NextStepTime: now.Add(1202020202)},
	}, {
		name: "ready after ≈ 2.4 s: 3% steps every 3 s", percent: 100,
		in:   StepParams{StartTime: oldenDays},
		want: StepParams{StartTime: oldenDays, StepDuration: 3 * time.Second, StepSize: 3, NextStepTime: now.Add(3 * time.Second)},
	}, {
		name: "75%: step size rounds up to 2", percent: 75,
		in:   StepParams{StartTime: oldenDays},
		want: StepParams{StartTime: oldenDays, StepDuration: 3 * time.Second, StepSize: 2, NextStepTime: now.Add(3 * time.Second)},
	}, {
		name: "50%: step size rounds down to 1", percent: 50,
		in:   StepParams{StartTime: oldenDays},
		want: StepParams{StartTime: oldenDays, StepDuration: 3 * time.Second, StepSize: 1, NextStepTime: now.Add(3 * time.Second)},
	}, {
		name: "ready after longer than the whole rollout: one step of 12 after 1 s", percent: 13,
		in:   StepParams{StartTime: ancientDays},
		want: StepParams{StartTime: ancientDays, StepDuration: time.Second, StepSize: 12, NextStepTime: now.Add(time.Second)},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Rollout{Configurations: []ConfigRollout{{ConfigurationName: "c", Percent: tc.percent, StepParams: tc.in}}}
			r.ObserveReady(now, 120*time.Second)
			got := r.Configurations[0].StepParams
			assert.Equal(t, tc.want.StepDuration, got.StepDuration)
			assert.Equal(t, tc.want.StepSize, got.StepSize)
			assert.True(t, tc.want.NextStepTime.Equal(got.NextStepTime), "next step %v, want %v", got.NextStepTime, tc.want.NextStepTime)
			assert.True(t, tc.want.StartTime.Equal(got.StartTime))
		})
	}
}

func TestObserveReadySkipsOnePercent(t *testing.T) {
	r := &Rollout{Configurations: []ConfigRollout{{ConfigurationName: "c", Percent: 1, StepParams: StepParams{StartTime: t0}}}}
	r.ObserveReady(t0.Add(time.Second), time.Minute)
	assert.Equal(t, StepParams{StartTime: t0}, r.Configurations[0].StepParams)
}

func revs(pcts ...int) []RevisionRollout {
	out := make([]RevisionRollout, len(pcts))
	for i, p := range pcts {
		out[i] = RevisionRollout{RevisionName: fmt.Sprintf("r%d", i+1), Percent: p}
	}
	return out
}

func TestStepRevisions(t *testing.T) {
	tests := []struct {
		name    string
		percent int
		in      []RevisionRollout
		step    int
		want    []RevisionRollout
		done    bool
	}{{
		name: "reference example: [22,5,3,60] step 10", percent: 90,
		in: revs(22, 5, 3, 60), step: 10,
		want: []RevisionRollout{{"r1", 20}, {"r4", 70}},
	}, {
		name: "taken from the newest old revision only", percent: 100,
		in: revs(50, 30, 20), step: 10,
		want: []RevisionRollout{{"r1", 50}, {"r2", 20}, {"r3", 30}},
	}, {
		name: "an old revision reaching exactly 0% is dropped", percent: 100,
		in: revs(50, 10, 40), step: 10,
		want: []RevisionRollout{{"r1", 50}, {"r3", 50}},
	}, {
		name: "last step: done, step parameters cleared", percent: 100,
		in: revs(3, 97), step: 5,
		want: []RevisionRollout{{"r2", 100}}, done: true,
	}, {
		name: "step larger than the configuration's percent is capped", percent: 15,
		in: revs(5, 10), step: 20,
		want: []RevisionRollout{{"r2", 15}}, done: true,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &ConfigRollout{ConfigurationName: "c", Percent: tc.percent, Revisions: tc.in,
				StepParams: StepParams{StartTime: t0, StepSize: tc.step, StepDuration: time.Second, NextStepTime: t0}}
			stepRevisions(c, t0.Add(time.Millisecond), nil)
			assert.Equal(t, tc.want, c.Revisions)
			if tc.done {
				assert.Equal(t, StepParams{}, c.StepParams)
			} else {
				assert.Equal(t, t0.Add(time.Second+time.Millisecond), c.StepParams.NextStepTime)
			}
		})
	}
	t.Run("not due yet", func(t *testing.T) {
		c := &ConfigRollout{Percent: 100, Revisions: revs(50, 50), StepParams: StepParams{StepSize: 10, NextStepTime: t0}}
		stepRevisions(c, t0.Add(-1), nil)
		assert.Equal(t, revs(50, 50), c.Revisions)
	})
}

func TestAdjustPercentage(t *testing.T) {
	tests := []struct {
		name     string
		from, to int
		in, want []RevisionRollout
	}{
		{"increase goes to the newest", 60, 80, revs(20, 30, 10), []RevisionRollout{{"r1", 20}, {"r2", 30}, {"r3", 30}}},
		{"decrease comes off the oldest", 60, 50, revs(20, 30, 10), []RevisionRollout{{"r1", 10}, {"r2", 30}, {"r3", 10}}},
		{"decrease past the oldest drops it", 60, 35, revs(20, 30, 10), []RevisionRollout{{"r2", 25}, {"r3", 10}}},
		{"decrease to exactly the oldest's share drops it", 60, 40, revs(20, 30, 10), []RevisionRollout{{"r2", 30}, {"r3", 10}}},
		{"zero ends the rollout", 60, 0, revs(20, 30, 10), nil},
		{"unchanged", 60, 60, revs(20, 30, 10), revs(20, 30, 10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &ConfigRollout{Percent: tc.from, Revisions: tc.in}
			adjustPercentage(tc.to, c)
			assert.Equal(t, tc.want, c.Revisions)
		})
	}
}

// rolloutStep is one row of a rollout scenario: at time at (after t0),
// optionally change the spec or a configuration's latest ready revision,
// optionally report that the last plan's table is live, then plan and
// check the routed traffic.
type rolloutStep struct {
	at       time.Duration
	latest   LatestReadyMap // changes to the latest ready revisions
	spec     []Target       // a new spec, when set
	ready    bool           // the previous table is live: ObserveReady
	want     string         // the planned Table's String()
	next     time.Duration  // NextStep − t0; 0 for none
	awaiting bool           // Plan.AwaitingReady
}

func runRollout(t *testing.T, cfg RolloutConfig, spec []Target, state *Rollout, steps []rolloutStep) *Rollout {
	t.Helper()
	latest := LatestReadyMap{}
	for i, s := range steps {
		for c, r := range s.latest {
			latest[c] = r
		}
		if s.spec != nil {
			spec = s.spec
		}
		now := t0.Add(s.at)
		if s.ready && state != nil {
			state.ObserveReady(now, cfg.Duration)
		}
		want, err := Resolve(Spec{Traffic: spec}, latest)
		require.NoError(t, err, "step %d", i)
		p := cfg.Plan(state, want, now)
		require.NoError(t, p.State.Validate(), "step %d", i)
		require.NoError(t, p.Table.Validate(), "step %d", i)
		assert.Equal(t, s.want, p.Table.String(), "step %d at %v", i, s.at)
		var next time.Duration
		if !p.NextStep.IsZero() {
			next = p.NextStep.Sub(t0)
		}
		assert.Equal(t, s.next, next, "step %d at %v: next step", i, s.at)
		assert.Equal(t, s.awaiting, p.AwaitingReady, "step %d at %v: awaiting ready", i, s.at)
		// The state survives a JSON round trip unchanged.
		data, err := json.Marshal(p.State)
		require.NoError(t, err)
		back, err := ParseRollout(data)
		require.NoError(t, err, "step %d: %s", i, data)
		state = back
	}
	return state
}

func hello(pct int) []Target {
	if pct == 100 {
		return []Target{{ConfigurationName: "hello", Percent: 100}}
	}
	return []Target{{ConfigurationName: "hello", Percent: pct}, {RevisionName: "pinned", Percent: 100 - pct}}
}

func TestRolloutScenarios(t *testing.T) {
	two := RolloutConfig{Duration: 120 * time.Second}
	t.Run("1% steps when the first 1% is live within a second", func(t *testing.T) {
		runRollout(t, two, hello(100), nil, []rolloutStep{
			{at: 0, latest: LatestReadyMap{"hello": "r1"}, want: "default: r1 100%"},
			{at: 10 * time.Second, latest: LatestReadyMap{"hello": "r2"}, want: "default: r1 99%, r2 1%", awaiting: true},
			{at: 10*time.Second + 500*time.Millisecond, ready: true, want: "default: r1 99%, r2 1%", next: 11702020202},
			{at: 11 * time.Second, want: "default: r1 99%, r2 1%", next: 11702020202},
			{at: 11702020202, want: "default: r1 98%, r2 2%", next: 11702020202 + 1202020202},
		})
	})
	t.Run("3% steps every 3 s when the first 1% took 2.4 s, a new revision mid-rollout", func(t *testing.T) {
		runRollout(t, two, hello(100), nil, []rolloutStep{
			{at: 0, latest: LatestReadyMap{"hello": "r1"}, want: "default: r1 100%"},
			{at: 10 * time.Second, latest: LatestReadyMap{"hello": "r2"}, want: "default: r1 99%, r2 1%", awaiting: true},
			{at: 12400 * time.Millisecond, ready: true, want: "default: r1 99%, r2 1%", next: 15400 * time.Millisecond},
			{at: 15400 * time.Millisecond, want: "default: r1 96%, r2 4%", next: 18400 * time.Millisecond},
			{at: 16 * time.Second, want: "default: r1 96%, r2 4%", next: 18400 * time.Millisecond},
			{at: 18400 * time.Millisecond, want: "default: r1 93%, r2 7%", next: 21400 * time.Millisecond},
			// r3 takes 1% from r2, the newest revision with any; timing restarts.
			{at: 20 * time.Second, latest: LatestReadyMap{"hello": "r3"}, want: "default: r1 93%, r2 6%, r3 1%", awaiting: true},
			{at: 21 * time.Second, ready: true, want: "default: r1 93%, r2 6%, r3 1%", next: 21*time.Second + 1202020202},
			// Steps drain r2 (the newest old revision) before r1.
			{at: 21*time.Second + 1202020202, want: "default: r1 93%, r2 5%, r3 2%", next: 21*time.Second + 2*1202020202},
		})
	})
	t.Run("75% of the route: steps of 2% every 3 s when the first 1% took 2.4 s", func(t *testing.T) {
		runRollout(t, two, hello(75), nil, []rolloutStep{
			{at: 0, latest: LatestReadyMap{"hello": "r1"}, want: "default: r1 75%, pinned 25%"},
			{at: time.Second, latest: LatestReadyMap{"hello": "r2"}, want: "default: r1 74%, r2 1%, pinned 25%", awaiting: true},
			{at: 3400 * time.Millisecond, ready: true, want: "default: r1 74%, r2 1%, pinned 25%", next: 6400 * time.Millisecond},
			{at: 6400 * time.Millisecond, want: "default: r1 72%, r2 3%, pinned 25%", next: 9400 * time.Millisecond},
		})
	})
	t.Run("percent changes during a rollout", func(t *testing.T) {
		runRollout(t, two, hello(100), nil, []rolloutStep{
			{at: 0, latest: LatestReadyMap{"hello": "r1"}, want: "default: r1 100%"},
			{at: time.Second, latest: LatestReadyMap{"hello": "r2"}, want: "default: r1 99%, r2 1%", awaiting: true},
			{at: 3400 * time.Millisecond, ready: true, want: "default: r1 99%, r2 1%", next: 6400 * time.Millisecond},
			// Down to 50%: taken from the oldest, r1.
			{at: 4 * time.Second, spec: hello(50), want: "default: r1 49%, r2 1%, pinned 50%", next: 6400 * time.Millisecond},
			{at: 6400 * time.Millisecond, want: "default: r1 46%, r2 4%, pinned 50%", next: 9400 * time.Millisecond},
			// Up to 60%: the increase goes to the newest, r2.
			{at: 7 * time.Second, spec: hello(60), want: "default: r1 46%, r2 14%, pinned 40%", next: 9400 * time.Millisecond},
			// Down to 10%, more than r1 holds: r1 is dropped, the rest comes
			// off r2. (Knative v0.42.2 panics on this one.)
			{at: 8 * time.Second, spec: hello(10), want: "default: r2 10%, pinned 90%"},
			// 0%: the configuration leaves the rollout.
			{at: 9 * time.Second, spec: []Target{{ConfigurationName: "hello", Tag: "t"}, {RevisionName: "pinned", Percent: 100}}, want: "default: r2 0%, pinned 100%; tag t: r2 100%"},
		})
	})
	t.Run("decrease that drops the oldest, rollout continues", func(t *testing.T) {
		state := &Rollout{Configurations: []ConfigRollout{{ConfigurationName: "hello", Percent: 100, Revisions: []RevisionRollout{{"a", 10}, {"b", 20}, {"c", 70}},
			StepParams: StepParams{StartTime: t0.Add(-time.Minute), StepSize: 5, StepDuration: 10 * time.Second, NextStepTime: t0.Add(100 * time.Second)}}}}
		runRollout(t, two, hello(80), state, []rolloutStep{
			{at: 50 * time.Second, latest: LatestReadyMap{"hello": "c"}, want: "default: b 10%, c 70%, pinned 20%", next: 100 * time.Second},
			{at: 100 * time.Second, want: "default: b 5%, c 75%, pinned 20%", next: 110 * time.Second},
		})
	})
	t.Run("stepRevisions example: [22,5,3,60] with step 10", func(t *testing.T) {
		state := &Rollout{Configurations: []ConfigRollout{{ConfigurationName: "hello", Percent: 90,
			Revisions:  []RevisionRollout{{"r1", 22}, {"r2", 5}, {"r3", 3}, {"r4", 60}},
			StepParams: StepParams{StartTime: t0.Add(-time.Minute), StepSize: 10, StepDuration: 10 * time.Second, NextStepTime: t0}}}}
		end := runRollout(t, two, hello(90), state, []rolloutStep{
			{at: 0, latest: LatestReadyMap{"hello": "r4"}, want: "default: r1 20%, r4 70%, pinned 10%", next: 10 * time.Second},
			{at: 10 * time.Second, want: "default: r1 10%, r4 80%, pinned 10%", next: 20 * time.Second},
			{at: 20 * time.Second, want: "default: r4 90%, pinned 10%"},
		})
		assert.True(t, end.Done())
	})
	t.Run("first 1% took longer than the rollout: one step to 100%", func(t *testing.T) {
		runRollout(t, two, hello(100), nil, []rolloutStep{
			{at: 0, latest: LatestReadyMap{"hello": "r1"}, want: "default: r1 100%"},
			{at: 10 * time.Second, latest: LatestReadyMap{"hello": "r2"}, want: "default: r1 99%, r2 1%", awaiting: true},
			{at: 300 * time.Second, ready: true, want: "default: r1 99%, r2 1%", next: 301 * time.Second},
			{at: 301 * time.Second, want: "default: r2 100%"},
		})
	})
	t.Run("a 1% target skips the rollout", func(t *testing.T) {
		runRollout(t, two, hello(1), nil, []rolloutStep{
			{at: 0, latest: LatestReadyMap{"hello": "r1"}, want: "default: r1 1%, pinned 99%"},
			{at: time.Second, latest: LatestReadyMap{"hello": "r2"}, want: "default: r2 1%, pinned 99%"},
		})
	})
	t.Run("no duration: a new revision takes over at once", func(t *testing.T) {
		runRollout(t, RolloutConfig{}, hello(100), nil, []rolloutStep{
			{at: 0, latest: LatestReadyMap{"hello": "r1"}, want: "default: r1 100%"},
			{at: time.Second, latest: LatestReadyMap{"hello": "r2"}, want: "default: r2 100%"},
		})
	})
	t.Run("a tag's split rolls out too", func(t *testing.T) {
		spec := []Target{{ConfigurationName: "hello", Percent: 100, Tag: "latest"}}
		runRollout(t, two, spec, nil, []rolloutStep{
			{at: 0, latest: LatestReadyMap{"hello": "r1"}, want: "default: r1 100%; tag latest: r1 100%"},
			{at: time.Second, latest: LatestReadyMap{"hello": "r2"}, want: "default: r1 99%, r2 1%; tag latest: r1 99%, r2 1%", awaiting: true},
			{at: 1500 * time.Millisecond, ready: true, want: "default: r1 99%, r2 1%; tag latest: r1 99%, r2 1%", next: 1500*time.Millisecond + 1202020202},
		})
	})
	t.Run("two configurations roll out independently", func(t *testing.T) {
		spec := []Target{{ConfigurationName: "a", Percent: 50}, {ConfigurationName: "b", Percent: 50}}
		runRollout(t, two, spec, nil, []rolloutStep{
			{at: 0, latest: LatestReadyMap{"a": "a1", "b": "b1"}, want: "default: a1 50%, b1 50%"},
			{at: time.Second, latest: LatestReadyMap{"a": "a2"}, want: "default: a1 49%, a2 1%, b1 50%", awaiting: true},
			// ready after 2.4 s: 49 percent left over 39 steps of 3 s: step 1.
			{at: 3400 * time.Millisecond, ready: true, want: "default: a1 49%, a2 1%, b1 50%", next: 6400 * time.Millisecond},
			{at: 4 * time.Second, latest: LatestReadyMap{"b": "b2"}, want: "default: a1 49%, a2 1%, b1 49%, b2 1%", next: 6400 * time.Millisecond, awaiting: true},
			// b's first 1% was live after 1 s: 49 steps of 119 s / 49.
			{at: 5 * time.Second, ready: true, want: "default: a1 49%, a2 1%, b1 49%, b2 1%", next: 6400 * time.Millisecond},
			{at: 6400 * time.Millisecond, want: "default: a1 48%, a2 2%, b1 49%, b2 1%", next: 5*time.Second + 2428571428},
			{at: 5*time.Second + 2428571428, want: "default: a1 48%, a2 2%, b1 48%, b2 2%", next: 9400 * time.Millisecond},
		})
	})
	t.Run("a configuration new to the route gets its share at once", func(t *testing.T) {
		runRollout(t, two, hello(100), nil, []rolloutStep{
			{at: 0, latest: LatestReadyMap{"hello": "r1", "other": "o1"}, want: "default: r1 100%"},
			{at: time.Second, spec: []Target{{ConfigurationName: "hello", Percent: 50}, {ConfigurationName: "other", Percent: 50}}, want: "default: r1 50%, o1 50%"},
		})
	})
}

func TestPlanMisusePanics(t *testing.T) {
	assert.PanicsWithValue(t, "traffic: RolloutConfig.Plan called with a nil want table", func() { RolloutConfig{}.Plan(nil, nil, t0) })
	assert.Panics(t, func() { RolloutConfig{Budget: &Budget{}}.Plan(nil, &Table{}, t0) })
}

func TestPlanDiscardsInvalidState(t *testing.T) {
	bad := &Rollout{Configurations: []ConfigRollout{{ConfigurationName: "hello", Percent: 100, Revisions: revs(50, 60)}}}
	want, err := Resolve(Spec{Traffic: hello(100)}, LatestReadyMap{"hello": "r9"})
	require.NoError(t, err)
	p := RolloutConfig{Duration: time.Minute}.Plan(bad, want, t0)
	assert.Equal(t, "default: r9 100%", p.Table.String())
}

func TestRolloutJSONIsKnatives(t *testing.T) {
	r := &Rollout{Configurations: []ConfigRollout{{
		ConfigurationName: "hello", Tag: "t", Percent: 100, Revisions: revs(99, 1),
		StepParams: StepParams{StartTime: time.Unix(0, 1000), NextStepTime: time.Unix(0, 5000), StepDuration: 3 * time.Second, StepSize: 3},
	}, {ConfigurationName: "other", Percent: 50, Revisions: revs(50)}}}
	data, err := json.Marshal(r)
	require.NoError(t, err)
	assert.JSONEq(t, `{"configurations":[
		{"configurationName":"hello","tag":"t","percent":100,
		 "revisions":[{"revisionName":"r1","percent":99},{"revisionName":"r2","percent":1}],
		 "stepParams":{"starttime":1000,"nextStepTime":5000,"stepDuration":3000000000,"stepSize":3}},
		{"configurationName":"other","percent":50,"revisions":[{"revisionName":"r1","percent":50}],"stepParams":{}}]}`, string(data))
	back, err := ParseRollout(data)
	require.NoError(t, err)
	assert.Equal(t, r.Configurations[0].StepParams.StartTime.UnixNano(), back.Configurations[0].StepParams.StartTime.UnixNano())
	assert.Equal(t, r.Configurations[1], back.Configurations[1])
}

func TestRolloutValidate(t *testing.T) {
	r := &Rollout{Configurations: []ConfigRollout{
		{ConfigurationName: "a", Percent: 101, Revisions: revs(101)},
		{ConfigurationName: "b", Percent: 50, Revisions: revs(30, 10), StepParams: StepParams{StepSize: 51, StepDuration: -1}},
		{ConfigurationName: "b", Percent: 10, Revisions: []RevisionRollout{{"", 20}, {"x", -10}}, StepParams: StepParams{StepSize: -1}},
	}}
	assert.Equal(t, []string{
		`traffic: configurations[0].percent = 101: expected 0 <= 101 <= 100`,
		`traffic: configurations[0].revisions[0].percent = 101: expected 0 <= 101 <= 100`,
		`traffic: configurations[1].stepParams.stepSize = 51: expected 0 <= 51 <= percent 50`,
		`traffic: configurations[1].stepParams.stepDuration = -1ns: must not be negative`,
		`traffic: configurations[1].revisions = 40: revision percents sum to 40, want the configuration's 50`,
		`traffic: configurations[2] = "b": tag "" and configuration listed twice, first at configurations[1]`,
		`traffic: configurations[2].stepParams.stepSize = -1: expected 0 <= -1 <= percent 10`,
		`traffic: configurations[2].revisions[0].revisionName = "": ` + keyRule,
		`traffic: configurations[2].revisions[1].percent = -10: expected 0 <= -10 <= 100`,
	}, fieldErrors(t, r.Validate()))
	_, err := ParseRollout([]byte(`{"configurations":[{"configurationName":"a","percent":10}]}`))
	assert.ErrorIs(t, err, ErrInvalidRollout)
	_, err = ParseRollout([]byte(`{"configurations":[{"name":"a"}]}`))
	assert.ErrorContains(t, err, "traffic: decoding rollout: ")
}

func TestParseRolloutDuration(t *testing.T) {
	d, err := ParseRolloutDuration("2m")
	require.NoError(t, err)
	assert.Equal(t, 2*time.Minute, d)
	for in, want := range map[string]string{
		"1.5s": "traffic: rollout-duration=1.5s is not at second precision",
		"-3s":  "traffic: rollout-duration=-3s must be positive",
		"x":    `traffic: rollout-duration=x: invalid value: time: invalid duration "x"`,
	} {
		_, err := ParseRolloutDuration(in)
		assert.EqualError(t, err, want)
	}
}

func TestRolloutConfigValidate(t *testing.T) {
	assert.NoError(t, RolloutConfig{}.Validate())
	err := RolloutConfig{Duration: 1500 * time.Millisecond, Budget: &Budget{MaxExtra: -1}}.Validate()
	assert.EqualError(t, err, "traffic: RolloutConfig.Duration = 1.5s, must be whole seconds >= 0\n"+
		"traffic: RolloutConfig.Budget.MaxExtra = -1, must be >= 0\n"+
		"traffic: RolloutConfig.Budget.Capacity = nil, must be set")
}

// FuzzParseRollout: no state, however odd, makes loading, observing or
// planning panic, and a plan from a loaded state is consistent.
func FuzzParseRollout(f *testing.F) {
	f.Add([]byte(`{"configurations":[{"configurationName":"hello","percent":100,"revisions":[{"revisionName":"r1","percent":99},{"revisionName":"r2","percent":1}],"stepParams":{"starttime":1}}]}`), 50, 100)
	f.Add([]byte(`{"configurations":[{"configurationName":"hello","percent":90,"revisions":[{"revisionName":"r1","percent":22},{"revisionName":"r2","percent":5},{"revisionName":"r3","percent":3},{"revisionName":"r4","percent":60}],"stepParams":{"starttime":1,"stepDuration":1,"stepSize":10,"nextStepTime":1}}]}`), 90, 4)
	f.Fuzz(func(t *testing.T, data []byte, pct int, latest int) {
		r, err := ParseRollout(data)
		if err != nil {
			return
		}
		r.ObserveReady(t0, 2*time.Minute)
		if pct < 0 || pct > 100 {
			pct = 50
		}
		want, err := Resolve(Spec{Traffic: hello(pct)}, LatestReadyMap{"hello": fmt.Sprintf("r%d", latest)})
		if err != nil {
			t.Fatal(err)
		}
		p := RolloutConfig{Duration: 2 * time.Minute}.Plan(r, want, t0.Add(time.Hour))
		if err := p.State.Validate(); err != nil {
			t.Fatalf("state %s: %v", data, err)
		}
		if err := p.Table.Validate(); err != nil {
			t.Fatalf("table from %s: %v", data, err)
		}
	})
}
