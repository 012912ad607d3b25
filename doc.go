// Package servingkit is Knative Serving's data plane and autoscaler as an
// embeddable Go library, for platform teams that build their own serverless
// platform — on Kubernetes, Nomad, plain VMs or processes — and want
// Knative's proven machinery without installing Knative.
//
// The packages, each usable on its own:
//
//   - stats: the load vocabulary — Stat, a time-weighted concurrency
//     Recorder, a Reporter, and the wire format for scraping and pushing.
//   - balancer and proxy: leaves for forwarding — picking a replica with
//     the activator's policies, and a tuned transport with pooled buffers.
//   - queue: keep one replica within its concurrency limit (Breaker) and
//     report its load; in process around an http.Handler, or as a sidecar
//     reverse proxy.
//   - activator: hold requests for a revision without capacity, poke the
//     autoscaler, and send them on when replicas appear.
//   - autoscaler: Knative's KPA — windows, the panic/stable decider, scale to
//     zero — and a runner that drives many revisions through the host's
//     scaler backend.
//   - traffic: which revision serves a request — weighted and sticky splits,
//     tags, latest revision, gradual rollout, and a router.
//   - revision: configurations and immutable revisions, their conditions,
//     and the proxy/serve switch with a per-revision front door.
//   - gateway: the composition a host on several machines needs — a
//     revision's endpoints fan-out, the Serve path, remote activators.
//     Only programs import it.
//
// # The flow of a request
//
// A traffic.Router picks a revision for the request and hands it to that
// revision's front door. In Proxy mode (no replicas, or too little spare
// capacity) the front door sends it to the activator, which counts it,
// pokes the autoscaler, waits for capacity and forwards it; in Serve mode it
// goes straight to a replica. At the replica, a queue handler lets at most
// container-concurrency requests into the application and queues the rest.
//
// # The flow of a scaling decision
//
// Every replica's queue and every activator report a stats.Stat each second.
// The autoscaler averages them over a stable (60 s) and a panic (6 s)
// window, and every 2 s its decider turns the averages into a desired scale
// and an excess burst capacity. The runner applies bounds and scale-to-zero
// rules and calls the host's scaler backend; the revision package turns the
// decision into the revision's conditions and its proxy/serve mode.
//
// # Running on several machines
//
// Gateways (router, front doors), activators and autoscalers run as
// several processes that talk over HTTP. In each gateway process, one
// gateway.Endpoints per revision takes the ready replicas and hands them to
// the Serve balancer, the activator and the reconciler, in that order; the
// Proxy path reaches the revision's activators, local or remote, through
// gateway.RevisionActivators, which leaves out an activator that refuses
// connections. Every autoscaler knows every revision; autoscaler.Shards
// gives each bucket of revisions to one of them through an
// autoscaler.Lease (in memory, a flock file, or a Kubernetes Lease), and
// stats pushed to any autoscaler reach the owner. A new owner adopts a
// revision without scaling it down until a full stable window of load has
// been seen. Gateways send a sticky key to the same revision when they
// applied the same route updates, and with
// traffic.RouterConfig.StatelessSplits also when one started later.
//
// On Kubernetes, the kubernetes module runs all of it: the scale
// subresource as the scaler backend, EndpointSlices for Endpoints.SetReady,
// a coordination.k8s.io Lease. On Nomad or VMs, feed Endpoints.SetReady
// from the service catalogue (Consul, Nomad's service API), scale through
// the job API, and give Shards a Lease over a store with expiring locks (a
// Consul session, an etcd lease); FileLease serves autoscalers on one
// machine only. The README's "Running on several machines" says what runs
// where and what talks to what; examples/multinode runs it on loopback.
package servingkit
