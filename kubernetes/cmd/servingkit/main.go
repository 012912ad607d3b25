// Command servingkit is servingkit on Kubernetes in one process: the
// gateway, the activator and (on the replica that holds the autoscaler
// Lease) the autoscaler, for every Service annotated with
// servingkit.dev/target. Run several replicas for availability; see
// kubernetes/README.md and kubernetes/deploy/.
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
	"path/filepath"
	"strings"
	"syscall"
	"time"

	skk8s "github.com/servingkit/servingkit/kubernetes"
	"github.com/servingkit/servingkit/queue"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/clientcmd"
)

func main() { os.Exit(run(os.Args[1:])) }

type options struct {
	kubeconfig, namespace, domain    string
	gatewayAddr, peerAddr, advertise string
	name, tokenFile, autoscalerDir   string
	leaseNamespace, leaseName        string
	stickyHeader, stickyCookie       string
	leaseDuration, drain             time.Duration
	buckets                          int
}

func env(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("servingkit", flag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", env("KUBECONFIG", ""), "kubeconfig file; empty means in-cluster config")
	fs.StringVar(&o.namespace, "namespace", env("WATCH_NAMESPACE", ""), "serve Services of this namespace only; empty means all (WATCH_NAMESPACE)")
	fs.StringVar(&o.domain, "domain", "svc.cluster.local", "domain of each Service's host <name>.<namespace>.<domain>")
	fs.StringVar(&o.gatewayAddr, "gateway-addr", ":8080", "gateway listen address")
	fs.StringVar(&o.peerAddr, "peer-addr", ":9090", "peer listen address: stats from the other replicas, /healthz, /metrics")
	fs.StringVar(&o.advertise, "advertise", env("POD_IP", ""), "host (or host:port) at which the other replicas reach the peer port; default POD_IP")
	fs.StringVar(&o.name, "name", env("POD_NAME", ""), "this replica's name, unique (POD_NAME)")
	fs.StringVar(&o.tokenFile, "peer-token-file", "/var/run/servingkit/peer-token", "file with the shared peer token")
	fs.StringVar(&o.autoscalerDir, "autoscaler-config", "", "directory of a mounted config-autoscaler ConfigMap (one file per key); empty means Knative's defaults")
	fs.StringVar(&o.leaseNamespace, "lease-namespace", env("POD_NAMESPACE", "servingkit"), "namespace of the autoscaler Lease (POD_NAMESPACE)")
	fs.StringVar(&o.leaseName, "lease-prefix", "servingkit", "prefix of the autoscaler bucket Leases' names (<prefix>-autoscaler-bucket-00-of-01)")
	fs.DurationVar(&o.leaseDuration, "lease-duration", skk8s.DefaultLeaseDuration, "how long a crashed replica keeps its autoscaler buckets; renewed every third of it")
	fs.IntVar(&o.buckets, "buckets", 1, "autoscaler buckets the Services are hashed into, each owned by one replica; the same on every replica")
	fs.StringVar(&o.stickyHeader, "sticky-header", "", "request header whose value keeps a client on one target of a traffic split (servingkit.dev/traffic); empty means none")
	fs.StringVar(&o.stickyCookie, "sticky-cookie", "", "cookie whose value keeps a client on one target of a traffic split, when the request has no sticky header; empty means none")
	fs.DurationVar(&o.drain, "drain-timeout", 60*time.Second, "how long SIGTERM waits for requests under way")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if o.name == "" {
		errs = append(errs, errors.New("servingkit: --name (POD_NAME) is empty, want this replica's unique name"))
	}
	if o.advertise == "" {
		errs = append(errs, errors.New("servingkit: --advertise (POD_IP) is empty, want the address the other replicas reach"))
	}
	return o, errors.Join(errs...)
}

func run(args []string) int {
	o, err := parse(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("replica", o.name)
	if err := serve(o, log); err != nil {
		log.Error("servingkit", "error", err)
		return 1
	}
	return 0
}

func serve(o options, log *slog.Logger) error {
	rc, err := restConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	cached := memory.NewMemCacheClient(cs.Discovery())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	scales, err := scale.NewForConfig(rc, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(cached))
	if err != nil {
		return err
	}
	token, err := os.ReadFile(o.tokenFile)
	if err != nil {
		return fmt.Errorf("peer token: %w", err)
	}
	ascfg, err := readConfigDir(o.autoscalerDir)
	if err != nil {
		return err
	}
	gl, err := net.Listen("tcp", o.gatewayAddr)
	if err != nil {
		return err
	}
	pl, err := net.Listen("tcp", o.peerAddr)
	if err != nil {
		return err
	}
	advertise := o.advertise
	if _, _, err := net.SplitHostPort(advertise); err != nil {
		_, port, _ := net.SplitHostPort(pl.Addr().String())
		advertise = net.JoinHostPort(advertise, port)
	}
	srv, err := skk8s.NewServer(skk8s.ServerConfig{
		Client: cs, Scales: scales, Namespace: o.namespace, Domain: o.domain,
		Name: o.name, PeerAddr: advertise, PeerToken: strings.TrimSpace(string(token)),
		Lease:        skk8s.LeaseConfig{Namespace: o.leaseNamespace, Prefix: o.leaseName, Duration: o.leaseDuration},
		Buckets:      o.buckets,
		Autoscaler:   ascfg,
		StickyHeader: o.stickyHeader, StickyCookie: o.stickyCookie,
		Log: log,
	})
	if err != nil {
		return err
	}
	peerMux := http.NewServeMux()
	peerMux.Handle(skk8s.ForwardedStatsPath, srv.PeerHandler())
	peerMux.Handle("/metrics", srv.MetricsHandler())
	peerMux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	gateway := &http.Server{Handler: srv.Handler(), Protocols: queue.ServerProtocols(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	peer := &http.Server{Handler: peerMux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	go func() { _ = gateway.Serve(gl) }()
	go func() { _ = peer.Serve(pl) }()
	log.Info("servingkit serving", "gateway", gl.Addr().String(), "peer", pl.Addr().String(), "advertise", advertise)

	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-term:
	case err := <-done:
		return err
	}
	// Finish the requests under way (the activator's waiting ones
	// included), then release the autoscaler's Leases so that another
	// replica takes its Services over at once.
	dctx, dcancel := context.WithTimeout(context.Background(), o.drain)
	defer dcancel()
	_ = gateway.Shutdown(dctx)
	_ = srv.Activator().Shutdown(dctx)
	cancel()
	err = <-done
	_ = peer.Shutdown(dctx)
	return err
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return rest.InClusterConfig()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}

// readConfigDir reads a mounted ConfigMap: one file per key, skipping the
// ..data links Kubernetes adds.
func readConfigDir(dir string) (map[string]string, error) {
	if dir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("autoscaler config: %w", err)
	}
	m := map[string]string{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "..") || e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("autoscaler config: %w", err)
		}
		m[e.Name()] = strings.TrimSpace(string(b))
	}
	return m, nil
}
