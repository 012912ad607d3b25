// Command inprocess embeds servingkit's queue in an existing http.Server:
// the application's own mux gets Knative's queue-proxy behaviour — a
// concurrency limit with a bounded queue, request timeouts, load stats for
// an autoscaler, readiness and a drain that loses no request — without a
// sidecar and without a proxy hop.
//
//	go run ./examples/inprocess
//	curl localhost:8090/work?ms=200           # the app, through the queue
//	curl localhost:9091/stats -H 'Accept: application/json'
//	curl localhost:9091/ready
//
// Ctrl-C drains: not-ready at once, keeps serving through a quiet period,
// finishes every accepted request, then exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/servingkit/servingkit/queue"
)

// newApp is the application as it was before: an ordinary mux.
func newApp() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			fmt.Fprintf(w, "worked %d ms\n", ms)
		case <-r.Context().Done():
		}
	})
	return mux
}

// wrap is the whole integration: the mux behind a queue, and the queue's
// reporter and admin handler.
func wrap(app http.Handler, revision, replica string) (*queue.Handler, *queue.Reporter, http.Handler, error) {
	h, err := queue.New(app, queue.Config{
		ContainerConcurrency: 4,                // at most 4 requests in the app at once
		QueueDepth:           40,               // 40 more may wait; the next gets 503
		MaxWait:              5 * time.Second,  // nobody waits longer than 5 s (503)
		TotalTimeout:         30 * time.Second, // 504 after 30 s
		QuietPeriod:          2 * time.Second,  // drain: serve 2 s past the last request
	})
	if err != nil {
		return nil, nil, nil, err
	}
	rep, err := queue.NewReporter(h.Recorder(), queue.ReporterConfig{Revision: revision, Replica: replica})
	if err != nil {
		return nil, nil, nil, err
	}
	return h, rep, queue.AdminHandler(h, rep), nil
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	host, _ := os.Hostname()
	h, rep, admin, err := wrap(newApp(), "default/inprocess-00001", host)
	if err != nil {
		log.Error("config", "error", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go rep.Run(ctx)

	srv := &http.Server{Addr: "127.0.0.1:8090", Handler: h, Protocols: queue.ServerProtocols(), ReadHeaderTimeout: 5 * time.Second}
	adm := &http.Server{Addr: "127.0.0.1:9091", Handler: admin, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve", "error", err)
			stop()
		}
	}()
	go func() { _ = adm.ListenAndServe() }()
	log.Info("serving", "app", "http://"+srv.Addr+"/work?ms=200", "stats", "http://"+adm.Addr+"/stats")

	<-ctx.Done()
	log.Info("draining")
	dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Drain(dctx); err != nil {
		log.Warn("drain", "error", err)
	}
	_ = srv.Shutdown(dctx)
	_ = adm.Shutdown(dctx)
	log.Info("drained; bye")
}
