package bench

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	netstats "knative.dev/networking/pkg/http/stats"
	knhandler "knative.dev/serving/pkg/http/handler"
	knqueue "knative.dev/serving/pkg/queue"

	"github.com/servingkit/servingkit/queue"
)

// The in-process handler next to Knative's queue.ProxyHandler (breaker and
// request stats, tracing off), both in front of the same empty application,
// at container concurrency 10 (Knative's own benchmark setting) and
// unlimited. "direct" calls the application alone.
//
// The "+timeouts" cases add request timeouts: ours with TotalTimeout,
// ResponseStartTimeout and IdleTimeout set; Knative's ProxyHandler inside
// its TimeoutHandler with the same three, which is how its queue-proxy
// always runs (the revision timeout is never off). The "+total" cases set
// the total timeout alone, Knative's default revision configuration. "knative/cc10+tracing"
// is ProxyHandler with tracing on, the setting of Knative's own benchmark.

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

func BenchmarkQueueHandler(b *testing.B) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	req := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)

	const timeout = 5 * time.Minute
	ours := func(cc int, total, others time.Duration) http.Handler {
		c := queue.Config{ContainerConcurrency: cc, TotalTimeout: total, ResponseStartTimeout: others, IdleTimeout: others}
		h, err := queue.New(app, c)
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	knative := func(cc int, tracing bool) http.Handler {
		var br *knqueue.Breaker
		if cc > 0 {
			br = knqueue.NewBreaker(knqueue.BreakerParams{QueueDepth: 10 * cc, MaxConcurrency: cc, InitialCapacity: cc})
		}
		return knqueue.ProxyHandler(br, netstats.NewRequestStats(time.Now()), tracing, app)
	}
	knativeTimed := func(cc int, total, others time.Duration) http.Handler {
		return knhandler.NewTimeoutHandler(knative(cc, false), "request timeout", func(*http.Request) (time.Duration, time.Duration, time.Duration) {
			return total, others, others
		})
	}
	cases := []struct {
		name string
		h    http.Handler
	}{
		{"direct", app},
		{"servingkit/cc10", ours(10, 0, 0)},
		{"knative/cc10", knative(10, false)},
		{"servingkit/unlimited", ours(0, 0, 0)},
		{"knative/unlimited", knative(0, false)},
		{"servingkit/cc10+total", ours(10, timeout, 0)},
		{"knative/cc10+total", knativeTimed(10, timeout, 0)},
		{"servingkit/cc10+timeouts", ours(10, timeout, timeout)},
		{"knative/cc10+timeouts", knativeTimed(10, timeout, timeout)},
		{"knative/cc10+tracing", knative(10, true)},
	}
	for _, tc := range cases {
		b.Run(tc.name+"/sequential", func(b *testing.B) {
			w := &nopWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				tc.h.ServeHTTP(w, req)
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := &nopWriter{h: make(http.Header)}
				for pb.Next() {
					tc.h.ServeHTTP(w, req)
				}
			})
		})
	}
}
