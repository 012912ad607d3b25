package queue

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/stats"
)

func TestReporterPeriods(t *testing.T) {
	mock := clock.NewMock()
	t0 := mock.Now()
	h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mock.Add(250 * time.Millisecond) // each request takes 250 ms
	}), Config{Clock: mock})
	sent := make(chan []stats.Message, 10)
	sink := stats.SinkFunc(func(ctx context.Context, msgs []stats.Message) error {
		sent <- msgs
		return nil
	})
	rep, err := NewReporter(h.Recorder(), ReporterConfig{Revision: "ns/rev-1", Replica: "rev-1-pod", Clock: mock, Sink: sink})
	require.NoError(t, err)
	assert.Nil(t, rep.Latest())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rep.Run(ctx)

	// Period 1: two requests, one proxied, back to back from t0.
	serve(h, get())
	serve(h, get(ProxyHeader, ProxyHeaderValue))
	mock.Add(500 * time.Millisecond) // t0+1s: tick
	got := <-sent
	want := []stats.Message{{Revision: "ns/rev-1", Stat: stats.Stat{
		Source: "rev-1-pod", Concurrency: 0.5, ProxiedConcurrency: 0.25, RPS: 2, ProxiedRPS: 1,
		Uptime: time.Second, Time: t0.Add(time.Second),
	}}}
	assert.Equal(t, want, got)
	assert.Equal(t, want, rep.Latest())

	// Period 2: idle.
	mock.Add(time.Second)
	got = <-sent
	assert.Equal(t, []stats.Message{{Revision: "ns/rev-1", Stat: stats.Stat{
		Source: "rev-1-pod", Uptime: 2 * time.Second, Time: t0.Add(2 * time.Second),
	}}}, got)
	assert.Zero(t, rep.SendErrors())
}

func TestReporterCountsFailedSends(t *testing.T) {
	h := mustNew(t, okApp, Config{})
	rep, err := NewReporter(h.Recorder(), ReporterConfig{Revision: "r", Replica: "p", Period: time.Hour,
		Sink: stats.SinkFunc(func(context.Context, []stats.Message) error { return errors.New("autoscaler away") })})
	require.NoError(t, err)
	rep.ReportNow(context.Background())
	assert.Equal(t, uint64(1), rep.SendErrors())
	require.Len(t, rep.Latest(), 1, "a failed push still updates the scraped batch")
}
