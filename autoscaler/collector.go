package autoscaler

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/servingkit/servingkit/stats"
)

var (
	// ErrNoData is returned for a revision that expects replica stats
	// (CollectorSpec.RequireData) when its stable window holds none: the
	// load is unknown, not zero, so no decision should be made.
	ErrNoData = errors.New("autoscaler: no data available")
	// ErrNotCollecting is returned for a revision the Collector or Runner
	// does not know.
	ErrNotCollecting = errors.New("autoscaler: no metrics are being collected for the revision")
)

// CollectorSpec says how to average one revision's load.
type CollectorSpec struct {
	// StableWindow and PanicWindow are the two averaging windows; both
	// must be > 0. Knative: 60s and 6s.
	StableWindow, PanicWindow time.Duration
	// Algorithm is how both windows average.
	Algorithm Algorithm
	// RequireData makes an empty stable window ErrNoData instead of zero
	// load. Knative requires data whenever it scrapes the revision's
	// replicas (target-burst-capacity ≠ −1).
	RequireData bool
}

func (s CollectorSpec) validate() error {
	if s.StableWindow <= 0 || s.PanicWindow <= 0 {
		return fmt.Errorf("autoscaler: CollectorSpec windows %v and %v must be > 0", s.StableWindow, s.PanicWindow)
	}
	return nil
}

// collection is one revision's four windows: Knative's collection, with
// the buckets of all four in one allocation.
type collection struct {
	mu          sync.Mutex // protects the rest
	stableConc  Window
	panicConc   Window
	stableRPS   Window
	panicRPS    Window
	requireData bool
}

func newCollection(spec CollectorSpec) *collection {
	ns, np := bucketCount(spec.StableWindow), bucketCount(spec.PanicWindow)
	buf := make([]float64, 2*(ns+np))
	c := &collection{requireData: spec.RequireData}
	c.stableConc.init(spec.Algorithm, spec.StableWindow, buf[0:ns:ns])
	c.stableRPS.init(spec.Algorithm, spec.StableWindow, buf[ns:2*ns:2*ns])
	c.panicConc.init(spec.Algorithm, spec.PanicWindow, buf[2*ns:2*ns+np:2*ns+np])
	c.panicRPS.init(spec.Algorithm, spec.PanicWindow, buf[2*ns+np:])
	return c
}

// record adds one stat at now. Proxied load was counted by the activator
// already (it reports it itself), so it is subtracted to avoid counting it
// twice. An invalid stat (a NaN, an infinity or a negative number) is
// refused: one NaN would stay in a window's running total for good, and
// every later average would read as no load.
func (c *collection) record(now time.Time, s stats.Stat) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("autoscaler: %w", err)
	}
	conc := s.Concurrency - s.ProxiedConcurrency
	rps := s.RPS - s.ProxiedRPS
	c.mu.Lock()
	c.stableConc.Record(now, conc)
	c.panicConc.Record(now, conc)
	c.stableRPS.Record(now, rps)
	c.panicRPS.Record(now, rps)
	c.mu.Unlock()
	return nil
}

// averages returns the stable and panic averages of metric at now.
func (c *collection) averages(metric Metric, now time.Time) (stable, panicLoad float64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, p := &c.stableConc, &c.panicConc
	if metric == RPS {
		s, p = &c.stableRPS, &c.panicRPS
	}
	if c.requireData && s.IsEmpty(now) {
		return 0, 0, ErrNoData
	}
	return s.Average(now), p.Average(now), nil
}

// update resizes the windows (Knative's updateMetric) and switches the
// algorithm, keeping the recorded data: both algorithms read the same
// buckets.
func (c *collection) update(spec CollectorSpec, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range []*Window{&c.stableConc, &c.stableRPS} {
		w.Resize(now, spec.StableWindow)
		w.setAlgorithm(spec.Algorithm)
	}
	for _, w := range []*Window{&c.panicConc, &c.panicRPS} {
		w.Resize(now, spec.PanicWindow)
		w.setAlgorithm(spec.Algorithm)
	}
	c.requireData = spec.RequireData
}

// Collector averages the load of many revisions: for each, a stable and a
// panic window of concurrency and of requests per second (Knative's
// MetricCollector without its scrape goroutines). Stats come in through
// Record, from the activator, from replicas pushing, or from a Scraper.
// It reads no clock: every call takes the time. The zero value is an empty
// Collector ready to use; it is safe for simultaneous use.
type Collector struct {
	mu sync.RWMutex // protects m (the collections lock themselves)
	m  map[string]*collection
}

// Set starts collecting for revision, or changes how it is averaged: windows
// are resized as of now, keeping the newest data.
func (c *Collector) Set(revision string, spec CollectorSpec, now time.Time) error {
	if err := spec.validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if col, ok := c.m[revision]; ok {
		col.update(spec, now)
		return nil
	}
	if c.m == nil {
		c.m = make(map[string]*collection)
	}
	c.m[revision] = newCollection(spec)
	return nil
}

// Delete stops collecting for revision and drops its data.
func (c *Collector) Delete(revision string) {
	c.mu.Lock()
	delete(c.m, revision)
	c.mu.Unlock()
}

func (c *Collector) get(revision string) *collection {
	c.mu.RLock()
	col := c.m[revision]
	c.mu.RUnlock()
	return col
}

// Record adds a stat for revision at now: its concurrency and requests per
// second minus their proxied parts go into both windows. Stats recorded in
// the same second add up. It returns ErrNotCollecting for an unknown
// revision, and stats.Stat.Validate's error, recording nothing, for a stat
// with a NaN, infinite or negative number.
func (c *Collector) Record(revision string, now time.Time, s stats.Stat) error {
	col := c.get(revision)
	if col == nil {
		return fmt.Errorf("%w: %q", ErrNotCollecting, revision)
	}
	return col.record(now, s)
}

// StableAndPanicConcurrency returns revision's average concurrency over the
// stable and the panic window as of now. It returns ErrNotCollecting for an
// unknown revision and ErrNoData when data is required and the stable
// window holds none.
func (c *Collector) StableAndPanicConcurrency(revision string, now time.Time) (stable, panicLoad float64, err error) {
	return c.averages(revision, Concurrency, now)
}

// StableAndPanicRPS is StableAndPanicConcurrency for requests per second.
func (c *Collector) StableAndPanicRPS(revision string, now time.Time) (stable, panicLoad float64, err error) {
	return c.averages(revision, RPS, now)
}

func (c *Collector) averages(revision string, m Metric, now time.Time) (float64, float64, error) {
	col := c.get(revision)
	if col == nil {
		return 0, 0, fmt.Errorf("%w: %q", ErrNotCollecting, revision)
	}
	return col.averages(m, now)
}
