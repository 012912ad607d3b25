package traffic

import (
	"net/http"
	"sync"
	"time"

	"github.com/servingkit/servingkit/internal/statuswriter"
)

// Observation describes one request the Router answered, for
// RouterConfig.Observer.
type Observation struct {
	// Route is the route that matched, "namespace/name" (its hosts joined
	// by commas for a route without a name); "" when none did (404).
	Route string
	// Revision is the revision the request was sent to, or whose missing
	// front door answered 503; "" when no route matched.
	Revision string
	// Status is the status the client got (101 for an upgrade whose front
	// door hijacked the connection without writing one).
	Status int
	// Latency runs from the request's arrival until the front door
	// returned.
	Latency time.Duration
}

// observed is the pooled per-request state of an observed request.
type observed struct {
	statuswriter.Writer
	route, rev string
}

var observedPool = sync.Pool{New: func() any { return new(observed) }}

// serveObserved serves the request through a pooled status writer and
// reports it once the front door is done. The Router has no clock of its
// own: it reads the real one, as net/http does for its deadlines.
func (r *Router) serveObserved(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	ob := observedPool.Get().(*observed)
	ob.ResponseWriter = w
	r.serve(&ob.Writer, req, ob)
	o := Observation{Route: ob.route, Revision: ob.rev, Status: ob.Status, Latency: time.Since(start)}
	if o.Status == 0 {
		o.Status = http.StatusOK // what net/http sends for a handler that wrote nothing
		if len(req.Header["Upgrade"]) != 0 {
			o.Status = http.StatusSwitchingProtocols
		}
	}
	*ob = observed{}
	observedPool.Put(ob)
	r.cfg.Observer(o)
}
