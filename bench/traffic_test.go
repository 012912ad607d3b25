package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/zap"
	"knative.dev/pkg/logging"
	"knative.dev/pkg/ptr"
	v1 "knative.dev/serving/pkg/apis/serving/v1"
	kntraffic "knative.dev/serving/pkg/reconciler/route/traffic"

	"github.com/servingkit/servingkit/traffic"
)

// knTargets turns a resolved servingkit table into Knative's consolidated
// traffic configuration, the input of BuildRollout.
func knTargets(t *traffic.Table) *kntraffic.Config {
	conv := func(shares []traffic.Share) kntraffic.RevisionTargets {
		var out kntraffic.RevisionTargets
		for _, s := range shares {
			out = append(out, kntraffic.RevisionTarget{TrafficTarget: v1.TrafficTarget{
				RevisionName: s.Revision, ConfigurationName: s.Configuration,
				Percent: ptr.Int64(int64(s.Percent)), LatestRevision: ptr.Bool(s.Latest),
			}})
		}
		return out
	}
	cfg := &kntraffic.Config{Targets: map[string]kntraffic.RevisionTargets{"": conv(t.Default)}}
	for tag, shares := range t.Tags {
		cfg.Targets[tag] = conv(shares)
	}
	return cfg
}

// sameState compares a servingkit rollout state with Knative's. Knative
// computes the first NextStepTime in float64 (256 ns resolution at today's
// Unix times); servingkit adds the step duration exactly.
func sameState(ours *traffic.Rollout, kn *kntraffic.Rollout) error {
	if len(ours.Configurations) != len(kn.Configurations) {
		return fmt.Errorf("%d configurations, Knative %d", len(ours.Configurations), len(kn.Configurations))
	}
	for i, o := range ours.Configurations {
		k := kn.Configurations[i]
		if o.ConfigurationName != k.ConfigurationName || o.Tag != k.Tag || o.Percent != k.Percent || len(o.Revisions) != len(k.Revisions) {
			return fmt.Errorf("configuration %d: %+v, Knative %+v", i, o, *k)
		}
		for j, r := range o.Revisions {
			if r.RevisionName != k.Revisions[j].RevisionName || r.Percent != k.Revisions[j].Percent {
				return fmt.Errorf("configuration %d: revisions %v, Knative %v", i, o.Revisions, k.Revisions)
			}
		}
		p, q := o.StepParams, k.StepParams
		ns := func(t time.Time) int64 {
			if t.IsZero() {
				return 0
			}
			return t.UnixNano()
		}
		d := ns(p.NextStepTime) - q.NextStepTime
		if ns(p.StartTime) != q.StartTime || int64(p.StepDuration) != q.StepDuration || p.StepSize != q.StepSize || d < -256 || d > 256 {
			return fmt.Errorf("configuration %d: step params %+v, Knative %+v", i, p, q)
		}
	}
	return nil
}

// TestRolloutMatchesKnative drives random rollouts — new revisions, percent
// changes, readiness, time passing — through servingkit's Plan and
// Knative's BuildRollout/ObserveReady/Step side by side, and requires the
// same state after every event. Knative v0.42.2 panics (index out of range in
// stepConfig) when a lower percent drops the oldest revision of a rollout
// under way; those events are counted, and Knative carries on from
// servingkit's state. It fails if it compared too few events.
func TestRolloutMatchesKnative(t *testing.T) {
	ctx := logging.WithLogger(context.Background(), zap.NewNop().Sugar())
	rng := rand.New(rand.NewPCG(3, 5))
	cfg := traffic.RolloutConfig{Duration: 120 * time.Second}
	events, knPanics, dropped, stepping, panicDropped := 0, 0, 0, 0, 0
	for scenario := range 400 {
		now := time.Unix(0, 1772366400000000000+rng.Int64N(1e12))
		revision := map[string]int{"a": 1, "b": 1}
		pa, pb := 100, 0
		tagged := rng.IntN(2) == 0
		var ours *traffic.Rollout
		var kn *kntraffic.Rollout
		for step := range 40 {
			ready := false
			switch e := rng.IntN(10); {
			case e < 3:
				c := []string{"a", "b"}[rng.IntN(2)]
				revision[c]++
			case e < 5:
				pa = rng.IntN(101)
				pb = rng.IntN(101 - pa)
			case e < 7:
				ready = true
			}
			now = now.Add(time.Duration(rng.Int64N(int64(4 * time.Second))))
			spec := []traffic.Target{{ConfigurationName: "a", Percent: pa}, {ConfigurationName: "b", Percent: pb}, {RevisionName: "pinned", Percent: 100 - pa - pb}}
			if tagged {
				spec[0].Tag = "x"
			}
			want, err := traffic.Resolve(traffic.Spec{Traffic: spec}, traffic.LatestReadyMap{
				"a": fmt.Sprintf("a-%05d", revision["a"]), "b": fmt.Sprintf("b-%05d", revision["b"])})
			if err != nil {
				t.Fatal(err)
			}
			if ready && ours != nil {
				ours.ObserveReady(now, cfg.Duration)
				kn.ObserveReady(ctx, now.UnixNano(), cfg.Duration.Seconds())
			}
			p := cfg.Plan(ours, want, now)
			var knNext int64
			panicked := func() (panicked bool) {
				defer func() { panicked = recover() != nil }()
				kn, knNext = knTargets(want).BuildRollout().Step(ctx, kn, now.UnixNano())
				return false
			}()
			if panicked {
				// Knative has no answer to compare with. The scenario
				// carries on from our state, so the rest is still
				// compared; if ours does not survive the annotation, both
				// start afresh (counted).
				knPanics++
				ours = annotate(t, p.State)
				if p.State != nil && ours == nil {
					panicDropped++
				}
				kn = toKnative(ours)
				continue
			}
			events++
			// Both go through the annotation between reconciles: JSON, and
			// a state that fails validation is dropped.
			ours, kn = annotate(t, p.State), knAnnotate(t, kn)
			if (ours == nil) != (kn == nil) {
				t.Fatalf("scenario %d step %d: one state dropped: ours %v, Knative %v", scenario, step, ours, kn)
			}
			if ours == nil {
				dropped++
				continue
			}
			if !ours.Done() && p.NextStep.After(now) {
				stepping++
			}
			if err := sameState(ours, kn); err != nil {
				t.Fatalf("scenario %d step %d at %v: %v", scenario, step, now, err)
			}
			if d := unixNano(p.NextStep) - knNext; d < -256 || d > 256 {
				t.Fatalf("scenario %d step %d: next step %v, Knative %d", scenario, step, p.NextStep, knNext)
			}
			// Sometimes jump to just after the next step, so steps happen.
			if !p.NextStep.IsZero() && rng.IntN(2) == 0 {
				now = p.NextStep.Add(time.Microsecond)
			}
		}
	}
	t.Logf("%d events agree (%d with steps scheduled); %d states dropped as invalid by both; %d events where Knative panics (a lower percent that drops the oldest revision), after %d of which our state was dropped as invalid", events, stepping, dropped, knPanics, panicDropped)
	// Every event is either compared or counted as a Knative panic, and the
	// comparison covers enough: most events, with thousands of steps under
	// way, and Knative's panics stay the exception they are (about 5%).
	if total := 400 * 40; events+knPanics != total {
		t.Errorf("%d events compared + %d Knative panics, want %d in all", events, knPanics, total)
	}
	if events < 15000 || stepping < 5000 || knPanics > 1000 {
		t.Errorf("compared too little: %d events (want ≥ 15000), %d with steps scheduled (want ≥ 5000), %d Knative panics (want ≤ 1000)", events, stepping, knPanics)
	}
}

func annotate(t *testing.T, r *traffic.Rollout) *traffic.Rollout {
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := traffic.ParseRollout(data)
	if err != nil {
		return nil
	}
	return back
}

// knAnnotate is Knative's serialize and deserializeRollout.
func knAnnotate(t *testing.T, r *kntraffic.Rollout) *kntraffic.Rollout {
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	back := &kntraffic.Rollout{}
	if err := json.Unmarshal(data, back); err != nil || !back.Validate() {
		return nil
	}
	return back
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// TestObserveReadyMatchesKnative: the step size and duration for a range
// of readiness delays and percents.
func TestObserveReadyMatchesKnative(t *testing.T) {
	ctx := logging.WithLogger(context.Background(), zap.NewNop().Sugar())
	start := time.Unix(0, 1772366400000000000)
	for _, dur := range []int{1, 2, 10, 60, 120, 600, 3600} {
		for _, pct := range []int{2, 3, 13, 50, 75, 99, 100} {
			for _, delay := range []time.Duration{0, time.Millisecond, 999 * time.Millisecond, 2400 * time.Millisecond, 7 * time.Second, time.Minute, time.Hour} {
				ours := &traffic.Rollout{Configurations: []traffic.ConfigRollout{{ConfigurationName: "c", Percent: pct, StepParams: traffic.StepParams{StartTime: start}}}}
				kn := &kntraffic.Rollout{Configurations: []*kntraffic.ConfigurationRollout{{ConfigurationName: "c", Percent: pct, StepParams: kntraffic.RolloutParams{StartTime: start.UnixNano()}}}}
				now := start.Add(delay)
				ours.ObserveReady(now, time.Duration(dur)*time.Second)
				kn.ObserveReady(ctx, now.UnixNano(), float64(dur))
				if err := sameState(ours, kn); err != nil {
					t.Errorf("duration %ds, %d%%, ready after %v: %v", dur, pct, delay, err)
				}
			}
		}
	}
}

// Planning one step of a route with one configuration in a rollout:
// servingkit's Plan (steady state, step, and the table to route) against
// Knative's BuildRollout + Step.
func BenchmarkRolloutStep(b *testing.B) {
	ctx := logging.WithLogger(context.Background(), zap.NewNop().Sugar())
	want, err := traffic.Resolve(traffic.Spec{Traffic: []traffic.Target{{ConfigurationName: "hello", Percent: 90}, {RevisionName: "pinned", Percent: 10}}},
		traffic.LatestReadyMap{"hello": "hello-00003"})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Unix(0, 1772366400000000000)
	ours := &traffic.Rollout{Configurations: []traffic.ConfigRollout{{ConfigurationName: "hello", Percent: 90,
		Revisions:  []traffic.RevisionRollout{{RevisionName: "hello-00001", Percent: 40}, {RevisionName: "hello-00002", Percent: 30}, {RevisionName: "hello-00003", Percent: 20}},
		StepParams: traffic.StepParams{StartTime: t0, StepSize: 1, StepDuration: time.Second, NextStepTime: t0}}}}
	kn := &kntraffic.Rollout{Configurations: []*kntraffic.ConfigurationRollout{{ConfigurationName: "hello", Percent: 90,
		Revisions:  []kntraffic.RevisionRollout{{RevisionName: "hello-00001", Percent: 40}, {RevisionName: "hello-00002", Percent: 30}, {RevisionName: "hello-00003", Percent: 20}},
		StepParams: kntraffic.RolloutParams{StartTime: t0.UnixNano(), StepSize: 1, StepDuration: int64(time.Second), NextStepTime: t0.UnixNano()}}}}
	cfg := traffic.RolloutConfig{Duration: 120 * time.Second}
	knCfg := knTargets(want)
	b.Run("servingkit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = cfg.Plan(ours, want, t0)
		}
	})
	b.Run("knative", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			// Step modifies its prev in place; give it a fresh copy each time,
			// as the reconciler does by decoding the annotation.
			prev := &kntraffic.Rollout{Configurations: []*kntraffic.ConfigurationRollout{func() *kntraffic.ConfigurationRollout {
				c := *kn.Configurations[0]
				c.Revisions = append([]kntraffic.RevisionRollout(nil), c.Revisions...)
				return &c
			}()}}
			_, _ = knCfg.BuildRollout().Step(ctx, prev, t0.UnixNano())
		}
	})
}

func toKnative(r *traffic.Rollout) *kntraffic.Rollout {
	if r == nil {
		return nil
	}
	data, _ := json.Marshal(r)
	out := &kntraffic.Rollout{}
	_ = json.Unmarshal(data, out)
	return out
}
