package queue

import (
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/servingkit/servingkit/stats"
)

// AdminHandler returns the replica's admin handler, to serve on a port of
// its own so that it is not exposed with the application:
//
//   - GET /ready: 200 "ready" when h.CheckReady passes (in sidecar mode it
//     polls the application until it answers), 503 with the reason
//     otherwise (draining included).
//   - GET /stats: rep's latest batch, written with stats.WriteBatch (what
//     the autoscaler's scraper reads with stats.Fetch). Not served when rep
//     is nil.
//   - GET or POST /wait-for-drain: starts h.Drain and answers 200
//     "drained" when it is done (Knative's pre-stop hook), 500 with the
//     error if hijacked connections had to be closed, or nothing if the
//     caller left first.
//
// Its callers are programs — the kubelet's pre-stop hook and probes, an
// autoscaler's scraper, a host's supervisor — that address the replica by
// IP address or as localhost. So that no web page the machine's user opens
// can reach it (a cross-site request, or a page of a rebound domain name
// that resolves to this address), the handler answers 421 to a request
// whose Host is a name other than localhost, and 403 to one a browser
// marks as sent from another site (Sec-Fetch-Site cross-site or
// same-site), or that carries an Origin.
func AdminHandler(h *Handler, rep *Reporter) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if err := h.CheckReady(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ready\n")
	})
	if rep != nil {
		mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
			stats.WriteBatch(w, r, rep.Latest())
		})
	}
	drain := func(w http.ResponseWriter, r *http.Request) {
		if err := h.Drain(r.Context()); err != nil {
			if r.Context().Err() != nil {
				return
			}
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "drained\n")
	}
	mux.HandleFunc("GET /wait-for-drain", drain)
	mux.HandleFunc("POST /wait-for-drain", drain)
	return adminGuard{mux}
}

// adminGuard refuses what a browser can be made to send: see AdminHandler.
type adminGuard struct{ next http.Handler }

func (g adminGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !addressHost(r.Host) {
		http.Error(w, "queue admin: Host must be an IP address or localhost", http.StatusMisdirectedRequest)
		return
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		http.Error(w, "queue admin: cross-site requests are refused", http.StatusForbidden)
		return
	}
	if _, ok := r.Header["Origin"]; ok {
		http.Error(w, "queue admin: requests with an Origin are refused", http.StatusForbidden)
		return
	}
	g.next.ServeHTTP(w, r)
}

// addressHost reports whether host (a Host header: host or host:port) is
// an IP address or localhost, not a name DNS could point here.
func addressHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	return net.ParseIP(host) != nil
}
