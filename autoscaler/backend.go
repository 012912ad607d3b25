package autoscaler

import (
	"context"
	"time"
)

// Scaler is the host's scaler backend: it makes a revision run n replicas
// (patch a Deployment, resize a Nomad group, start or stop processes). The
// Runner calls it from its scale goroutines, never twice at a time for one
// revision (also when the revision is removed and added again while a call
// runs: the new one's calls wait), and only when the count it wants changes; a failed call is
// retried on the next tick. It must be idempotent: after a Runner restart
// the first call may repeat the current count.
type Scaler interface {
	Scale(ctx context.Context, revision string, n int) error
}

// ScalerFunc adapts a function to a Scaler.
type ScalerFunc func(ctx context.Context, revision string, n int) error

// Scale calls f(ctx, revision, n).
func (f ScalerFunc) Scale(ctx context.Context, revision string, n int) error {
	return f(ctx, revision, n)
}

// ReadyCounter counts the replicas of a revision that are ready to serve.
// The Runner calls it for every revision on every tick, from Run's
// goroutine with no lock held, and from Runner.Add; it must be fast (serve
// it from a cache). An error skips the revision for that tick; a revision
// with no replicas is 0, not an error.
type ReadyCounter interface {
	ReadyCount(revision string) (int, error)
}

// ReadyCounterFunc adapts a function to a ReadyCounter.
type ReadyCounterFunc func(revision string) (int, error)

// ReadyCount calls f(revision).
func (f ReadyCounterFunc) ReadyCount(revision string) (int, error) { return f(revision) }

// ProxyTimer reports how long the activator has been in a revision's request
// path: Knative's ServerlessService ProxyFor, which its scale-to-zero grace
// period waits on. The host's front door knows it (revision.Reconciler's
// ProxyFor, for one); without a ProxyTimer the Runner infers it from its own
// decisions and cannot see a front door that keeps serving from replicas
// because no activator is ready.
//
// ProxyFor returns how long the front door has been sending the revision's
// requests through the activator at now, and 0 when it does not (Serve
// mode). ok false means unknown (a revision the host has not set up yet):
// the Runner then infers it as if there were no ProxyTimer. The Runner calls
// it from Run's goroutine with no lock held, for each Inactive revision on
// each tick; it must be fast.
type ProxyTimer interface {
	ProxyFor(revision string, now time.Time) (d time.Duration, ok bool)
}

// ProxyTimerFunc adapts a function to a ProxyTimer.
type ProxyTimerFunc func(revision string, now time.Time) (time.Duration, bool)

// ProxyFor calls f(revision, now).
func (f ProxyTimerFunc) ProxyFor(revision string, now time.Time) (time.Duration, bool) {
	return f(revision, now)
}
