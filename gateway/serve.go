package gateway

import (
	"errors"
	"net/http"
	"net/http/httputil"
	"strings"

	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/proxy"
)

// ServeHandler is a revision's Serve path: an http.Handler that picks a
// ready replica with a balancer.Balancer and forwards the request to it
// with a reverse proxy (what a Kubernetes Service does for Knative). Give
// it to revision.ReconcilerOptions.Serve, and the Balancer to
// EndpointsConfig.Serve.
//
// A replica that refuses the connection (it died before the endpoints
// caught up; nothing of the request was sent) is skipped and the request
// goes to another, up to MaxServeAttempts replicas. Answers it gives
// itself: 503 with Retry-After when the revision has no replica (a race
// with a scale-down; the front door serves only with ready replicas), 502
// when no replica could be reached or one failed after the request was
// sent. Safe for simultaneous use.
type ServeHandler struct {
	b  *balancer.Balancer
	rp *proxy.Forwarder
}

// MaxServeAttempts is how many replicas a ServeHandler tries for one
// request whose connections are refused.
const MaxServeAttempts = 3

// NewServeHandler returns the Serve path over b, forwarding with transport.
// Nil means servingkit's default: a proxy.Client for HTTP/1 requests (the
// request written and the response read on the handler's goroutine), and
// proxy.NewTransport's defaults for upgrades and HTTP/2 (h2c). A non-nil
// transport forwards every request.
func NewServeHandler(b *balancer.Balancer, transport http.RoundTripper) (*ServeHandler, error) {
	if b == nil {
		return nil, errors.New("gateway: NewServeHandler: balancer is nil")
	}
	var client *proxy.Client
	if transport == nil {
		client = new(proxy.Client)
		transport = proxy.NewTransport(proxy.TransportConfig{})
	}
	h := &ServeHandler{b: b}
	h.rp = &proxy.Forwarder{
		Rewrite: func(pr *httputil.ProxyRequest, arg any) {
			at := arg.(*attempt)
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", at.addr
			pr.Out.Host = pr.In.Host
			// Keep the client the hops before recorded: Rewrite starts
			// without the forwarding headers.
			for _, k := range forwardedHeaders {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
		},
		Client:     client,
		Transport:  transport,
		BufferPool: new(proxy.BufferPool),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error, arg any) {
			at := arg.(*attempt)
			if refused(err) && !at.body.read.Load() && !at.last {
				at.refuse = true
				return
			}
			if r.Context().Err() != nil {
				return // the client went away
			}
			http.Error(w, "gateway: replica unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	return h, nil
}

// forwardedHeaders are what the Forwarder removes before Rewrite.
var forwardedHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// Balancer returns the handler's balancer.
func (h *ServeHandler) Balancer() *balancer.Balancer { return h.b }

// ServeHTTP forwards r to a replica as the type's doc describes.
func (h *ServeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, body := withCountingBody(r)
	var refusedBy [MaxServeAttempts]string
	for i := range MaxServeAttempts {
		var res balancer.Reservation
		var ok bool
		if i == 0 {
			res, ok = h.b.Pick()
		} else {
			res, ok = h.b.PickExcept(refusedBy[:i])
		}
		switch {
		case !ok && i == 0:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "gateway: no ready replica for this revision in Serve mode", http.StatusServiceUnavailable)
			return
		case !ok:
			http.Error(w, "gateway: replica unreachable: connection refused by "+strings.Join(refusedBy[:i], ", "), http.StatusBadGateway)
			return
		}
		at := &attempt{addr: res.Addr(), body: body, last: i == MaxServeAttempts-1}
		h.rp.Forward(w, r, r.Context(), at)
		res.Release()
		if !at.refuse {
			return
		}
		refusedBy[i] = at.addr
	}
}
