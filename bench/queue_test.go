package bench

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	netstats "knative.dev/networking/pkg/http/stats"
	knqueue "knative.dev/serving/pkg/queue"

	"github.com/servingkit/servingkit/queue"
)

// The in-process handler next to Knative's queue.ProxyHandler (breaker and
// request stats, tracing off), both in front of the same empty application,
// at container concurrency 10 (Knative's own benchmark setting) and
// unlimited. "direct" calls the application alone.

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

func BenchmarkQueueHandler(b *testing.B) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	req := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)

	ours := func(cc int) http.Handler {
		h, err := queue.New(app, queue.Config{ContainerConcurrency: cc})
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	knative := func(cc int) http.Handler {
		var br *knqueue.Breaker
		if cc > 0 {
			br = knqueue.NewBreaker(knqueue.BreakerParams{QueueDepth: 10 * cc, MaxConcurrency: cc, InitialCapacity: cc})
		}
		return knqueue.ProxyHandler(br, netstats.NewRequestStats(time.Now()), false, app)
	}
	cases := []struct {
		name string
		h    http.Handler
	}{
		{"direct", app},
		{"servingkit/cc10", ours(10)},
		{"knative/cc10", knative(10)},
		{"servingkit/unlimited", ours(0)},
		{"knative/unlimited", knative(0)},
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
