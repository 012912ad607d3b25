package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/servingkit/servingkit/queue"
)

// runReplica is the main of a replica process: the demo app wrapped in
// process by queue (breaker, timeouts, stats, drain), on an ephemeral
// loopback port, with the admin handler (/ready, /stats) on another. It
// prints one handshake line on stdout, then serves until SIGTERM (drain and
// exit) or until its stdin closes (the platform is gone: exit).
func runReplica(specJSON string) int {
	var spec ReplicaSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "replica: bad spec: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("replica", spec.Name)
	if spec.Program != nil {
		return runProgramReplica(spec, log)
	}

	parentGone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(parentGone)
	}()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)

	// The app's own start-up time: a real cold start has one.
	select {
	case <-time.After(spec.StartupDelay):
	case <-parentGone:
		return 0
	}

	qm, metricsReg, err := replicaMetrics(spec.Revision, spec.Name)
	if err != nil {
		log.Error("replica metrics", "error", err)
		return 2
	}
	h, err := queue.New(appHandler(spec.App, spec.Env), queue.Config{
		Observer:             qm.Observe,
		ContainerConcurrency: spec.ContainerConcurrency,
		TotalTimeout:         spec.Timeout,
		QuietPeriod:          spec.DrainQuietPeriod,
		Logger:               log,
	})
	if err != nil {
		log.Error("bad queue config", "error", err)
		return 2
	}
	rep, err := queue.NewReporter(h.Recorder(), queue.ReporterConfig{Revision: spec.Revision, Replica: spec.Name})
	if err != nil {
		log.Error("bad reporter config", "error", err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rep.Run(ctx)

	serveLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Error("listen", "error", err)
		return 1
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Error("listen", "error", err)
		return 1
	}
	srv := &http.Server{Handler: h, Protocols: queue.ServerProtocols(), ReadHeaderTimeout: 10 * time.Second}
	qm.Watch(h)
	admin := &http.Server{Handler: adminWithMetrics(queue.AdminHandler(h, rep), metricsReg), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(serveLn) }()
	go func() { _ = admin.Serve(adminLn) }()

	hs, _ := json.Marshal(handshake{Serve: serveLn.Addr().String(), Admin: adminLn.Addr().String(), PID: os.Getpid()})
	fmt.Println(string(hs))

	select {
	case <-term:
		// Scale-down: keep serving through the quiet period, finish every
		// accepted request, then exit.
		dctx, dcancel := context.WithTimeout(context.Background(), spec.Timeout+spec.DrainQuietPeriod+10*time.Second)
		if err := h.Drain(dctx); err != nil {
			log.Warn("drain", "error", err)
		}
		dcancel()
	case <-parentGone:
		// Nobody will send us traffic any more; don't linger.
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	_ = admin.Shutdown(sctx)
	return 0
}
