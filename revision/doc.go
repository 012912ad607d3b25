// Package revision is a revision's life, Knative Serving style, for hosts
// that run their own replicas: configurations that stamp out immutable
// revisions, each revision's conditions, its proxy/serve switch (Knative's
// ServerlessService), and the front door a router sends its requests to.
//
//   - [Configuration] applies templates (the host's own type, or [Spec]):
//     a changed template makes a new immutable [Revision] named
//     "<config>-00001", "-00002", …; history is kept for rollback, and
//     [Configuration.Collect] retires revisions no route needs
//     ([RetentionPolicy], Knative's GC rules).
//   - [Lifecycle] turns plain inputs — desired scale, ready replicas,
//     host-reported failures ([Failure]), times — into a [Status] with Knative's
//     conditions (ResourcesAvailable, ContainerHealthy, Ready, Active),
//     reasons and messages. Ready does not include Active, so a revision
//     scaled to zero stays Ready.
//   - [Switch] decides the [Mode]: Serve when the autoscaler wants replicas
//     and the excess burst capacity is >= 0, else Proxy; forced to Proxy
//     with no ready replica and to Serve with no ready activator. It sizes
//     the activator subset ([ActivatorSizing.NumActivators]), picks it
//     consistently ([ChooseSubset]) and reports [Switch.ProxyFor].
//   - [FrontDoor] is an http.Handler that sends each request to the
//     activator (with the [RevisionHeader]) or to the replicas, switching
//     with one atomic load per request.
//   - [Reconciler] is the concurrent shell over one revision: it takes the
//     autoscaler's [Decision] and the host's readiness as plain values,
//     keeps the status and the mode, switches the front door and tells
//     observers outside its lock, in order.
//
// Lifecycle and Switch are plain values that take the time as an argument
// and do no I/O; only Reconciler.Run holds a clock.
//
// Usage sketch, wiring autoscaler → revision → router (act is the
// activator's handler, toReplicas reaches the replicas):
//
//	cfg, _ := revision.NewConfiguration[revision.Spec]("hello", revision.ConfigurationOptions{Namespace: "default"})
//	rev, _, _ := cfg.Apply(now, revision.Spec{Image: "example.com/hello:v1"})
//
//	rec, _ := revision.NewReconciler(rev.Key, now, revision.Config{},
//		revision.ReconcilerOptions{Activator: act, Serve: toReplicas})
//	rec.SetActivators(now, []string{"in-process"})
//	router.Update(routes, traffic.FrontDoorMap{rev.Key: rec.FrontDoor()})
//
//	// On every autoscaler decision, and whenever readiness changes:
//	rec.Decide(now, revision.Decision{Desired: desired, ExcessBurstCapacity: ebc, Panicking: panicking})
//	rec.SetReplicas(now, readyAddrs)
//	// rec.ProxyFor(now) is how long the activator has been in the path: what
//	// Knative's scale-to-zero grace period waits on. Give it to the
//	// autoscaler through autoscaler.Options.ProxyTimer.
package revision
