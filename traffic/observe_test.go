package traffic

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/internal/race"
)

func TestRouterObserver(t *testing.T) {
	var mu sync.Mutex
	var got []Observation
	observe := func(o Observation) {
		mu.Lock()
		got = append(got, o)
		mu.Unlock()
	}
	teapot := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	body := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("hi")) })
	r := newRouter(t, RouterConfig{Observer: observe, Trusted: func(r *http.Request) bool { return r.Header.Get("X-Trusted") != "" }},
		FrontDoorMap{"default/a": teapot, "default/b": body},
		Route{Name: "hello", Namespace: "default", Table: table(t, Target{RevisionName: "default/a", Percent: 100}, Target{RevisionName: "default/b", Percent: 0, Tag: "beta"})},
		Route{Name: "gone", Namespace: "default", Table: table(t, Target{RevisionName: "default/c", Percent: 100})},
	)
	do := func(host string, hdr ...string) int {
		req := httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		return rec.Code
	}
	require.Equal(t, http.StatusTeapot, do("hello.default.svc.cluster.local"))
	require.Equal(t, http.StatusOK, do("beta-hello.default.svc.cluster.local"))
	require.Equal(t, http.StatusOK, do("hello.default.svc.cluster.local", "X-Trusted", "1", RevisionHeader, "default/b"))
	require.Equal(t, http.StatusServiceUnavailable, do("gone.default.svc.cluster.local"))
	require.Equal(t, http.StatusNotFound, do("nope.example.com"))

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 5)
	for i := range got {
		assert.GreaterOrEqual(t, got[i].Latency, time.Duration(0))
		got[i].Latency = 0
	}
	assert.Equal(t, []Observation{
		{Route: "default/hello", Revision: "default/a", Status: 418},
		{Route: "default/hello", Revision: "default/b", Status: 200},
		{Route: "default/hello", Revision: "default/b", Status: 200},
		{Route: "default/gone", Revision: "default/c", Status: 503},
		{Status: 404},
	}, got)
}

// TestRouterObserverAllocs pins the router's allocations per request: none
// without an observer, none with one (the status writer is pooled), none
// when the pick is sticky by cookie.
func TestRouterObserverAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector makes sync.Pool drop objects: allocation counts are checked without -race")
	}
	nop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	route := Route{Name: "hello", Namespace: "default", Table: table(t, Target{RevisionName: "a", Percent: 90}, Target{RevisionName: "b", Percent: 10})}
	n := 0
	for _, cfg := range []RouterConfig{{}, {Observer: func(Observation) { n++ }}, {StickyCookie: "session"}} {
		r := newRouter(t, cfg, FrontDoorMap{"a": nop, "b": nop}, route)
		req := httptest.NewRequest(http.MethodGet, "http://hello.default.svc.cluster.local/", nil)
		req.Header.Set("Cookie", "theme=dark; session=4f1c2a9e8b7d6c5f4f1c2a9e8b7d6c5f")
		w := &nopWriter{h: http.Header{}}
		assert.Zero(t, testing.AllocsPerRun(1000, func() { r.ServeHTTP(w, req) }), "observer set: %v, sticky cookie %q", cfg.Observer != nil, cfg.StickyCookie)
	}
	assert.Equal(t, 1001, n)
}
