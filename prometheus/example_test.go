package prometheus_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/autoscaler"
	skprom "github.com/servingkit/servingkit/prometheus"
	"github.com/servingkit/servingkit/queue"
	"github.com/servingkit/servingkit/traffic"
)

func ExampleQueue() {
	reg := prom.NewRegistry()
	q, _ := skprom.NewQueue(skprom.Config{Registerer: reg}, "default/hello-00001", "pod-1")
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	h, _ := queue.New(app, queue.Config{ContainerConcurrency: 10, Observer: q.Observe})
	q.Watch(h)
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}
	n, _ := testutil.GatherAndCount(reg, "revision_request_count", "revision_queue_depth")
	fmt.Println(n, "series")
	// Output: 2 series
}

func ExampleAutoscaler() {
	reg := prom.NewRegistry()
	as, _ := skprom.NewAutoscaler(skprom.Config{Registerer: reg})
	as.Observe(autoscaler.Decision{Revision: "default/hello-00001", Desired: 3, Recommended: 3, Ready: 1, Panicking: true, StableLoad: 12, PanicLoad: 20, Target: 7})
	fmt.Println(testutil.CollectAndCount(reg, "autoscaler_panic_mode"), "series")
	// Output: 1 series
}

func ExampleSplitKey() {
	fmt.Printf("%+v\n", skprom.SplitKey("default/hello-00001"))
	// Output: {Namespace:default Service: Configuration: Revision:hello-00001}
}

func ExampleRouter() {
	reg := prom.NewRegistry()
	rt, _ := skprom.NewRouter(skprom.Config{Registerer: reg})
	r, _ := traffic.NewRouter(traffic.RouterConfig{Observer: rt.Observe})
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "http://nope.example.com/", nil)) // 404: no route
	fmt.Println(testutil.CollectAndCount(reg, "servingkit_router_request_count"), "series")
	// Output: 1 series
}

func ExampleActivator() {
	reg := prom.NewRegistry()
	a, _ := skprom.NewActivator(skprom.Config{Registerer: reg})
	h, _ := activator.New(activator.Options{Observer: a.Observe})
	a.Watch(h, h.Reporter())
	_ = h.SetRevision("default/hello-00001", activator.RevisionConfig{})
	fmt.Println(testutil.CollectAndCount(reg, "servingkit_activator_waiting_requests"), "series")
	// Output: 1 series
}
