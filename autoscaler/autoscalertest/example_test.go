package autoscalertest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/autoscaler/autoscalertest"
	"github.com/servingkit/servingkit/stats"
)

func ExampleFakeScaler() {
	f := autoscalertest.NewFakeScaler()
	ctx := context.Background()
	_ = f.Scale(ctx, "default/hello", 3)
	n, _ := f.ReadyCount("default/hello")
	fmt.Println("ready as soon as asked for:", n)

	f.SetReady("default/hello", 1) // two replicas still starting
	n, _ = f.ReadyCount("default/hello")
	fmt.Println("pinned:", n)

	f.SetError(errors.New("quota exceeded"))
	fmt.Println(f.Scale(ctx, "default/hello", 5))
	fmt.Println(f.Calls())
	// Output:
	// ready as soon as asked for: 3
	// pinned: 1
	// quota exceeded
	// [{default/hello 3 <nil>} {default/hello 5 quota exceeded}]
}

// tb stands in for the *testing.T a test passes to NewHarness.
type tb struct{ cleanups []func() }

func (*tb) Helper()                           {}
func (*tb) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *tb) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }

func ExampleHarness() {
	t := &tb{}
	defer func() {
		for _, f := range t.cleanups {
			f()
		}
	}()

	h := autoscalertest.NewHarness(t)                           // in a test: NewHarness(t)
	spec, _ := autoscaler.DefaultConfig().RevisionSpec(nil, 10) // target 7 per replica
	h.Add("default/hello", spec)
	h.SetLoad("default/hello", stats.Stat{Concurrency: 35})
	h.Advance(60 * time.Second)
	fmt.Println("scale:", h.Scale("default/hello"))
	fmt.Println(h.Decision("default/hello"))
	fmt.Println("calls:", h.Scaler.CallsFor("default/hello"))
	// Output:
	// scale: 5
	// default/hello: desired=5 ebc=-196 panicking=true recommended=5 ready=5 Active
	// calls: [1 5]
}

// A front door with no activator ready keeps serving from the replicas,
// and the runner keeps the last one until the activator is in the path.
func ExampleHarness_SetProxyMode() {
	t := &tb{}
	defer func() {
		for _, f := range t.cleanups {
			f()
		}
	}()

	h := autoscalertest.NewHarness(t)
	spec, _ := autoscaler.DefaultConfig().RevisionSpec(nil, 10)
	h.Add("default/hello", spec)
	h.SetProxyMode("default/hello", false)
	h.SetLoad("default/hello", stats.Stat{Source: "replica"}) // idle
	h.Advance(3 * time.Minute)
	fmt.Println("serving from the replicas:", h.Scale("default/hello"), h.Decision("default/hello").Activity)
	h.SetProxyMode("default/hello", true)
	h.Advance(2 * time.Second)
	fmt.Println("activator in the path:", h.Scale("default/hello"))
	// Output:
	// serving from the replicas: 1 Inactive
	// activator in the path: 0
}

func ExampleDeciderScenarios() {
	start := time.Unix(1_700_000_000, 0)
	failed := 0
	for _, sc := range autoscalertest.DeciderScenarios() {
		d, err := autoscaler.NewDecider(sc.Spec, start, sc.Ready)
		if err != nil {
			panic(err)
		}
		for _, st := range sc.Steps {
			if got := d.Step(start.Add(st.At), st.Ready, st.Stable, st.Panic); got != st.Want {
				failed++
			}
		}
	}
	fmt.Println("steps that differ:", failed)
	// Output: steps that differ: 0
}
