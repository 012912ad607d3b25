package activator_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/servingkit/servingkit/activator"
)

// An Observer sees every request the activator answered: for which
// revision, with which status, how it ended, how long it took and waited.
func ExampleObservation() {
	h, _ := activator.New(activator.Options{
		Observer: func(o activator.Observation) {
			fmt.Printf("%q %d %s proxied=%v\n", o.Revision, o.Status, o.Outcome, o.Proxied)
		},
	})
	_ = h.SetRevision("default/hello-00001", activator.RevisionConfig{MaxWaiting: 1})
	for _, rev := range []string{"default/nope", "default/hello-00001"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(activator.RevisionHeader, rev)
		rec := httptest.NewRecorder()
		if rev == "default/hello-00001" {
			// No replicas, and the client has already given up.
			ctx, cancel := context.WithCancel(req.Context())
			req = req.WithContext(ctx)
			cancel()
		}
		h.ServeHTTP(rec, req)
	}
	// Output:
	// "" 404 unknown-revision proxied=false
	// "default/hello-00001" 499 canceled proxied=false
}
