// Package activator holds requests for revisions that have no free capacity
// — scaled to zero, or every replica busy — and sends them on, in arrival
// order, the moment capacity appears; requests that find capacity are
// balanced over the revision's replicas. It is Knative's activator without
// Kubernetes: the host says what each revision is and which replicas it has
// with plain calls.
//
// A [Throttler] does the waiting and balancing for any proxy: per revision,
// each replica takes at most the revision's container concurrency (CC) from
// this activator, so capacity is CC × ready replicas (unlimited when CC is
// 0), optionally only this activator's [Subset] of them. Requests wait in a
// per-revision FIFO queue that is bounded in length (MaxWaiting → 503 at
// once) and in time (MaxWait → 503, the revision timeout → 504), and they
// leave it as soon as their client goes away. A replica is picked by a
// [Policy]: Knative's rule by default (power of two choices for CC 0, first
// available for CC ≤ 3, round robin above), or one set per revision. An
// optional [Prober] keeps a listed replica out of use until it answers.
//
// A [Handler] is the activator as an http.Handler: it resolves each
// request's revision (a [Resolver]; by default the Knative-Serving-Revision
// header), counts the request toward the revision's load while it waits and
// runs, pokes the autoscaler on a revision's first request (a [Poker]),
// reports stats every period to a stats.Sink, and forwards through a reverse
// proxy with pooled buffers, marking requests with queue.ProxyHeader.
// Websockets, server-sent events and gRPC over h2c pass through.
//
// Usage sketch:
//
//	h, err := activator.New(activator.Options{
//		Name:       "activator-0",
//		Poker:      autoscalerRunner,      // Poke(revision, stats.Stat)
//		Sink:       autoscalerRunner,      // Send(ctx, []stats.Message)
//		WaitHeader: "X-Activator-Wait",
//	})
//	go h.Run(ctx) // periodic stats
//	h.SetRevision("default/hello-00001", activator.RevisionConfig{
//		ContainerConcurrency: 10,
//		MaxWait:              30 * time.Second,
//	})
//	protos := new(http.Protocols) // HTTP/1.1 and h2c, for gRPC
//	protos.SetHTTP1(true)
//	protos.SetUnencryptedHTTP2(true)
//	srv := &http.Server{Handler: h, Protocols: protos}
//	// Whenever the revision's ready replicas change:
//	h.SetReplicas("default/hello-00001", []string{"10.0.0.7:8012", "10.0.0.9:8012"})
//	// On SIGTERM:
//	h.Shutdown(drainCtx)
package activator
