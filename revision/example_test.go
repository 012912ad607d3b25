package revision_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/servingkit/servingkit/revision"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ExampleConfiguration() {
	cfg, _ := revision.NewConfiguration[revision.Spec]("hello", revision.ConfigurationOptions{Namespace: "default"})

	v1 := revision.Spec{Image: "example.com/hello:1", ContainerConcurrency: 10}
	rev, created, _ := cfg.Apply(t0, v1)
	fmt.Println(rev.Key, rev.Generation, created)

	_, created, _ = cfg.Apply(t0.Add(time.Minute), v1) // same template: nothing new
	fmt.Println(created)

	v2 := v1
	v2.Env = map[string]string{"GREETING": "hi"}
	rev, created, _ = cfg.Apply(t0.Add(2*time.Minute), v2)
	fmt.Println(rev.Key, rev.Generation, created)

	// Rollback: hello-00001 is still there for the router to send traffic to.
	old, ok := cfg.Revision("hello-00001")
	fmt.Println(old.Template.Image, ok, len(cfg.History()))
	// Output:
	// default/hello-00001 1 true
	// false
	// default/hello-00002 2 true
	// example.com/hello:1 true 2
}

func ExampleConfiguration_Collect() {
	cfg, _ := revision.NewConfiguration[revision.Spec]("hello", revision.ConfigurationOptions{
		Retention: revision.RetentionPolicy{MinNonActive: 1, RetainSinceCreate: time.Hour, RetainSinceLastActive: time.Hour},
	})
	for i := range 4 {
		cfg.Apply(t0.Add(time.Duration(i)*time.Minute), revision.Spec{Image: fmt.Sprint("example.com/hello:", i)})
	}
	routed := func(name string) bool { return name == "hello-00002" }
	for _, r := range cfg.Collect(t0.Add(2*time.Hour), routed) {
		fmt.Println("retired", r.Name)
	}
	for _, r := range cfg.History() {
		fmt.Println("kept", r.Name)
	}
	// Output:
	// retired hello-00001
	// kept hello-00002
	// kept hello-00003
	// kept hello-00004
}

// greeter is a host's own template type: any type with Equal works.
type greeter struct {
	Handler  string
	Greeting string
}

func (g greeter) Equal(o greeter) bool { return g == o }

func ExampleTemplate() {
	cfg, _ := revision.NewConfiguration[greeter]("greeter", revision.ConfigurationOptions{})
	rev, _, _ := cfg.Apply(t0, greeter{Handler: "hello", Greeting: "hi"})
	fmt.Println(rev.Name, rev.Template.Greeting)
	// Output: greeter-00001 hi
}

func ExampleRevision() {
	cfg, _ := revision.NewConfiguration[revision.Spec]("api", revision.ConfigurationOptions{Namespace: "prod"})
	rev, _, _ := cfg.Apply(t0, revision.Spec{Name: "api-blue", Handler: "api"})
	fmt.Printf("%s %s %s %d %s\n", rev.Name, rev.Key, rev.Configuration, rev.Generation, rev.Created.Format(time.RFC3339))
	// Output: api-blue prod/api-blue api 1 2026-01-01T00:00:00Z
}

func ExampleConfigurationOptions() {
	_, err := revision.NewConfiguration[revision.Spec]("Hello", revision.ConfigurationOptions{Namespace: "team_a"})
	fmt.Println(errors.Is(err, revision.ErrInvalidName))
	fmt.Println(err)
	// Output:
	// true
	// revision: invalid name: configuration name "Hello" has 'H' at index 0, must be a DNS-1035 label: 1-57 characters of lower-case letters, digits and '-', starting with a letter and ending with a letter or digit
	// revision: invalid name: namespace "team_a" has '_' at index 4, must be a DNS-1123 label: 1-63 characters of lower-case letters, digits and '-', starting with a letter or digit and ending with a letter or digit
}

func ExampleSpec() {
	cfg, _ := revision.NewConfiguration[revision.Spec]("hello", revision.ConfigurationOptions{})
	_, _, err := cfg.Apply(t0, revision.Spec{Image: "example.com/hello:1", ContainerConcurrency: 5000, Env: map[string]string{"PORT": "80"}})
	fmt.Println(errors.Is(err, revision.ErrInvalidTemplate))
	fmt.Println(err)
	// Output:
	// true
	// revision: invalid template for configuration "hello": revision: Spec.Env name "PORT" is reserved, must not be one of [K_CONFIGURATION K_REVISION K_SERVICE PORT]
	// revision: Spec.ContainerConcurrency = 5000, must be in [0, 1000] (0 means unlimited)
}

func ExampleRetentionPolicy() {
	p := revision.RetentionPolicy{MinNonActive: 50, MaxNonActive: 10}
	fmt.Println(p.Validate())
	fmt.Println(revision.RetentionPolicy{MaxNonActive: revision.Disabled}.Validate())
	// Output:
	// revision: RetentionPolicy.MinNonActive = 50 must be <= RetentionPolicy.MaxNonActive = 10 (zero fields count as their defaults)
	// <nil>
}

func ExampleValidateName() {
	fmt.Println(revision.ValidateName("hello-00001"))
	fmt.Println(revision.ValidateName("hello-"))
	// Output:
	// <nil>
	// revision: invalid name: name "hello-" has '-' at index 5, must be a DNS-1035 label: 1-63 characters of lower-case letters, digits and '-', starting with a letter and ending with a letter or digit
}

func ExampleGeneratedName() {
	fmt.Println(revision.GeneratedName("hello", 7))
	// Output: hello-00007
}

func ExampleLifecycle() {
	l, _ := revision.NewLifecycle(t0, revision.Config{})
	show := func(d time.Duration, o revision.Observation) {
		st, _ := l.Observe(t0.Add(d), o)
		fmt.Printf("%3.0fs %v | %v\n", d.Seconds(), st.Ready, st.Active)
	}
	show(0, revision.Observation{Desired: 1})
	show(2*time.Second, revision.Observation{Desired: 1, Ready: 1})
	show(90*time.Second, revision.Observation{Desired: 0, Ready: 1})
	show(95*time.Second, revision.Observation{Desired: 0, Ready: 0})
	// Output:
	//   0s Ready=Unknown (Deploying) | Active=Unknown (Queued: Requests to the target are being buffered as resources are provisioned.)
	//   2s Ready=True | Active=True
	//  90s Ready=True | Active=False (NoTraffic: The target is not receiving traffic.)
	//  95s Ready=True | Active=False (NoTraffic: The target is not receiving traffic.)
}

func ExampleObservation() {
	l, _ := revision.NewLifecycle(t0, revision.Config{ProgressDeadline: time.Minute})
	l.Observe(t0, revision.Observation{Desired: 2, Ready: 1})
	at, _ := l.NextDeadline()
	st, _ := l.Observe(at, revision.Observation{Desired: 2, Ready: 1})
	fmt.Println(at.Sub(t0), st.ResourcesAvailable)
	// Output: 1m0s ResourcesAvailable=False (ProgressDeadlineExceeded: 1 of 2 replicas ready; none became ready within the progress deadline (1m0s).)
}

func ExampleStatus() {
	l, _ := revision.NewLifecycle(t0, revision.Config{})
	l.Observe(t0.Add(time.Second), revision.Observation{Desired: 1, Ready: 1})
	st, _ := l.Observe(t0.Add(time.Minute), revision.Observation{Desired: 0, Ready: 1})
	fmt.Println(st.IsReady(), st.InactiveFor(t0.Add(90*time.Second)), st.ActiveFor(t0.Add(90*time.Second)))
	fmt.Println(st)
	// Output:
	// true 30s -1ns
	// Ready=True, ResourcesAvailable=True, ContainerHealthy=True, Active=False (NoTraffic: The target is not receiving traffic.), desired 0, actual 1
}

func ExampleCondition() {
	l, _ := revision.NewLifecycle(t0, revision.Config{})
	st, _ := l.Observe(t0, revision.Observation{Desired: 1, Failures: []revision.Failure{revision.ContainerFailed(1, "panic: nil map")}})
	c, _ := st.Condition(revision.ContainerHealthy)
	fmt.Println(c.Type, c.Status, c.Reason, c.Message)
	fmt.Println(st.Ready)
	// Output:
	// ContainerHealthy False ExitCode1 Container failed with: panic: nil map
	// Ready=False (ExitCode1: Container failed with: panic: nil map)
}

func ExampleConditionType() {
	var st revision.Status
	for _, t := range []revision.ConditionType{revision.Ready, revision.ResourcesAvailable, revision.ContainerHealthy, revision.Active, "Bogus"} {
		_, ok := st.Condition(t)
		fmt.Println(t, ok)
	}
	// Output:
	// Ready true
	// ResourcesAvailable true
	// ContainerHealthy true
	// Active true
	// Bogus false
}

func ExampleConditionStatus() {
	fmt.Println(revision.True, revision.False, revision.Unknown)
	// Output: True False Unknown
}

func ExampleFailure() {
	fmt.Println(revision.ImageMissing("example.com/hello:9", "manifest unknown"))
	fmt.Println(revision.Failure{Condition: revision.Active, Reason: "X"}.Validate())
	// Output:
	// {ContainerHealthy ContainerMissing Unable to fetch image "example.com/hello:9": manifest unknown}
	// revision: invalid failure: Failure.Condition = "Active", must be "ResourcesAvailable" or "ContainerHealthy"
}

func ExampleConfig() {
	cfg := revision.Config{ProgressDeadline: 2 * time.Minute, MinScale: 1}
	fmt.Println(cfg.Validate(), cfg.ActivationTimeout())
	fmt.Println(revision.Config{InitialScale: -1}.Validate())
	// Output:
	// <nil> 2m30s
	// revision: Config.InitialScale = -1, must be >= 0 (0 means 1)
}

func ExampleMode() {
	fmt.Println(revision.Proxy, revision.Serve)
	// Output: Proxy Serve
}

func ExampleWantMode() {
	fmt.Println(revision.WantMode(3, 0), revision.WantMode(3, -1), revision.WantMode(0, 50), revision.WantMode(-1, 50))
	// Output: Serve Proxy Proxy Proxy
}

func ExampleEffectiveMode() {
	fmt.Println(revision.EffectiveMode(revision.Serve, 0, 2)) // no replica ready
	fmt.Println(revision.EffectiveMode(revision.Proxy, 3, 0)) // no activator ready
	fmt.Println(revision.EffectiveMode(revision.Proxy, 0, 0)) // neither: Serve wins, as in Knative
	// Output:
	// Proxy
	// Serve
	// Serve
}

func ExampleActivatorSizing() {
	s := revision.ActivatorSizing{TotalValue: 100, TargetBurstCapacity: 200, ActivatorCapacity: 100}
	fmt.Println(s.NumActivators(0), s.NumActivators(1), s.NumActivators(15))
	// Output: 2 3 17
}

func ExampleChooseSubset() {
	activators := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}
	a := revision.ChooseSubset(activators, 2, "default/hello-00001")
	b := revision.ChooseSubset(activators[1:], 2, "default/hello-00001")
	fmt.Println(len(a), len(b), revision.ChooseSubset(activators, 0, "x")[4])
	// Output: 2 2 10.0.0.5
}

func ExampleSwitch() {
	sw, _ := revision.NewSwitch("default/hello-00001", t0, revision.ActivatorSizing{})
	acts := []string{"act-1", "act-2"}
	sw.Update(t0, revision.SwitchInput{Desired: 1, ExcessBurstCapacity: -10, Activators: acts})
	fmt.Println(sw.Mode(), sw.Endpoints().Addresses, sw.ProxyFor(t0.Add(30*time.Second)))

	sw.Update(t0.Add(40*time.Second), revision.SwitchInput{Desired: 2, ExcessBurstCapacity: 5, Replicas: []string{"10.1.0.2", "10.1.0.1"}, Activators: acts})
	fmt.Println(sw.Mode(), sw.Endpoints().Addresses, sw.ProxyFor(t0.Add(50*time.Second)))
	// Output:
	// Proxy [act-1 act-2] 30s
	// Serve [10.1.0.1 10.1.0.2] 0s
}

func ExampleSwitchInput() {
	sw, _ := revision.NewSwitch("ns/rev", t0, revision.ActivatorSizing{})
	// Serve is wanted, but no replica is ready yet: forced Proxy.
	changed := sw.Update(t0, revision.SwitchInput{Desired: 1, Activators: []string{"a"}})
	fmt.Println(changed, sw.Want(), sw.Mode(), sw.NumActivators())
	// Output: true Serve Proxy 2
}

func ExampleEndpoints() {
	a := revision.Endpoints{Mode: revision.Serve, Addresses: []string{"p1"}}
	fmt.Println(a.Equal(revision.Endpoints{Mode: revision.Serve, Addresses: []string{"p1"}}), a.Equal(revision.Endpoints{Mode: revision.Proxy}))
	// Output: true false
}

func ExampleFrontDoor() {
	activator := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "activator for ", r.Header.Get(revision.RevisionHeader))
	})
	replicas := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "replica") })
	fd, _ := revision.NewFrontDoor("default/hello-00001", activator, replicas)

	get := func() string {
		rec := httptest.NewRecorder()
		fd.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		b, _ := io.ReadAll(rec.Body)
		return string(b)
	}
	fmt.Println(fd.Mode(), get())
	fd.SetMode(revision.Serve)
	fmt.Println(fd.Mode(), get())
	// Output:
	// Proxy activator for default/hello-00001
	// Serve replica
}

func ExampleReconciler() {
	activator := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "held by the activator") })
	replicas := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "served") })
	rec, _ := revision.NewReconciler("default/hello-00001", t0, revision.Config{},
		revision.ReconcilerOptions{Activator: activator, Serve: replicas})
	rec.OnStatus(func(key string, from, to revision.Status) {
		if from.Active.Status != to.Active.Status {
			fmt.Println(key, "Active:", to.Active)
		}
	})
	rec.OnEndpoints(func(key string, e revision.Endpoints) { fmt.Println(key, e.Mode, e.Addresses) })

	rec.SetActivators(t0, []string{"in-process"})
	rec.Decide(t0.Add(time.Second), revision.Decision{Desired: 1, ExcessBurstCapacity: 0})
	rec.SetReplicas(t0.Add(3*time.Second), []string{"10.1.0.7:8080"})

	w := httptest.NewRecorder()
	rec.FrontDoor().ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	fmt.Println(w.Body.String())
	// Output:
	// default/hello-00001 Proxy []
	// default/hello-00001 Proxy [in-process]
	// default/hello-00001 Active: Active=True
	// default/hello-00001 Serve [10.1.0.7:8080]
	// served
}

func ExampleReconcilerOptions() {
	_, err := revision.NewReconciler("ns/rev", t0, revision.Config{}, revision.ReconcilerOptions{Serve: http.NotFoundHandler()})
	fmt.Println(err)
	// Output: revision: ReconcilerOptions: Activator and Serve must be both set (for a front door) or both nil
}

func ExampleDecision() {
	rec, _ := revision.NewReconciler("ns/rev", t0, revision.Config{}, revision.ReconcilerOptions{})
	rec.SetActivators(t0, []string{"a"})
	rec.SetReplicas(t0, []string{"p1", "p2"})
	st := rec.Decide(t0.Add(time.Second), revision.Decision{Desired: 2, ExcessBurstCapacity: -20, Panicking: true})
	fmt.Println(st.Want, st.Endpoints.Mode, st.Decision.Panicking)
	st = rec.Decide(t0.Add(2*time.Second), revision.Decision{Desired: 2, ExcessBurstCapacity: 80})
	fmt.Println(st.Want, st.Endpoints.Mode, st.Decision.Panicking)
	// Output:
	// Proxy Proxy true
	// Serve Serve false
}

func ExampleState() {
	rec, _ := revision.NewReconciler("ns/rev", t0, revision.Config{}, revision.ReconcilerOptions{})
	rec.SetActivators(t0, []string{"a1", "a2", "a3"})
	st := rec.State()
	fmt.Println(st.Endpoints.Mode, st.NumActivators, len(st.Endpoints.Addresses), st.ProxySince.Equal(t0), st.Status.Ready.Reason)
	// Output: Proxy 2 2 true Deploying
}

func ExampleStatusObserver() {
	rec, _ := revision.NewReconciler("ns/rev", t0, revision.Config{}, revision.ReconcilerOptions{})
	var logReady revision.StatusObserver = func(key string, from, to revision.Status) {
		if from.Ready.Status != to.Ready.Status {
			fmt.Printf("%s Ready %v -> %v\n", key, from.Ready.Status, to.Ready.Status)
		}
	}
	rec.OnStatus(logReady)
	rec.Decide(t0, revision.Decision{Desired: 1})
	rec.SetReplicas(t0.Add(time.Second), []string{"p1"})
	// Output: ns/rev Ready Unknown -> True
}

func ExampleEndpointsSubscriber() {
	rec, _ := revision.NewReconciler("ns/rev", t0, revision.Config{}, revision.ReconcilerOptions{})
	var program revision.EndpointsSubscriber = func(key string, e revision.Endpoints) {
		fmt.Println("program", key, "->", e.Mode, e.Addresses)
	}
	rec.SetActivators(t0, []string{"10.0.0.9"})
	rec.OnEndpoints(program) // the current endpoints first
	rec.SetActivators(t0.Add(time.Second), nil)
	// Output:
	// program ns/rev -> Proxy [10.0.0.9]
	// program ns/rev -> Serve []
}
