package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// scripted returns attempt results in order, then the last one forever,
// and records when each attempt was made.
func scripted(start time.Time, results []bool, at *[]time.Duration) func(context.Context) error {
	i := 0
	return func(context.Context) error {
		*at = append(*at, time.Since(start))
		ok := results[min(i, len(results)-1)]
		i++
		if ok {
			return nil
		}
		return errors.New("refused")
	}
}

type change struct {
	at time.Duration
	ok bool
}

// The readiness loop follows Kubernetes: the first attempt after
// initialDelaySeconds, one every periodSeconds, ready after
// successThreshold passes in a row, not ready after failureThreshold
// failures in a row.
func TestProberReadinessThresholds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var at []time.Duration
		var changes []change
		p := newProber(&ProbeSpec{Kind: "tcp", InitialDelay: 2 * time.Second, Period: time.Second, Timeout: time.Second,
			SuccessThreshold: 2, FailureThreshold: 3}, 1, nil, "")
		//                      attempt at: 2s     3s     4s    5s    6s     7s     8s    9s
		p.attempt = scripted(start, []bool{false, true, true, false, false, false, true, true}, &at)
		ctx, cancel := context.WithCancel(context.Background())
		go p.run(ctx, func(r probeResult) {
			if r.ok || len(changes) == 0 || changes[len(changes)-1].ok {
				changes = append(changes, change{time.Since(start), r.ok})
			}
		})
		time.Sleep(9500 * time.Millisecond)
		cancel()
		synctest.Wait()
		s := time.Second
		assert.Equal(t, []time.Duration{2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s, 8 * s, 9 * s}, at)
		assert.Equal(t, []change{
			{2 * s, false}, // the first failure is reported (why not ready)
			{4 * s, true},  // two passes in a row
			{7 * s, false}, // three failures in a row
			{9 * s, true},
		}, changes)
	})
}

// Without periodSeconds an HTTP or TCP readiness probe is aggressive until
// the first success: attempts a tenth of the elapsed time apart, 1 ms at
// first, then every period.
func TestProberAggressiveUntilReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var at []time.Duration
		p := newProber(nil, 1, nil, "") // the default: TCP, aggressive, period 10 s
		p.attempt = scripted(start, []bool{false, false, true}, &at)
		ctx, cancel := context.WithCancel(context.Background())
		go p.run(ctx, func(probeResult) {})
		time.Sleep(25 * time.Second)
		cancel()
		synctest.Wait()
		ms := time.Millisecond
		assert.Equal(t, []time.Duration{0, 1 * ms, 2 * ms, 10002 * ms, 20002 * ms}, at)
	})
}

// A program that starts answering at some moment is noticed soon after:
// within a tenth of its start-up (at least 1 ms), where Knative's fixed
// 50 ms period waits up to 50 ms. Exec probes keep the 50 ms.
func TestProberNoticesStartSoon(t *testing.T) {
	for _, tc := range []struct {
		kind     string
		up       time.Duration // the program answers from then on
		noticed  time.Duration // the first passing attempt, at most
		attempts int           // failed attempts before, at most
	}{
		{"tcp", 0, 0, 0},
		{"tcp", 500 * time.Microsecond, time.Millisecond, 1},
		{"tcp", 20 * time.Millisecond, 22 * time.Millisecond, 20},
		{"http", 35 * time.Millisecond, 39 * time.Millisecond, 25},
		{"http", 300 * time.Millisecond, 330 * time.Millisecond, 46},
		{"http", 2 * time.Second, 2050 * time.Millisecond, 82},
		{"exec", 35 * time.Millisecond, 50 * time.Millisecond, 1},
	} {
		t.Run(fmt.Sprintf("%s-%v", tc.kind, tc.up), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				p := newProber(&ProbeSpec{Kind: tc.kind, Command: []string{"true"}, Period: 10 * time.Second, Timeout: time.Second,
					SuccessThreshold: 1, FailureThreshold: 3, Aggressive: true}, 1, nil, "")
				failed := 0
				p.attempt = func(context.Context) error {
					if time.Since(start) >= tc.up {
						return nil
					}
					failed++
					return errors.New("refused")
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				readyAt := make(chan time.Duration, 1)
				go p.run(ctx, func(r probeResult) {
					if r.ok {
						readyAt <- time.Since(start)
					}
				})
				got := <-readyAt
				assert.GreaterOrEqual(t, got, tc.up)
				assert.LessOrEqual(t, got, tc.noticed, "noticed late")
				assert.LessOrEqual(t, failed, tc.attempts, "too many attempts")
				cancel()
				synctest.Wait()
			})
		})
	}
}

func TestStartupGap(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct{ elapsed, want time.Duration }{
		{0, ms}, {5 * ms, ms}, {10 * ms, ms}, {35 * ms, 3500 * time.Microsecond},
		{200 * ms, 20 * ms}, {500 * ms, 50 * ms}, {10 * time.Second, 50 * ms},
	} {
		assert.Equal(t, tc.want, startupGap(tc.elapsed), "after %v", tc.elapsed)
	}
}

// A liveness probe reports the program dead after failureThreshold
// failures in a row, once.
func TestProberLiveness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var at []time.Duration
		p := newProber(&ProbeSpec{Kind: "http", Path: "/", Period: time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 2}, 1, nil, "")
		p.attempt = scripted(start, []bool{true, false, true, false, false}, &at)
		var dead []time.Duration
		p.runLiveness(context.Background(), func(error) { dead = append(dead, time.Since(start)) })
		assert.Equal(t, []time.Duration{4 * time.Second}, dead, "after the 2nd failure in a row, at 4 s")
		assert.Len(t, at, 5)
	})
}
