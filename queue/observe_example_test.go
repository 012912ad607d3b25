package queue_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/servingkit/servingkit/queue"
)

// An Observer sees every request the queue accepted once it has ended: its
// status, how it ended, how long it took and whether an activator sent it.
func ExampleObservation() {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	h, _ := queue.New(app, queue.Config{
		ContainerConcurrency: 1,
		Observer: func(o queue.Observation) {
			fmt.Println(o.Status, o.Outcome, o.Proxied, o.Latency >= 0)
		},
	})
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set(queue.ProxyHeader, queue.ProxyHeaderValue)
	h.ServeHTTP(httptest.NewRecorder(), req)
	// Output: 201 served true true
}
