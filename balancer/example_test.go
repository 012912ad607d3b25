package balancer_test

import (
	"fmt"

	"github.com/servingkit/servingkit/balancer"
)

// A revision with container concurrency 2 on two replicas: first
// available packs each replica to its limit, then overflows to the less
// loaded of two rather than making a request wait.
func ExampleBalancer() {
	b, _ := balancer.New(balancer.Config{ContainerConcurrency: 2})
	_ = b.SetReplicas([]string{"10.0.0.2:8012", "10.0.0.1:8012"})
	fmt.Println(b.Policy())
	var held []balancer.Reservation
	for range 4 {
		r, _ := b.Pick()
		held = append(held, r)
		fmt.Println(r.Addr())
	}
	for _, r := range held {
		r.Release()
	}
	fmt.Println(b.InFlight("10.0.0.1:8012"), b.InFlight("10.0.0.2:8012"))
	// Output:
	// first-available
	// 10.0.0.1:8012
	// 10.0.0.1:8012
	// 10.0.0.2:8012
	// 10.0.0.2:8012
	// 0 0
}
