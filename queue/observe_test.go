package queue

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/internal/collect"
	"github.com/servingkit/servingkit/internal/race"
)

func TestObserverServed(t *testing.T) {
	tests := []struct {
		name    string
		timed   bool
		app     http.HandlerFunc
		proxied bool
		want    Observation
	}{
		{"status written", false, func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(30 * time.Millisecond)
			w.WriteHeader(http.StatusCreated)
		}, false, Observation{Status: 201, Latency: 30 * time.Millisecond}},
		{"body only means 200", false, func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Second)
			_, _ = w.Write([]byte("hi"))
		}, true, Observation{Status: 200, Latency: time.Second, Proxied: true}},
		{"nothing written means 200", false, func(http.ResponseWriter, *http.Request) {}, false, Observation{Status: 200}},
		{"103 then 500", false, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusInternalServerError)
		}, false, Observation{Status: 500}},
		{"timed: status written", true, func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(2 * time.Second)
			w.WriteHeader(http.StatusNotFound)
		}, true, Observation{Status: 404, Latency: 2 * time.Second, Proxied: true}},
		{"timed: nothing written", true, func(http.ResponseWriter, *http.Request) {}, false, Observation{Status: 200}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var obs collect.Log[Observation]
				c := Config{ContainerConcurrency: 2, Observer: obs.Add}
				if tc.timed {
					c.TotalTimeout = time.Minute
				}
				h, err := New(tc.app, c)
				require.NoError(t, err)
				req := httptest.NewRequest(http.MethodGet, "/", nil)
				if tc.proxied {
					req.Header.Set(ProxyHeader, ProxyHeaderValue)
				}
				h.ServeHTTP(httptest.NewRecorder(), req)
				synctest.Wait()
				assert.Equal(t, []Observation{tc.want}, obs.All())
			})
		})
	}
}

func TestObserverRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var obs collect.Log[Observation]
		release := make(chan struct{})
		app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release })
		h, err := New(app, Config{ContainerConcurrency: 1, QueueDepth: 1, MaxWait: 3 * time.Second, Observer: obs.Add})
		require.NoError(t, err)
		serve := func(ctx context.Context) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
			return rec
		}
		go serve(context.Background()) // holds the slot
		synctest.Wait()
		waiting := make(chan *httptest.ResponseRecorder)
		go func() { waiting <- serve(context.Background()) }() // waits, then MaxWait
		synctest.Wait()
		assert.Equal(t, http.StatusServiceUnavailable, serve(context.Background()).Code, "queue full")
		time.Sleep(3 * time.Second)
		assert.Equal(t, http.StatusServiceUnavailable, (<-waiting).Code, "max wait")

		ctx, cancel := context.WithCancel(context.Background())
		gone := make(chan struct{})
		go func() { serve(ctx); close(gone) }()
		synctest.Wait()
		time.Sleep(time.Second)
		cancel()
		<-gone
		close(release)
		synctest.Wait()

		got := obs.All()
		require.Len(t, got, 4)
		assert.Equal(t, Observation{Status: 503, Outcome: OutcomeQueueFull}, got[0])
		assert.Equal(t, Observation{Status: 503, Outcome: OutcomeMaxWait, Latency: 3 * time.Second}, got[1])
		assert.Equal(t, Observation{Status: StatusClientClosedRequest, Outcome: OutcomeCanceled, Latency: time.Second}, got[2])
		assert.Equal(t, Observation{Status: 200, Outcome: OutcomeServed, Latency: 4 * time.Second}, got[3], "the request that held the slot")
	})
}

func TestObserverTimeouts(t *testing.T) {
	tests := []struct {
		name  string
		c     Config
		steps []step
		want  Observation
	}{
		{"total before the response", Config{TotalTimeout: 2 * time.Second}, []step{{after: 5 * time.Second, write: "late"}},
			Observation{Status: 504, Outcome: OutcomeTotalTimeout, Latency: 2 * time.Second}},
		{"idle after the response started", Config{IdleTimeout: time.Second}, []step{{write: "a"}, {after: 3 * time.Second, write: "b"}},
			Observation{Status: 200, Outcome: OutcomeIdleTimeout, Latency: time.Second}},
		{"response start", Config{ResponseStartTimeout: time.Second, TotalTimeout: time.Minute}, []step{{after: 2 * time.Second}},
			Observation{Status: 504, Outcome: OutcomeResponseStartTimeout, Latency: time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var obs collect.Log[Observation]
				app := &scriptedApp{steps: tc.steps, finished: make(chan struct{})}
				tc.c.Observer = obs.Add
				h, err := New(app, tc.c)
				require.NoError(t, err)
				_, returned := serveAsync(h, httptest.NewRequest(http.MethodGet, "/", nil))
				time.Sleep(tc.want.Latency)
				synctest.Wait()
				assert.Empty(t, obs.All(), "observed when the application returns, not when the client is answered")
				<-app.finished
				<-returned
				assert.Equal(t, []Observation{tc.want}, obs.All())
			})
		})
	}
}

func TestObserverNotForProbes(t *testing.T) {
	var obs collect.Log[Observation]
	h, err := New(okApp, Config{Observer: obs.Add})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set(ProbeHeader, ProbeHeaderValue)
	h.ServeHTTP(httptest.NewRecorder(), req)
	assert.Empty(t, obs.All())
}

// TestObserverAllocs pins the request path's allocations with and without
// an observer: none either way without timeouts, with or without a
// breaker (BENCHMARKS' CC=10, CC=1000 and unlimited rows).
func TestObserverAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector makes sync.Pool drop objects: allocation counts are checked without -race")
	}
	req := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	var n int
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"no observer", Config{ContainerConcurrency: 10}},
		{"no breaker (unlimited)", Config{}},
		{"CC 1000", Config{ContainerConcurrency: 1000}},
		{"observer", Config{ContainerConcurrency: 10, Observer: func(o Observation) { n += o.Status }}},
	} {
		h, err := New(okApp, tc.c)
		require.NoError(t, err)
		w := &benchWriter{h: make(http.Header)}
		allocs := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, req) })
		assert.Zero(t, allocs, tc.name)
	}
	assert.Equal(t, 200*1001, n, "the observer saw every request")
}
