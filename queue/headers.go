package queue

// Headers the queue reads. They match Knative's, so a Knative activator or
// prober works against a servingkit replica and vice versa.
const (
	// ProxyHeader marks a request forwarded by an activator. A request whose
	// ProxyHeader equals ProxyHeaderValue counts as proxied in the replica's
	// stats, so the autoscaler does not count it twice (the activator
	// already reported it).
	ProxyHeader = "K-Proxy-Request"
	// ProxyHeaderValue is the value an activator sets in ProxyHeader.
	ProxyHeaderValue = "activator"

	// ProbeHeader on a request to the serving port asks the queue whether
	// the replica is ready, instead of passing the request to the
	// application. With the value ProbeHeaderValue the queue answers 200 and
	// the body "queue" when ready, 503 when not (or draining).
	ProbeHeader = "K-Network-Probe"
	// ProbeHeaderValue is the value of ProbeHeader for a readiness probe.
	ProbeHeaderValue = "queue"
)
