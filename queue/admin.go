package queue

import (
	"io"
	"net/http"

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
	return mux
}
