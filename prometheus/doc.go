// Package prometheus exports servingkit's metrics to Prometheus through
// client_golang. It is a module of its own, so that the core does not
// depend on client_golang.
//
// Each collector is fed by a hook of a core package, which costs nothing
// when unset, and reads plain accessors at scrape time:
//
//	package       collector    hook                           read at scrape time
//	queue         Queue        queue.Config.Observer          Handler.Breaker (Watch)
//	activator     Activator    activator.Options.Observer     Handler.Status, Reporter.Latest (Watch)
//	traffic       Router       traffic.RouterConfig.Observer  —
//	autoscaler    Autoscaler   Runner.Subscribe               —
//
// Observe of the Queue, Activator and Router does not allocate: the
// children of the metric vectors are cached per revision and response code
// (TestHookAllocs; BENCHMARKS.md has the cost).
//
// # Names and labels
//
// Where Knative Serving has the same quantity, the metric has the name and
// the labels that Knative's Prometheus exporter gave it (Knative 1.x
// before its move to OpenTelemetry; facts from Knative's documentation of
// its serving and queue-proxy metrics): revision_request_count,
// revision_request_latencies, revision_queue_depth,
// activator_request_count, activator_request_latencies,
// activator_request_concurrency, and the autoscaler_* gauges; labels
// namespace_name, service_name, configuration_name, revision_name,
// pod_name, response_code and response_code_class; latencies in
// milliseconds. Knative's container_name label is left out (the queue runs
// in process here), and so are revision_app_request_count and
// revision_app_request_latencies (the queue's observation does not
// separate the wait for a slot from the application's time). The
// activator's metrics have no pod_name: Knative's named the activator's
// own pod, which here is the process that serves /metrics, so
// Prometheus' instance label tells activators apart. What Knative does
// not measure is named servingkit_*.
//
// The revision labels come from the host's revision key through
// Config.Labels; by default "namespace/name" gives namespace_name and
// revision_name, and service_name and configuration_name are empty.
package prometheus
