package prometheus

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/queue"
	"github.com/servingkit/servingkit/stats"
	"github.com/servingkit/servingkit/traffic"
)

// compare checks the named metrics of reg against the exposition text
// want, and that it compared as many series as want has.
func compare(t *testing.T, reg *prom.Registry, want string, names ...string) {
	t.Helper()
	want = sortLabels(want)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), names...))
	n, err := testutil.GatherAndCount(reg, names...)
	require.NoError(t, err)
	series := 0
	for _, line := range strings.Split(want, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") && !strings.Contains(line, "_bucket{") && !strings.Contains(line, "_sum{") {
			series++ // a histogram counts once, by its _count line
		}
	}
	require.Equal(t, series, n, "series compared")
	require.NotZero(t, n)
}

// sortLabels puts the labels of each sample line of an exposition text in
// the order the registry writes them, so that tests can write them in an
// order that reads well. Label values must not contain commas.
func sortLabels(text string) string {
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		open, end := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}')
		if strings.HasPrefix(line, "#") || open < 0 || end < open {
			continue
		}
		pairs := strings.Split(line[open+1:end], ",")
		var le string
		kept := pairs[:0]
		for _, p := range pairs {
			if strings.HasPrefix(p, "le=") {
				le = p // the registry writes le last
				continue
			}
			kept = append(kept, p)
		}
		slices.Sort(kept)
		if le != "" {
			kept = append(kept, le)
		}
		lines[i] = line[:open+1] + strings.Join(kept, ",") + line[end:]
	}
	return strings.Join(lines, "\n")
}

func TestQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prom.NewRegistry()
		q, err := NewQueue(Config{Registerer: reg, LatencyBuckets: []float64{10, 100}}, "default/hello-00001", "pod-1")
		require.NoError(t, err)
		release := make(chan struct{})
		app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				<-release
			}
			time.Sleep(30 * time.Millisecond)
			w.WriteHeader(http.StatusCreated)
		})
		h, err := queue.New(app, queue.Config{ContainerConcurrency: 1, QueueDepth: 1, Observer: q.Observe})
		require.NoError(t, err)

		// Before Watch, and without requests, nothing is reported.
		n, err := testutil.GatherAndCount(reg)
		require.NoError(t, err)
		assert.Zero(t, n)
		q.Watch(h)

		serve := func(path string, proxied bool) int {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			if proxied {
				req.Header.Set(queue.ProxyHeader, queue.ProxyHeaderValue)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Code
		}
		done := make(chan int, 2)
		go func() { done <- serve("/slow", false) }()
		synctest.Wait()
		go func() { done <- serve("/", true) }() // waits for the slot
		synctest.Wait()
		assert.Equal(t, http.StatusServiceUnavailable, serve("/", false), "queue full")
		compare(t, reg, `
# HELP revision_queue_depth Requests in the replica's breaker: in flight plus waiting for a slot.
# TYPE revision_queue_depth gauge
revision_queue_depth{configuration_name="",namespace_name="default",pod_name="pod-1",revision_name="hello-00001",service_name=""} 2
# HELP servingkit_breaker_in_flight Requests holding a slot of the replica's breaker.
# TYPE servingkit_breaker_in_flight gauge
servingkit_breaker_in_flight{configuration_name="",namespace_name="default",pod_name="pod-1",revision_name="hello-00001",service_name=""} 1
# HELP servingkit_breaker_queued Requests waiting for a slot of the replica's breaker.
# TYPE servingkit_breaker_queued gauge
servingkit_breaker_queued{configuration_name="",namespace_name="default",pod_name="pod-1",revision_name="hello-00001",service_name=""} 1
`, "revision_queue_depth", "servingkit_breaker_in_flight", "servingkit_breaker_queued")

		close(release)
		assert.Equal(t, http.StatusCreated, <-done)
		assert.Equal(t, http.StatusCreated, <-done)
		const labels = `configuration_name="",namespace_name="default",pod_name="pod-1",revision_name="hello-00001",service_name=""`
		compare(t, reg, `
# HELP revision_request_count Requests the queue accepted, by response code.
# TYPE revision_request_count counter
revision_request_count{`+labels+`,response_code="201",response_code_class="2xx"} 2
revision_request_count{`+labels+`,response_code="503",response_code_class="5xx"} 1
# HELP revision_request_latencies The response time in milliseconds of requests the queue accepted.
# TYPE revision_request_latencies histogram
revision_request_latencies_bucket{`+labels+`,response_code="201",response_code_class="2xx",le="10"} 0
revision_request_latencies_bucket{`+labels+`,response_code="201",response_code_class="2xx",le="100"} 2
revision_request_latencies_bucket{`+labels+`,response_code="201",response_code_class="2xx",le="+Inf"} 2
revision_request_latencies_sum{`+labels+`,response_code="201",response_code_class="2xx"} 90
revision_request_latencies_count{`+labels+`,response_code="201",response_code_class="2xx"} 2
revision_request_latencies_bucket{`+labels+`,response_code="503",response_code_class="5xx",le="10"} 1
revision_request_latencies_bucket{`+labels+`,response_code="503",response_code_class="5xx",le="100"} 1
revision_request_latencies_bucket{`+labels+`,response_code="503",response_code_class="5xx",le="+Inf"} 1
revision_request_latencies_sum{`+labels+`,response_code="503",response_code_class="5xx"} 0
revision_request_latencies_count{`+labels+`,response_code="503",response_code_class="5xx"} 1
# HELP servingkit_queue_requests_total Requests the queue accepted, by how they ended and whether an activator forwarded them.
# TYPE servingkit_queue_requests_total counter
servingkit_queue_requests_total{`+labels+`,outcome="queue-full",proxied="false"} 1
servingkit_queue_requests_total{`+labels+`,outcome="served",proxied="false"} 1
servingkit_queue_requests_total{`+labels+`,outcome="served",proxied="true"} 1
`, "revision_request_count", "revision_request_latencies", "servingkit_queue_requests_total")
	})
}

// fakeReplica answers every forwarded request after 20 ms.
type fakeReplica struct{}

func (fakeReplica) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case <-time.After(20 * time.Millisecond):
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	return &http.Response{StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
		Body: io.NopCloser(strings.NewReader("ok")), ContentLength: 2, Request: r}, nil
}

func TestActivator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prom.NewRegistry()
		a, err := NewActivator(Config{Registerer: reg, LatencyBuckets: []float64{100, 10000}})
		require.NoError(t, err)
		h, err := activator.New(activator.Options{Transport: fakeReplica{}, Observer: a.Observe})
		require.NoError(t, err)
		a.Watch(h, nil)
		require.NoError(t, h.SetRevision("default/hello-00001", activator.RevisionConfig{ContainerConcurrency: 10, MaxWaiting: 1}))
		serve := func(rev string) int {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set(activator.RevisionHeader, rev)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Code
		}
		done := make(chan int)
		go func() { done <- serve("default/hello-00001") }()
		synctest.Wait()
		assert.Equal(t, http.StatusServiceUnavailable, serve("default/hello-00001"), "overflow")
		assert.Equal(t, http.StatusNotFound, serve("default/nope"))
		const labels = `configuration_name="",namespace_name="default",revision_name="hello-00001",service_name=""`
		compare(t, reg, `
# HELP servingkit_activator_capacity Requests this activator may have in flight to the revision's replicas (+Inf without a concurrency limit).
# TYPE servingkit_activator_capacity gauge
servingkit_activator_capacity{`+labels+`} 0
# HELP servingkit_activator_in_flight_requests Requests the activator forwarded that are not yet answered.
# TYPE servingkit_activator_in_flight_requests gauge
servingkit_activator_in_flight_requests{`+labels+`} 0
# HELP servingkit_activator_waiting_requests Requests waiting in the activator for capacity.
# TYPE servingkit_activator_waiting_requests gauge
servingkit_activator_waiting_requests{`+labels+`} 1
`, "servingkit_activator_waiting_requests", "servingkit_activator_in_flight_requests", "servingkit_activator_capacity")

		time.Sleep(2 * time.Second)
		require.NoError(t, h.SetReplicas("default/hello-00001", []string{"10.0.0.1:8012"}))
		assert.Equal(t, http.StatusOK, <-done)
		compare(t, reg, `
# HELP activator_request_count Requests the activator answered, by response code.
# TYPE activator_request_count counter
activator_request_count{`+labels+`,response_code="200",response_code_class="2xx"} 1
activator_request_count{`+labels+`,response_code="503",response_code_class="5xx"} 1
# HELP activator_request_latencies The response time in milliseconds of requests the activator answered.
# TYPE activator_request_latencies histogram
activator_request_latencies_bucket{`+labels+`,response_code="200",response_code_class="2xx",le="100"} 0
activator_request_latencies_bucket{`+labels+`,response_code="200",response_code_class="2xx",le="10000"} 1
activator_request_latencies_bucket{`+labels+`,response_code="200",response_code_class="2xx",le="+Inf"} 1
activator_request_latencies_sum{`+labels+`,response_code="200",response_code_class="2xx"} 2020
activator_request_latencies_count{`+labels+`,response_code="200",response_code_class="2xx"} 1
activator_request_latencies_bucket{`+labels+`,response_code="503",response_code_class="5xx",le="100"} 1
activator_request_latencies_bucket{`+labels+`,response_code="503",response_code_class="5xx",le="10000"} 1
activator_request_latencies_bucket{`+labels+`,response_code="503",response_code_class="5xx",le="+Inf"} 1
activator_request_latencies_sum{`+labels+`,response_code="503",response_code_class="5xx"} 0
activator_request_latencies_count{`+labels+`,response_code="503",response_code_class="5xx"} 1
# HELP servingkit_activator_requests_total Requests the activator answered, by how they ended (queue-full is the overflow).
# TYPE servingkit_activator_requests_total counter
servingkit_activator_requests_total{configuration_name="",namespace_name="",revision_name="",service_name="",outcome="unknown-revision"} 1
servingkit_activator_requests_total{`+labels+`,outcome="queue-full"} 1
servingkit_activator_requests_total{`+labels+`,outcome="served"} 1
# HELP servingkit_activator_wait_latencies How long requests waited in the activator for capacity, in milliseconds.
# TYPE servingkit_activator_wait_latencies histogram
servingkit_activator_wait_latencies_bucket{`+labels+`,le="100"} 0
servingkit_activator_wait_latencies_bucket{`+labels+`,le="10000"} 1
servingkit_activator_wait_latencies_bucket{`+labels+`,le="+Inf"} 1
servingkit_activator_wait_latencies_sum{`+labels+`} 2000
servingkit_activator_wait_latencies_count{`+labels+`} 1
`, "activator_request_count", "activator_request_latencies", "servingkit_activator_requests_total", "servingkit_activator_wait_latencies")

		a.Forget("default/hello-00001")
		n, err := testutil.GatherAndCount(reg, "activator_request_count", "servingkit_activator_wait_latencies")
		require.NoError(t, err)
		assert.Zero(t, n, "forgotten")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, h.Shutdown(ctx))
	})
}

// latestStats is a LatestStats with fixed reports.
type latestStats []stats.Message

func (l latestStats) Latest() []stats.Message { return l }

// TestActivatorReadAtScrape checks the gauges read at scrape time:
// activator_request_concurrency from the latest stats report, and the
// capacity of a revision without a concurrency limit.
func TestActivatorReadAtScrape(t *testing.T) {
	reg := prom.NewRegistry()
	a, err := NewActivator(Config{Registerer: reg})
	require.NoError(t, err)
	h, err := activator.New(activator.Options{Transport: fakeReplica{}, Observer: a.Observe})
	require.NoError(t, err)
	require.NoError(t, h.SetRevision("default/hello-00001", activator.RevisionConfig{ContainerConcurrency: 0}))
	require.NoError(t, h.SetReplicas("default/hello-00001", []string{"10.0.0.1:8012"}))
	a.Watch(h, latestStats{
		{Revision: "default/hello-00001", Stat: stats.Stat{Concurrency: 2.5}},
		{Revision: "default/other-00003", Stat: stats.Stat{Concurrency: 0.25}},
	})
	const labels = `configuration_name="",namespace_name="default",revision_name="hello-00001",service_name=""`
	compare(t, reg, `
# HELP activator_request_concurrency Average concurrency of the revision's requests in the activator over the last reporting period.
# TYPE activator_request_concurrency gauge
activator_request_concurrency{`+labels+`} 2.5
activator_request_concurrency{configuration_name="",namespace_name="default",revision_name="other-00003",service_name=""} 0.25
# HELP servingkit_activator_capacity Requests this activator may have in flight to the revision's replicas (+Inf without a concurrency limit).
# TYPE servingkit_activator_capacity gauge
servingkit_activator_capacity{`+labels+`} +Inf
`, "activator_request_concurrency", "servingkit_activator_capacity")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, h.Shutdown(ctx))
}

func TestRouter(t *testing.T) {
	reg := prom.NewRegistry()
	rt, err := NewRouter(Config{Registerer: reg, Labels: func(rev string) RevisionLabels {
		return RevisionLabels{Namespace: "default", Service: "hello", Configuration: "hello", Revision: strings.TrimPrefix(rev, "default/")}
	}})
	require.NoError(t, err)
	router, err := traffic.NewRouter(traffic.RouterConfig{Observer: rt.Observe})
	require.NoError(t, err)
	tbl, err := traffic.Resolve(traffic.Spec{Traffic: []traffic.Target{{RevisionName: "default/hello-00001", Percent: 100}}}, nil)
	require.NoError(t, err)
	teapot := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	require.NoError(t, router.Update([]traffic.Route{{Name: "hello", Namespace: "default", Table: tbl}}, traffic.FrontDoorMap{"default/hello-00001": teapot}))
	for _, host := range []string{"hello.default.svc.cluster.local", "hello.default.svc.cluster.local", "nope.example.com"} {
		router.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil))
	}
	compare(t, reg, `
# HELP servingkit_router_request_count The number of requests the router answered.
# TYPE servingkit_router_request_count counter
servingkit_router_request_count{configuration_name="",namespace_name="",response_code="404",response_code_class="4xx",revision_name="",service_name=""} 1
servingkit_router_request_count{configuration_name="hello",namespace_name="default",response_code="418",response_code_class="4xx",revision_name="hello-00001",service_name="hello"} 2
`, "servingkit_router_request_count")
	n, err := testutil.GatherAndCount(reg, "servingkit_router_request_latencies")
	require.NoError(t, err)
	assert.Equal(t, 2, n, "a latency histogram per revision and code")
	rt.Forget("default/hello-00001")
	n, err = testutil.GatherAndCount(reg, "servingkit_router_request_count")
	require.NoError(t, err)
	assert.Equal(t, 1, n, "only the 404s are left")
}

func TestAutoscaler(t *testing.T) {
	reg := prom.NewRegistry()
	as, err := NewAutoscaler(Config{Registerer: reg})
	require.NoError(t, err)
	as.Observe(autoscaler.Decision{Revision: "default/a", Desired: 5, Recommended: 6, Ready: 2, ExcessBurstCapacity: -30, Panicking: true,
		StableLoad: 12.5, PanicLoad: 40, Target: 7, Metric: autoscaler.Concurrency})
	as.Observe(autoscaler.Decision{Revision: "default/b", Desired: 0, Recommended: 0, Ready: 1, StableLoad: 3, PanicLoad: 1, Target: 150, Metric: autoscaler.RPS})
	const a, b = `configuration_name="",namespace_name="default",revision_name="a",service_name=""`, `configuration_name="",namespace_name="default",revision_name="b",service_name=""`
	compare(t, reg, `
# HELP autoscaler_actual_pods Number of ready replicas the last decision saw.
# TYPE autoscaler_actual_pods gauge
autoscaler_actual_pods{`+a+`} 2
autoscaler_actual_pods{`+b+`} 1
# HELP autoscaler_desired_pods Number of replicas the autoscaler's decider wants, before bounds (-1: not yet known).
# TYPE autoscaler_desired_pods gauge
autoscaler_desired_pods{`+a+`} 6
autoscaler_desired_pods{`+b+`} 0
# HELP autoscaler_requested_pods Number of replicas requested of the scaler backend (-1: not yet known).
# TYPE autoscaler_requested_pods gauge
autoscaler_requested_pods{`+a+`} 5
autoscaler_requested_pods{`+b+`} 0
# HELP autoscaler_excess_burst_capacity Excess burst capacity observed over the stable window.
# TYPE autoscaler_excess_burst_capacity gauge
autoscaler_excess_burst_capacity{`+a+`} -30
autoscaler_excess_burst_capacity{`+b+`} 0
# HELP autoscaler_panic_mode 1 if the autoscaler is in panic mode for the revision, else 0.
# TYPE autoscaler_panic_mode gauge
autoscaler_panic_mode{`+a+`} 1
autoscaler_panic_mode{`+b+`} 0
# HELP autoscaler_stable_request_concurrency Average concurrency of the revision's requests over the stable window.
# TYPE autoscaler_stable_request_concurrency gauge
autoscaler_stable_request_concurrency{`+a+`} 12.5
# HELP autoscaler_panic_request_concurrency Average concurrency of the revision's requests over the panic window.
# TYPE autoscaler_panic_request_concurrency gauge
autoscaler_panic_request_concurrency{`+a+`} 40
# HELP autoscaler_target_concurrency_per_pod The concurrency per replica the autoscaler aims for.
# TYPE autoscaler_target_concurrency_per_pod gauge
autoscaler_target_concurrency_per_pod{`+a+`} 7
# HELP autoscaler_stable_requests_per_second Average requests per second of the revision over the stable window.
# TYPE autoscaler_stable_requests_per_second gauge
autoscaler_stable_requests_per_second{`+b+`} 3
# HELP autoscaler_panic_requests_per_second Average requests per second of the revision over the panic window.
# TYPE autoscaler_panic_requests_per_second gauge
autoscaler_panic_requests_per_second{`+b+`} 1
# HELP autoscaler_target_requests_per_second The requests per second per replica the autoscaler aims for.
# TYPE autoscaler_target_requests_per_second gauge
autoscaler_target_requests_per_second{`+b+`} 150
`)
	as.Forget("default/a")
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, 8, n, "b's eight gauges are left")
}

func TestConfigValidate(t *testing.T) {
	_, err := NewQueue(Config{LatencyBuckets: []float64{10, 5}}, "r", "p")
	require.EqualError(t, err, "prometheus: Config.LatencyBuckets[1] = 5, must be greater than the bucket before it (10)")
}

func TestRegisterTwice(t *testing.T) {
	reg := prom.NewRegistry()
	_, err := NewAutoscaler(Config{Registerer: reg})
	require.NoError(t, err)
	_, err = NewAutoscaler(Config{Registerer: reg})
	require.ErrorContains(t, err, "prometheus: register:")
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Zero(t, n)
}
