// Package autoscaler decides how many replicas each revision needs and tells
// the host's scaler backend: Knative Serving's KPA as a library, with
// Knative's decisions for the same inputs (but for the differences
// below) and no Kubernetes in its API.
//
// The pieces, from pure to clocked:
//
//   - [Window]: time-bucketed averages over a sliding window, linear or
//     weighted-exponential, with Knative's exact arithmetic. Times are passed
//     in.
//   - [Decider]: the panic/stable scaling algorithm as a pure state machine.
//     Step(now, ready, stableLoad, panicLoad) returns the desired replica
//     count, the excess burst capacity and whether it panics.
//   - [Config] and [Config.RevisionSpec]: Knative's config-autoscaler keys
//     and autoscaling.knative.dev annotations, validated with Knative's
//     ranges, resolved into a [Spec].
//   - [Collector]: the stable and panic windows of many revisions, fed by
//     pushed stats (activator, replicas) and by a [Scraper] such as
//     [HTTPScraper], which samples replicas like Knative and extrapolates.
//   - [Runner]: autoscales many revisions on an injected clock, with one
//     goroutine for all of them: ticks every 2 s, decides at once on a
//     [Runner.Poke] that wakes a revision at zero, applies min/max, initial
//     and activation scale and the scale-to-zero grace and retention, calls
//     the host's [Scaler] and publishes each [Decision] to subscribers.
//   - [Shards]: several autoscaler processes share the revisions by
//     buckets, each bucket owned by one through a [Lease] ([MemoryLease],
//     [FileLease], or the Kubernetes module's); stats pushed to any of them
//     reach the owner, and a new owner adopts a revision ([Runner.Adopt])
//     without scaling it down while its windows refill.
//
// Usage sketch, in a host:
//
//	cfg, err := autoscaler.ParseConfig(configMapData)
//	spec, err := cfg.RevisionSpec(revisionAnnotations, containerConcurrency)
//	r, err := autoscaler.NewRunner(autoscaler.Options{
//		Scaler: autoscaler.ScalerFunc(func(ctx context.Context, rev string, n int) error {
//			return deployments.Resize(ctx, rev, n)
//		}),
//		Ready: autoscaler.ReadyCounterFunc(endpoints.ReadyCount),
//		// Optional: how long the front door has had the activator in the
//		// path, which the scale-to-zero grace period waits on.
//		ProxyTimer: autoscaler.ProxyTimerFunc(frontDoor.ProxyFor),
//	})
//	r.Subscribe(func(d autoscaler.Decision) { frontDoor.SetProxy(d.Revision, d.ActivatorInPath()) })
//	r.Add("default/hello-00001", spec)
//	go r.Run(ctx)
//	// Stats pushed by queues and activators: r is a stats.Sink.
//	http.Handle("/stats", stats.Handler(r.Send))
//
// # What differs from Knative
//
// The windows and the decider do Knative's arithmetic; the scenario tables
// in autoscalertest run against Knative v0.42.2's own code in the bench
// module. By default three things differ, all on purpose:
//
//   - A revision no route reaches ([DeciderSpec].Unreachable) skips the
//     scale-down delay, as the Knative of our reference does; Knative
//     v0.42.2 applies the delay to it too, so the scenario table
//     "delay/skipped while unreachable" differs from v0.42.2 (1 replica
//     at +4 s where v0.42.2 keeps 5).
//   - A [Runner] tick decides on the load through the last complete second,
//     not the second under way, so that a stat arriving just after the
//     tick (a report or scrape in phase with it) cannot make a one-second
//     panic window read 0, a race Knative's collector mostly loses. A stat
//     may therefore count up to a second later than in Knative; a
//     [Runner.Poke] still decides on everything recorded.
//   - A stat with a Source counts once a second for its source: a second
//     stat of the same second replaces the first, and a source missing
//     from a second it reported in the second before is held at its last
//     stat for that one second (see [Collector]). A reporter whose period
//     ends a few milliseconds either side of a whole second otherwise
//     leaves, through jitter, one second with two of its stats and the
//     next with none, and a one-second panic window reads twice its load,
//     then 0; Knative sums them. Where every source reports once a second,
//     the averages are Knative's.
//
// To test a scaling policy, drive the pure [Decider] with literal times, or
// a whole Runner on a mock clock with the autoscalertest package: feed
// load, advance the clock 60 s, expect a scale of 5.
package autoscaler
