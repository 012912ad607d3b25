package autoscalertest

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/stats"
)

// TB is the part of testing.TB a Harness uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// waitLimit bounds how long the harness waits (in real time) for the
// runner to act on a tick; hitting it means a bug, reported with Fatalf.
const waitLimit = 10 * time.Second

// Harness runs a real autoscaler.Runner on a mock clock with a FakeScaler
// as its backend, so that a scaling policy can be tested in simulated time:
//
//	h := autoscalertest.NewHarness(t)
//	spec, _ := autoscaler.DefaultConfig().RevisionSpec(nil, 10) // target 7 per replica
//	h.Add("default/hello", spec)
//	h.SetLoad("default/hello", stats.Stat{Concurrency: 35})
//	h.Advance(60 * time.Second)
//	if got := h.Scale("default/hello"); got != 5 { t.Fatalf("scale = %d, want 5", got) }
//
// Time moves only in Advance, one second at a time: each second every load
// set with SetLoad is recorded (as a replica's report), then the clock
// moves, and on each tick (every 2 s) the harness waits until the runner has
// decided every revision and made the resulting Scale calls. Replicas are
// ready as soon as they are asked for unless Scaler.SetReady pins a count.
// Scraping is not simulated: load comes from SetLoad and Push. The runner's
// ProxyTimer is the harness: it answers "unknown" (the runner infers the
// activator's time in the request path) until SetProxyMode is called for a
// revision.
//
// The clock starts at the Unix epoch, an even second. A Harness is meant
// for one test goroutine.
type Harness struct {
	Clock  *clock.Mock
	Scaler *FakeScaler
	Runner *autoscaler.Runner

	t     TB
	start time.Time
	tick  time.Duration
	loads map[string]stats.Stat
	revs  map[string]bool

	mu      sync.Mutex // protects history, count, proxy
	history map[string][]autoscaler.Decision
	count   map[string]int
	proxy   map[string]time.Time // when each front door entered Proxy mode; zero: Serve
	notify  chan struct{}
}

// NewHarness starts a Runner with a mock clock and a FakeScaler; it stops
// when the test ends.
func NewHarness(t TB) *Harness {
	t.Helper()
	h := &Harness{
		Clock:   clock.NewMock(),
		Scaler:  NewFakeScaler(),
		t:       t,
		tick:    autoscaler.DefaultTickInterval,
		loads:   make(map[string]stats.Stat),
		revs:    make(map[string]bool),
		history: make(map[string][]autoscaler.Decision),
		count:   make(map[string]int),
		proxy:   make(map[string]time.Time),
		notify:  make(chan struct{}, 1),
	}
	h.start = h.Clock.Now()
	r, err := autoscaler.NewRunner(autoscaler.Options{
		Scaler:     h.Scaler,
		Ready:      h.Scaler,
		Clock:      h.Clock,
		ProxyTimer: autoscaler.ProxyTimerFunc(h.proxyFor),
	})
	if err != nil {
		t.Fatalf("autoscalertest: %v", err)
	}
	h.Runner = r
	r.Subscribe(h.observe)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

func (h *Harness) observe(d autoscaler.Decision) {
	h.mu.Lock()
	h.history[d.Revision] = append(h.history[d.Revision], d)
	h.count[d.Revision]++
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

// SetProxyMode plays the revision's front door: from now on it sends
// requests through the activator (proxy true) or straight to the replicas
// (false, as a front door does when no activator is ready), and the runner's
// ProxyTimer reports the time since it last turned to proxy, or 0. Turning
// to proxy when already there keeps the earlier start.
func (h *Harness) SetProxyMode(revision string, proxy bool) {
	now := h.Clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	since, ok := h.proxy[revision]
	switch {
	case !proxy:
		h.proxy[revision] = time.Time{}
	case !ok || since.IsZero():
		h.proxy[revision] = now
	}
}

// proxyFor is the runner's ProxyTimer.
func (h *Harness) proxyFor(revision string, now time.Time) (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	since, ok := h.proxy[revision]
	if !ok || since.IsZero() {
		return 0, ok
	}
	return now.Sub(since), true
}

// Add adds a revision to the runner and waits for its initial Scale call.
func (h *Harness) Add(revision string, spec autoscaler.Spec) {
	h.t.Helper()
	if err := h.Runner.Add(revision, spec); err != nil {
		h.t.Fatalf("autoscalertest: %v", err)
	}
	h.revs[revision] = true
	h.flush()
}

// SetLoad makes a pretend replica report s for revision every simulated
// second from now on (its Time is set to each second); a zero Stat stops
// it.
func (h *Harness) SetLoad(revision string, s stats.Stat) {
	if s == (stats.Stat{}) {
		delete(h.loads, revision)
		return
	}
	h.loads[revision] = s
}

// Push sends one stat now through Runner.Poke, as an activator does, and
// if it wakes a revision at zero waits for the resulting decision and Scale
// call.
func (h *Harness) Push(revision string, s stats.Stat) {
	h.t.Helper()
	d, ok := h.Runner.Decision(revision)
	if !ok {
		h.t.Fatalf("autoscalertest: Push to unknown revision %q", revision)
	}
	wakes := d.Recommended <= 0 && s.Concurrency != 0 // as Runner.Poke: at zero or not yet decided
	h.mu.Lock()
	before := h.count[revision]
	h.mu.Unlock()
	h.Runner.Poke(revision, s)
	if wakes {
		h.waitFor(func() bool { return h.count[revision] > before }, "the poke's decision for "+revision)
		h.flush()
	}
}

// Advance moves the clock forward by d, a whole number of seconds, second
// by second (see Harness).
func (h *Harness) Advance(d time.Duration) {
	h.t.Helper()
	if d < 0 || d%time.Second != 0 {
		h.t.Fatalf("autoscalertest: Advance(%v): want a whole number of seconds ≥ 0", d)
	}
	for range int(d / time.Second) {
		now := h.Clock.Now()
		for rev, s := range h.loads {
			s.Time = now
			if err := h.Runner.Record(rev, s); err != nil {
				h.t.Fatalf("autoscalertest: %v", err)
			}
		}
		h.Clock.Add(time.Second)
		now = h.Clock.Now()
		if now.Sub(h.start)%h.tick == 0 {
			h.waitFor(func() bool {
				for rev := range h.revs {
					if hs := h.history[rev]; len(hs) == 0 || hs[len(hs)-1].Time.Before(now) {
						return false
					}
				}
				return true
			}, "the tick at "+now.Sub(h.start).String())
			h.flush()
		}
	}
}

// waitFor waits until cond, evaluated under h.mu, holds.
func (h *Harness) waitFor(cond func() bool, what string) {
	h.t.Helper()
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	for {
		h.mu.Lock()
		ok := cond()
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-h.notify:
		case <-limit.C:
			h.t.Fatalf("autoscalertest: gave up waiting for %s", what)
			return
		}
	}
}

func (h *Harness) flush() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := h.Runner.Flush(ctx); err != nil {
		h.t.Fatalf("autoscalertest: waiting for Scale calls: %v", err)
	}
}

// Remove removes a revision from the runner and forgets its load and proxy mode.
func (h *Harness) Remove(revision string) {
	h.Runner.Remove(revision)
	delete(h.revs, revision)
	delete(h.loads, revision)
	h.mu.Lock()
	delete(h.proxy, revision)
	h.mu.Unlock()
}

// Scale returns revision's scale after the last successful Scale call, or
// −1 if it was never scaled.
func (h *Harness) Scale(revision string) int {
	if n, ok := h.Scaler.Current(revision); ok {
		return n
	}
	return -1
}

// Decision returns the runner's latest decision for revision.
func (h *Harness) Decision(revision string) autoscaler.Decision {
	h.t.Helper()
	d, ok := h.Runner.Decision(revision)
	if !ok {
		h.t.Fatalf("autoscalertest: unknown revision %q", revision)
	}
	return d
}

// Decisions returns every decision published for revision so far.
func (h *Harness) Decisions(revision string) []autoscaler.Decision {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.history[revision])
}

// Revisions returns the revisions added and not removed, sorted.
func (h *Harness) Revisions() []string {
	return slices.Sorted(maps.Keys(h.revs))
}

// Elapsed is the simulated time since the harness started.
func (h *Harness) Elapsed() time.Duration { return h.Clock.Now().Sub(h.start) }
