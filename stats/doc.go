// Package stats is the load vocabulary that the queue, the activator and the
// autoscaler share.
//
// A [Stat] says how loaded one source (a replica, or an activator) was for
// one revision over one reporting period: the time-weighted average number of
// requests in flight, the requests per second, and how much of each came
// through the activator ("proxied"), so that the autoscaler can subtract load
// it would otherwise count twice. A [Message] pairs a Stat with the revision
// it is about.
//
// A [Recorder] turns request in/out events into those averages (Knative's
// RequestStats semantics: concurrency weighted by how long it lasted). A
// [Reporter] snapshots recorders every period on an injected clock and hands
// the batch to a [Sink]; [HTTPSink] pushes it over HTTP, [Handler] receives
// it. [AppendEncode] and [Decode] are the wire format used for both scraping
// and pushing.
//
// Usage sketch, inside a replica:
//
//	var rec stats.Recorder
//	rec.In(now, proxied)  // request arrives
//	rec.Out(now, proxied) // request leaves
//	r := rec.Report(now)  // every period
//	st := r.Stat(time.Second)
package stats
