package activator

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servingkit/servingkit/stats"
)

// revisionStats is a revision's load as this activator sees it, Knative's
// ConcurrencyReporter entry: requests count from arrival to the end of the
// response, waiting included. The entry is created by a revision's first
// request, which triggers the immediate stat (the Poker), and dropped after
// a reporting period without load, so that the next request after idleness
// pokes again.
type revisionStats struct {
	entry atomic.Pointer[statEntry]
	mu    sync.Mutex // serializes creating and reporting entries
}

type statEntry struct {
	rec *stats.Recorder
	// refs counts requests holding the entry. The reporter retires an idle
	// entry by swapping 0 for deadRefs, so a request that increments it
	// afterwards sees a negative count and makes a new entry instead.
	refs     atomic.Int64
	firstAdj float64 // 1 until the first report after creation; guarded by revisionStats.mu
}

const deadRefs = math.MinInt64 / 2

// in records a request arriving at now and reports whether it created the
// entry (the revision's first request since it was idle).
func (s *revisionStats) in(now time.Time) (*statEntry, bool) {
	for {
		if e := s.entry.Load(); e != nil && e.refs.Add(1) > 0 {
			e.rec.In(now, false)
			return e, false
		}
		s.mu.Lock()
		if s.entry.Load() != nil {
			// Another request made a new entry meanwhile.
			s.mu.Unlock()
			continue
		}
		e := &statEntry{rec: stats.NewRecorder(now), firstAdj: 1}
		e.refs.Store(1)
		e.rec.In(now, false)
		s.entry.Store(e)
		s.mu.Unlock()
		return e, true
	}
}

// out records the request leaving at now.
func (s *revisionStats) out(e *statEntry, now time.Time) {
	e.rec.Out(now, false)
	e.refs.Add(-1)
}

// report cuts the period's report, applies Knative's first-request
// adjustment and drops the entry if the period had no load. ok is false if
// there is no entry.
func (s *revisionStats) report(now time.Time, period time.Duration) (st stats.Stat, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entry.Load()
	if e == nil {
		return stats.Stat{}, false
	}
	rep := e.rec.Report(now)
	adj := e.firstAdj
	e.firstAdj = 0
	if rep.Concurrency == 0 && e.refs.CompareAndSwap(0, deadRefs) {
		s.entry.Store(nil)
	}
	// The immediate stat already counted the first request once: take it
	// out of the first period so the autoscaler does not see it twice.
	secs := 1.0
	if period > 0 {
		secs = period.Seconds()
	}
	return stats.Stat{
		Concurrency: max(rep.Concurrency-adj, 0),
		RPS:         max(float64(rep.Requests)-adj, 0) / secs,
		Time:        now,
	}, true
}

// Stats returns one message per revision with load in the period ending at
// now, Knative's activator report: the time-weighted concurrency of its
// requests (waiting ones included) and their rate per second over period,
// minus the first request of a revision already sent as the immediate stat.
// Revisions without load for a whole period are dropped until their next
// request. Run calls it every ReportingPeriod; it has the signature
// stats.NewReporter expects, for hosts that run their own reporter.
func (h *Handler) Stats(now time.Time, period time.Duration) []stats.Message {
	revs := *h.Throttler.revs.Load()
	var msgs []stats.Message
	for name, rv := range revs {
		st, ok := rv.stats.report(now, period)
		if !ok {
			continue
		}
		st.Source = h.name
		st.Uptime = now.Sub(h.start)
		msgs = append(msgs, stats.Message{Revision: name, Stat: st})
	}
	return msgs
}
