package prometheus

import (
	"github.com/servingkit/servingkit/traffic"
)

// Router collects a traffic.Router's metrics. Pass its Observe as
// traffic.RouterConfig.Observer:
//
//	rt, err := prometheus.NewRouter(prometheus.Config{})
//	router, err := traffic.NewRouter(traffic.RouterConfig{Observer: rt.Observe})
//
// Metrics (Knative has no router of its own; the names follow its
// activator's):
//
//   - servingkit_router_request_count, counter, and
//     servingkit_router_request_latencies, histogram in milliseconds: every
//     request the router sent to a revision, by the revision's labels,
//     response_code and response_code_class. Requests that matched no
//     route (404) count with empty revision labels.
//
// A Router is safe for simultaneous use; Observe allocates nothing.
type Router struct {
	req *requestMetrics
}

// NewRouter returns a Router registered with c.Registerer.
func NewRouter(c Config) (*Router, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	labels := c.Labels
	c.Labels = func(rev string) RevisionLabels {
		if rev == "" {
			return RevisionLabels{}
		}
		return labels(rev)
	}
	r := &Router{req: newRequestMetrics(c, "servingkit_router_request_count", "The number of requests the router answered.",
		"servingkit_router_request_latencies", "The response time in milliseconds of requests the router answered.", nil, nil, nil)}
	if err := register(c.Registerer, r.req.collectors()...); err != nil {
		return nil, err
	}
	return r, nil
}

// Observe records one request; it is a traffic.RouterConfig.Observer.
func (r *Router) Observe(o traffic.Observation) {
	r.req.observe(o.Revision, o.Status, float64(o.Latency)/1e6)
}

// Forget deletes every series of revision, for a revision no longer
// routed.
func (r *Router) Forget(revision string) { r.req.forget(revision) }
