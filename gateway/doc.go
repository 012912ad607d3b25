// Package gateway composes servingkit's pieces for hosts that run them on
// several machines: the glue every host would otherwise write again.
//
//   - Endpoints is one place for a revision's ready replicas and
//     activators: it hands a new replica set to the Serve balancer, the
//     activator and the revision's reconciler in the order that loses no
//     request, and InFlight tells when a removed replica may be stopped
//     (see Endpoints).
//   - ServeHandler is the Serve path: a balancer.Balancer and a
//     proxy.Forwarder whose HTTP/1 requests go through a proxy.Client (on
//     the handler's goroutine) unless the host gives its own transport; a
//     request a replica refused (nothing sent) goes to another.
//   - Activators and RevisionActivators are the Proxy path to activators
//     in other processes, over HTTP (the same forwarding), leaving out
//     dead ones at once.
//
// It is the only core package that imports several of its siblings
// (activator, balancer, proxy, revision); nothing in the core imports it,
// only programs. A gateway process wires one revision like this:
//
//	b, _ := balancer.New(balancer.Config{ContainerConcurrency: cc})
//	serve, _ := gateway.NewServeHandler(b, nil)
//	remote := activators.For(key) // or an in-process *activator.Handler
//	rec, _ := revision.NewReconciler(key, now, cfg, revision.ReconcilerOptions{Activator: remote, Serve: serve})
//	eps, _ := gateway.NewEndpoints(key, gateway.EndpointsConfig{Reconciler: rec, Serve: b, Remote: remote})
//	eps.SetActivators(now, activatorAddrs) // from discovery
//	eps.SetReady(now, readyReplicaAddrs)   // on every change
//	// route to rec.FrontDoor(); feed rec.Decide with the autoscaler's decisions
package gateway
