// Package traffic decides which revision serves a request: Knative's route
// traffic (percent splits, tags, "latest ready revision" targets, gradual
// rollout) as plain values, O(1) random and sticky picking, and an
// http.Handler that routes by host, path and tag to each revision's front
// door. It uses only the standard library, and no clock: time is passed in.
//
// The pieces, each usable alone:
//
//   - [Spec] and [Target]: a route's traffic, with Knative's JSON,
//     defaults (SetDefaults) and validation (Validate reports every
//     problem as a [FieldError] with the field's path, value and rule).
//   - [Resolve]: a spec plus each configuration's latest ready revision
//     ([LatestReady]) gives a [Table]: the default split, with percents
//     merged per revision, and one split per tag. Resolve again when a
//     configuration in Spec.Configurations gets a new latest ready revision.
//   - [RolloutConfig.Plan]: Knative's gradual rollout. When a latest
//     target's revision changes, the new revision gets 1%, then steps
//     timed by how long that 1% took to go live (Rollout.ObserveReady)
//     until it has the whole share. The state ([Rollout]) is a JSON value
//     the host stores between plans; an optional [Budget] keeps a rollout
//     within a fixed number of extra replicas (knative/serving#12971).
//   - [Split]: picks a revision in O(1) without allocating, at random or
//     sticky by key ([Hash]); Rebalance moves only the minimum share of
//     keys when percents change.
//   - [Router]: finds the route by host (templates {name}.{namespace}.{domain}
//     and {tag}-{name}), path prefix and, opt-in, the Knative-Serving-Tag
//     header; strips internal headers from untrusted requests; picks; and
//     calls the revision's front door. Routes are swapped atomically, with
//     no lock on the request path; an update refuses only the routes that
//     are invalid or claim another route's host ([UpdateError]). Routers
//     that applied the same updates send every sticky key to the same
//     revision; with RouterConfig.StatelessSplits, any routers given the
//     same routes do, whatever updates each saw before (several gateways).
//
// Usage sketch, in a host that keeps its routes in its own store:
//
//	router, _ := traffic.NewRouter(traffic.RouterConfig{Domain: "example.com", StickyCookie: "session"})
//	rollout := traffic.RolloutConfig{Duration: 2 * time.Minute}
//	var state *traffic.Rollout // per route, stored between plans
//
//	// Whenever the spec or a latest ready revision changes, and at plan.NextStep:
//	want, err := traffic.Resolve(spec, latestReady) // on error keep the old routes
//	plan := rollout.Plan(state, want, now)
//	state = plan.State
//	err = router.Update([]traffic.Route{{Name: "hello", Namespace: "default", Table: plan.Table}},
//		traffic.FrontDoorFunc(frontDoorOf)) // each revision's http.Handler
//	// err, if any, is an *UpdateError naming each refused route; the others are served.
//	// Once the new table is live and plan.AwaitingReady: state.ObserveReady(now, rollout.Duration), plan again.
//
//	http.ListenAndServe(":8080", router)
package traffic
