package stats

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReporterOnMockClock(t *testing.T) {
	mock := clock.NewMock()
	mock.Set(t0)
	rec := NewRecorder(t0)

	var mu sync.Mutex
	var sent [][]Message
	sink := SinkFunc(func(_ context.Context, msgs []Message) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, msgs)
		if len(sent) == 2 {
			return errors.New("autoscaler unreachable")
		}
		return nil
	})
	collect := func(now time.Time, period time.Duration) []Message {
		st := rec.Report(now).Stat(period)
		st.Source, st.Time = "pod-a", now
		return []Message{{Revision: "rev", Stat: st}}
	}
	r, err := NewReporter(collect, ReporterOptions{Clock: mock, Sink: sink})
	require.NoError(t, err)
	assert.Nil(t, r.Latest())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()

	rec.In(t0, false)
	rec.In(t0.Add(500*time.Millisecond), false)
	mock.Add(time.Second)
	waitSent := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(sent) >= n }, 5*time.Second, time.Millisecond)
	}
	waitSent(1)
	latest := r.Latest()
	require.Len(t, latest, 1)
	assert.InDelta(t, 1.5, latest[0].Stat.Concurrency, 1e-9)
	assert.Equal(t, 2.0, latest[0].Stat.RPS)
	assert.True(t, latest[0].Stat.Time.Equal(t0.Add(time.Second)))

	mock.Add(time.Second)
	waitSent(2)
	require.Eventually(t, func() bool { return r.SendErrors() == 1 }, 5*time.Second, time.Millisecond)
	mu.Lock()
	assert.InDelta(t, 2.0, sent[1][0].Stat.Concurrency, 1e-9)
	mu.Unlock()

	cancel()
	<-done
}

func TestNewReporterValidates(t *testing.T) {
	_, err := NewReporter(nil, ReporterOptions{})
	assert.ErrorContains(t, err, "collect function is nil")
	_, err = NewReporter(func(time.Time, time.Duration) []Message { return nil }, ReporterOptions{Period: -time.Second})
	assert.ErrorContains(t, err, "ReporterOptions.Period = -1s, must be >= 0")
	r, err := NewReporter(func(time.Time, time.Duration) []Message { return nil }, ReporterOptions{})
	require.NoError(t, err)
	assert.Equal(t, time.Second, r.Period())
}

// TestReportNowSerialised: ReportNow from another goroutine waits for the
// report in progress, so a Sink never sees two Sends at once.
func TestReportNowSerialised(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var inSend, maxInSend atomic.Int32
		release := make(chan struct{})
		sink := SinkFunc(func(context.Context, []Message) error {
			n := inSend.Add(1)
			if n > maxInSend.Load() {
				maxInSend.Store(n)
			}
			<-release
			inSend.Add(-1)
			return nil
		})
		r, err := NewReporter(func(time.Time, time.Duration) []Message { return []Message{{Revision: "rev"}} },
			ReporterOptions{Sink: sink})
		require.NoError(t, err)
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { r.ReportNow(context.Background()) })
		}
		synctest.Wait()
		assert.Equal(t, int32(1), inSend.Load(), "one Send at a time")
		close(release)
		wg.Wait()
		assert.Equal(t, int32(1), maxInSend.Load())
	})
}
