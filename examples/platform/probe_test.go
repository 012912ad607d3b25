package main

import (
	"context"
	"errors"
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

// Without periodSeconds a readiness probe is aggressive until the first
// success: every 50 ms, then every period.
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
		assert.Equal(t, []time.Duration{0, 50 * ms, 100 * ms, 10100 * ms, 20100 * ms}, at)
	})
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
