package activator

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/stats"
)

// okAfter returns a transport whose replicas answer after advancing the
// mock clock by d, so that a request spans d of fake time.
func okAfter(mock *clock.Mock, d time.Duration) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mock.Add(d)
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
	})
}

// Knative's activator stats, step by step: the immediate stat on the first
// request, the first report reduced by it (firstAdj), plain reports after,
// and an idle period that drops the revision so that its next request
// pokes again.
func TestStatsScenario(t *testing.T) {
	mock := clock.NewMock()
	t0 := mock.Now()
	var pokes []stats.Stat
	h := newTestHandler(t, Options{
		ThrottlerOptions: ThrottlerOptions{Clock: mock},
		Name:             "act-1",
		Transport:        okAfter(mock, 500*time.Millisecond),
		Poker:            PokerFunc(func(_ string, s stats.Stat) { pokes = append(pokes, s) }),
	})
	require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
	require.NoError(t, h.SetReplicas("rev", addrs(1)))
	do := func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, request("rev", 0))
		require.Equal(t, http.StatusOK, rec.Code)
	}
	msg := func(at time.Duration, conc, rps float64) []stats.Message {
		return []stats.Message{{Revision: "rev", Stat: stats.Stat{Source: "act-1", Concurrency: conc, RPS: rps, Uptime: at, Time: t0.Add(at)}}}
	}

	for _, step := range []struct {
		name      string
		requests  int           // sequential requests of 500 ms each
		idle      time.Duration // then this much idle time
		want      []stats.Message
		wantPokes int
	}{
		{"first request pokes; its report leaves it out", 1, 500 * time.Millisecond, msg(time.Second, 0, 0), 1},
		{"busy second", 2, 0, msg(2*time.Second, 1, 2), 1},
		{"idle second is reported, then dropped", 0, time.Second, msg(3*time.Second, 0, 0), 1},
		{"nothing to report", 0, time.Second, nil, 1},
		{"next request pokes again", 1, 500 * time.Millisecond, msg(5*time.Second, 0, 0), 2},
		{"half busy", 1, 500 * time.Millisecond, msg(6*time.Second, 0.5, 1), 2},
	} {
		for range step.requests {
			do()
		}
		mock.Add(step.idle)
		assert.Equal(t, step.want, h.Stats(mock.Now(), time.Second), step.name)
		assert.Len(t, pokes, step.wantPokes, step.name)
	}
	assert.Equal(t, []stats.Stat{
		{Concurrency: 1, RPS: 1, Uptime: 0, Time: t0},
		{Concurrency: 1, RPS: 1, Uptime: 4 * time.Second, Time: t0.Add(4 * time.Second)},
	}, pokes)
}

// A request counts toward its revision's load while it waits.
func TestWaitingRequestsCountAsLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHandler(t, Options{Transport: newFakeBackend(0)})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
		_, d1 := serve(h, request("rev", 0))
		_, d2 := serve(h, request("rev", 1))
		synctest.Wait()
		time.Sleep(time.Second)
		first := h.Stats(time.Now(), time.Second)
		require.Len(t, first, 1)
		assert.Equal(t, 1.0, first[0].Stat.Concurrency, "two waiting, minus the one already poked")
		time.Sleep(time.Second)
		second := h.Stats(time.Now(), time.Second)
		require.Len(t, second, 1)
		assert.Equal(t, 2.0, second[0].Stat.Concurrency)
		assert.Equal(t, 0.0, second[0].Stat.RPS)
		require.NoError(t, h.SetReplicas("rev", addrs(1)))
		<-d1
		<-d2
		mustShutdown(t, h)
	})
}

func TestRunSendsToSink(t *testing.T) {
	mock := clock.NewMock()
	got := make(chan []stats.Message, 1)
	h := newTestHandler(t, Options{
		ThrottlerOptions: ThrottlerOptions{Clock: mock},
		Name:             "act-2",
		Transport:        okAfter(mock, 0),
		ReportingPeriod:  2 * time.Second,
		Sink: stats.SinkFunc(func(_ context.Context, msgs []stats.Message) error {
			got <- msgs
			return nil
		}),
	})
	require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
	require.NoError(t, h.SetReplicas("rev", addrs(1)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Run(ctx)
	}()
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), request("rev", 0))
	}
	mock.Add(2 * time.Second)
	msgs := <-got
	require.Len(t, msgs, 1)
	assert.Equal(t, "rev", msgs[0].Revision)
	assert.Equal(t, "act-2", msgs[0].Stat.Source)
	assert.Equal(t, 1.0, msgs[0].Stat.RPS, "(3 requests − the poked one) / 2 s")
	cancel()
	<-done
	assert.Equal(t, msgs, h.Reporter().Latest())
}

// Two Handlers without a Name report under different Sources: the
// autoscaler counts one stat per source and second, so a shared default
// would count two activators' load as one's.
func TestDefaultNamesDiffer(t *testing.T) {
	a, err := New(Options{})
	require.NoError(t, err)
	b, err := New(Options{})
	require.NoError(t, err)
	for _, h := range []*Handler{a, b} {
		require.NoError(t, h.SetRevision("rev", RevisionConfig{MaxWait: time.Millisecond}))
		h.ServeHTTP(httptest.NewRecorder(), request("rev", 0))
	}
	ma, mb := a.Stats(time.Now(), time.Second), b.Stats(time.Now(), time.Second)
	require.Len(t, ma, 1)
	require.Len(t, mb, 1)
	assert.NotEqual(t, ma[0].Stat.Source, mb[0].Stat.Source)
	assert.True(t, strings.HasPrefix(ma[0].Stat.Source, DefaultName+"-"), ma[0].Stat.Source)
}
