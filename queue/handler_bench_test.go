package queue

import (
	"net/http"
	"net/http/httptest"
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

func benchHandlers(b *testing.B) []struct {
	name string
	h    http.Handler
} {
	mk := func(c Config) http.Handler {
		h, err := New(okApp, c)
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	return []struct {
		name string
		h    http.Handler
	}{
		{"direct", okApp},
		{"handler", mk(Config{})},
		{"handler-cc1000", mk(Config{ContainerConcurrency: 1000})},
		{"handler-cc1000-timeouts", mk(Config{ContainerConcurrency: 1000, TotalTimeout: time.Minute, ResponseStartTimeout: time.Minute, IdleTimeout: time.Minute})},
	}
}

// BenchmarkInProcess measures the in-process handler against calling the
// application directly ("direct").
func BenchmarkInProcess(b *testing.B) {
	req := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
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
