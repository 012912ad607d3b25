package prometheus

import (
	"strconv"
	"sync/atomic"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/servingkit/servingkit/queue"
)

// Queue collects one queue.Handler's metrics: one replica of one revision.
// Pass its Observe as queue.Config.Observer, and the Handler to Watch for
// the breaker's gauges:
//
//	q, err := prometheus.NewQueue(prometheus.Config{}, "default/hello-00001", pod)
//	h, err := queue.New(app, queue.Config{ContainerConcurrency: 10, Observer: q.Observe})
//	q.Watch(h)
//
// Metrics (Knative's names and labels where Knative has the quantity):
//
//   - revision_request_count, counter, and revision_request_latencies,
//     histogram in milliseconds: every request the queue accepted, by
//     response_code and response_code_class.
//   - servingkit_queue_requests_total, counter: the same requests by
//     outcome (served, queue-full, max-wait, deadline, canceled,
//     total-timeout, response-start-timeout, idle-timeout, error) and
//     proxied ("true" when an activator forwarded it).
//   - revision_queue_depth, gauge: requests in flight plus waiting in the
//     breaker (not reported without a concurrency limit, as in Knative).
//   - servingkit_breaker_in_flight and servingkit_breaker_queued, gauges:
//     the two apart.
//
// Every series has the revision's labels (namespace_name, service_name,
// configuration_name, revision_name) and pod_name. A Queue is safe for
// simultaneous use; Observe allocates nothing.
type Queue struct {
	req      *requestMetrics
	outcomes *prom.CounterVec
	byOut    [16][2]atomic.Pointer[prom.Counter] // by outcome, proxied
	labels   []string                            // the revision's and the pod's values
	handler  atomic.Pointer[queue.Handler]

	depth, inFlight, queued *prom.Desc
}

// NewQueue returns a Queue for the replica pod of revision, registered
// with c.Registerer.
func NewQueue(c Config, revision, pod string) (*Queue, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	rl := c.Labels(revision)
	names := append(append([]string(nil), revisionLabelNames...), labelPod)
	q := &Queue{
		req: newRequestMetrics(c, "revision_request_count", "Requests the queue accepted, by response code.",
			"revision_request_latencies", "The response time in milliseconds of requests the queue accepted.",
			[]string{labelPod}, []string{pod}, nil),
		outcomes: prom.NewCounterVec(prom.CounterOpts{Name: "servingkit_queue_requests_total", Help: "Requests the queue accepted, by how they ended and whether an activator forwarded them."},
			append(append([]string(nil), names...), "outcome", "proxied")),
		labels:   append(rl.values(), pod),
		depth:    prom.NewDesc("revision_queue_depth", "Requests in the replica's breaker: in flight plus waiting for a slot.", names, nil),
		inFlight: prom.NewDesc("servingkit_breaker_in_flight", "Requests holding a slot of the replica's breaker.", names, nil),
		queued:   prom.NewDesc("servingkit_breaker_queued", "Requests waiting for a slot of the replica's breaker.", names, nil),
	}
	q.req.labels = func(string) RevisionLabels { return rl }
	if err := register(c.Registerer, q.req.count, q.req.latency, q.outcomes, (*queueGauges)(q)); err != nil {
		return nil, err
	}
	return q, nil
}

// Observe records one request; it is a queue.Config.Observer.
func (q *Queue) Observe(o queue.Observation) {
	q.req.observe("", o.Status, float64(o.Latency)/1e6)
	out := int(o.Outcome)
	if out < 0 || out >= len(q.byOut) {
		out = int(queue.OutcomeError)
	}
	p := 0
	if o.Proxied {
		p = 1
	}
	c := q.byOut[out][p].Load()
	if c == nil {
		v := q.outcomes.WithLabelValues(append(append([]string(nil), q.labels...), queue.Outcome(out).String(), strconv.FormatBool(o.Proxied))...)
		c = &v
		q.byOut[out][p].Store(c)
	}
	(*c).Inc()
}

// Watch makes the breaker gauges report h's breaker. Until it is called,
// or when h has no concurrency limit, they are not reported.
func (q *Queue) Watch(h *queue.Handler) { q.handler.Store(h) }

// queueGauges is the Queue's collector of the breaker gauges, read at
// scrape time.
type queueGauges Queue

func (g *queueGauges) Describe(ch chan<- *prom.Desc) {
	ch <- g.depth
	ch <- g.inFlight
	ch <- g.queued
}

func (g *queueGauges) Collect(ch chan<- prom.Metric) {
	h := g.handler.Load()
	if h == nil || h.Breaker() == nil {
		return
	}
	b := h.Breaker()
	in, waiting := float64(b.InFlight()), float64(b.Waiting())
	ch <- prom.MustNewConstMetric(g.depth, prom.GaugeValue, in+waiting, g.labels...)
	ch <- prom.MustNewConstMetric(g.inFlight, prom.GaugeValue, in, g.labels...)
	ch <- prom.MustNewConstMetric(g.queued, prom.GaugeValue, waiting, g.labels...)
}
