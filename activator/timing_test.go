package activator

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServerTimingOfAColdStart: in fake time, a request arrives at a
// revision with no replica, a replica is listed 50 ms later, and the
// replica takes 10 ms: its Server-Timing says so, with what the host's
// hook adds; a request that did not wait gets none.
func TestServerTimingOfAColdStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []Timing
		h := newTestHandler(t, Options{
			Transport: newFakeBackend(10 * time.Millisecond),
			ServerTiming: func(tm Timing) string {
				got = append(got, tm)
				b := append(tm.AppendServerTiming(nil), ", "...)
				return string(AppendServerTimingMetric(b, "host", 5*time.Millisecond, "the host's own"))
			},
		})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1}))
		start := time.Now()
		rec, done := serve(h, request("rev", 0))
		time.Sleep(50 * time.Millisecond)
		require.NoError(t, h.SetReplicas("rev", []string{"10.0.0.1:8012"}))
		<-done
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, []string{`ready;dur=50.0;desc="replica ready", queued;dur=50.0;desc="queued", forwarded;dur=10.0;desc="forwarded", host;dur=5.0;desc="the host's own"`},
			rec.Header().Values("Server-Timing"))
		require.Len(t, got, 1)
		assert.Equal(t, Timing{Revision: "rev", Arrived: start, Cold: true, Ready: 50 * time.Millisecond,
			Queued: 50 * time.Millisecond, Forwarded: 10 * time.Millisecond}, got[0])

		// A slot is free: no wait, no Server-Timing.
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, request("rev", 1))
		require.Equal(t, http.StatusOK, rec.Code)
		assert.Empty(t, rec.Header().Values("Server-Timing"))
		assert.Len(t, got, 1, "the hook is called only for requests that waited")
		mustShutdown(t, h)
	})
}

// TestServerTimingKeepsTheReplicasOwn: the activator's value comes after
// the replica's Server-Timing values.
func TestServerTimingKeepsTheReplicasOwn(t *testing.T) {
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server-Timing", "db;dur=3")
	}))
	defer replica.Close()
	h := newTestHandler(t, Options{ServerTiming: Timing.ServerTiming})
	defer mustShutdown(t, h)
	require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
	rec, done := serve(h, request("rev", 0))
	require.Eventually(t, func() bool { return h.Waiting("rev") == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, h.SetReplicas("rev", []string{replica.Listener.Addr().String()}))
	<-done
	v := rec.Header().Values("Server-Timing")
	require.Len(t, v, 2)
	assert.Equal(t, "db;dur=3", v[0])
	assert.Regexp(t, `^ready;dur=[0-9.]+;desc="replica ready", queued;dur=[0-9.]+;desc="queued", forwarded;dur=[0-9.]+;desc="forwarded"$`, v[1])
}

// TestServerTimingOfARequestTurnedAway: a request that waited and was then
// answered by the activator itself (MaxWait, its timeout, a full line) has
// the breakdown of its wait too, without forwarded; the hook is told it
// was turned away and why.
func TestServerTimingOfARequestTurnedAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []Timing
		h := newTestHandler(t, Options{
			Transport: newFakeBackend(10 * time.Millisecond),
			ServerTiming: func(tm Timing) string {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, tm)
				return tm.ServerTiming()
			},
		})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1, MaxWait: 30 * time.Millisecond, MaxWaiting: 1}))
		start := time.Now()
		rec, done := serve(h, request("rev", 0))
		synctest.Wait()
		// The line holds one: the next is turned away at once.
		full := httptest.NewRecorder()
		h.ServeHTTP(full, request("rev", 1))
		<-done
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
		assert.Equal(t, []string{`queued;dur=30.0;desc="queued"`}, rec.Header().Values("Server-Timing"))
		require.Equal(t, http.StatusServiceUnavailable, full.Code, full.Body.String())
		assert.Equal(t, []string{`queued;dur=0.0;desc="queued"`}, full.Header().Values("Server-Timing"))
		require.Len(t, got, 2)
		assert.Equal(t, Timing{Revision: "rev", Arrived: start, Cold: true, TurnedAway: true, Outcome: OutcomeQueueFull}, got[0])
		assert.Equal(t, Timing{Revision: "rev", Arrived: start, Cold: true, Queued: 30 * time.Millisecond, TurnedAway: true, Outcome: OutcomeMaxWait}, got[1])
		mustShutdown(t, h)
	})
}

// TestServerTimingAfterARefusedConnection: a request whose replica refused
// the connection went back in line and was turned away there: one
// Server-Timing, its wait's, without forwarded.
func TestServerTimingAfterARefusedConnection(t *testing.T) {
	dead := deadAddr(t)
	h := newTestHandler(t, Options{ServerTiming: Timing.ServerTiming})
	defer mustShutdown(t, h)
	require.NoError(t, h.SetRevision("rev", RevisionConfig{MaxWait: 50 * time.Millisecond}))
	require.NoError(t, h.SetReplicas("rev", []string{dead}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request("rev", 0))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	assert.Regexp(t, `^queued;dur=[0-9.]+;desc="queued"$`, rec.Header().Get("Server-Timing"))
	assert.Len(t, rec.Header().Values("Server-Timing"), 1)
}
