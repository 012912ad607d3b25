// Package policytest shows how to unit-test a scaling policy with a fake
// clock: the autoscalertest.Harness runs a real autoscaler.Runner on
// clock.NewMock(), so minutes of simulated load take milliseconds and the
// assertions are exact.
//
//	go test ./examples/policytest -v
package policytest

import (
	"testing"
	"time"

	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/autoscaler/autoscalertest"
	"github.com/servingkit/servingkit/stats"
)

const rev = "default/checkout-00001"

// policy is the scaling policy under test: the annotations a team puts on
// its revision, on top of the cluster's config-autoscaler.
func policy(t *testing.T) autoscaler.Spec {
	t.Helper()
	cfg, err := autoscaler.ParseConfig(map[string]string{"stable-window": "60s"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := cfg.RevisionSpec(map[string]string{
		// 10 requests in flight per replica. Knative scales the target by
		// the utilization (70% by default: 7 per replica); 100 uses it as is.
		"autoscaling.knative.dev/target":                        "10",
		"autoscaling.knative.dev/target-utilization-percentage": "100",
		"autoscaling.knative.dev/min-scale":                     "1", // never below one,
		"autoscaling.knative.dev/max-scale":                     "8", // never above eight.
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// Steady load of 50 concurrent requests with a target of 10 per replica:
// after a stable window the revision runs 5 replicas.
func TestSteadyLoadSettlesOnFive(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, policy(t))
	h.SetLoad(rev, stats.Stat{Concurrency: 50})
	h.Advance(60 * time.Second)
	if got := h.Scale(rev); got != 5 {
		t.Fatalf("after 60 s at concurrency 50: scale %d, want 5", got)
	}
}

// A surge far beyond capacity trips panic mode, and max-scale caps it.
func TestSurgeIsCappedByMaxScale(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, policy(t))
	h.SetLoad(rev, stats.Stat{Concurrency: 10})
	h.Advance(60 * time.Second)
	h.SetLoad(rev, stats.Stat{Concurrency: 400})
	h.Advance(4 * time.Second)
	d := h.Decision(rev)
	if !d.Panicking {
		t.Fatalf("a 40× surge should panic: %v", d)
	}
	if got := h.Scale(rev); got != 8 {
		t.Fatalf("scale %d during the surge, want the max-scale 8", got)
	}
}

// When the load goes away the revision keeps min-scale: it never scales to
// zero.
func TestIdleKeepsMinScale(t *testing.T) {
	h := autoscalertest.NewHarness(t)
	h.Add(rev, policy(t))
	h.SetLoad(rev, stats.Stat{Concurrency: 30})
	h.Advance(60 * time.Second)
	// Idle replicas still report, with zero load. (A zero Stat would stop
	// the reports: no data, and Knative's autoscaler then does not decide.)
	h.SetLoad(rev, stats.Stat{Source: "replica"})
	h.Advance(5 * time.Minute)
	if got := h.Scale(rev); got != 1 {
		t.Fatalf("idle for 5 minutes: scale %d, want min-scale 1", got)
	}
}
