// Command platform runs a complete serverless platform on 127.0.0.1, built
// from servingkit: a gateway (traffic.Router) → per revision the proxy/serve
// front door (revision) → the activator in Proxy mode → replicas, each a
// real OS process running the user's program (the container's command)
// or a built-in demo app behind queue, supervised and restarted; and the
// autoscaler driving a process scaler backend. It reads Knative Service
// manifests.
//
//	go run ./examples/platform                       # hello world
//	go run ./examples/platform -f examples/platform/manifests/autoscale.yaml
//	go run ./examples/platform -tour                 # a guided demo
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

//go:embed manifests/*.yaml
var builtin embed.FS

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if spec := os.Getenv(replicaEnv); spec != "" {
		os.Exit(runReplica(spec))
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("platform", flag.ContinueOnError)
	var files, config listFlag
	fs.Var(&files, "f", "a Knative Service manifest to apply (repeatable; default: the built-in hello world)")
	fs.Var(&config, "config", "a config-autoscaler key=value, e.g. -config stable-window=6s (repeatable)")
	addr := fs.String("addr", "127.0.0.1:8080", "gateway address (loopback only)")
	control := fs.String("control", "127.0.0.1:8081", "control address: GET / (dashboard), /metrics, /status; POST /apply (with the token)")
	token := fs.String("token", "", "the control endpoint's bearer token (default: a new random token written to -token-file); visible to local users in the process list, so prefer the file")
	tokenFile := fs.String("token-file", "", "where the generated control token is written, readable only by you (default $XDG_CONFIG_HOME/servingkit/control-token)")
	domain := fs.String("domain", "localhost", "domain of service hosts {name}.{namespace}.{domain}")
	internal := fs.String("internal", "127.0.0.1:8082", "internal listener address: every service, cluster-local ones included, at {name}.{namespace}.svc.cluster.local and /{namespace}/{name} (\"\" for none)")
	readHeader := fs.Duration("read-header-timeout", 10*time.Second, "gateway: how long a client may take to send request headers")
	idle := fs.Duration("idle-timeout", 30*time.Second, "gateway: close keep-alive connections idle this long")
	maxHeader := fs.Int("max-header-bytes", 64<<10, "gateway: the largest request header block (431 above)")
	maxConns := fs.Int("max-conns", 0, "gateway: connections open at once, more are shed (default: from the file-descriptor limit)")
	tour := fs.Bool("tour", false, "run the guided demo: cold start, burst and panic, scale to zero, a v2 rollout with a split")
	table := fs.Bool("table", false, "print a live status table every second")
	quiet := fs.Bool("quiet", false, "log warnings only")
	startup := fs.Duration("startup-delay", 0, "simulated application start-up time of each replica")
	progress := fs.Duration("progress-deadline", 0, "how long a replica may take to become ready before its revision fails (default 10m, Knative's progress-deadline)")
	backOff := fs.Duration("restart-backoff", 0, "first back-off before restarting a crashing replica, doubling per crash (default 10s, Kubernetes' CrashLoopBackOff)")
	maxBackOff := fs.Duration("max-restart-backoff", 0, "longest back-off before restarting a crashing replica (default 5m)")
	bare := fs.String("bare-app", "", "serve only a demo app (hello or autoscale) on -addr, without queue or anything else: a baseline for load tests")
	bareProxy := fs.String("bare-proxy", "", "serve only a plain httputil.ReverseProxy to this host:port on -addr: the cost of one extra hop, a baseline for load tests")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	level := slog.LevelInfo
	if *quiet || *tour {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg := map[string]string{}
	for _, kv := range config {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "platform: -config %q: want key=value\n", kv)
			return 2
		}
		cfg[k] = v
	}
	opts := Options{Addr: *addr, ControlAddr: *control, ControlToken: *token, ControlTokenFile: *tokenFile, Domain: *domain, InternalAddr: *internal,
		Gateway: ServerConfig{ReadHeaderTimeout: *readHeader, IdleTimeout: *idle, MaxHeaderBytes: *maxHeader, MaxConns: *maxConns}, Autoscaler: cfg, Log: log, ReplicaLog: os.Stderr, StartupDelay: *startup}
	opts.ProgressDeadline, opts.RestartBackOff, opts.MaxRestartBackOff = *progress, *backOff, *maxBackOff
	if *tour {
		return runTour(opts)
	}
	if *bare != "" || *bareProxy != "" {
		h := appHandler(App(*bare), map[string]string{})
		if *bareProxy != "" {
			rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: *bareProxy})
			rp.Transport = &http.Transport{MaxIdleConnsPerHost: 1000}
			h = rp
		}
		srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
		if err := srv.ListenAndServe(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	p, err := StartPlatform(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("servingkit platform: gateway http://%s, dashboard http://%s/, metrics http://%s/metrics, status http://%s/status\n", p.GatewayAddr(), p.ControlAddr(), p.ControlAddr(), p.ControlAddr())
	if a := p.InternalAddr(); a != "" {
		fmt.Printf("  internal listener http://%s (every service, cluster-local ones too)\n", a)
	}
	if f := p.ControlTokenFile(); f != "" {
		fmt.Printf("  control token in %s:\n  curl -H \"Authorization: Bearer $(cat %s)\" -H 'Content-Type: application/yaml' --data-binary @service.yaml http://%s/apply\n", f, f, p.ControlAddr())
	}

	w := &watcher{p: p}
	if len(files) == 0 {
		data, _ := builtin.ReadFile("manifests/hello.yaml")
		if err := w.applyBytes("built-in hello.yaml", data); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	for _, f := range files {
		if err := w.applyFile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			_ = p.Stop(context.Background())
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go w.watch(ctx, files)
	if *table {
		go liveTable(ctx, p, os.Stdout)
	}
	<-ctx.Done()
	fmt.Println("\nplatform: shutting down, draining replicas…")
	sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Stop(sctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// watcher applies manifest files, and again whenever one changes.
type watcher struct {
	p     *Platform
	mtime map[string]time.Time
}

func (w *watcher) applyFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if w.mtime == nil {
		w.mtime = map[string]time.Time{}
	}
	w.mtime[path] = fi.ModTime()
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return w.applyBytes(path, data)
}

func (w *watcher) applyBytes(name string, data []byte) error {
	svc, err := ParseService(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	warnings, err := w.p.Apply(svc)
	for _, wn := range warnings {
		fmt.Fprintf(os.Stderr, "%s: warning: %s\n", name, wn)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	s := svc.Metadata
	url, addr := w.p.url(s.Name, s.Namespace, ""), w.p.GatewayAddr()
	if s.Labels[VisibilityLabel] == VisibilityClusterLocal {
		url, addr = w.p.serviceURL(&service{ns: s.Namespace, name: s.Name, clusterLocal: true}, ""), w.p.InternalAddr()
	}
	fmt.Printf("applied %s: service %s/%s\n  curl %s/   (or curl http://%s/%s/%s)\n",
		name, s.Namespace, s.Name, url, addr, s.Namespace, s.Name)
	return nil
}

// watch re-applies a manifest file when it changes.
func (w *watcher) watch(ctx context.Context, files []string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, f := range files {
			fi, err := os.Stat(f)
			if err != nil || !fi.ModTime().After(w.mtime[f]) {
				continue
			}
			if err := w.applyFile(f); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
	}
}

func liveTable(ctx context.Context, p *Platform, out *os.File) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prev := p.Status()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := p.Status()
		fmt.Fprintf(out, "\n%s\n", st.Time.Format("15:04:05"))
		PrintTable(out, st, prev)
		prev = st
	}
}
