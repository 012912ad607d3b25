package activator

import (
	"net/http"
	"sync"
	"time"

	"github.com/servingkit/servingkit/internal/statuswriter"
)

// Observation describes one request the Handler answered, for
// Options.Observer.
type Observation struct {
	// Revision is the revision the request was for; "" when it named none
	// (OutcomeUnknownRevision, or OutcomeShuttingDown before it was
	// resolved).
	Revision string
	// Status is the status sent: the replica's (101 for a forwarded
	// upgrade), or the activator's own answer (404, 502, 503, 504, and
	// StatusClientClosedRequest when the client left).
	Status int
	// Outcome is OutcomeServed for a request forwarded to a replica and
	// answered by it, OutcomeTimeout or OutcomeCanceled when the request's
	// deadline passed or its client left while it waited or was
	// forwarded, or why else the activator answered it itself (-1 for an
	// unexpected error, 500).
	Outcome Outcome
	// Latency runs from the request's arrival until the Handler returned
	// (the response is complete).
	Latency time.Duration
	// Waited is how long the request waited for capacity; zero when a
	// replica had a free slot at once.
	Waited time.Duration
	// Proxied is true when the request was forwarded to a replica.
	Proxied bool
}

// observed is the pooled per-request state of an observed request: the
// writer that remembers the status, and what ServeHTTP learned.
type observed struct {
	statuswriter.Writer
	rev     string
	outcome Outcome
	waited  time.Duration
	proxied bool
}

var observedPool = sync.Pool{New: func() any { return new(observed) }}

// serveObserved serves the request through a pooled status writer and
// reports it to the observer once ServeHTTP is done with it.
func (h *Handler) serveObserved(w http.ResponseWriter, r *http.Request, key string) {
	start := h.clock.Now()
	ob := observedPool.Get().(*observed)
	ob.ResponseWriter = w
	h.serve(&ob.Writer, r, key, ob)
	o := Observation{
		Revision: ob.rev, Status: ob.Status, Outcome: ob.outcome,
		Latency: h.clock.Since(start), Waited: ob.waited, Proxied: ob.proxied,
	}
	if o.Status == 0 {
		o.Status = http.StatusOK // what net/http sends for a handler that wrote nothing
		if ob.proxied && len(r.Header["Upgrade"]) != 0 {
			o.Status = http.StatusSwitchingProtocols // the proxy writes the 101 on the hijacked connection
		}
	}
	*ob = observed{}
	observedPool.Put(ob)
	h.observer(o)
}
