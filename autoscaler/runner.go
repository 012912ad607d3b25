package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/stats"
)

var (
	// ErrRevisionExists is returned by Runner.Add for a revision it
	// already scales.
	ErrRevisionExists = errors.New("autoscaler: revision already added")
	// ErrUnknownRevision is returned by Runner.Update for a revision it
	// does not scale.
	ErrUnknownRevision = errors.New("autoscaler: unknown revision")
)

var _ stats.Sink = (*Runner)(nil)

// Defaults for Options.
const (
	DefaultScaleWorkers  = 8
	DefaultScrapeWorkers = 32
)

// Options configure a Runner. Scaler and Ready are required; the zero value
// of every other field is a working default.
type Options struct {
	// Scaler applies replica counts. Required.
	Scaler Scaler
	// Ready counts ready replicas. Required.
	Ready ReadyCounter
	// Scraper reads replica load for revisions with Spec.ReplicaStats
	// every ScrapeInterval. Nil means replicas push their stats (Send).
	Scraper Scraper
	// Clock drives ticks and scrapes and times pokes and records. Nil
	// means the real clock.
	Clock clock.Clock
	// TickInterval is how often every revision is decided. Zero means
	// DefaultTickInterval (2s, as Knative); must not be negative.
	TickInterval time.Duration
	// ScrapeInterval is how often revisions are scraped. Zero means
	// DefaultScrapeInterval (1s, as Knative); must not be negative.
	ScrapeInterval time.Duration
	// ScaleWorkers is how many Scale calls may run at once (for different
	// revisions). Zero means DefaultScaleWorkers (8); must not be negative.
	ScaleWorkers int
	// ScrapeWorkers is how many scrapes may run at once. Zero means
	// DefaultScrapeWorkers (32); must not be negative.
	ScrapeWorkers int
	// ProxyTimer reports how long the activator has been in each revision's
	// request path, which the scale-to-zero grace period waits on, as
	// Knative's waits on its SKS ProxyFor: a revision with the activator not
	// in its path keeps its last replica; otherwise it goes to zero once it
	// has been inactive for the grace period (and pod retention), or the
	// activator has been in the path that long, on the first tick after.
	// Nil, or ok false for a revision, means the runner infers the time from
	// its own decisions (see Decision.ActivatorInPath): exact only for a
	// front door that switches as soon as it is told and always has a ready
	// activator.
	ProxyTimer ProxyTimer
	// Logger receives failed Scale calls, scrapes and ready counts at warn
	// level. Nil means silent.
	Logger *slog.Logger
}

func (o *Options) validate() error {
	var errs []error
	if o.Scaler == nil {
		errs = append(errs, errors.New("autoscaler: Options.Scaler is nil, want a scaler backend"))
	}
	if o.Ready == nil {
		errs = append(errs, errors.New("autoscaler: Options.Ready is nil, want a ready-replica counter"))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"TickInterval", int64(o.TickInterval)}, {"ScrapeInterval", int64(o.ScrapeInterval)},
		{"ScaleWorkers", int64(o.ScaleWorkers)}, {"ScrapeWorkers", int64(o.ScrapeWorkers)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("autoscaler: Options.%s = %d, want ≥ 0 (0 means the default)", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// entry is one revision in a Runner.
type entry struct {
	name string
	coll *collection
	// lastRec is the decider's last Desired (−1 before its first), read by
	// Poke without the lock.
	lastRec      atomic.Int32
	replicaStats atomic.Bool  // spec.ReplicaStats, for the scrape loop
	inactive     atomic.Bool  // life.activity == Inactive, for asking the ProxyTimer
	window       atomic.Int64 // spec.StableWindow, for scrapes
	scraping     atomic.Bool  // in the scrape queue or being scraped
	poked        bool         // in Runner.pokes; guarded by Runner.pokeMu
	idx          int          // position in Runner.order; guarded by Runner.mu

	mu      sync.Mutex // protects the rest
	removed bool
	spec    Spec
	dec     Decider
	life    lifecycle
	rec     Recommendation
	hasRec  bool
	last    Decision
	pending int  // scale to apply (−1: none)
	applied int  // last scale the backend accepted (−1: unknown)
	queued  bool // in the scale queue, being scaled, or parked
	calling bool // a Scale call for this entry is running
	// holdUntil, for an adopted revision, is when its windows are full:
	// until then it is not scaled below its ready count.
	holdUntil time.Time
}

// Runner autoscales many revisions: Knative's MultiScaler, MetricCollector
// and the scaling half of its KPA reconciler in one object, without one
// goroutine per revision. One goroutine (Run's) walks all revisions every
// TickInterval: it averages each revision's load, steps its Decider, applies
// bounds and the scale-to-zero rules, and publishes a Decision; a pool of
// goroutines makes the resulting Scale calls, and another scrapes. At 10,000
// revisions a tick takes a few milliseconds of one core.
//
// A tick decides on the load through the last complete second: at a tick
// at 12:00:04.3 the windows end with the second 12:00:03–12:00:04, and the
// stats stamped within 12:00:04 wait for the next tick. So a decision does
// not depend on whether a reporter or a scrape whose period ends with the
// tick (an activator and a runner started together report and tick at the
// same instants) got its stat in before the tick, and a one-bucket panic
// window always reads a whole second of data; the price is that a tick
// sees a stat up to a second later than Knative's would when the stat wins
// that race. A stat that arrives after the tick that read its second is
// still recorded, for the windows that cover it at later ticks. Knative's
// windows read "now", with the current, partial second: a race its own
// 2 s tick and 1 s scrapes and reports, started together, mostly lose, so
// that a one-second panic window reads 0. The arithmetic of the windows and
// the decider is Knative's either way.
//
// Load comes in through Send (the runner is a stats.Sink), Poke, Record and
// the Scraper. Poke is the scale-from-zero fast path: when a revision whose
// last recommendation was zero gets load, it is decided at once instead of
// at the next tick, on everything recorded so far, its own stat included.
//
// The ready count of every revision is read from Options.Ready on each tick
// and when it is added (more than one ready replica then starts its decider
// in panic, so a restarted runner does not scale running revisions down).
// Whether the activator is in a revision's request path, and for how long,
// which the scale-to-zero grace period waits on, is read from
// Options.ProxyTimer for inactive revisions; without one it is inferred from
// the runner's own decisions (see Decision.ActivatorInPath).
//
// All methods are safe for simultaneous use. Subscribers, the ReadyCounter
// and the ProxyTimer are called from Run's goroutine with no lock held (the
// ReadyCounter also from Add); the Scaler from the scale goroutines.
type Runner struct {
	opts   Options
	clock  clock.Clock
	logger *slog.Logger
	ticker *clock.Ticker
	scrape *clock.Ticker // nil without a Scraper

	mu      sync.RWMutex // protects entries, order
	entries map[string]*entry
	order   []*entry

	pokeMu sync.Mutex // protects pokes, entry.poked
	pokes  []*entry
	pokeCh chan struct{}

	scaleQ  *workQueue
	scrapeQ *workQueue

	// A revision removed while its Scale call runs may be added again
	// under the same name at once; the new entry's calls wait for the old
	// one, so that the backend never gets two calls at a time for one
	// revision and the newest count lands last. Lock order: mu, entry.mu,
	// flightMu, then the work queue's.
	flightMu  sync.Mutex        // protects draining, parked
	draining  map[string]*entry // removed entries whose Scale call still runs, by name
	parked    []*entry          // entries waiting for a draining call of their name
	nDraining atomic.Int32      // len(draining), so that workers skip flightMu when 0

	subMu sync.Mutex // serializes changes to subs
	subs  atomic.Pointer[[]*subscription]

	running atomic.Bool

	// Owned by Run's goroutine.
	snap  []*entry
	batch []*entry
	out   []Decision
}

type subscription struct{ fn func(Decision) }

// NewRunner returns a Runner; call Run to start it. Its tickers start at
// once, so a test with a mock clock may advance the clock as soon as
// NewRunner returns.
func NewRunner(opts Options) (*Runner, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = clock.New()
	}
	if opts.TickInterval == 0 {
		opts.TickInterval = DefaultTickInterval
	}
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = DefaultScrapeInterval
	}
	if opts.ScaleWorkers == 0 {
		opts.ScaleWorkers = DefaultScaleWorkers
	}
	if opts.ScrapeWorkers == 0 {
		opts.ScrapeWorkers = DefaultScrapeWorkers
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		opts:     opts,
		clock:    opts.Clock,
		logger:   opts.Logger,
		entries:  make(map[string]*entry),
		draining: make(map[string]*entry),
		pokeCh:   make(chan struct{}, 1),
		scaleQ:   newWorkQueue(),
		scrapeQ:  newWorkQueue(),
	}
	r.ticker = r.clock.Ticker(opts.TickInterval)
	if opts.Scraper != nil {
		r.scrape = r.clock.Ticker(opts.ScrapeInterval)
	}
	return r, nil
}

// Run ticks, pokes, scrapes and scales until ctx is done, then waits for its
// goroutines (a Scale or scrape in progress gets the cancelled ctx) and
// returns nil. It may be called once.
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("autoscaler: Runner.Run called twice")
	}
	defer r.ticker.Stop()
	var wg sync.WaitGroup
	for range r.opts.ScaleWorkers {
		wg.Go(func() { r.scaleWorker(ctx) })
	}
	var scrapeC <-chan time.Time
	if r.scrape != nil {
		defer r.scrape.Stop()
		scrapeC = r.scrape.C
		for range r.opts.ScrapeWorkers {
			wg.Go(func() { r.scrapeWorker(ctx) })
		}
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case now := <-r.ticker.C:
			r.tick(now)
		case <-r.pokeCh:
			r.decidePoked()
		case <-scrapeC:
			r.queueScrapes()
		}
	}
}

// Add starts autoscaling revision with spec. It reads the ready count at
// once: more than one ready replica starts the decider in panic (no
// scale-down until it has seen a stable window of load), and if fewer than
// spec.InitialScale replicas are ready it asks the Scaler for InitialScale
// right away, as creating a Knative revision's Deployment does. It returns
// ErrRevisionExists if revision is already added and spec.Validate's error
// if spec is invalid.
func (r *Runner) Add(revision string, spec Spec) error { return r.add(revision, spec, false) }

// Adopt starts autoscaling revision, which another runner scaled until now,
// with spec: a take-over after the owner of the revision's bucket died or
// let it go (see Shards). Unlike Add it makes no initial-scale call, as
// the revision was created and scaled before, and for a full
// spec.StableWindow it does not scale the revision below the replicas
// ready at each tick, while its windows, empty at first, fill with load
// (knative/serving#4795: a new autoscaler must not read its half-filled
// windows as a drop in load). Scale-ups apply at once. It returns
// ErrRevisionExists and spec.Validate's errors as Add does.
func (r *Runner) Adopt(revision string, spec Spec) error { return r.add(revision, spec, true) }

func (r *Runner) add(revision string, spec Spec, adopt bool) error {
	if err := spec.Validate(); err != nil {
		if adopt {
			return fmt.Errorf("autoscaler: Adopt(%q): %w", revision, err)
		}
		return fmt.Errorf("autoscaler: Add(%q): %w", revision, err)
	}
	ready, err := r.opts.Ready.ReadyCount(revision)
	if err != nil {
		// As Knative: a revision being created often has nothing to
		// count yet.
		r.logger.Warn("autoscaler: counting ready replicas", "revision", revision, "error", err)
		ready = 0
	}
	now := r.clock.Now()
	e := &entry{
		name:    revision,
		coll:    newCollection(spec.collectorSpec()),
		spec:    spec,
		life:    newLifecycle(now),
		pending: -1,
		applied: -1,
	}
	e.dec.init(spec.DeciderSpec, now, ready)
	e.lastRec.Store(-1)
	e.replicaStats.Store(spec.ReplicaStats)
	e.window.Store(int64(spec.StableWindow))
	e.last = Decision{
		Revision:            revision,
		Time:                now,
		Desired:             -1,
		ExcessBurstCapacity: spec.InitialExcessBurstCapacity(),
		Panicking:           e.dec.Panicking(),
		Recommended:         -1,
		Ready:               ready,
		Activity:            Activating,
		Target:              spec.TargetValue,
		Metric:              spec.Metric,
	}
	scale := spec.InitialScale > ready && !adopt
	if adopt {
		e.life.initialized = true
		e.holdUntil = now.Add(spec.StableWindow)
	}
	if scale {
		e.pending, e.queued = spec.InitialScale, true
	}

	r.mu.Lock()
	if _, ok := r.entries[revision]; ok {
		r.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrRevisionExists, revision)
	}
	e.idx = len(r.order)
	r.order = append(r.order, e)
	r.entries[revision] = e
	r.mu.Unlock()
	if scale {
		r.scaleQ.push(e)
	}
	return nil
}

// Update changes revision's spec. Decider state (panic, scale-down delay
// history) and recorded load are kept; windows are resized as of now. It
// returns ErrUnknownRevision for a revision not added and spec.Validate's
// error if spec is invalid.
func (r *Runner) Update(revision string, spec Spec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("autoscaler: Update(%q): %w", revision, err)
	}
	e := r.lookup(revision)
	if e == nil {
		return fmt.Errorf("%w: %q", ErrUnknownRevision, revision)
	}
	e.mu.Lock()
	e.spec = spec
	e.dec.update(spec.DeciderSpec)
	e.mu.Unlock()
	e.coll.update(spec.collectorSpec(), r.clock.Now())
	e.replicaStats.Store(spec.ReplicaStats)
	e.window.Store(int64(spec.StableWindow))
	return nil
}

// Remove stops autoscaling revision and drops its state; a Scale call
// already in progress completes, queued ones are dropped. If the revision
// is added again while that call runs, the new one's Scale calls wait for
// it to return. It reports whether the revision was there.
func (r *Runner) Remove(revision string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[revision]
	if e == nil {
		return false
	}
	delete(r.entries, revision)
	last := r.order[len(r.order)-1]
	r.order[e.idx] = last
	last.idx = e.idx
	r.order[len(r.order)-1] = nil
	r.order = r.order[:len(r.order)-1]
	// Still under mu: an Add of the same name, which takes mu, then finds
	// the call in draining.
	e.mu.Lock()
	e.removed = true
	if e.calling {
		r.flightMu.Lock()
		r.draining[revision] = e
		r.nDraining.Store(int32(len(r.draining)))
		r.flightMu.Unlock()
	}
	e.mu.Unlock()
	return true
}

// Len returns how many revisions the runner scales.
func (r *Runner) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.order)
}

// Decision returns the latest decision for revision (before the first
// tick, the state it was added with), and false for an unknown revision.
func (r *Runner) Decision(revision string) (Decision, bool) {
	e := r.lookup(revision)
	if e == nil {
		return Decision{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last, true
}

// Subscribe registers fn to receive every decision, in order per revision,
// on Run's goroutine with no lock held. fn must not block for long: it
// delays the next revisions' decisions. The returned function unsubscribes;
// a publication already under way may still reach fn.
func (r *Runner) Subscribe(fn func(Decision)) (unsubscribe func()) {
	s := &subscription{fn: fn}
	r.subMu.Lock()
	old := r.subs.Load()
	var subs []*subscription
	if old != nil {
		subs = append(subs, *old...)
	}
	subs = append(subs, s)
	r.subs.Store(&subs)
	r.subMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.subMu.Lock()
			defer r.subMu.Unlock()
			cur := *r.subs.Load()
			next := make([]*subscription, 0, len(cur))
			for _, x := range cur {
				if x != s {
					next = append(next, x)
				}
			}
			r.subs.Store(&next)
		})
	}
}

// Flush waits until every Scale call queued so far has returned (a failed
// one is retried only on the next tick, so it does not hold Flush up) or
// ctx is done. Run must be running for queued calls to be made.
func (r *Runner) Flush(ctx context.Context) error { return r.scaleQ.wait(ctx) }

// Send records a batch of pushed stats, each as Poke does, implementing
// stats.Sink. A stat without a time is taken as of now. It returns an error
// naming each message it could not record (an invalid stat, or a revision
// the runner does not scale, wrapping ErrNotCollecting); the others are
// recorded.
func (r *Runner) Send(_ context.Context, msgs []stats.Message) error {
	var errs []error
	for i := range msgs {
		m := &msgs[i]
		if err := r.poke(m.Revision, m.Stat); err != nil {
			errs = append(errs, fmt.Errorf("autoscaler: message %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// Poke records s for revision and, if the revision's last recommendation
// was zero — or it has none yet — and s reports concurrency, has it
// decided at once (Knative's scale-from-zero fast path; an activator pokes
// on a revision's first request). Knative waits for the first tick of a
// revision not yet decided; here its first request does not. Unknown
// revisions (as in Knative) and invalid stats (see Record) are ignored; use
// Record to learn about them.
func (r *Runner) Poke(revision string, s stats.Stat) { _ = r.poke(revision, s) }

// Record adds s to revision's load without a poke. A stat without a time
// is taken as of now. It returns ErrNotCollecting for an unknown revision,
// and stats.Stat.Validate's error, recording nothing, for a stat with a NaN,
// infinite or negative number.
func (r *Runner) Record(revision string, s stats.Stat) error {
	e := r.lookup(revision)
	if e == nil {
		return fmt.Errorf("%w: %q", ErrNotCollecting, revision)
	}
	return e.coll.record(r.statTime(s), s)
}

func (r *Runner) statTime(s stats.Stat) time.Time {
	if s.Time.IsZero() {
		return r.clock.Now()
	}
	return s.Time
}

func (r *Runner) lookup(revision string) *entry {
	r.mu.RLock()
	e := r.entries[revision]
	r.mu.RUnlock()
	return e
}

func (r *Runner) poke(revision string, s stats.Stat) error {
	e := r.lookup(revision)
	if e == nil {
		return fmt.Errorf("%w: %q", ErrNotCollecting, revision)
	}
	if err := e.coll.record(r.statTime(s), s); err != nil {
		return err
	}
	// Knative pokes only when the last decision was 0. A revision that has
	// not been decided yet (−1: created at initial scale 0 a moment ago)
	// is at zero too, and its first request must not wait for a tick.
	if e.lastRec.Load() <= 0 && s.Concurrency != 0 {
		r.pokeMu.Lock()
		if !e.poked {
			e.poked = true
			r.pokes = append(r.pokes, e)
		}
		r.pokeMu.Unlock()
		select {
		case r.pokeCh <- struct{}{}:
		default:
		}
	}
	return nil
}

// tick decides every revision at now.
func (r *Runner) tick(now time.Time) {
	r.mu.RLock()
	r.snap = append(r.snap[:0], r.order...)
	r.mu.RUnlock()
	r.decideAll(r.snap, now, true)
	clear(r.snap)
}

// decidePoked decides the revisions poked since the last call.
func (r *Runner) decidePoked() {
	r.pokeMu.Lock()
	r.batch, r.pokes = r.pokes, r.batch[:0]
	for _, e := range r.batch {
		e.poked = false
	}
	r.pokeMu.Unlock()
	r.decideAll(r.batch, r.clock.Now(), false)
	clear(r.batch)
}

// decideAll decides each entry and publishes the decisions, with no lock
// held while calling the ReadyCounter, the ProxyTimer or subscribers. A
// tick (complete) decides on the load through the last complete second; a
// poke on everything recorded, its own stat included.
func (r *Runner) decideAll(entries []*entry, now time.Time, complete bool) {
	out := r.out[:0]
	for _, e := range entries {
		ready, err := r.opts.Ready.ReadyCount(e.name)
		if err != nil {
			r.logger.Warn("autoscaler: counting ready replicas; skipping this tick", "revision", e.name, "error", err)
			continue
		}
		// Only an inactive revision's scale to zero reads the time in
		// proxy mode (the activity a step starts from is the last one's).
		var proxy proxyTime
		if pt := r.opts.ProxyTimer; pt != nil && e.inactive.Load() {
			proxy.d, proxy.known = pt.ProxyFor(e.name, now)
			proxy.d = max(proxy.d, 0)
		}
		if d, ok := r.decide(e, now, ready, proxy, complete); ok {
			out = append(out, d)
		}
	}
	r.out = out
	if subs := r.subs.Load(); subs != nil {
		for i := range out {
			for _, s := range *subs {
				s.fn(out[i])
			}
		}
	}
	clear(out) // drop the revision names for the garbage collector
}

// decide runs one revision's decider and lifecycle at now, on the load
// through the last complete second if complete. It does not allocate.
func (r *Runner) decide(e *entry, now time.Time, ready int, proxy proxyTime, complete bool) (Decision, bool) {
	e.mu.Lock()
	if e.removed {
		e.mu.Unlock()
		return Decision{}, false
	}
	var stable, panicLoad float64
	var err error
	if complete {
		stable, panicLoad, err = e.coll.completeAverages(e.spec.Metric, now)
	} else {
		stable, panicLoad, err = e.coll.averages(e.spec.Metric, now)
	}
	if err == nil {
		e.rec = e.dec.Step(now, ready, stable, panicLoad)
		e.hasRec = true
		e.lastRec.Store(int32(e.rec.Desired))
	}
	desired, ebc := -1, e.spec.InitialExcessBurstCapacity()
	if e.hasRec {
		desired, ebc = e.rec.Desired, e.rec.ExcessBurstCapacity
	}
	want, apply := e.life.step(&e.spec, now, desired, ready, ebc, proxy)
	if want >= 0 && want < ready && now.Before(e.holdUntil) {
		// Adopted: no scale-down until the windows hold a full stable
		// window of load.
		want = ready
	}
	e.inactive.Store(e.life.activity == Inactive)
	apply = apply && want >= 0
	if apply {
		e.pending = want
	}
	// A count the backend has not accepted is (re)made when this decision
	// applies one, and also when it leaves the scale alone but nothing was
	// ever accepted: a failed initial scale from Add must be retried, as
	// Knative retries creating a revision's Deployment, or the revision
	// would wait for replicas until its activation timeout.
	push := false
	if (apply || e.applied < 0) && !e.queued && e.pending >= 0 && e.pending != e.applied {
		e.queued, push = true, true
	}
	d := Decision{
		Revision:            e.name,
		Time:                now,
		Desired:             want,
		ExcessBurstCapacity: ebc,
		Panicking:           e.dec.Panicking(),
		Recommended:         desired,
		Ready:               ready,
		Activity:            e.life.activity,
		StableLoad:          stable,
		PanicLoad:           panicLoad,
		Target:              e.spec.TargetValue,
		Metric:              e.spec.Metric,
	}
	e.last = d
	e.mu.Unlock()
	if push {
		r.scaleQ.push(e)
	}
	return d, true
}

func (r *Runner) scaleWorker(ctx context.Context) {
	for {
		e, ok := r.scaleQ.pop(ctx)
		if !ok {
			return
		}
		if r.nDraining.Load() > 0 && r.park(e) {
			continue // still pending; requeued when the call it waits for returns
		}
		e.mu.Lock()
		if e.removed {
			e.queued = false
			e.mu.Unlock()
			r.scaleQ.done()
			continue
		}
		n := e.pending
		e.calling = true
		e.mu.Unlock()

		err := r.opts.Scaler.Scale(ctx, e.name, n)

		e.mu.Lock()
		e.calling = false
		if err == nil {
			e.applied = n
		}
		// Remove registered the call in draining if it saw it running.
		removed := e.removed
		// A newer count arrived while the call ran: make it too.
		again := err == nil && !removed && e.pending != e.applied
		if !again {
			e.queued = false
		}
		e.mu.Unlock()
		if removed {
			r.drained(e)
		}
		if err != nil {
			r.logger.Warn("autoscaler: scale failed; retrying next tick", "revision", e.name, "replicas", n, "error", err)
		}
		if again {
			r.scaleQ.requeue(e)
		} else {
			r.scaleQ.done()
		}
	}
}

// park holds e back if a removed entry of the same name still has a Scale
// call running, and reports whether it did.
func (r *Runner) park(e *entry) bool {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	if d := r.draining[e.name]; d == nil || d == e {
		return false
	}
	r.parked = append(r.parked, e)
	return true
}

// drained ends the draining call of removed entry e and requeues the
// entries parked behind it; each then reads its newest pending count.
func (r *Runner) drained(e *entry) {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	if r.draining[e.name] != e {
		return
	}
	delete(r.draining, e.name)
	r.nDraining.Store(int32(len(r.draining)))
	kept := r.parked[:0]
	for _, p := range r.parked {
		if p.name == e.name {
			r.scaleQ.requeue(p)
		} else {
			kept = append(kept, p)
		}
	}
	clear(r.parked[len(kept):])
	r.parked = kept
}

// queueScrapes queues a scrape of every revision with replica stats that
// is not being scraped already.
func (r *Runner) queueScrapes() {
	r.mu.RLock()
	r.snap = append(r.snap[:0], r.order...)
	r.mu.RUnlock()
	for _, e := range r.snap {
		if e.replicaStats.Load() && e.scraping.CompareAndSwap(false, true) {
			r.scrapeQ.push(e)
		}
	}
	clear(r.snap)
}

func (r *Runner) scrapeWorker(ctx context.Context) {
	for {
		e, ok := r.scrapeQ.pop(ctx)
		if !ok {
			return
		}
		s, err := r.opts.Scraper.Scrape(ctx, e.name, time.Duration(e.window.Load()))
		switch {
		case err == nil:
			err = e.coll.record(r.clock.Now(), s)
			if err != nil {
				r.logger.Warn("autoscaler: scraper returned an invalid stat", "revision", e.name, "error", err)
			}
		case !errors.Is(err, ErrNoReplicas) && ctx.Err() == nil:
			r.logger.Warn("autoscaler: scrape failed", "revision", e.name, "error", err)
		}
		e.scraping.Store(false)
		r.scrapeQ.done()
	}
}
