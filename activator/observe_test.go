package activator

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

func TestObserver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var obs collect.Log[Observation]
		be := newFakeBackend(20 * time.Millisecond)
		h := newTestHandler(t, Options{Transport: be, Observer: obs.Add, WaitHeader: waitHeader})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1, MaxWaiting: 1, Timeout: 10 * time.Second}))

		// Cold: the first request waits 3 s for a replica; a second one finds
		// the queue full.
		rec, done := serve(h, request("rev", 0))
		synctest.Wait()
		full := httptest.NewRecorder()
		h.ServeHTTP(full, request("rev", 1))
		require.Equal(t, http.StatusServiceUnavailable, full.Code)
		time.Sleep(3 * time.Second)
		require.NoError(t, h.SetReplicas("rev", []string{"10.0.0.1:8012"}))
		<-done
		require.Equal(t, http.StatusOK, rec.Code)

		// Warm, unknown, then a replica that never answers (504).
		rec, done = serve(h, request("rev", 2))
		<-done
		require.Equal(t, http.StatusOK, rec.Code)
		rec, done = serve(h, request("nope", 3))
		<-done
		require.Equal(t, http.StatusNotFound, rec.Code)
		be.delay = time.Hour
		rec, done = serve(h, request("rev", 4))
		<-done
		require.Equal(t, http.StatusGatewayTimeout, rec.Code)

		mustShutdown(t, h)
		rec, done = serve(h, request("rev", 5))
		<-done
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)

		assert.Equal(t, []Observation{
			{Revision: "rev", Status: 503, Outcome: OutcomeQueueFull},
			{Revision: "rev", Status: 200, Outcome: OutcomeServed, Latency: 3*time.Second + 20*time.Millisecond, Waited: 3 * time.Second, Proxied: true},
			{Revision: "rev", Status: 200, Outcome: OutcomeServed, Latency: 20 * time.Millisecond, Proxied: true},
			{Revision: "", Status: 404, Outcome: OutcomeUnknownRevision},
			{Revision: "rev", Status: 504, Outcome: OutcomeTimeout, Latency: 10 * time.Second, Proxied: true},
			{Revision: "", Status: 503, Outcome: OutcomeShuttingDown},
		}, obs.All())
	})
}

func TestObserverWaitOutcomes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var obs collect.Log[Observation]
		h := newTestHandler(t, Options{Transport: newFakeBackend(0), Observer: obs.Add})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{MaxWait: 2 * time.Second}))
		_, done := serve(h, request("rev", 0))
		<-done
		ctx, cancel := context.WithCancel(context.Background())
		_, done = serve(h, request("rev", 1).WithContext(ctx))
		time.Sleep(time.Second)
		cancel()
		<-done
		assert.Equal(t, []Observation{
			{Revision: "rev", Status: 503, Outcome: OutcomeMaxWait, Latency: 2 * time.Second, Waited: 2 * time.Second},
			{Revision: "rev", Status: StatusClientClosedRequest, Outcome: OutcomeCanceled, Latency: time.Second, Waited: time.Second},
		}, obs.All())
		mustShutdown(t, h)
	})
}

// TestObserverAllocs pins that an observer adds no allocation to a
// forwarded request: the status writer is pooled.
func TestObserverAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector makes sync.Pool drop objects: allocation counts are checked without -race")
	}
	measure := func(o Options, rev string) float64 {
		h := newTestHandler(t, o)
		require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 100}))
		require.NoError(t, h.SetReplicas("rev", addrs(3)))
		w := &discardWriter{h: http.Header{}}
		req := httptest.NewRequest(http.MethodGet, "http://app.example.com/hello", nil)
		req.Header.Set(RevisionHeader, rev)
		return testing.AllocsPerRun(200, func() {
			clear(w.h)
			h.ServeHTTP(w, req)
		})
	}
	n := 0
	count := func(Observation) { n++ }
	without := measure(Options{Transport: staticRT{}}, "rev")
	with := measure(Options{Transport: staticRT{}, Observer: count}, "rev")
	assert.Equal(t, without, with, "a forwarded request: allocations without and with an observer")
	assert.Greater(t, n, 200, "the observer saw the requests")
}

// TestHandlerOwnAllocs pins the activator's own allocations on a forwarded
// request (a revision with its default timeout, a replica ready): at most
// 10 beyond what the transport's round trip allocates.
func TestHandlerOwnAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector makes sync.Pool drop objects: allocation counts are checked without -race")
	}
	h := newTestHandler(t, Options{Transport: staticRT{}})
	require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 100}))
	require.NoError(t, h.SetReplicas("rev", addrs(10)))
	w := &discardWriter{h: http.Header{}}
	req := httptest.NewRequest(http.MethodGet, "http://app.example.com/hello", nil)
	req.Header.Set(RevisionHeader, "rev")
	total := testing.AllocsPerRun(500, func() {
		clear(w.h)
		h.ServeHTTP(w, req)
	})
	require.Equal(t, http.StatusOK, w.code)
	roundTrip := testing.AllocsPerRun(500, func() {
		resp, _ := staticRT{}.RoundTrip(req)
		_ = resp.Body.Close()
	})
	require.Positive(t, roundTrip, "the round trip's own allocations were measured")
	assert.LessOrEqual(t, total-roundTrip, 10.0, "own allocations (total %v, round trip %v)", total, roundTrip)
}
