package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/servingkit/servingkit/revision"
)

// A revision that failed — Ready False because its program crashes or its
// replicas did not become ready within the progress deadline — and has no
// replica serving or on its way (every replica backs off after crashing
// again, or missed the progress deadline) answers 503 with the reason at once, and the requests
// the activator holds for it get the same 503 instead of waiting for a
// capacity that will not come.

// revisionFailed is the cause a held request is cancelled with.
type revisionFailed struct {
	key  string
	cond revision.Condition
}

func (e *revisionFailed) Error() string {
	return fmt.Sprintf("platform: revision %s cannot serve: %s: %s", e.key, e.cond.Reason, e.cond.Message)
}

// failure returns why the revision cannot serve, or nil. A revision that
// failed still serves while a replica is ready, and its requests wait
// while one is on its way (pool.starting): a replica that crashed for the
// first time is replaced at once, and the requests sent meanwhile are
// served by its replacement, not answered with the crash.
func (r *rev) failure() *revisionFailed {
	st := r.rec.State().Status
	if st.Ready.Status != revision.False || len(r.pool.readyReplicas()) > 0 || r.pool.starting(time.Now()) {
		return nil
	}
	return &revisionFailed{key: r.key, cond: st.Ready}
}

// checkFailed cancels the held requests if the revision failed.
func (r *rev) checkFailed() {
	if f := r.failure(); f != nil {
		r.waiting.cancelAll(f)
	}
}

// serveHTTP is the revision's front door with the failure check around it.
func (r *rev) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if f := r.failure(); f != nil {
		writeFailure(w, f)
		return
	}
	front := r.rec.FrontDoor()
	if front.Mode() != revision.Proxy {
		front.ServeHTTP(w, req)
		return
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	defer cancel(nil)
	id := r.waiting.add(cancel)
	defer r.waiting.remove(id)
	if f := r.failure(); f != nil { // failed between the check and add
		cancel(f)
	}
	front.ServeHTTP(&failWriter{ResponseWriter: w, ctx: ctx}, req.WithContext(ctx))
}

func writeFailure(w http.ResponseWriter, f *revisionFailed) {
	w.Header().Set("Retry-After", "10")
	http.Error(w, f.Error(), http.StatusServiceUnavailable)
}

// failWriter answers with the revision's failure, instead of whatever the
// activator writes, when the request was cancelled because of it.
type failWriter struct {
	http.ResponseWriter
	ctx      context.Context
	replaced bool
}

func (w *failWriter) WriteHeader(code int) {
	if w.replaced {
		return
	}
	var f *revisionFailed
	if errors.As(context.Cause(w.ctx), &f) {
		w.replaced = true
		h := w.ResponseWriter.Header()
		h.Del("Content-Length")
		writeFailure(w.ResponseWriter, f)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *failWriter) Write(b []byte) (int, error) {
	if !w.replaced {
		var f *revisionFailed
		if errors.As(context.Cause(w.ctx), &f) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *failWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// waiters are the requests held in Proxy mode, each with its cancel.
type waiters struct {
	mu   sync.Mutex // protects next and m
	next uint64
	m    map[uint64]context.CancelCauseFunc
}

func (ws *waiters) add(c context.CancelCauseFunc) uint64 {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.m == nil {
		ws.m = map[uint64]context.CancelCauseFunc{}
	}
	ws.next++
	ws.m[ws.next] = c
	return ws.next
}

func (ws *waiters) remove(id uint64) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	delete(ws.m, id)
}

func (ws *waiters) cancelAll(cause error) {
	ws.mu.Lock()
	cancels := make([]context.CancelCauseFunc, 0, len(ws.m))
	for _, c := range ws.m {
		cancels = append(cancels, c)
	}
	ws.mu.Unlock()
	for _, c := range cancels {
		c(cause)
	}
}

// progressBackstop is how much later than the pool the reconciler checks
// the progress deadline.
const progressBackstop = 5 * time.Second

// progressDeadlineAnnotation sets a revision's progress deadline, as in
// Knative.
const progressDeadlineAnnotation = "serving.knative.dev/progress-deadline"

// progressDeadline is the revision's progress deadline: its annotation, or
// Options.ProgressDeadline.
func (p *Platform) progressDeadline(annotations map[string]string) (time.Duration, error) {
	v, ok := annotations[progressDeadlineAnnotation]
	if !ok {
		return p.opts.ProgressDeadline, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 24*time.Hour {
		return 0, fmt.Errorf("spec.template.metadata.annotations[%s] = %q: want a duration in (0, 24h], such as \"120s\"", progressDeadlineAnnotation, v)
	}
	return d, nil
}
