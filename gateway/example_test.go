package gateway_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/gateway"
	"github.com/servingkit/servingkit/revision"
)

// One revision in a gateway process whose activators run elsewhere: the
// ready replicas reach the Serve balancer before the reconciler, which
// switches the front door to Serve once the autoscaler wants replicas and
// spare capacity.
func ExampleEndpoints() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	acts, _ := gateway.NewActivators(gateway.ActivatorsConfig{})
	remote := acts.For("default/hello-00001")
	b, _ := balancer.New(balancer.Config{ContainerConcurrency: 10})
	serve, _ := gateway.NewServeHandler(b, nil)
	rec, _ := revision.NewReconciler("default/hello-00001", now, revision.Config{},
		revision.ReconcilerOptions{Activator: remote, Serve: serve})
	eps, _ := gateway.NewEndpoints("default/hello-00001", gateway.EndpointsConfig{Reconciler: rec, Serve: b, Remote: remote})

	eps.SetActivators(now, []string{"10.0.9.1:8013", "10.0.9.2:8013", "10.0.9.3:8013"})
	fmt.Println(rec.FrontDoor().Mode(), len(remote.Addresses()), "activators")
	rec.Decide(now, revision.Decision{Desired: 2, ExcessBurstCapacity: 5})
	_ = eps.SetReady(now, []string{"10.0.0.2:8012", "10.0.0.1:8012"})
	fmt.Println(rec.FrontDoor().Mode(), b.Replicas())
	var _ http.Handler = rec.FrontDoor() // what the router calls
	// Output:
	// Proxy 2 activators
	// Serve [10.0.0.1:8012 10.0.0.2:8012]
}
