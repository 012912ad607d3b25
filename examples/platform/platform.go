package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/gateway"
	"github.com/servingkit/servingkit/queue"
	"github.com/servingkit/servingkit/revision"
	"github.com/servingkit/servingkit/stats"
	"github.com/servingkit/servingkit/traffic"
)

// Options configure a Platform. Zero values are working defaults.
type Options struct {
	// Addr is the gateway's listen address. "" means 127.0.0.1:8080.
	Addr string
	// ControlAddr serves /status and /apply. "" means 127.0.0.1:8081.
	// It answers only requests whose Host is localhost or this address and
	// that come from no foreign Origin.
	ControlAddr string
	// ControlToken is the bearer token every state-changing control request
	// (POST /apply) needs. "" means a new random token, written to
	// ControlTokenFile.
	ControlToken string
	// ControlTokenFile is where a generated ControlToken is written, in a
	// file only the user can read. "" means DefaultTokenFile(). A token
	// that was given is written only if this is set.
	ControlTokenFile string
	// Domain is the {domain} of hosts {name}.{namespace}.{domain}. ""
	// means "localhost", so http://hello.default.localhost:8080 works.
	Domain string
	// InternalAddr is the internal listener's address: it serves every
	// service, cluster-local ones (label networking.knative.dev/visibility:
	// cluster-local) included, at {name}.{namespace}.svc.cluster.local and
	// at /{namespace}/{name}. "" means none: cluster-local services are
	// served nowhere. The gateway never serves them.
	InternalAddr string
	// Gateway bounds the gateway's and the internal listener's clients:
	// timeouts, header size and connections. Zero values are defaults.
	Gateway ServerConfig
	// Autoscaler holds config-autoscaler keys (Knative's ConfigMap) that
	// override Knative's defaults for every revision. max-scale-limit
	// defaults to what the machine can run (machineMaxScale), and max-scale
	// to max-scale-limit; "max-scale-limit": "0" removes the limit.
	Autoscaler map[string]string
	// RolloutDuration is the gradual rollout of a Service without the
	// serving.knative.dev/rollout-duration annotation. Zero means none.
	RolloutDuration time.Duration
	// DrainQuietPeriod is how long a replica keeps serving after SIGTERM
	// before it finishes (Knative: 30 s). Zero means 2 s.
	DrainQuietPeriod time.Duration
	// StartupDelay is each replica's simulated application start-up time,
	// on top of starting a process. Zero means none.
	StartupDelay time.Duration
	// Log receives the platform's events. Nil means os.Stderr-like
	// discarding: silent.
	Log *slog.Logger
	// ReplicaLog receives every line replica processes and their programs
	// write, prefixed with "[revision replica] ". Nil means discard.
	ReplicaLog io.Writer
	// RestartBackOff is the wait before restarting a replica that crashed
	// again (Kubernetes' CrashLoopBackOff): the first restart is at once,
	// then this long, doubling per crash up to MaxRestartBackOff. Zero
	// means 10 s.
	RestartBackOff time.Duration
	// MaxRestartBackOff caps the back-off. Zero means 5 min.
	MaxRestartBackOff time.Duration
	// ProgressDeadline is how long a replica may take to become ready
	// before its revision is marked failed (Knative's progress-deadline).
	// Zero means 600 s.
	ProgressDeadline time.Duration
}

const rolloutAnnotation = "serving.knative.dev/rollout-duration"

// Platform is a complete local serving plane: gateway (traffic.Router) →
// per revision a front door (revision) → activator in Proxy mode →
// replica processes running the user's program (or a demo app) behind
// queue, scaled by the autoscaler through a process backend that keeps
// them running (pool).
type Platform struct {
	opts       Options
	log        *slog.Logger
	replicaLog io.Writer
	logMu      sync.Mutex // serializes lines written to replicaLog
	ascfg      autoscaler.Config

	spawner *spawner
	starts  chan struct{} // one token per replica process starting: bounds parallel starts
	runner  *autoscaler.Runner
	act     *activator.Handler
	router  *traffic.Router // the public gateway's: services not cluster-local
	inner   *traffic.Router // the internal listener's: every service
	metrics *metrics
	// dashSlots holds a token per dashboard event stream open.
	dashSlots chan struct{}
	proxyTr   http.RoundTripper // nil: NewServeHandler's proxy.Client (NewTransport for upgrades, h2c)

	gateway, control, internal *http.Server
	gatewayAddr                string
	controlAddr                string
	internalAddr               string
	gatewayConns               *limitListener

	mu        sync.Mutex          // protects services, revisions, routes
	services  map[string]*service // by "namespace/name"
	revisions map[string]*rev     // by key "namespace/revision"
	routes    []traffic.Route     // what the router serves

	routeMu sync.Mutex    // serializes reconcileRoutes
	kick    chan struct{} // wakes the route loop
	ctx     context.Context
	cancel  context.CancelFunc
	loops   sync.WaitGroup
	stopped atomic.Bool
}

// service is one Knative Service: a configuration and a route.
type service struct {
	ns, name string
	cfg      *revision.Configuration[template]
	traffic  traffic.Spec // revision names already turned into keys
	rollout  traffic.RolloutConfig
	state    *traffic.Rollout // rollout state under way
	table    *traffic.Table   // what is routed now
	nextStep time.Time
	problem  string // why the route could not be updated, for status

	clusterLocal bool // served only on the internal listener
}

func (s *service) key() string { return s.ns + "/" + s.name }

// rev is one revision with everything that serves it.
type rev struct {
	key, name, service string
	serviceName        string // the service's name alone, for K_SERVICE
	spec               template
	app                App
	aspec              autoscaler.Spec
	rec                *revision.Reconciler
	serve              *balancer.Balancer
	eps                *gateway.Endpoints
	pool               *pool
	door               http.Handler

	progress time.Duration // the progress deadline
	logs     *logRing
	stopRun  context.CancelFunc // ends the reconciler's Run
	waiting  waiters            // requests held while the revision is in Proxy mode

	requests, errors atomic.Int64
	decision         atomic.Pointer[autoscaler.Decision]
	scaleUpAt        atomic.Int64 // when the autoscaler last began to want more replicas than were ready (Unix ns)
	everReady        atomic.Bool  // Ready was True once: routes keep to it (Knative's latest ready revision)
	routed           bool         // under Platform.mu
}

func (r *rev) replicaSpec(name string, o Options) ReplicaSpec {
	return ReplicaSpec{
		Name: name, Revision: r.key, App: r.app, Env: r.spec.Env,
		Program: r.spec.Container, Grace: r.spec.Grace,
		Service: r.serviceName, RevisionName: r.name,
		ContainerConcurrency: r.spec.ContainerConcurrency,
		Timeout:              r.spec.Timeout,
		StartupDelay:         o.StartupDelay,
		DrainQuietPeriod:     o.DrainQuietPeriod,
	}
}

// NewPlatform checks the options and builds a platform; Start runs it.
func NewPlatform(o Options) (*Platform, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8080"
	}
	if o.ControlAddr == "" {
		o.ControlAddr = "127.0.0.1:8081"
	}
	if o.Domain == "" {
		o.Domain = "localhost"
	}
	if o.DrainQuietPeriod == 0 {
		o.DrainQuietPeriod = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ReplicaLog == nil {
		o.ReplicaLog = io.Discard
	}
	if o.RestartBackOff == 0 {
		o.RestartBackOff = 10 * time.Second
	}
	if o.MaxRestartBackOff == 0 {
		o.MaxRestartBackOff = 5 * time.Minute
	}
	if o.ProgressDeadline == 0 {
		o.ProgressDeadline = revision.DefaultProgressDeadline
	}
	for name, d := range map[string]time.Duration{"RestartBackOff": o.RestartBackOff, "MaxRestartBackOff": o.MaxRestartBackOff, "ProgressDeadline": o.ProgressDeadline} {
		if d < 0 {
			return nil, fmt.Errorf("platform: Options.%s = %v, must be >= 0 (0 means the default)", name, d)
		}
	}
	if o.MaxRestartBackOff < o.RestartBackOff {
		return nil, fmt.Errorf("platform: Options.MaxRestartBackOff = %v, must be >= RestartBackOff (%v)", o.MaxRestartBackOff, o.RestartBackOff)
	}
	if err := o.Gateway.Validate(); err != nil {
		return nil, err
	}
	o.Gateway = o.Gateway.withDefaults()
	for _, a := range []string{o.Addr, o.ControlAddr, o.InternalAddr} {
		if a == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("platform: address %q: %w", a, err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("platform: address %q: the platform listens on loopback only (127.0.0.1)", a)
		}
	}
	if o.ControlToken == "" {
		o.ControlToken = newToken()
		if o.ControlTokenFile == "" {
			f, err := DefaultTokenFile()
			if err != nil {
				return nil, err
			}
			o.ControlTokenFile = f
		}
	}
	ascfg, err := autoscaler.ParseConfig(withScaleLimit(o.Autoscaler))
	if err != nil {
		return nil, fmt.Errorf("platform: autoscaler config: %w", err)
	}
	p := &Platform{
		opts: o, log: o.Log, replicaLog: o.ReplicaLog, ascfg: ascfg,
		spawner:   newSpawner(),
		starts:    make(chan struct{}, startParallelism()),
		services:  map[string]*service{},
		revisions: map[string]*rev{},
		kick:      make(chan struct{}, 1),
		dashSlots: make(chan struct{}, maxDashboards),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if p.metrics, err = newMetrics(p.revisionLabels); err != nil {
		return nil, err
	}
	p.router, err = traffic.NewRouter(traffic.RouterConfig{Domain: o.Domain, Observer: p.metrics.router.Observe})
	if err != nil {
		return nil, err
	}
	p.inner, err = traffic.NewRouter(traffic.RouterConfig{Domain: traffic.DefaultDomain, Observer: p.metrics.router.Observe})
	if err != nil {
		return nil, err
	}
	p.runner, err = autoscaler.NewRunner(autoscaler.Options{
		Scaler:     autoscaler.ScalerFunc(p.scale),
		Ready:      autoscaler.ReadyCounterFunc(p.readyCount),
		Scraper:    &autoscaler.HTTPScraper{Lister: autoscaler.ReplicaListerFunc(p.replicaStats)},
		ProxyTimer: autoscaler.ProxyTimerFunc(p.proxyFor),
		Logger:     o.Log,
	})
	if err != nil {
		return nil, err
	}
	p.act, err = activator.New(activator.Options{
		ThrottlerOptions: activator.ThrottlerOptions{Logger: o.Log},
		Poker:            p.runner,
		Sink:             stats.SinkFunc(p.runner.Send),
		Observer:         p.metrics.activator.Observe,
		ServerTiming:     p.serverTiming,
	})
	if err != nil {
		return nil, err
	}
	p.metrics.activator.Watch(p.act, p.act.Reporter())
	p.runner.Subscribe(p.onDecision)
	p.runner.Subscribe(p.metrics.autoscaler.Observe)
	return p, nil
}

// StartPlatform builds a platform and starts it.
func StartPlatform(o Options) (*Platform, error) {
	p, err := NewPlatform(o)
	if err != nil {
		return nil, err
	}
	if err := p.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

// Start listens and starts the loops. It returns once the gateway and the
// control endpoint accept connections.
func (p *Platform) Start() error {
	gl, err := net.Listen("tcp", p.opts.Addr)
	if err != nil {
		return fmt.Errorf("platform: gateway: %w", err)
	}
	cl, err := net.Listen("tcp", p.opts.ControlAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("platform: control: %w", err)
	}
	p.gatewayAddr, p.controlAddr = gl.Addr().String(), cl.Addr().String()
	if p.opts.ControlTokenFile != "" {
		if err := writeTokenFile(p.opts.ControlTokenFile, p.opts.ControlToken); err != nil {
			gl.Close()
			cl.Close()
			return err
		}
	}
	guard, err := newControlGuard(p.controlAddr, p.opts.ControlToken, p.opts.ControlTokenFile, p.controlHandler())
	if err != nil {
		gl.Close()
		cl.Close()
		return err
	}
	var il net.Listener
	if p.opts.InternalAddr != "" {
		if il, err = net.Listen("tcp", p.opts.InternalAddr); err != nil {
			gl.Close()
			cl.Close()
			return fmt.Errorf("platform: internal listener: %w", err)
		}
		p.internalAddr = il.Addr().String()
	}
	g := p.opts.Gateway
	p.gateway = &http.Server{Handler: edge(p.router), Protocols: queue.ServerProtocols(),
		ReadHeaderTimeout: g.ReadHeaderTimeout, IdleTimeout: g.IdleTimeout, MaxHeaderBytes: g.MaxHeaderBytes}
	p.gatewayConns = newLimitListener(gl, g.MaxConns)
	gl = p.gatewayConns
	if il != nil {
		p.internal = &http.Server{Handler: edge(p.inner), Protocols: queue.ServerProtocols(),
			ReadHeaderTimeout: g.ReadHeaderTimeout, IdleTimeout: g.IdleTimeout, MaxHeaderBytes: g.MaxHeaderBytes}
		il = newLimitListener(il, g.MaxConns)
		p.goLoop(func() { _ = p.internal.Serve(il) })
	}
	// No ReadTimeout: it would end long-lived GET streams; /apply bounds
	// its body's read itself.
	p.control = &http.Server{Handler: guard, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
	cl = newLimitListener(cl, controlConns)
	p.goLoop(func() { _ = p.gateway.Serve(gl) })
	p.goLoop(func() { _ = p.control.Serve(cl) })
	p.goLoop(func() { _ = p.runner.Run(p.ctx) })
	p.goLoop(func() { p.act.Run(p.ctx) })
	p.goLoop(p.routeLoop)
	return nil
}

func (p *Platform) goLoop(f func()) {
	p.loops.Add(1)
	go func() { defer p.loops.Done(); f() }()
}

// ControlToken is the bearer token of state-changing control requests, and
// ControlTokenFile the file it was written to ("" if none).
func (p *Platform) ControlToken() string     { return p.opts.ControlToken }
func (p *Platform) ControlTokenFile() string { return p.opts.ControlTokenFile }

// InternalAddr returns the internal listener's address, "" if none.
func (p *Platform) InternalAddr() string { return p.internalAddr }

// GatewayAddr and ControlAddr return the listening addresses.
func (p *Platform) GatewayAddr() string { return p.gatewayAddr }
func (p *Platform) ControlAddr() string { return p.controlAddr }

// Stop stops taking requests, lets those under way finish, and drains and
// stops every replica process.
func (p *Platform) Stop(ctx context.Context) error {
	if !p.stopped.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	if p.gateway != nil { // started
		errs = append(errs, p.gateway.Shutdown(ctx))
		_ = p.control.Shutdown(ctx)
		if p.internal != nil {
			errs = append(errs, p.internal.Shutdown(ctx))
		}
	}
	errs = append(errs, p.act.Shutdown(ctx))
	p.cancel()
	p.mu.Lock()
	revs := slices.Collect(maps.Values(p.revisions))
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range revs {
		wg.Go(r.pool.stopAll)
	}
	wg.Wait()
	p.spawner.close()
	p.loops.Wait()
	return errors.Join(errs...)
}

// Apply reads a Service manifest: a changed template creates a new revision
// (started at its initial scale) and the traffic block is routed as soon as
// the revisions it names are ready. It returns the manifest's warnings.
func (p *Platform) Apply(svc *Service) (warnings []string, err error) {
	ns, name := svc.Metadata.Namespace, svc.Metadata.Name
	c := svc.Spec.Template.Spec.Containers[0]
	program, err := resolveContainer(c, "spec.template.spec.containers[0]")
	if err != nil {
		return nil, err
	}
	var app App
	if program == nil {
		if app, err = AppForImage(c.Image); err != nil {
			return nil, err
		}
	}
	image := c.Image
	if image == "" {
		image = "program:" + program.Command[0] // revision.Spec wants an image or a handler
	}
	spec := template{Spec: revision.Spec{
		Name:        svc.Spec.Template.Metadata.Name,
		Image:       image,
		Env:         map[string]string{},
		Timeout:     300 * time.Second,
		Annotations: svc.Spec.Template.Metadata.Annotations,
	}, Container: program, Grace: DefaultTerminationGrace}
	for _, e := range c.Env {
		spec.Env[e.Name] = e.Value
	}
	if cc := svc.Spec.Template.Spec.ContainerConcurrency; cc != nil {
		spec.ContainerConcurrency = int(*cc)
	}
	if ts := svc.Spec.Template.Spec.TimeoutSeconds; ts != nil {
		spec.Timeout = time.Duration(*ts) * time.Second
	}
	if g := svc.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		spec.Grace = time.Duration(*g) * time.Second
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := checkScaleLimit(p.ascfg, spec.Annotations); err != nil {
		return nil, err
	}
	aspec, err := p.ascfg.RevisionSpec(spec.Annotations, spec.ContainerConcurrency)
	if err != nil {
		return nil, err
	}
	if _, err := p.progressDeadline(spec.Annotations); err != nil {
		return nil, err
	}
	ro := traffic.RolloutConfig{Duration: p.opts.RolloutDuration}
	if v, ok := svc.Metadata.Annotations[rolloutAnnotation]; ok {
		if ro.Duration, err = traffic.ParseRolloutDuration(v); err != nil {
			return nil, fmt.Errorf("metadata.annotations[%s]: %w", rolloutAnnotation, err)
		}
	}
	// Configurations are named by key ("namespace/name") so that services of
	// the same name in two namespaces stay apart.
	tspec := traffic.Spec{DefaultConfiguration: ns + "/" + name}
	for _, t := range svc.Spec.Traffic {
		tt := traffic.Target{Tag: t.Tag, LatestRevision: t.LatestRevision}
		if t.RevisionName != "" {
			tt.RevisionName = ns + "/" + t.RevisionName
		}
		if t.Percent != nil {
			tt.Percent = int(*t.Percent)
		}
		tspec.Traffic = append(tspec.Traffic, tt)
	}
	tspec.SetDefaults()
	if err := tspec.Validate(); err != nil {
		return nil, err
	}

	now := time.Now()
	p.mu.Lock()
	s, ok := p.services[ns+"/"+name]
	if !ok {
		cfg, err := revision.NewConfiguration[template](name, revision.ConfigurationOptions{Namespace: ns})
		if err != nil {
			p.mu.Unlock()
			return nil, err
		}
		s = &service{ns: ns, name: name, cfg: cfg}
	}
	// Refuse a route that would take a host another service serves
	// (Knative marks such a route DomainTaken); the service that has it
	// keeps it.
	if err := p.checkHostsLocked(ns, name, tspec); err != nil {
		p.mu.Unlock()
		return nil, err
	}
	// Check the traffic block before creating anything: a revision it names
	// must exist, or be the one this manifest names.
	for i, t := range svc.Spec.Traffic {
		if t.RevisionName == "" || t.RevisionName == spec.Name {
			continue
		}
		if _, ok := s.cfg.Revision(t.RevisionName); !ok {
			p.mu.Unlock()
			return nil, fmt.Errorf("spec.traffic[%d].revisionName: revision %q not found in configuration %s/%s", i, t.RevisionName, ns, name)
		}
	}
	r, created, err := s.cfg.Apply(now, spec)
	if err != nil {
		p.mu.Unlock()
		return nil, err
	}
	p.services[s.key()] = s
	s.traffic, s.rollout = tspec, ro
	s.clusterLocal = svc.Metadata.Labels[VisibilityLabel] == VisibilityClusterLocal
	var nr *rev
	if created {
		nr, err = p.newRev(s, r, app, aspec, now)
		if err != nil {
			p.mu.Unlock()
			return nil, err
		}
		p.revisions[nr.key] = nr
	}
	p.mu.Unlock()

	if created {
		if program != nil {
			p.log.Info("revision created", "revision", r.Key, "command", program.Command, "containerConcurrency", spec.ContainerConcurrency)
		} else {
			p.log.Info("revision created", "revision", r.Key, "app", app, "containerConcurrency", spec.ContainerConcurrency)
		}
		if err := p.act.SetRevision(nr.key, activator.RevisionConfig{
			ContainerConcurrency: spec.ContainerConcurrency,
			Timeout:              spec.Timeout,
		}); err != nil {
			return nil, err
		}
		if err := p.runner.Add(nr.key, aspec); err != nil {
			return nil, err
		}
	}
	// Route now, so that a request right after Apply finds the service.
	p.reconcileRoutes(time.Now())
	p.wake()
	warnings = svc.Warnings()
	if s.clusterLocal && p.opts.InternalAddr == "" {
		warnings = append(warnings, fmt.Sprintf("metadata.labels[%s] is %s and the platform has no internal listener (-internal): the service is not reachable", VisibilityLabel, VisibilityClusterLocal))
	}
	return warnings, nil
}

func (p *Platform) newRev(s *service, r revision.Revision[template], app App, aspec autoscaler.Spec, now time.Time) (*rev, error) {
	nr := &rev{key: r.Key, name: r.Name, service: s.key(), serviceName: s.name, spec: r.Template, app: app, aspec: aspec}
	var err error
	if nr.serve, err = balancer.New(balancer.Config{ContainerConcurrency: r.Template.ContainerConcurrency}); err != nil {
		return nil, err
	}
	serve, err := gateway.NewServeHandler(nr.serve, p.proxyTr)
	if err != nil {
		return nil, err
	}
	nr.pool = newPool(p, nr)
	// A revision will need replicas: have a spare replica process ready
	// for its first (see spawner).
	p.spawner.refill()
	nr.logs = newLogRing(revisionLogLines)
	// The pool reports a replica that misses the progress deadline itself,
	// with its readiness check's last failure; the reconciler's own check,
	// a little later, is the backstop.
	if nr.progress, err = p.progressDeadline(r.Template.Annotations); err != nil {
		return nil, err
	}
	rcfg := revision.Config{MinScale: int32(aspec.MinScale), InitialScale: int32(aspec.InitialScale), ProgressDeadline: nr.progress + progressBackstop}
	if aspec.InitialScale == 0 {
		rcfg.InitialScale, rcfg.ZeroInitialScale = 0, true
	}
	rec, err := revision.NewReconciler(r.Key, now, rcfg, revision.ReconcilerOptions{Activator: p.act, Serve: serve})
	if err != nil {
		return nil, err
	}
	if nr.eps, err = gateway.NewEndpoints(r.Key, gateway.EndpointsConfig{Reconciler: rec, Serve: nr.serve, Activator: p.act}); err != nil {
		return nil, err
	}
	nr.eps.SetActivators(now, []string{"activator"})
	rec.OnStatus(func(_ string, old, new revision.Status) {
		if new.IsReady() {
			nr.everReady.Store(true)
		}
		if old.Ready != new.Ready {
			p.log.Info("revision readiness", "revision", r.Key, "ready", new.Ready.Status, "reason", new.Ready.Reason, "message", new.Ready.Message)
			p.wake()
		}
		nr.checkFailed()
	})
	rec.OnEndpoints(func(_ string, e revision.Endpoints) {
		p.log.Info("revision mode", "revision", r.Key, "mode", e.Mode, "endpoints", len(e.Addresses))
	})
	nr.rec = rec
	nr.door = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		nr.requests.Add(1)
		cw := &codeWriter{ResponseWriter: w}
		nr.serveHTTP(cw, req)
		if cw.code >= 500 {
			nr.errors.Add(1)
		}
	})
	rctx, cancel := context.WithCancel(p.ctx)
	nr.stopRun = cancel
	go rec.Run(rctx)
	return nr, nil
}

// codeWriter remembers the status code; Unwrap keeps Flush and Hijack
// reachable through http.ResponseController.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *codeWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (p *Platform) rev(key string) *rev {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.revisions[key]
}

// scale is the process scaler backend (autoscaler.Scaler).
func (p *Platform) scale(ctx context.Context, key string, n int) error {
	r := p.rev(key)
	if r == nil {
		return fmt.Errorf("platform: unknown revision %q", key)
	}
	if p.stopped.Load() {
		return nil
	}
	return r.pool.scale(ctx, n)
}

func (p *Platform) readyCount(key string) (int, error) {
	r := p.rev(key)
	if r == nil {
		return 0, fmt.Errorf("platform: unknown revision %q", key)
	}
	ready, _, _ := r.pool.counts()
	return ready, nil
}

// proxyFor is how long the revision's switch has had the activator in its
// path (autoscaler.ProxyTimer): 0 in Serve mode, including when no activator
// is ready. The runner calls it from its loop goroutine. p.rev holds p.mu
// only for the map lookup and the reconciler's lock is taken after p.mu is
// released, so no goroutine holds both here; r.rec is set before r is
// published under p.mu and never changes, so reading it needs no lock.
// Neither lock is held by code that waits for the runner.
func (p *Platform) proxyFor(key string, now time.Time) (time.Duration, bool) {
	r := p.rev(key)
	if r == nil {
		return 0, false
	}
	return r.rec.ProxyFor(now), true
}

func (p *Platform) replicaStats(key string) ([]autoscaler.Replica, error) {
	r := p.rev(key)
	if r == nil {
		return nil, fmt.Errorf("platform: unknown revision %q", key)
	}
	var out []autoscaler.Replica
	for _, pr := range r.pool.readyReplicas() {
		out = append(out, autoscaler.Replica{StatsURL: "http://" + pr.hs.Admin + "/stats", Started: pr.start})
	}
	return out, nil
}

// replicasChanged tells the Serve path, the activator and the revision's
// reconciler, in that order (gateway.Endpoints), which replicas are ready
// now.
func (p *Platform) replicasChanged(r *rev) {
	var addrs []string
	for _, pr := range r.pool.readyReplicas() {
		addrs = append(addrs, pr.hs.Serve)
	}
	if err := r.eps.SetReady(time.Now(), addrs); err != nil {
		p.log.Warn("revision replicas", "revision", r.key, "error", err)
	}
}

func (p *Platform) onDecision(d autoscaler.Decision) {
	r := p.rev(d.Revision)
	if r == nil {
		return
	}
	if prev := r.decision.Swap(&d); d.Desired > d.Ready && (prev == nil || prev.Desired <= prev.Ready) {
		r.scaleUpAt.Store(d.Time.UnixNano())
	}
	r.rec.Decide(d.Time, revision.Decision{
		Desired:             int32(d.Desired),
		ExcessBurstCapacity: int32(d.ExcessBurstCapacity),
		Panicking:           d.Panicking,
	})
}

// serverTiming is the activator's Server-Timing hook: for a cold start it
// puts the autoscaler's decision to scale up before the activator's
// breakdown (replica ready, queued, forwarded).
func (p *Platform) serverTiming(t activator.Timing) string {
	b := make([]byte, 0, 160)
	if r := p.rev(t.Revision); r != nil && t.Cold {
		if at := r.scaleUpAt.Load(); at != 0 {
			if d := time.Unix(0, at).Sub(t.Arrived); d >= 0 {
				b = activator.AppendServerTimingMetric(b, "scale", d, "scale decision")
				b = append(b, ", "...)
			}
		}
	}
	return string(t.AppendServerTiming(b))
}

func (p *Platform) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// routeLoop keeps the router in line with the services: it resolves each
// service's traffic against its latest ready revision, steps gradual
// rollouts, and tells revisions whether they are routed.
func (p *Platform) routeLoop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := p.reconcileRoutes(time.Now())
		d := time.Hour
		if !next.IsZero() {
			d = max(time.Until(next), time.Millisecond)
		}
		timer.Reset(d)
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
		case <-timer.C:
		}
	}
}

func (p *Platform) reconcileRoutes(now time.Time) (next time.Time) {
	// One at a time (the loop, Apply, Delete), so that what changed is
	// told to the reconcilers and the runner in the order it changed.
	p.routeMu.Lock()
	defer p.routeMu.Unlock()
	p.mu.Lock()
	next, changed := p.reconcileRoutesLocked(now)
	p.mu.Unlock()
	// Outside the lock: the runner and the reconcilers call back into us.
	for _, r := range changed {
		r.rec.SetRouted(now, r.routed)
		spec := r.aspec
		spec.Unreachable = !r.routed
		if err := p.runner.Update(r.key, spec); err != nil {
			p.log.Warn("autoscaler update", "revision", r.key, "error", err)
		}
	}
	return next
}

func (p *Platform) reconcileRoutesLocked(now time.Time) (next time.Time, changed []*rev) {
	var public, internal []traffic.Route
	var publicOf, internalOf []*service // the service of each route
	observe := false
	for _, key := range slices.Sorted(maps.Keys(p.services)) {
		s := p.services[key]
		want, err := traffic.Resolve(s.traffic, traffic.LatestReadyFunc(p.latestReady))
		if err == nil {
			err = p.pinnedReady(want)
		}
		if err != nil {
			s.problem = err.Error()
		} else {
			s.problem = ""
			plan := s.rollout.Plan(s.state, want, now)
			s.state, s.table, s.nextStep = plan.State, plan.Table, plan.NextStep
			if plan.AwaitingReady {
				observe = true
			}
		}
		table := s.table
		if table == nil {
			// No revision was ever ready: requests go to the newest one,
			// where they wait while it deploys or get a 503 saying why it
			// failed (not a 404 as if the service did not exist).
			if r := p.latestCreated(s); r != nil {
				table = &traffic.Table{Default: []traffic.Share{{Revision: r.key, Percent: 100}}}
			}
		}
		if table != nil {
			byHost := traffic.Route{Name: s.name, Namespace: s.ns, Table: table}
			byPath := traffic.Route{Hosts: []string{"127.0.0.1", "localhost"}, PathPrefix: "/" + s.ns + "/" + s.name, Table: table}
			if !s.clusterLocal {
				public = append(public, byHost, byPath)
				publicOf = append(publicOf, s, s)
			}
			internal = append(internal, byHost, byPath)
			internalOf = append(internalOf, s, s)
		}
		if s.table != nil {
			if !s.nextStep.IsZero() && (next.IsZero() || s.nextStep.Before(next)) {
				next = s.nextStep
			}
		}
	}
	doors := traffic.FrontDoorFunc(p.frontDoorLocked)
	var routed []traffic.Route
	marked := map[*service]bool{} // refused by a router this time
	for _, u := range []struct {
		router *traffic.Router
		routes []traffic.Route
		of     []*service
	}{{p.router, public, publicOf}, {p.inner, internal, internalOf}} {
		refused := map[int]bool{}
		err := u.router.Update(u.routes, doors)
		var ue *traffic.UpdateError
		switch {
		case errors.As(err, &ue):
			// Only these routes were left out; every other one is served.
			for _, re := range ue.Routes {
				refused[re.Index] = true
				s := u.of[re.Index]
				msg := re.Reason + ": " + strings.Join(re.Problems, "; ")
				if marked[s] {
					msg = s.problem + "; " + msg
				}
				s.problem, marked[s] = msg, true
				p.log.Warn("route refused", "service", s.key(), "reason", re.Reason, "problems", re.Problems)
			}
		case err != nil:
			p.log.Error("router update", "error", err)
			return next, nil
		}
		for i, rt := range u.routes {
			if !refused[i] {
				routed = append(routed, rt)
			}
		}
	}
	p.routes = routed
	changed = p.markRoutedLocked()
	if observe {
		// The tables with the new revision at 1% are live now: time the
		// rollout's steps from here (Knative's ObserveReady).
		for _, s := range p.services {
			if s.state != nil && s.table != nil {
				s.state.ObserveReady(now, s.rollout.Duration)
			}
		}
		p.wake()
	}
	return next, changed
}

// RouteConflictError is returned by Apply when the service's route would
// take a host another service's route serves, such as a service named
// candidate-hello and the candidate tag of hello (Knative marks such a
// route not ready: DomainTaken). The service that has the host keeps it.
type RouteConflictError struct {
	Host    string // the host both would serve
	Service string // "namespace/name" of the service applied
	Other   string // "namespace/name" of the service that serves Host
	Tag     string // Other's tag whose host Host is, "" for its own host
}

func (e *RouteConflictError) Error() string {
	by := "service " + e.Other
	if e.Tag != "" {
		by = fmt.Sprintf("the tag %q of service %s", e.Tag, e.Other)
	}
	return fmt.Sprintf("route conflict (%s): host %q of service %s is already served by %s", traffic.ReasonDomainTaken, e.Host, e.Service, by)
}

// hostsOf returns the hosts a service's route serves (its own and one
// per tag), with the tag of each ("" for its own), under both routers'
// domains.
func (p *Platform) hostsOf(ns, name string, spec traffic.Spec) map[string]string {
	hosts := map[string]string{}
	tags := []string{""}
	for _, t := range spec.Traffic {
		if t.Tag != "" {
			tags = append(tags, t.Tag)
		}
	}
	for _, tag := range tags {
		hosts[p.router.Host(name, ns, tag)] = tag
		hosts[p.inner.Host(name, ns, tag)] = tag
	}
	return hosts
}

// checkHostsLocked refuses a service whose hosts another service has.
// p.mu must be held.
func (p *Platform) checkHostsLocked(ns, name string, spec traffic.Spec) error {
	mine := p.hostsOf(ns, name, spec)
	for _, key := range slices.Sorted(maps.Keys(p.services)) {
		o := p.services[key]
		if o.ns == ns && o.name == name {
			continue
		}
		theirs := p.hostsOf(o.ns, o.name, o.traffic)
		for _, h := range slices.Sorted(maps.Keys(mine)) {
			if tag, taken := theirs[h]; taken {
				return &RouteConflictError{Host: h, Service: ns + "/" + name, Other: key, Tag: tag}
			}
		}
	}
	return nil
}

// latestReady is the newest revision of a configuration whose Ready
// condition is True. p.mu must be held.
func (p *Platform) latestReady(config string) (string, bool) {
	s := p.services[config]
	if s == nil {
		return "", false
	}
	// Like Knative's latestReadyRevisionName, the answer moves only to a
	// newer revision that became Ready: a revision that was Ready and then
	// fails (its replicas crash) keeps its traffic, and its requests get
	// the failure's 503, rather than traffic jumping back to an old
	// revision.
	hist := s.cfg.History()
	for i := len(hist) - 1; i >= 0; i-- {
		if r := p.revisions[hist[i].Key]; r != nil && (r.everReady.Load() || r.rec.State().Status.IsReady()) {
			return r.key, true
		}
	}
	return "", false
}

// latestCreated is the newest revision of a service. p.mu must be held.
func (p *Platform) latestCreated(s *service) *rev {
	hist := s.cfg.History()
	for i := len(hist) - 1; i >= 0; i-- {
		if r := p.revisions[hist[i].Key]; r != nil {
			return r
		}
	}
	return nil
}

// pinnedReady refuses a table that routes to a revision not yet Ready (a
// revision named in spec.traffic). p.mu must be held.
func (p *Platform) pinnedReady(t *traffic.Table) error {
	check := func(shares []traffic.Share) error {
		for _, sh := range shares {
			if r := p.revisions[sh.Revision]; r == nil || !(r.everReady.Load() || r.rec.State().Status.IsReady()) {
				return fmt.Errorf("revision %q referenced in traffic is not ready", sh.Revision)
			}
		}
		return nil
	}
	if err := check(t.Default); err != nil {
		return err
	}
	for _, shares := range t.Tags {
		if err := check(shares); err != nil {
			return err
		}
	}
	return nil
}

func (p *Platform) frontDoorLocked(key string) http.Handler {
	if r := p.revisions[key]; r != nil {
		return r.door
	}
	return nil
}

// markRoutedLocked records whether a route sends each revision traffic and
// returns those whose answer changed: an unrouted revision is Unreachable
// to the autoscaler (its min-scale no longer holds, as in Knative). p.mu
// must be held.
func (p *Platform) markRoutedLocked() (changed []*rev) {
	routed := map[string]bool{}
	for _, rt := range p.routes {
		for _, sh := range rt.Table.Default {
			routed[sh.Revision] = routed[sh.Revision] || sh.Percent > 0
		}
		for _, shares := range rt.Table.Tags {
			for _, sh := range shares {
				routed[sh.Revision] = true
			}
		}
	}
	for key, r := range p.revisions {
		if r.routed == routed[key] {
			continue
		}
		r.routed = routed[key]
		changed = append(changed, r)
	}
	return changed
}

// ErrServiceNotFound is returned by Delete for a service that does not
// exist.
var ErrServiceNotFound = errors.New("platform: service not found")

// Delete removes a service: its routes go at once (new requests get 404),
// and its revisions' replicas drain and stop in the background (Stop
// waits for them).
func (p *Platform) Delete(namespace, name string) error {
	key := namespace + "/" + name
	p.mu.Lock()
	if _, ok := p.services[key]; !ok {
		p.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrServiceNotFound, key)
	}
	delete(p.services, key)
	var revs []*rev
	for k, r := range p.revisions {
		if r.service == key {
			revs = append(revs, r)
			delete(p.revisions, k)
		}
	}
	p.mu.Unlock()
	p.reconcileRoutes(time.Now())
	p.log.Info("service deleted", "service", key, "revisions", len(revs))
	for _, r := range revs {
		p.runner.Remove(r.key)
		p.metrics.autoscaler.Forget(r.key)
		p.metrics.router.Forget(r.key)
		p.goLoop(func() {
			r.pool.stopAll()
			p.act.RemoveRevision(r.key)
			p.metrics.activator.Forget(r.key)
			r.stopRun()
		})
	}
	return nil
}

// edge records the client as the gateway sees it in X-Forwarded-For and
// Forwarded (RFC 7239), replacing whatever the client sent: the gateway is
// the first hop, and a client could claim any address. The hops behind it
// keep both headers, so a program sees its client.
func edge(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		node := ip
		if strings.Contains(ip, ":") {
			node = `"[` + ip + `]"`
		}
		r.Header.Set("X-Forwarded-For", ip)
		r.Header.Set("Forwarded", "for="+node+";host="+strconv.Quote(r.Host)+";proto=http")
		h.ServeHTTP(w, r)
	})
}
