package kubernetes

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
)

// balancer is a Service's Serve-mode path: a reverse proxy to the less busy
// of two random ready pods (by requests in flight through this process).
// With no ready pod — a race with a scale-down the front door has not
// followed yet — it hands the request to the activator, which holds it
// until a pod is ready, rather than failing it.
type balancer struct {
	backends atomic.Pointer[[]*backend]
	proxy    *httputil.ReverseProxy
	fallback http.Handler
}

type backend struct {
	addr     string
	inFlight atomic.Int64
}

type backendKey struct{}

func newBalancer(fallback http.Handler) *balancer {
	b := &balancer{fallback: fallback}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			be := pr.In.Context().Value(backendKey{}).(*backend)
			pr.SetURL(&url.URL{Scheme: "http", Host: be.addr})
			pr.Out.Host = pr.In.Host
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "servingkit: pod unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	empty := []*backend{}
	b.backends.Store(&empty)
	return b
}

// set replaces the pods, keeping the counters of those that stay.
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

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bes := *b.backends.Load()
	if len(bes) == 0 {
		b.fallback.ServeHTTP(w, r)
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
	b.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), backendKey{}, be)))
}
