package prometheus

import (
	"sync"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/servingkit/servingkit/autoscaler"
)

// Autoscaler collects an autoscaler.Runner's decisions. Pass its Observe
// to Runner.Subscribe, and call Forget when a revision is removed:
//
//	as, err := prometheus.NewAutoscaler(prometheus.Config{})
//	runner.Subscribe(as.Observe)
//
// Metrics, all gauges by the revision's labels, with Knative's names:
//
//   - autoscaler_desired_pods: the decider's replica count before bounds
//     and scale-to-zero rules (Decision.Recommended; -1 before its first
//     decision).
//   - autoscaler_requested_pods: the count asked of the scaler backend
//     after them (Decision.Desired; -1 while unknown).
//   - autoscaler_actual_pods: ready replicas the decision saw.
//   - autoscaler_excess_burst_capacity.
//   - autoscaler_panic_mode: 1 while panicking, else 0.
//   - autoscaler_stable_request_concurrency,
//     autoscaler_panic_request_concurrency and
//     autoscaler_target_concurrency_per_pod for a revision scaled on
//     concurrency; autoscaler_stable_requests_per_second,
//     autoscaler_panic_requests_per_second and
//     autoscaler_target_requests_per_second for one scaled on rps. The
//     loads are the revision's total, as the decider sees them; the target
//     is per replica.
//
// An Autoscaler is safe for simultaneous use.
type Autoscaler struct {
	desired, requested, actual, ebc, panic             *prom.GaugeVec
	stableC, panicC, targetC, stableR, panicR, targetR *prom.GaugeVec
	labels                                             func(string) RevisionLabels

	mu   sync.Mutex // protects seen
	seen map[string]RevisionLabels
}

// NewAutoscaler returns an Autoscaler registered with c.Registerer.
func NewAutoscaler(c Config) (*Autoscaler, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	g := func(name, help string) *prom.GaugeVec {
		return prom.NewGaugeVec(prom.GaugeOpts{Name: name, Help: help}, revisionLabelNames)
	}
	a := &Autoscaler{
		desired:   g("autoscaler_desired_pods", "Number of replicas the autoscaler's decider wants, before bounds (-1: not yet known)."),
		requested: g("autoscaler_requested_pods", "Number of replicas requested of the scaler backend (-1: not yet known)."),
		actual:    g("autoscaler_actual_pods", "Number of ready replicas the last decision saw."),
		ebc:       g("autoscaler_excess_burst_capacity", "Excess burst capacity observed over the stable window."),
		panic:     g("autoscaler_panic_mode", "1 if the autoscaler is in panic mode for the revision, else 0."),
		stableC:   g("autoscaler_stable_request_concurrency", "Average concurrency of the revision's requests over the stable window."),
		panicC:    g("autoscaler_panic_request_concurrency", "Average concurrency of the revision's requests over the panic window."),
		targetC:   g("autoscaler_target_concurrency_per_pod", "The concurrency per replica the autoscaler aims for."),
		stableR:   g("autoscaler_stable_requests_per_second", "Average requests per second of the revision over the stable window."),
		panicR:    g("autoscaler_panic_requests_per_second", "Average requests per second of the revision over the panic window."),
		targetR:   g("autoscaler_target_requests_per_second", "The requests per second per replica the autoscaler aims for."),
		labels:    c.Labels,
		seen:      map[string]RevisionLabels{},
	}
	if err := register(c.Registerer, a.all()...); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Autoscaler) all() []prom.Collector {
	return []prom.Collector{a.desired, a.requested, a.actual, a.ebc, a.panic, a.stableC, a.panicC, a.targetC, a.stableR, a.panicR, a.targetR}
}

// Observe records a decision; it is a Runner.Subscribe callback.
func (a *Autoscaler) Observe(d autoscaler.Decision) {
	a.mu.Lock()
	l, ok := a.seen[d.Revision]
	if !ok {
		l = a.labels(d.Revision)
		a.seen[d.Revision] = l
	}
	a.mu.Unlock()
	v := l.values()
	a.desired.WithLabelValues(v...).Set(float64(d.Recommended))
	a.requested.WithLabelValues(v...).Set(float64(d.Desired))
	a.actual.WithLabelValues(v...).Set(float64(d.Ready))
	a.ebc.WithLabelValues(v...).Set(float64(d.ExcessBurstCapacity))
	p := 0.0
	if d.Panicking {
		p = 1
	}
	a.panic.WithLabelValues(v...).Set(p)
	stable, panicG, target := a.stableC, a.panicC, a.targetC
	if d.Metric == autoscaler.RPS {
		stable, panicG, target = a.stableR, a.panicR, a.targetR
	}
	stable.WithLabelValues(v...).Set(d.StableLoad)
	panicG.WithLabelValues(v...).Set(d.PanicLoad)
	target.WithLabelValues(v...).Set(d.Target)
}

// Forget deletes every series of revision, for a revision removed from
// the Runner.
func (a *Autoscaler) Forget(revision string) {
	a.mu.Lock()
	l, ok := a.seen[revision]
	delete(a.seen, revision)
	a.mu.Unlock()
	if !ok {
		l = a.labels(revision)
	}
	for _, c := range a.all() {
		c.(*prom.GaugeVec).DeletePartialMatch(l.match())
	}
}
