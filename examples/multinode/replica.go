package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/servingkit/servingkit/queue"
)

// runReplica is one replica process: a demo app that takes -work per
// request, behind queue (concurrency limit, stats pushed to the
// autoscalers, drain on SIGTERM), on an ephemeral loopback port. It exits
// when its stdin closes (the agent is gone).
func runReplica(args []string) error {
	fs := flag.NewFlagSet("replica", flag.ContinueOnError)
	revision := fs.String("revision", "", "the revision's key")
	statsURLs := fs.String("stats", "", "comma-separated autoscaler stats URLs")
	cc := fs.Int("cc", 0, "container concurrency")
	work := fs.Duration("work", 50*time.Millisecond, "time each request takes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := logger("replica")
	ctx, cancel := untilStopped(true)
	defer cancel()
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(*work):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "hello from %s replica %d\n", *revision, os.Getpid())
	})
	h, err := queue.New(app, queue.Config{ContainerConcurrency: *cc, QuietPeriod: 300 * time.Millisecond, Logger: log})
	if err != nil {
		return err
	}
	rep, err := queue.NewReporter(h.Recorder(), queue.ReporterConfig{
		Revision: *revision, Replica: fmt.Sprint(os.Getpid()), Sink: newFailoverSink(splitList(*statsURLs)), Logger: log,
	})
	if err != nil {
		return err
	}
	repCtx, stopRep := context.WithCancel(context.Background())
	defer stopRep()
	go rep.Run(repCtx)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	announce(map[string]string{"serve": l.Addr().String()})
	<-ctx.Done()
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer dcancel()
	if err := h.Drain(dctx); err != nil {
		log.Warn("drain", "error", err)
	}
	return srv.Shutdown(dctx)
}
