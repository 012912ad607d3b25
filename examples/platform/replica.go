package main

import (
	"bufio"
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
//
// specJSON is the spec, or specOnStdin: a spare replica, started before
// its spec was known, reads it from the first line of stdin (the platform
// writes nothing else there; EOF before it means the platform is gone).
//
// The signals are set up first, so that a spare has done so before its
// spec comes (the first signal.Notify starts the runtime's signal
// machinery, slow on a loaded machine). SIGHUP, the replica's parent-death signal, and SIGTERM end a
// spare that waits.
func runReplica(specJSON string) int {
	sigs := notifySignals()
	var held portHold // the program's port, held while a spare waits
	if specJSON == specOnStdin {
		// Decode a full spec once while waiting: encoding/json builds its
		// per-type decoders on first use.
		warm, _ := json.Marshal(ReplicaSpec{Env: map[string]string{"": ""}, Program: &ContainerSpec{Readiness: &ProbeSpec{}, Liveness: &ProbeSpec{}}})
		_ = json.Unmarshal(warm, new(ReplicaSpec))
		held, _ = holdPort() // if none is free now, the program's replica tries again
		// And the first request's path, unless the spec is here already
		// (no spare was ready: the warm-up would only delay the start).
		if !stdinReadable() {
			warmUp()
		}
		line := make(chan string, 1)
		go func() {
			l, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil {
				close(line) // the platform is gone, or discarded the spare
				return
			}
			line <- l
		}()
		var ok bool
		select {
		case specJSON, ok = <-line:
			if !ok {
				return 0
			}
		case <-sigs.term:
			return 0
		case <-sigs.hup:
			return 0
		}
	}
	var spec ReplicaSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "replica: bad spec: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("replica", spec.Name)
	if spec.Program != nil {
		return runProgramReplica(spec, log, sigs, held)
	}
	if held.port != 0 {
		held.release()
	}

	go func() {
		<-sigs.hup // the platform died: nothing to finish for it
		os.Exit(1)
	}()
	parentGone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(parentGone)
	}()
	// The app's own start-up time: a real cold start has one.
	select {
	case <-time.After(spec.StartupDelay):
	case <-parentGone:
		return 0
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, servers, code := startQueue(ctx, spec, log, func(c queue.Config) (*queue.Handler, error) {
		return queue.New(appHandler(spec.App, spec.Env), c)
	})
	if h == nil {
		return code
	}

	hs, _ := json.Marshal(handshake{Serve: servers.serveAddr, Admin: servers.adminAddr, PID: os.Getpid()})
	fmt.Println(string(hs))

	select {
	case <-sigs.term:
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
	servers.shutdown()
	return 0
}

// startQueue builds a replica's queue with newQueue from the config both
// kinds of replica share (metrics observer, container concurrency,
// timeout, drain quiet period, logger), runs its stats reporter until ctx
// ends, and serves the queue and its admin endpoints (probes, stats,
// metrics) on two loopback ports. On failure it logs why and returns a nil
// handler and the exit code for the replica.
func startQueue(ctx context.Context, spec ReplicaSpec, log *slog.Logger, newQueue func(queue.Config) (*queue.Handler, error)) (*queue.Handler, *replicaServers, int) {
	qm, metricsReg, err := replicaMetrics(spec.Revision, spec.Name)
	if err != nil {
		log.Error("replica metrics", "error", err)
		return nil, nil, 2
	}
	h, err := newQueue(queue.Config{
		Observer:             qm.Observe,
		ContainerConcurrency: spec.ContainerConcurrency,
		TotalTimeout:         spec.Timeout,
		QuietPeriod:          spec.DrainQuietPeriod,
		Logger:               log,
	})
	if err != nil {
		log.Error("bad queue config", "error", err)
		return nil, nil, 2
	}
	rep, err := queue.NewReporter(h.Recorder(), queue.ReporterConfig{Revision: spec.Revision, Replica: spec.Name})
	if err != nil {
		log.Error("bad reporter config", "error", err)
		return nil, nil, 2
	}
	go rep.Run(ctx)
	qm.Watch(h)
	servers, err := startReplicaServers(h, adminWithMetrics(queue.AdminHandler(h, rep), metricsReg))
	if err != nil {
		log.Error("listen", "error", err)
		return nil, nil, 1
	}
	return h, servers, 0
}

// stdinReadable reports whether a read of stdin would not block now (the
// spec, or EOF, is there).
func stdinReadable() bool {
	var r syscall.FdSet
	r.Bits[0] = 1 // fd 0
	n, err := syscall.Select(1, &r, nil, nil, &syscall.Timeval{})
	return err == nil && n > 0
}

// replicaSignals are the signals a replica handles: SIGTERM and SIGINT
// (drain and stop), SIGHUP (the platform is gone: stop at once).
type replicaSignals struct {
	term, hup chan os.Signal
}

func notifySignals() replicaSignals {
	s := replicaSignals{term: make(chan os.Signal, 1), hup: make(chan os.Signal, 1)}
	signal.Notify(s.term, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(s.hup, syscall.SIGHUP)
	return s
}

// replicaServers are a replica's two listeners on loopback: the queue on
// one port and its admin endpoints (probes, stats, metrics) on another.
type replicaServers struct {
	serve, admin         *http.Server
	serveAddr, adminAddr string
}

// startReplicaServers listens on two free loopback ports and serves the
// queue handler h on one and admin on the other.
func startReplicaServers(h *queue.Handler, admin http.Handler) (*replicaServers, error) {
	serveLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = serveLn.Close()
		return nil, err
	}
	s := &replicaServers{
		serve:     &http.Server{Handler: h, Protocols: queue.ServerProtocols(), ReadHeaderTimeout: 10 * time.Second},
		admin:     &http.Server{Handler: admin, ReadHeaderTimeout: 10 * time.Second},
		serveAddr: serveLn.Addr().String(),
		adminAddr: adminLn.Addr().String(),
	}
	go func() { _ = s.serve.Serve(serveLn) }()
	go func() { _ = s.admin.Serve(adminLn) }()
	return s, nil
}

// shutdown stops both servers, giving open connections 5 s to finish.
func (s *replicaServers) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.serve.Shutdown(ctx)
	_ = s.admin.Shutdown(ctx)
}
