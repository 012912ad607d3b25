// Package autoscalertest helps test code that uses the autoscaler package:
// a fake scaler backend that records calls, a Harness that runs a real
// autoscaler.Runner on a mock clock so a scaling policy can be tested in
// simulated minutes ("feed this load, advance 60 s, expect 5 replicas"),
// and the decider scenario tables the package is tested with.
package autoscalertest

import (
	"context"
	"slices"
	"sync"
)

// Call is one Scale call received by a FakeScaler.
type Call struct {
	Revision string
	N        int
	// Err is what the call returned.
	Err error
}

// FakeScaler is a scaler backend for tests. It implements
// autoscaler.Scaler, recording every call, and autoscaler.ReadyCounter:
// by default a revision's replicas are ready as soon as they are asked for
// (its last successful scale, 0 before any), unless SetReady pins a count.
// The zero value is ready to use; it is safe for simultaneous use.
type FakeScaler struct {
	mu    sync.Mutex // protects the rest
	calls []Call
	scale map[string]int
	ready map[string]int
	err   error
}

// NewFakeScaler returns an empty FakeScaler.
func NewFakeScaler() *FakeScaler { return new(FakeScaler) }

// Scale records the call and returns the error set by SetError, if any;
// otherwise revision's scale becomes n.
func (f *FakeScaler) Scale(_ context.Context, revision string, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Revision: revision, N: n, Err: f.err})
	if f.err != nil {
		return f.err
	}
	if f.scale == nil {
		f.scale = make(map[string]int)
	}
	f.scale[revision] = n
	return nil
}

// ReadyCount returns the count pinned by SetReady, else the revision's
// current scale.
func (f *FakeScaler) ReadyCount(revision string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.ready[revision]; ok {
		return n, nil
	}
	return f.scale[revision], nil
}

// SetReady pins revision's ready count to n; a negative n unpins it, so
// that it follows the scale again.
func (f *FakeScaler) SetReady(revision string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n < 0 {
		delete(f.ready, revision)
		return
	}
	if f.ready == nil {
		f.ready = make(map[string]int)
	}
	f.ready[revision] = n
}

// SetError makes every following Scale call fail with err (nil: succeed).
func (f *FakeScaler) SetError(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// Current returns revision's scale after the last successful call, and
// false if it was never scaled.
func (f *FakeScaler) Current(revision string) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.scale[revision]
	return n, ok
}

// Calls returns a copy of every call so far, in order.
func (f *FakeScaler) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// CallsFor returns the counts revision was scaled to (failed calls
// included), in order.
func (f *FakeScaler) CallsFor(revision string) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ns []int
	for _, c := range f.calls {
		if c.Revision == revision {
			ns = append(ns, c.N)
		}
	}
	return ns
}
