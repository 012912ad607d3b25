// Package balancer picks one of a revision's replicas for each request:
// the activator's policies (power of two choices, round robin, first
// available, random) over lock-free per-replica slots, reusable on the
// Serve path, where requests go to the replicas without an activator.
//
// It is a leaf: it imports nothing of servingkit's, and the activator
// imports it. Balancer is the Serve path's type; Pick and Slot are the
// building blocks the activator's throttler uses under its own waiting
// logic.
//
//	b, _ := balancer.New(balancer.Config{ContainerConcurrency: 10})
//	_ = b.SetReplicas([]string{"10.0.0.1:8012", "10.0.0.2:8012"})
//	if r, ok := b.Pick(); ok {
//		defer r.Release()
//		// forward to r.Addr()
//	}
package balancer
