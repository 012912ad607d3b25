package autoscaler

import (
	"errors"
	"fmt"
	"math"
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
//
// The stats of the newest second are held back from the windows while
// that second may still get more (open), so that a read through the last
// complete second (completeAverages) finds that second's bucket whole even
// in a one-bucket window, whose only slot the open second would otherwise
// take. They are replayed into the windows, in the order they came, as soon
// as the second is closed (a later second's stat arrives, or a tick reads
// through it) or a read needs them.
//
// Stats are bucketed by second, and a reporter whose period ends within a
// few milliseconds of a whole second puts, through jitter, two stats in one
// second and none in the next. So a stat that names its Source counts per
// source (see Collector): when a second is closed, each source counts once
// in it, with its latest stat, and a source that reported in the second
// before but not in this one is held at its last stat for this second only.
// A stat without a Source counts as it comes, as in Knative. Where every
// source reports exactly once a second, nothing is replaced or held, and
// the windows hold exactly what Knative's would after the same records.
type collection struct {
	mu          sync.Mutex // protects the rest
	stableConc  Window
	panicConc   Window
	stableRPS   Window
	panicRPS    Window
	requireData bool
	openSec     int64        // Unix second of the open second; > closed once any stat came
	closed      int64        // newest closed second: its sources are counted or held
	open        []stagedStat // of openSec, not yet in the windows; capacity kept
	sources     map[string]sourceState
}

// stagedStat is one stat of the open second, proxied load taken out.
type stagedStat struct {
	conc, rps float64
	src       string // the stat's Source; "" counts as it comes
}

func (a stagedStat) minus(b stagedStat) stagedStat {
	return stagedStat{conc: a.conc - b.conc, rps: a.rps - b.rps, src: a.src}
}

// sourceState is what a collection remembers of one source.
type sourceState struct {
	sec     int64      // second of its latest stat
	val     stagedStat // its latest stat
	inWin   stagedStat // what of sec's stat the windows hold already
	staged  bool       // open[idx] holds val − inWin
	idx     int
	heldSec int64      // the second it was last held in, at heldVal
	heldVal stagedStat // what the windows hold for it in heldSec
}

// sourceMemory is how many seconds after its latest stat a collection
// forgets a source: long enough for a stat a second or two late to find
// the second it was held in.
const sourceMemory = 3

func newCollection(spec CollectorSpec) *collection {
	ns, np := bucketCount(spec.StableWindow), bucketCount(spec.PanicWindow)
	buf := make([]float64, 2*(ns+np))
	c := &collection{requireData: spec.RequireData, openSec: math.MinInt64, closed: math.MinInt64}
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
	st := stagedStat{conc: s.Concurrency - s.ProxiedConcurrency, rps: s.RPS - s.ProxiedRPS, src: s.Source}
	sec := now.Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	if sec <= c.closed {
		c.late(sec, st)
		return nil
	}
	if sec != c.openSec {
		// A new second: every second before it is complete.
		c.closeThrough(sec - 1)
		c.openSec = sec
	}
	if st.src == "" {
		c.open = append(c.open, st)
		return nil
	}
	ss, ok := c.sources[st.src]
	switch {
	case !ok || ss.sec != sec:
		// The source's first stat in this second.
		ss = sourceState{heldSec: ss.heldSec, heldVal: ss.heldVal, sec: sec, staged: true, idx: len(c.open)}
		c.open = append(c.open, st)
	case ss.staged:
		// Again in this second: its latest stat replaces the staged one.
		c.open[ss.idx] = st.minus(ss.inWin)
	default:
		// Again in this second, after a read put its earlier stat in the
		// windows: stage the difference.
		ss.staged, ss.idx = true, len(c.open)
		c.open = append(c.open, st.minus(ss.inWin))
	}
	ss.val = st
	if c.sources == nil {
		c.sources = make(map[string]sourceState)
	}
	c.sources[st.src] = ss
	return nil
}

// late records st for sec, a second already closed, straight into the
// windows, which keep it if it is within a window of their newest data. A
// source counts once there: a stat of a second the source was held in, or
// had a stat in already, replaces what the windows hold for it.
func (c *collection) late(sec int64, st stagedStat) {
	if st.src == "" {
		c.put(sec, st)
		return
	}
	ss, ok := c.sources[st.src]
	switch {
	case ok && sec == ss.heldSec:
		c.put(sec, st.minus(ss.heldVal))
		ss.heldVal = st
		if sec > ss.sec {
			ss.sec, ss.val, ss.inWin = sec, st, st
		}
	case ok && sec == ss.sec && !ss.staged:
		c.put(sec, st.minus(ss.inWin))
		ss.val, ss.inWin = st, st
	default:
		c.put(sec, st)
		if !ok || sec > ss.sec {
			ss = sourceState{heldSec: ss.heldSec, heldVal: ss.heldVal, sec: sec, val: st, inWin: st}
		}
	}
	if c.sources == nil {
		c.sources = make(map[string]sourceState)
	}
	c.sources[st.src] = ss
}

// put records st into the four windows at second sec.
func (c *collection) put(sec int64, st stagedStat) {
	t := time.Unix(sec, 0)
	c.stableConc.Record(t, st.conc)
	c.panicConc.Record(t, st.conc)
	c.stableRPS.Record(t, st.rps)
	c.panicRPS.Record(t, st.rps)
}

// commit replays the open second's stats into the windows; the second
// stays open.
func (c *collection) commit() {
	for _, st := range c.open {
		c.put(c.openSec, st)
		if st.src != "" {
			ss := c.sources[st.src]
			if ss.staged {
				ss.staged, ss.inWin = false, ss.val
				c.sources[st.src] = ss
			}
		}
	}
	c.open = c.open[:0]
}

// closeThrough closes every second through t: the open second's stats go
// into the windows if it is one of them, and each source whose latest stat
// is of the second before one of them is held at that stat for it. Sources
// not heard from for sourceMemory seconds are forgotten.
func (c *collection) closeThrough(t int64) {
	if t <= c.closed {
		return
	}
	if c.openSec <= t {
		c.commit()
	}
	for src, ss := range c.sources {
		if h := ss.sec + 1; h > c.closed && h <= t {
			c.put(h, ss.val)
			ss.heldSec, ss.heldVal = h, ss.val
			c.sources[src] = ss
		}
		if t-ss.sec > sourceMemory {
			delete(c.sources, src)
		}
	}
	c.closed = t
}

// averages returns the stable and panic averages of metric at now, with
// every stat recorded so far, as Knative's collector reads them: a second
// that is still under way counts with what it has. The seconds before
// now's are closed first, as for completeAverages.
func (c *collection) averages(metric Metric, now time.Time) (stable, panicLoad float64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeThrough(now.Unix() - 1)
	c.commit()
	return c.read(metric, now)
}

// completeAverages returns the stable and panic averages of metric through
// the last complete second before now: the seconds through it are closed
// and the windows read as of it, without the second now is in, whose stats
// may still be on their way. Ticks decide on these, so that a decision does
// not depend on whether a reporter whose period ends with the tick got its
// stat in first.
func (c *collection) completeAverages(metric Metric, now time.Time) (stable, panicLoad float64, err error) {
	through := now.Unix() - 1
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeThrough(through)
	return c.read(metric, time.Unix(through, 0))
}

func (c *collection) read(metric Metric, at time.Time) (stable, panicLoad float64, err error) {
	s, p := &c.stableConc, &c.panicConc
	if metric == RPS {
		s, p = &c.stableRPS, &c.panicRPS
	}
	if c.requireData && s.IsEmpty(at) {
		return 0, 0, ErrNoData
	}
	return s.Average(at), p.Average(at), nil
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
//
// Stats are bucketed by the second of their time. A stat with a Source (a
// replica, an activator, the HTTPScraper) is that source's word for its
// second, and each source counts once a second:
//
//   - a source with several stats in one second counts once, with its
//     latest (a later one replaces the earlier in the windows, even after a
//     read has put that one there);
//   - once a second is complete (a stat of a later second came, or a read
//     went past it), a source that had a stat in the second before it but
//     none in it is held at that stat for it, and for it only: a source
//     that stops (a replica gone) drops out after one held second, and is
//     forgotten a few seconds later;
//   - a stat that comes after its second was complete (late) replaces what
//     the windows hold for its source in that second, held or not.
//
// That is because a reporter with a one-second period whose reports land
// within a few milliseconds of a whole second puts, through jitter, two
// reports in one second and none in the next; summed, as Knative does, a
// one-second panic window reads twice the load and then none. A stat
// without a Source is a one-off (the activator's immediate stat on a
// revision's first request) and adds up with whatever else its second
// has, as in Knative. Where every source reports exactly once a second,
// nothing is replaced or held, and the averages are Knative's, bit for bit.
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
// the same second add up, but for a source's own (see Collector). It returns ErrNotCollecting for an unknown
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
