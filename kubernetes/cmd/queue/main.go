// Command queue is servingkit's queue as a pod's sidecar (Knative's
// queue-proxy): it keeps the application within its container
// concurrency, answers readiness, reports load on an admin port, and drains
// on SIGTERM.
//
//	queue --port 8012 --admin-port 9091 --app 127.0.0.1:8080 \
//	      --container-concurrency 10 --revision default/hello
//
// Every flag can also be set by an environment variable (QUEUE_PORT, …,
// see below), which is how the deploy manifests set the revision from the
// pod's namespace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/servingkit/servingkit/queue"
)

func main() { os.Exit(run(os.Args[1:])) }

type options struct {
	host, app, revision, name, probePath string
	port, adminPort, cc                  int
	timeout, quiet                       time.Duration
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("queue", flag.ContinueOnError)
	env := func(k, def string) string {
		if v, ok := os.LookupEnv(k); ok {
			return v
		}
		return def
	}
	envInt := func(k string, def int) int {
		if v, ok := os.LookupEnv(k); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
		return def
	}
	envDur := func(k string, def time.Duration) time.Duration {
		if v, ok := os.LookupEnv(k); ok {
			if d, err := time.ParseDuration(v); err == nil {
				return d
			}
		}
		return def
	}
	fs.StringVar(&o.host, "host", env("QUEUE_HOST", ""), "address to listen on (QUEUE_HOST); empty means every interface")
	fs.IntVar(&o.port, "port", envInt("QUEUE_PORT", 8012), "serving port, in [1, 65535] (QUEUE_PORT)")
	fs.IntVar(&o.adminPort, "admin-port", envInt("QUEUE_ADMIN_PORT", 9091), "admin port: GET /ready, GET /stats, /wait-for-drain, in [1, 65535] (QUEUE_ADMIN_PORT)")
	fs.StringVar(&o.app, "app", env("QUEUE_APP", "127.0.0.1:8080"), "the application's host:port (QUEUE_APP)")
	fs.StringVar(&o.probePath, "probe-path", env("QUEUE_PROBE_PATH", ""), "HTTP path of the application's readiness check; empty means a TCP connect (QUEUE_PROBE_PATH)")
	fs.IntVar(&o.cc, "container-concurrency", envInt("QUEUE_CONTAINER_CONCURRENCY", 0), "requests served at once, 0 = unlimited; must match the Service's servingkit.dev/container-concurrency (QUEUE_CONTAINER_CONCURRENCY)")
	fs.DurationVar(&o.timeout, "timeout", envDur("QUEUE_TIMEOUT", 300*time.Second), "a request's total time limit (QUEUE_TIMEOUT)")
	fs.DurationVar(&o.quiet, "drain-quiet-period", envDur("QUEUE_DRAIN_QUIET_PERIOD", 30*time.Second), "how long to keep serving after SIGTERM before finishing (QUEUE_DRAIN_QUIET_PERIOD)")
	fs.StringVar(&o.revision, "revision", env("QUEUE_REVISION", ""), "the Service this pod serves, namespace/name: the stats' revision key (QUEUE_REVISION)")
	fs.StringVar(&o.name, "name", env("POD_NAME", ""), "this pod's name, the stats' source (POD_NAME)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	for _, p := range []struct {
		flag string
		v    int
	}{{"port", o.port}, {"admin-port", o.adminPort}} {
		if p.v < 1 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("queue: --%s = %d, want a port in [1, 65535]", p.flag, p.v))
		}
	}
	if o.port == o.adminPort {
		errs = append(errs, fmt.Errorf("queue: --port and --admin-port are both %d, want two ports", o.port))
	}
	if o.revision == "" {
		errs = append(errs, errors.New("queue: --revision is empty, want the Service's namespace/name"))
	}
	if o.name == "" {
		o.name, _ = os.Hostname()
	}
	return o, errors.Join(errs...)
}

func run(args []string) int {
	o, err := parse(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pod", o.name)
	h, err := queue.NewSidecar(queue.SidecarConfig{
		Config: queue.Config{
			ContainerConcurrency: o.cc,
			TotalTimeout:         o.timeout,
			QuietPeriod:          o.quiet,
			Logger:               log,
		},
		Target: o.app,
		Probe:  queue.AppProbeConfig{Path: o.probePath},
	})
	if err != nil {
		log.Error("bad configuration", "error", err)
		return 2
	}
	rep, err := queue.NewReporter(h.Recorder(), queue.ReporterConfig{Revision: o.revision, Replica: o.name})
	if err != nil {
		log.Error("bad configuration", "error", err)
		return 2
	}
	serveLn, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.port)))
	if err != nil {
		log.Error("listen", "error", err)
		return 1
	}
	adminLn, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.adminPort)))
	if err != nil {
		log.Error("listen", "error", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rep.Run(ctx)
	srv := &http.Server{Handler: h, Protocols: queue.ServerProtocols(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	admin := &http.Server{Handler: queue.AdminHandler(h, rep), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(serveLn) }()
	go func() { _ = admin.Serve(adminLn) }()
	log.Info("queue serving", "port", serveLn.Addr().String(), "admin", adminLn.Addr().String(), "app", o.app, "containerConcurrency", o.cc)

	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	<-term
	// Not ready at once, keep serving through the quiet period (the
	// EndpointSlice catches up), then finish every accepted request.
	dctx, dcancel := context.WithTimeout(context.Background(), o.timeout+o.quiet+10*time.Second)
	if err := h.Drain(dctx); err != nil {
		log.Warn("drain", "error", err)
	}
	dcancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	_ = admin.Shutdown(sctx)
	return 0
}
