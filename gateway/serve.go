package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/proxy"
)

// ServeHandler is a revision's Serve path: an http.Handler that picks a
// ready replica with a balancer.Balancer and forwards the request to it
// with a reverse proxy (what a Kubernetes Service does for Knative). Give
// it to revision.ReconcilerOptions.Serve, and the Balancer to
// EndpointsConfig.Serve.
//
// Answers it gives itself: 503 with Retry-After when the revision has no
// replica (a race with a scale-down; the front door serves only with
// ready replicas), 502 when the replica could not be reached. Safe for
// simultaneous use.
type ServeHandler struct {
	b  *balancer.Balancer
	rp *httputil.ReverseProxy
}

type replicaKey struct{}

// NewServeHandler returns the Serve path over b, forwarding with transport
// (nil means proxy.NewTransport's defaults).
func NewServeHandler(b *balancer.Balancer, transport http.RoundTripper) (*ServeHandler, error) {
	if b == nil {
		return nil, errors.New("gateway: NewServeHandler: balancer is nil")
	}
	if transport == nil {
		transport = proxy.NewTransport(proxy.TransportConfig{})
	}
	h := &ServeHandler{b: b}
	h.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			addr, _ := pr.In.Context().Value(replicaKey{}).(string)
			pr.SetURL(&url.URL{Scheme: "http", Host: addr})
			pr.Out.Host = pr.In.Host
			// Keep the client the hops before recorded: Rewrite starts
			// without the forwarding headers.
			for _, k := range forwardedHeaders {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
		},
		Transport:  transport,
		BufferPool: new(proxy.BufferPool),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			http.Error(w, "gateway: replica unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	return h, nil
}

// forwardedHeaders are what httputil.ReverseProxy removes before Rewrite.
var forwardedHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// Balancer returns the handler's balancer.
func (h *ServeHandler) Balancer() *balancer.Balancer { return h.b }

// ServeHTTP forwards r to a replica as the type's doc describes.
func (h *ServeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res, ok := h.b.Pick()
	if !ok {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "gateway: no ready replica for this revision in Serve mode", http.StatusServiceUnavailable)
		return
	}
	defer res.Release()
	h.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), replicaKey{}, res.Addr())))
}
