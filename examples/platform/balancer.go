package main

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"

	"github.com/servingkit/servingkit/internal/httpx"
)

// balancer is the Serve-mode path to a revision's replicas: what a
// Kubernetes Service does for Knative, here a reverse proxy that picks the
// less busy of two random replicas (by requests in flight through it).
type balancer struct {
	backends atomic.Pointer[[]*backend]
	proxy    *httputil.ReverseProxy
}

type backend struct {
	addr     string
	inFlight atomic.Int64
}

type backendKey struct{}

func newBalancer(transport http.RoundTripper) *balancer {
	b := &balancer{}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			be := pr.In.Context().Value(backendKey{}).(*backend)
			pr.SetURL(&url.URL{Scheme: "http", Host: be.addr})
			pr.Out.Host = pr.In.Host
			// Keep the client the gateway recorded (Rewrite starts without).
			for _, k := range []string{"Forwarded", "X-Forwarded-For"} {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
		},
		Transport:  transport,
		BufferPool: &httpx.BufferPool{}, // a 32 KiB copy buffer per request otherwise
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "platform: replica unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	empty := []*backend{}
	b.backends.Store(&empty)
	return b
}

// set replaces the replicas, keeping the counters of those that stay.
func (b *balancer) set(addrs []string) {
	old := *b.backends.Load()
	byAddr := make(map[string]*backend, len(old))
	for _, be := range old {
		byAddr[be.addr] = be
	}
	next := make([]*backend, 0, len(addrs))
	for _, a := range addrs {
		if be, ok := byAddr[a]; ok {
			next = append(next, be)
		} else {
			next = append(next, &backend{addr: a})
		}
	}
	b.backends.Store(&next)
}

// inFlight returns the requests in flight to addr through this balancer.
func (b *balancer) inFlight(addr string) int64 {
	for _, be := range *b.backends.Load() {
		if be.addr == addr {
			return be.inFlight.Load()
		}
	}
	return 0
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bes := *b.backends.Load()
	if len(bes) == 0 {
		// The switch only serves with ready replicas; this is a race with a
		// scale-down, and the client may retry.
		w.Header().Set("Retry-After", "1")
		http.Error(w, "platform: no ready replica for this revision in Serve mode", http.StatusServiceUnavailable)
		return
	}
	be := bes[0]
	if n := len(bes); n > 1 {
		i, j := rand.IntN(n), rand.IntN(n-1)
		if j >= i {
			j++
		}
		be = bes[i]
		if bes[j].inFlight.Load() < be.inFlight.Load() {
			be = bes[j]
		}
	}
	be.inFlight.Add(1)
	defer be.inFlight.Add(-1)
	b.proxy.ServeHTTP(w, r.WithContext(withBackend(r, be)))
}

func withBackend(r *http.Request, be *backend) context.Context {
	return context.WithValue(r.Context(), backendKey{}, be)
}
