package queue

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// benchWriter is a ResponseWriter that keeps nothing, so the benchmarks
// measure the handler, not a recorder.
type benchWriter struct{ h http.Header }

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(int)             {}

var okApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
})

// ctxApp looks at its context's Done channel before answering.
var ctxApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
		w.WriteHeader(StatusClientClosedRequest)
	default:
		w.WriteHeader(http.StatusOK)
	}
})

func benchHandlers(b *testing.B) []struct {
	name string
	h    http.Handler
} {
	mkApp := func(app http.Handler, c Config) http.Handler {
		h, err := New(app, c)
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	mk := func(c Config) http.Handler { return mkApp(okApp, c) }
	return []struct {
		name string
		h    http.Handler
	}{
		{"direct", okApp},
		{"handler", mk(Config{})},
		{"handler-cc1000", mk(Config{ContainerConcurrency: 1000})},
		{"handler-cc1000-observer", mk(Config{ContainerConcurrency: 1000, Observer: func(Observation) {}})},
		{"handler-cc1000-total", mk(Config{ContainerConcurrency: 1000, TotalTimeout: 5 * time.Minute})},
		{"handler-cc1000-timeouts", mk(Config{ContainerConcurrency: 1000, TotalTimeout: time.Minute, ResponseStartTimeout: time.Minute, IdleTimeout: time.Minute})},
		// The application looks at its context's Done, as a proxy does.
		{"handler-cc1000-total-ctx", mkApp(ctxApp, Config{ContainerConcurrency: 1000, TotalTimeout: 5 * time.Minute})},
	}
}

// BenchmarkInProcess measures the in-process handler against calling the
// application directly ("direct").
//
// The request's context is cancelable, as a server's is; the parent's map of
// children, which net/http would make per request, is made once here.
func BenchmarkInProcess(b *testing.B) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(parent, http.MethodGet, "http://example.com/", nil)
	for _, tc := range benchHandlers(b) {
		b.Run(tc.name+"/sequential", func(b *testing.B) {
			w := &benchWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				tc.h.ServeHTTP(w, req)
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := &benchWriter{h: make(http.Header)}
				for pb.Next() {
					tc.h.ServeHTTP(w, req)
				}
			})
		})
	}
}

// BenchmarkLoopback measures whole round trips over loopback TCP: the
// application served directly, in process behind the queue, and behind the
// sidecar proxy (two hops).
func BenchmarkLoopback(b *testing.B) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	serveOn := func(h http.Handler) string {
		s := httptest.NewServer(h)
		b.Cleanup(s.Close)
		return s.URL
	}
	inProcess, err := New(app, Config{ContainerConcurrency: 1000})
	if err != nil {
		b.Fatal(err)
	}
	appURL := serveOn(app)
	sidecar, err := NewSidecar(SidecarConfig{Config: Config{ContainerConcurrency: 1000}, Target: strings.TrimPrefix(appURL, "http://")})
	if err != nil {
		b.Fatal(err)
	}
	targets := []struct{ name, url string }{
		{"direct", appURL},
		{"in-process", serveOn(inProcess)},
		{"sidecar", serveOn(sidecar)},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	do := func(b *testing.B, url string) {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, tc := range targets {
		b.Run(tc.name+"/sequential", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				do(b, tc.url)
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					do(b, tc.url)
				}
			})
		})
	}
}

// BenchmarkStatsOut measures a report and a scrape of it: the Reporter's
// collect and the admin handler's /stats.
func BenchmarkStatsOut(b *testing.B) {
	h, err := New(okApp, Config{})
	if err != nil {
		b.Fatal(err)
	}
	rep, err := NewReporter(h.Recorder(), ReporterConfig{Revision: "default/hello-00001", Replica: "hello-00001-deployment-5d8f7c9b4-x2x7k"})
	if err != nil {
		b.Fatal(err)
	}
	admin := AdminHandler(h, rep)
	req := httptest.NewRequest(http.MethodGet, "http://10.0.0.7:9091/stats", nil) // a pod IP, as an autoscaler scrapes
	ctx := context.Background()
	rep.ReportNow(ctx)
	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	b.Run("report", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rep.ReportNow(ctx)
		}
	})
	b.Run("scrape/sequential", func(b *testing.B) {
		w := &benchWriter{h: make(http.Header)}
		b.ReportAllocs()
		for b.Loop() {
			admin.ServeHTTP(w, req)
		}
	})
	b.Run("scrape/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := &benchWriter{h: make(http.Header)}
			for pb.Next() {
				admin.ServeHTTP(w, req)
			}
		})
	})
}
