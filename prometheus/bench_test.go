package prometheus

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/queue"
	"github.com/servingkit/servingkit/traffic"
)

// discard is a ResponseWriter that keeps nothing.
type discard struct{ h http.Header }

func (w *discard) Header() http.Header         { return w.h }
func (w *discard) Write(p []byte) (int, error) { return len(p), nil }
func (w *discard) WriteHeader(int)             {}

// okReplica answers at once.
type okReplica struct{}

func (okReplica) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{"Content-Type": {"text/plain"}},
		Body: io.NopCloser(strings.NewReader("ok")), ContentLength: 2, Request: r}, nil
}

var okApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

func queueHandler(tb testing.TB, hook bool) http.Handler {
	c := queue.Config{ContainerConcurrency: 1000}
	if hook {
		q, err := NewQueue(Config{Registerer: prom.NewRegistry()}, "default/hello-00001", "pod-1")
		require.NoError(tb, err)
		c.Observer = q.Observe
	}
	h, err := queue.New(okApp, c)
	require.NoError(tb, err)
	return h
}

func activatorHandler(tb testing.TB, hook bool) http.Handler {
	o := activator.Options{Transport: okReplica{}}
	if hook {
		a, err := NewActivator(Config{Registerer: prom.NewRegistry()})
		require.NoError(tb, err)
		o.Observer = a.Observe
	}
	h, err := activator.New(o)
	require.NoError(tb, err)
	require.NoError(tb, h.SetRevision("default/hello-00001", activator.RevisionConfig{ContainerConcurrency: 100}))
	require.NoError(tb, h.SetReplicas("default/hello-00001", []string{"10.0.0.1:8012", "10.0.0.2:8012", "10.0.0.3:8012"}))
	return h
}

func routerHandler(tb testing.TB, hook bool) http.Handler {
	c := traffic.RouterConfig{}
	if hook {
		rt, err := NewRouter(Config{Registerer: prom.NewRegistry()})
		require.NoError(tb, err)
		c.Observer = rt.Observe
	}
	r, err := traffic.NewRouter(c)
	require.NoError(tb, err)
	tbl, err := traffic.Resolve(traffic.Spec{Traffic: []traffic.Target{{RevisionName: "default/hello-00001", Percent: 100}}}, nil)
	require.NoError(tb, err)
	require.NoError(tb, r.Update([]traffic.Route{{Name: "hello", Namespace: "default", Table: tbl}}, traffic.FrontDoorMap{"default/hello-00001": okApp}))
	return r
}

// newRequest is a request for the revision: the activator reads the
// revision header, the router (which would strip it, copying the request)
// the host.
func newRequest(revisionHeader bool) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://hello.default.svc.cluster.local/", nil)
	if revisionHeader {
		r.Header.Set(activator.RevisionHeader, "default/hello-00001")
	}
	return r
}

// BenchmarkHooks measures a request through the queue handler, the
// activator and the router without a hook ("none") and with the
// Prometheus collector's hook ("prometheus").
func BenchmarkHooks(b *testing.B) {
	for _, c := range []struct {
		name string
		mk   func(testing.TB, bool) http.Handler
		hdr  bool
	}{{"queue", queueHandler, false}, {"activator", activatorHandler, true}, {"router", routerHandler, false}} {
		for _, hook := range []bool{false, true} {
			name := c.name + "/none"
			if hook {
				name = c.name + "/prometheus"
			}
			h := c.mk(b, hook)
			b.Run(name+"/sequential", func(b *testing.B) {
				w, r := &discard{h: http.Header{}}, newRequest(c.hdr)
				b.ReportAllocs()
				for b.Loop() {
					clear(w.h)
					h.ServeHTTP(w, r)
				}
			})
			b.Run(name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					w, r := &discard{h: http.Header{}}, newRequest(c.hdr)
					for pb.Next() {
						clear(w.h)
						h.ServeHTTP(w, r)
					}
				})
			})
		}
	}
}

// BenchmarkHookParts measures what a set hook is made of: a read of the
// clock (the activator and the router take two per request), and
// client_golang's histogram observation and counter increment (a request
// costs one of each, and the queue's and the activator's collectors one
// more increment, by outcome).
func BenchmarkHookParts(b *testing.B) {
	var sink time.Time
	b.Run("time.Now", func(b *testing.B) {
		for b.Loop() {
			sink = time.Now()
		}
	})
	_ = sink
	h := prom.NewHistogram(prom.HistogramOpts{Name: "h", Buckets: DefaultLatencyBuckets})
	b.Run("Histogram.Observe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.Observe(42)
		}
	})
	c := prom.NewCounter(prom.CounterOpts{Name: "c"})
	b.Run("Counter.Inc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Inc()
		}
	})
}

// TestHookAllocs pins what the Prometheus hook adds to a request: no
// allocation in the queue handler and the router (which allocate none
// without it), and none in the activator beyond what its reverse proxy
// allocates anyway.
func TestHookAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop objects: allocation counts are checked without -race")
	}
	measure := func(h http.Handler) float64 {
		_, isAct := h.(*activator.Handler)
		w, r := &discard{h: http.Header{}}, newRequest(isAct)
		h.ServeHTTP(w, r) // create the series
		return testing.AllocsPerRun(500, func() {
			clear(w.h)
			h.ServeHTTP(w, r)
		})
	}
	assert.Zero(t, measure(queueHandler(t, false)), "queue, no hook")
	assert.Zero(t, measure(queueHandler(t, true)), "queue, Prometheus hook")
	assert.Zero(t, measure(routerHandler(t, false)), "router, no hook")
	assert.Zero(t, measure(routerHandler(t, true)), "router, Prometheus hook")
	none, hooked := measure(activatorHandler(t, false)), measure(activatorHandler(t, true))
	assert.NotZero(t, none, "the activator's reverse proxy allocates")
	assert.Equal(t, none, hooked, "activator: the hook adds nothing")
}
