package stats

import (
	"sync"
	"time"
)

// Recorder computes the time-weighted average concurrency of one revision on
// one source from request in and out events, separating requests that came
// through the activator ("proxied"). It follows Knative's RequestStats:
//
//   - on every event and on Report at time t, the time since the previous
//     change, Δ = t − last (ignored unless positive), adds Δ to the time in
//     use and concurrency·Δ to the weighted sum;
//   - In adds a request (and, if proxied, a proxied request) to the counts
//     and to the current concurrency; Out removes it from the concurrency;
//   - Report returns weighted sum / time in use (0 if no time passed) and the
//     counts, then starts a new period. Current concurrency carries over.
//
// Times are passed in, so a recorder can be driven with literal times. An
// event whose time is before the last change is counted but adds no time.
//
// The zero value is ready to use: its first period starts at its first event.
// A Recorder is safe for simultaneous use. In, Out and Report do not
// allocate.
type Recorder struct {
	// A mutex, not atomics: the average needs (concurrency, last change,
	// weighted sum) to move together, and a lock-free split of them
	// mis-weights a request by its absolute arrival time when an event races
	// a report. Uncontended, the lock costs about as much as one CAS.
	mu sync.Mutex // protects everything below

	last        time.Time // time of the last change
	concurrency int64     // requests in flight now
	proxied     int64     // proxied requests in flight now

	inUse           time.Duration // time accounted this period
	weighted        float64       // ∑ concurrency·Δ this period, in request·seconds
	weightedProxied float64       // ∑ proxied·Δ this period
	requests        uint64        // requests that arrived this period
	proxiedRequests uint64        // proxied requests that arrived this period
}

// Report is what a Recorder observed over one period.
type Report struct {
	// Concurrency is the time-weighted average of requests in flight.
	Concurrency float64
	// ProxiedConcurrency is the same average for proxied requests only.
	ProxiedConcurrency float64
	// Requests is the number of requests that arrived, proxied ones
	// included.
	Requests uint64
	// ProxiedRequests is the number of proxied requests that arrived.
	ProxiedRequests uint64
	// Period is the time the averages cover.
	Period time.Duration
}

// Stat turns the report into a Stat, dividing the counts by period to get
// rates (Knative divides by the configured reporting period, not by the
// measured one). A period ≤ 0 leaves the counts undivided. The caller fills
// in Source, Uptime and Time.
func (r Report) Stat(period time.Duration) Stat {
	div := 1.0
	if period > 0 {
		div = period.Seconds()
	}
	return Stat{
		Concurrency:        r.Concurrency,
		ProxiedConcurrency: r.ProxiedConcurrency,
		RPS:                float64(r.Requests) / div,
		ProxiedRPS:         float64(r.ProxiedRequests) / div,
	}
}

// NewRecorder returns a Recorder whose first period starts at start.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{last: start}
}

// advance accounts the time since the last change. r.mu must be held.
func (r *Recorder) advance(now time.Time) {
	if r.last.IsZero() {
		r.last = now
		return
	}
	d := now.Sub(r.last)
	if d <= 0 {
		return
	}
	s := d.Seconds()
	r.inUse += d
	r.weighted += float64(r.concurrency) * s
	r.weightedProxied += float64(r.proxied) * s
	r.last = now
}

// In records a request arriving at now. Proxied says it came through the
// activator.
func (r *Recorder) In(now time.Time, proxied bool) {
	r.mu.Lock()
	r.advance(now)
	r.requests++
	r.concurrency++
	if proxied {
		r.proxiedRequests++
		r.proxied++
	}
	r.mu.Unlock()
}

// Out records a request leaving at now. Proxied must match the In call of
// the same request.
func (r *Recorder) Out(now time.Time, proxied bool) {
	r.mu.Lock()
	r.advance(now)
	r.concurrency--
	if proxied {
		r.proxied--
	}
	r.mu.Unlock()
}

// Report returns the averages and counts since the previous report (or since
// the start) up to now, and starts a new period.
func (r *Recorder) Report(now time.Time) Report {
	r.mu.Lock()
	r.advance(now)
	rep := Report{
		Requests:        r.requests,
		ProxiedRequests: r.proxiedRequests,
		Period:          r.inUse,
	}
	if r.inUse > 0 {
		s := r.inUse.Seconds()
		rep.Concurrency = r.weighted / s
		rep.ProxiedConcurrency = r.weightedProxied / s
	}
	r.inUse, r.weighted, r.weightedProxied = 0, 0, 0
	r.requests, r.proxiedRequests = 0, 0
	r.mu.Unlock()
	return rep
}

// InFlight returns the number of requests in flight now, and how many of
// them are proxied.
func (r *Recorder) InFlight() (total, proxied int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.concurrency, r.proxied
}
