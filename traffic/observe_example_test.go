package traffic_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/servingkit/servingkit/traffic"
)

// An Observer sees every request the router answered: the route, the
// revision it picked and the status.
func ExampleObservation() {
	r, _ := traffic.NewRouter(traffic.RouterConfig{
		Observer: func(o traffic.Observation) { fmt.Printf("%q %q %d\n", o.Route, o.Revision, o.Status) },
	})
	t, _ := traffic.Resolve(traffic.Spec{Traffic: []traffic.Target{{RevisionName: "default/hello-00001", Percent: 100}}}, nil)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("hi")) })
	_ = r.Update([]traffic.Route{{Name: "hello", Namespace: "default", Table: t}}, traffic.FrontDoorMap{"default/hello-00001": ok})
	for _, host := range []string{"hello.default.svc.cluster.local", "nope.example.com"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil))
	}
	// Output:
	// "default/hello" "default/hello-00001" 200
	// "" "" 404
}
