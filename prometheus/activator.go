package prometheus

import (
	"math"
	"sync"
	"sync/atomic"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/stats"
)

// ActivatorState is what an Activator collector reads at scrape time;
// *activator.Handler has it.
type ActivatorState interface {
	Revisions() []string
	Status(revision string) (activator.RevisionStatus, bool)
}

// LatestStats gives the activator's latest stats report, for
// activator_request_concurrency; *stats.Reporter (activator.Handler's
// Reporter()) has it.
type LatestStats interface {
	Latest() []stats.Message
}

// Activator collects an activator.Handler's metrics. Pass its Observe as
// activator.Options.Observer, and the Handler to Watch for the gauges:
//
//	a, err := prometheus.NewActivator(prometheus.Config{})
//	h, err := activator.New(activator.Options{Observer: a.Observe})
//	a.Watch(h, h.Reporter())
//
// Metrics (Knative's names and labels where Knative has the quantity):
//
//   - activator_request_count, counter, and activator_request_latencies,
//     histogram in milliseconds: every request for a known revision, by
//     response_code and response_code_class.
//   - activator_request_concurrency, gauge: the revision's average
//     concurrency in the activator over the last reporting period.
//   - servingkit_activator_requests_total, counter: the same requests by
//     outcome (served, queue-full — the overflow —, max-wait, timeout,
//     canceled, removed); requests for no known revision count with
//     outcome unknown-revision or shutting-down and empty revision labels.
//   - servingkit_activator_wait_latencies, histogram in milliseconds: how
//     long requests that had to wait for capacity waited.
//   - servingkit_activator_waiting_requests and
//     servingkit_activator_in_flight_requests, gauges: requests waiting for
//     capacity, and forwarded and not yet answered, now.
//   - servingkit_activator_capacity, gauge: requests this activator may
//     have in flight to the revision's replicas.
//
// An Activator is safe for simultaneous use; Observe allocates nothing.
type Activator struct {
	req    *requestMetrics
	wait   *prom.HistogramVec
	out    *prom.CounterVec
	labels func(string) RevisionLabels

	mu   sync.Mutex                           // serializes adding to revs
	revs atomic.Pointer[map[string]*actChild] // copied on write

	state  atomic.Pointer[ActivatorState]
	latest atomic.Pointer[LatestStats]

	waiting, inFlight, capacity, concurrency *prom.Desc
}

type actChild struct {
	labels RevisionLabels
	wait   atomic.Pointer[prom.Observer] // made on the first wait
	out    [16]atomic.Pointer[prom.Counter]
}

// NewActivator returns an Activator registered with c.Registerer.
func NewActivator(c Config) (*Activator, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	a := &Activator{
		req: newRequestMetrics(c, "activator_request_count", "Requests the activator answered, by response code.",
			"activator_request_latencies", "The response time in milliseconds of requests the activator answered.", nil, nil, nil),
		wait: prom.NewHistogramVec(prom.HistogramOpts{Name: "servingkit_activator_wait_latencies", Help: "How long requests waited in the activator for capacity, in milliseconds.", Buckets: c.LatencyBuckets},
			revisionLabelNames),
		out:         prom.NewCounterVec(prom.CounterOpts{Name: "servingkit_activator_requests_total", Help: "Requests the activator answered, by how they ended (queue-full is the overflow)."}, append(append([]string(nil), revisionLabelNames...), "outcome")),
		labels:      c.Labels,
		waiting:     prom.NewDesc("servingkit_activator_waiting_requests", "Requests waiting in the activator for capacity.", revisionLabelNames, nil),
		inFlight:    prom.NewDesc("servingkit_activator_in_flight_requests", "Requests the activator forwarded that are not yet answered.", revisionLabelNames, nil),
		capacity:    prom.NewDesc("servingkit_activator_capacity", "Requests this activator may have in flight to the revision's replicas (+Inf without a concurrency limit).", revisionLabelNames, nil),
		concurrency: prom.NewDesc("activator_request_concurrency", "Average concurrency of the revision's requests in the activator over the last reporting period.", revisionLabelNames, nil),
	}
	empty := map[string]*actChild{}
	a.revs.Store(&empty)
	if err := register(c.Registerer, a.req.count, a.req.latency, a.wait, a.out, (*activatorGauges)(a)); err != nil {
		return nil, err
	}
	return a, nil
}

// Observe records one request; it is an activator.Options.Observer.
func (a *Activator) Observe(o activator.Observation) {
	ch := (*a.revs.Load())[o.Revision]
	if ch == nil {
		ch = a.add(o.Revision)
	}
	if o.Revision != "" {
		a.req.observe(o.Revision, o.Status, float64(o.Latency)/1e6)
	}
	if o.Waited > 0 {
		w := ch.wait.Load()
		if w == nil {
			v := a.wait.WithLabelValues(ch.labels.values()...)
			w = &v
			ch.wait.Store(w)
		}
		(*w).Observe(float64(o.Waited) / 1e6)
	}
	i := int(o.Outcome)
	if i < 0 || i >= len(ch.out) {
		i = len(ch.out) - 1 // "error": anything unexpected
	}
	c := ch.out[i].Load()
	if c == nil {
		name := "error"
		if i != len(ch.out)-1 {
			name = o.Outcome.String()
		}
		v := a.out.WithLabelValues(append(ch.labels.values(), name)...)
		c = &v
		ch.out[i].Store(c)
	}
	(*c).Inc()
}

func (a *Activator) add(revision string) *actChild {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := *a.revs.Load()
	if ch := old[revision]; ch != nil {
		return ch
	}
	var l RevisionLabels
	if revision != "" {
		l = a.labels(revision)
	}
	ch := &actChild{labels: l}
	next := make(map[string]*actChild, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[revision] = ch
	a.revs.Store(&next)
	return ch
}

// Forget deletes every series of revision, for a revision removed from
// the activator. A request for it observed later creates them again.
func (a *Activator) Forget(revision string) {
	a.mu.Lock()
	old := *a.revs.Load()
	l, known := RevisionLabels{}, false
	if ch := old[revision]; ch != nil {
		l, known = ch.labels, true // what the series carry, whatever Labels says now
	}
	next := make(map[string]*actChild, len(old))
	for k, v := range old {
		if k != revision {
			next[k] = v
		}
	}
	a.revs.Store(&next)
	a.mu.Unlock()
	a.req.forget(revision)
	if !known {
		l = a.labels(revision)
	}
	m := l.match()
	a.wait.DeletePartialMatch(m)
	a.out.DeletePartialMatch(m)
}

// Watch makes the gauges report s, and activator_request_concurrency the
// reports of latest (nil: not reported). Until it is called, the gauges
// are not reported.
func (a *Activator) Watch(s ActivatorState, latest LatestStats) {
	a.state.Store(&s)
	if latest != nil {
		a.latest.Store(&latest)
	}
}

type activatorGauges Activator

func (g *activatorGauges) Describe(ch chan<- *prom.Desc) {
	ch <- g.waiting
	ch <- g.inFlight
	ch <- g.capacity
	ch <- g.concurrency
}

func (g *activatorGauges) Collect(ch chan<- prom.Metric) {
	if sp := g.state.Load(); sp != nil {
		s := *sp
		for _, rev := range s.Revisions() {
			st, ok := s.Status(rev)
			if !ok {
				continue
			}
			v := g.labels(rev).values()
			ch <- prom.MustNewConstMetric(g.waiting, prom.GaugeValue, float64(st.Waiting), v...)
			ch <- prom.MustNewConstMetric(g.inFlight, prom.GaugeValue, float64(st.InFlight), v...)
			capacity := float64(st.Capacity)
			if st.Capacity == activator.Unlimited {
				capacity = math.Inf(1)
			}
			ch <- prom.MustNewConstMetric(g.capacity, prom.GaugeValue, capacity, v...)
		}
	}
	if lp := g.latest.Load(); lp != nil {
		for _, m := range (*lp).Latest() {
			ch <- prom.MustNewConstMetric(g.concurrency, prom.GaugeValue, m.Stat.Concurrency, g.labels(m.Revision).values()...)
		}
	}
}
