package autoscaler_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/autoscaler/autoscalertest"
	"github.com/servingkit/servingkit/stats"
)

func ExampleWindow() {
	t0 := time.Unix(1_700_000_000, 0)
	linear := autoscaler.NewWindow(autoscaler.Linear, 60*time.Second)
	weighted := autoscaler.NewWindow(autoscaler.WeightedExponential, 60*time.Second)
	for i := range 10 {
		now := t0.Add(time.Duration(i) * time.Second)
		linear.Record(now, float64(i))
		weighted.Record(now, float64(i))
	}
	now := t0.Add(9 * time.Second)
	// The linear window averages over the 10 seconds it has data for. The
	// weighted one favours the latest seconds and, as Knative's, is not
	// normalized: with 10 of 60 seconds filled it reads low.
	fmt.Printf("linear %.2f, weighted %.2f\n", linear.Average(now), weighted.Average(now))
	fmt.Println("empty a minute later:", linear.IsEmpty(now.Add(61*time.Second)))
	// Output:
	// linear 4.50, weighted 5.54
	// empty a minute later: true
}

func ExampleDecider() {
	t0 := time.Unix(1_700_000_000, 0)
	spec := autoscaler.DeciderSpec{
		TargetValue:      10, // concurrent requests per replica
		TotalValue:       20,
		PanicThreshold:   2,
		MaxScaleUpRate:   1000,
		MaxScaleDownRate: 2,
		StableWindow:     60 * time.Second,
	}
	d, err := autoscaler.NewDecider(spec, t0, 1)
	if err != nil {
		panic(err)
	}
	steps := []struct {
		at            time.Duration
		ready         int
		stable, panic float64
	}{
		{2 * time.Second, 1, 8, 8},   // within target
		{4 * time.Second, 1, 12, 45}, // a surge: 5 replicas wanted for 1
		{6 * time.Second, 5, 20, 30}, // under the threshold, still panicking
		{70 * time.Second, 5, 20, 20},
	}
	for _, s := range steps {
		r := d.Step(t0.Add(s.at), s.ready, s.stable, s.panic)
		fmt.Printf("+%v: desired %d, panicking %t\n", s.at, r.Desired, r.Panicking)
	}
	// Output:
	// +2s: desired 1, panicking false
	// +4s: desired 5, panicking true
	// +6s: desired 5, panicking true
	// +1m10s: desired 2, panicking false
}

func ExampleParseConfig() {
	cfg, err := autoscaler.ParseConfig(map[string]string{
		"stable-window":     "90s",
		"max-scale-up-rate": "5",
	})
	fmt.Println(cfg.StableWindow, cfg.MaxScaleUpRate, err)

	_, err = autoscaler.ParseConfig(map[string]string{
		"stable-window":         "5s",
		"target-burst-capacity": "-2",
	})
	fmt.Println(err)
	// Output:
	// 1m30s 5 <nil>
	// autoscaler: target-burst-capacity = "-2": want a number ≥ 0, or -1 (activator always in path)
	// autoscaler: stable-window = "5s": want a duration in [6s, 1h0m0s] in whole seconds
}

func ExampleConfig_RevisionSpec() {
	spec, err := autoscaler.DefaultConfig().RevisionSpec(map[string]string{
		"autoscaling.knative.dev/target":    "50",
		"autoscaling.knative.dev/minScale":  "1", // legacy alias
		"autoscaling.knative.dev/max-scale": "10",
		"autoscaling.knative.dev/window":    "2m",
	}, 20)
	if err != nil {
		panic(err)
	}
	fmt.Printf("target %v of %v, windows %v/%v, scale %d..%d\n",
		spec.TargetValue, spec.TotalValue, spec.StableWindow, spec.PanicWindow, spec.MinScale, spec.MaxScale)
	// Output:
	// target 14 of 20, windows 2m0s/12s, scale 1..10
}

func ExampleFieldError() {
	_, err := autoscaler.DefaultConfig().RevisionSpec(map[string]string{
		"autoscaling.knative.dev/window":                "5s",
		"autoscaling.knative.dev/panicWindowPercentage": "0.5",
	}, 0)
	var fe *autoscaler.FieldError
	if errors.As(err, &fe) {
		fmt.Printf("first problem: %s = %q, want %s\n", fe.Field, fe.Value, fe.Want)
	}
	fmt.Println(err)
	// Output:
	// first problem: autoscaling.knative.dev/panicWindowPercentage = "0.5", want a percentage in [1, 100]
	// autoscaler: autoscaling.knative.dev/panicWindowPercentage = "0.5": want a percentage in [1, 100]
	// autoscaler: autoscaling.knative.dev/window = "5s": want a duration in [6s, 1h0m0s] in whole seconds
}

func ExampleSpec_Validate() {
	spec, _ := autoscaler.DefaultConfig().RevisionSpec(nil, 0)
	spec.PanicWindow = 2 * spec.StableWindow
	spec.MaxScale = -1
	fmt.Println(spec.Validate())
	// Output:
	// autoscaler: PanicWindow = "2m0s": want a duration in [1s, 1m0s] (the stable window)
	// autoscaler: MaxScale = "-1": want an integer in [0, 2147483647] (0 = unbounded)
}

func ExampleCollector() {
	t0 := time.Unix(1_700_000_000, 0)
	var c autoscaler.Collector
	_ = c.Set("default/hello", autoscaler.CollectorSpec{StableWindow: 60 * time.Second, PanicWindow: 6 * time.Second}, t0)
	// A replica reports 12 in flight, 2 of them through the activator, and
	// the activator reports those 2 itself: they are counted once.
	_ = c.Record("default/hello", t0, stats.Stat{Source: "replica", Concurrency: 12, ProxiedConcurrency: 2})
	_ = c.Record("default/hello", t0, stats.Stat{Source: "activator", Concurrency: 2})
	stable, panicLoad, err := c.StableAndPanicConcurrency("default/hello", t0)
	fmt.Println(stable, panicLoad, err)
	_, _, err = c.StableAndPanicConcurrency("default/other", t0)
	fmt.Println(errors.Is(err, autoscaler.ErrNotCollecting))
	// Output:
	// 12 12 <nil>
	// true
}

func ExampleHTTPScraper() {
	// Three replicas, each serving its stats batch like a queue does.
	var urls []string
	for _, load := range []float64{3, 4, 5} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			stats.WriteBatch(w, r, []stats.Message{{Revision: "default/hello", Stat: stats.Stat{Concurrency: load}}})
		}))
		defer srv.Close()
		urls = append(urls, srv.URL+"/stats")
	}
	scraper := &autoscaler.HTTPScraper{
		Lister: autoscaler.ReplicaListerFunc(func(revision string) ([]autoscaler.Replica, error) {
			var rs []autoscaler.Replica
			for _, u := range urls {
				rs = append(rs, autoscaler.Replica{StatsURL: u, Started: time.Now().Add(-time.Hour)})
			}
			return rs, nil
		}),
	}
	s, err := scraper.Scrape(context.Background(), "default/hello", time.Minute)
	fmt.Println(s.Source, s.Concurrency, err) // 3 replicas: all sampled
	// Output:
	// scraper 12 <nil>
}

// processPool is a toy scaler backend: the replicas of each revision are
// processes it starts and stops.
type processPool struct {
	mu    sync.Mutex
	procs map[string]int
}

func (p *processPool) resize(_ context.Context, revision string, n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n < 0 {
		return fmt.Errorf("pool: cannot run %d processes", n)
	}
	p.procs[revision] = n // a real pool would start or stop processes here
	return nil
}

func (p *processPool) ready(revision string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.procs[revision], nil
}

// Writing a scaler adapter: two functions are enough.
func ExampleScalerFunc() {
	pool := &processPool{procs: map[string]int{}}
	mock := clock.NewMock()
	r, err := autoscaler.NewRunner(autoscaler.Options{
		Scaler: autoscaler.ScalerFunc(pool.resize),
		Ready:  autoscaler.ReadyCounterFunc(pool.ready),
		Clock:  mock,
	})
	if err != nil {
		panic(err)
	}
	decided := make(chan autoscaler.Decision, 10)
	r.Subscribe(func(d autoscaler.Decision) { decided <- d })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Run(ctx) }()

	spec, _ := autoscaler.DefaultConfig().RevisionSpec(nil, 10) // 7 requests per process
	_ = r.Add("default/hello", spec)
	_ = r.Flush(ctx) // the initial scale
	n, _ := pool.ready("default/hello")
	fmt.Println("after Add:", n)

	_ = r.Record("default/hello", stats.Stat{Concurrency: 21})
	mock.Add(2 * time.Second) // one tick
	fmt.Println(<-decided)
	_ = r.Flush(ctx)
	n, _ = pool.ready("default/hello")
	fmt.Println("after the tick:", n)
	// Output:
	// after Add: 1
	// default/hello: desired=3 ebc=-222 panicking=true recommended=3 ready=1 Active
	// after the tick: 3
}

// frontDoor switches a revision's requests between the activator and the
// replicas, and remembers when it last turned to the activator.
type frontDoor struct {
	mu         sync.Mutex
	proxySince map[string]time.Time // zero: serving from the replicas
}

func (f *frontDoor) proxyFor(revision string, now time.Time) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	since, ok := f.proxySince[revision]
	if !ok || since.IsZero() {
		return 0, ok
	}
	return now.Sub(since), true
}

// A front door that knows how long the activator has been in a revision's
// path is the runner's ProxyTimer (Options.ProxyTimer), which the
// scale-to-zero grace period waits on.
func ExampleProxyTimerFunc() {
	t0 := time.Unix(1_700_000_000, 0)
	door := &frontDoor{proxySince: map[string]time.Time{
		"default/hello": t0, // through the activator since t0
		"default/bye":   {}, // no activator ready: straight to the replicas
	}}
	var pt autoscaler.ProxyTimer = autoscaler.ProxyTimerFunc(door.proxyFor)
	for _, rev := range []string{"default/hello", "default/bye", "default/new"} {
		d, ok := pt.ProxyFor(rev, t0.Add(45*time.Second))
		fmt.Println(rev, d, ok)
	}
	// Output:
	// default/hello 45s true
	// default/bye 0s true
	// default/new 0s false
}

func ExampleDecision_ActivatorInPath() {
	for _, d := range []autoscaler.Decision{
		{Desired: 3, ExcessBurstCapacity: 40},
		{Desired: 3, ExcessBurstCapacity: -5},
		{Desired: 0, ExcessBurstCapacity: 0},
		{Desired: -1, ExcessBurstCapacity: 100},
	} {
		fmt.Println(d.Desired, d.ExcessBurstCapacity, d.ActivatorInPath())
	}
	// Output:
	// 3 40 false
	// 3 -5 true
	// 0 0 true
	// -1 100 true
}

func ExampleActivity() {
	fmt.Println(autoscaler.Activating, autoscaler.Active, autoscaler.Inactive)
	// Output: Activating Active Inactive
}

func ExampleMetric() {
	fmt.Println(autoscaler.Concurrency, autoscaler.RPS, autoscaler.Linear, autoscaler.WeightedExponential)
	// Output: concurrency rps linear weighted-exponential
}

// exampleTB stands in for the *testing.T a test passes to NewHarness.
type exampleTB struct{ cleanups []func() }

func (*exampleTB) Helper()                           {}
func (*exampleTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (tb *exampleTB) Cleanup(f func())               { tb.cleanups = append(tb.cleanups, f) }
func (tb *exampleTB) done() {
	for _, f := range tb.cleanups {
		f()
	}
}

// Unit-testing a scaling policy on a fake clock: feed load, advance the
// clock, check the scale. In a test, pass t to NewHarness.
func Example_policyTest() {
	t := &exampleTB{}
	defer t.done()

	h := autoscalertest.NewHarness(t)
	cfg := autoscaler.DefaultConfig()
	plain, _ := cfg.RevisionSpec(nil, 10) // 7 requests per replica
	delayed, _ := cfg.RevisionSpec(map[string]string{
		"autoscaling.knative.dev/scale-down-delay": "30s",
	}, 10)
	h.Add("plain", plain)
	h.Add("delayed", delayed)

	h.SetLoad("plain", stats.Stat{Concurrency: 35})
	h.SetLoad("delayed", stats.Stat{Concurrency: 35})
	h.Advance(60 * time.Second)
	fmt.Println("after a minute at 35:", h.Scale("plain"), h.Scale("delayed"))

	h.SetLoad("plain", stats.Stat{Source: "replica"}) // idle
	h.SetLoad("delayed", stats.Stat{Source: "replica"})
	h.Advance(30 * time.Second)
	fmt.Println("half a minute idle:", h.Scale("plain"), h.Scale("delayed"))
	h.Advance(60 * time.Second)
	fmt.Println("another minute:", h.Scale("plain"), h.Scale("delayed"))
	// Output:
	// after a minute at 35: 5 5
	// half a minute idle: 3 5
	// another minute: 0 1
}

func ExampleRunner() {
	mock := clock.NewMock()
	fake := autoscalertest.NewFakeScaler()
	r, err := autoscaler.NewRunner(autoscaler.Options{Scaler: fake, Ready: fake, Clock: mock})
	if err != nil {
		panic(err)
	}
	decisions := make(chan autoscaler.Decision, 16)
	r.Subscribe(func(d autoscaler.Decision) { decisions <- d })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Run(ctx) }()

	spec, _ := autoscaler.DefaultConfig().RevisionSpec(map[string]string{
		"autoscaling.knative.dev/target-burst-capacity": "0",
	}, 10)
	_ = r.Add("default/hello", spec)
	_ = r.Flush(ctx) // one replica, the initial scale

	// A queue and an activator push their stats (r is a stats.Sink).
	_ = r.Send(ctx, []stats.Message{
		{Revision: "default/hello", Stat: stats.Stat{Source: "replica-1", Concurrency: 9}},
		{Revision: "default/hello", Stat: stats.Stat{Source: "activator", Concurrency: 5}},
	})
	mock.Add(2 * time.Second) // the first tick
	d := <-decisions
	fmt.Println(d)
	fmt.Println("activator in path:", d.ActivatorInPath())
	_ = r.Flush(ctx)
	fmt.Println(fake.CallsFor("default/hello"))
	// Output:
	// default/hello: desired=2 ebc=0 panicking=true recommended=2 ready=1 Active
	// activator in path: false
	// [1 2]
}

// A Scraper can read load from anywhere, for example a load balancer that
// already counts requests in flight per backend group.
func ExampleScraperFunc() {
	inFlight := map[string]float64{"default/hello": 12}
	replicas := map[string]int{"default/hello": 3}
	var s autoscaler.Scraper = autoscaler.ScraperFunc(func(_ context.Context, revision string, _ time.Duration) (stats.Stat, error) {
		if replicas[revision] == 0 {
			return stats.Stat{}, autoscaler.ErrNoReplicas // nothing recorded: no data
		}
		return stats.Stat{Source: "load-balancer", Concurrency: inFlight[revision]}, nil
	})
	st, err := s.Scrape(context.Background(), "default/hello", time.Minute)
	fmt.Println(st.Concurrency, err)
	_, err = s.Scrape(context.Background(), "default/idle", time.Minute)
	fmt.Println(err)
	// Output:
	// 12 <nil>
	// autoscaler: no replicas to scrape
}
