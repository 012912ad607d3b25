package kubernetes

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/revision"
	"github.com/servingkit/servingkit/stats"
	"github.com/servingkit/servingkit/traffic"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// Event reasons Server records on Services.
const (
	// ReasonInvalidAnnotation is a Warning on a Service whose servingkit
	// annotations do not parse; its message names each annotation, its
	// value and the allowed range. The Service keeps its last good
	// configuration, or is not served if it never had one.
	ReasonInvalidAnnotation = "InvalidAnnotation"
	// ReasonRouteConflict is a Warning when the gateway refused the routes
	// (two Services claiming one host).
	ReasonRouteConflict = "RouteConflict"
)

// PeerTokenHeader carries ServerConfig.PeerToken on peer requests.
const PeerTokenHeader = "Authorization"

// ServerConfig configures a Server. Client, Scales, Name, PeerAddr and
// PeerToken are required.
type ServerConfig struct {
	// Client reads Services and EndpointSlices, writes Events and the Lease.
	Client kubernetes.Interface
	// Scales writes the target workloads' scale subresources.
	Scales scale.ScalesGetter
	// Namespace limits the Services served; "" means every namespace.
	Namespace string
	// Domain is the {domain} of each Service's host
	// "<name>.<namespace>.<domain>". "" means "svc.cluster.local".
	Domain string
	// Name is this process's name (the pod name), for its events, stats and
	// lease identity.
	Name string
	// PeerAddr is the host:port at which the other servingkit processes
	// reach this one's PeerHandler (the pod IP and the peer port).
	PeerAddr string
	// PeerToken is the shared secret peers present (a Secret in the
	// deploy manifests); requests to PeerHandler without it are refused.
	PeerToken string
	// Lease is the autoscaler's Lease: Namespace and Name are required,
	// Identity is set by the Server, zero durations mean the defaults.
	Lease LeaseConfig
	// Autoscaler holds config-autoscaler keys (Knative's ConfigMap) for
	// every Service. Nil means Knative's defaults.
	Autoscaler map[string]string
	// ReportingPeriod is how often the activator reports its load. Zero
	// means 1 s.
	ReportingPeriod time.Duration
	// Log receives what the server does; nil means silent.
	Log *slog.Logger
}

func (c ServerConfig) validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("kubernetes: ServerConfig.Client is nil"))
	}
	if c.Scales == nil {
		errs = append(errs, errors.New("kubernetes: ServerConfig.Scales is nil"))
	}
	for _, f := range []struct{ name, v string }{{"Name", c.Name}, {"PeerAddr", c.PeerAddr}, {"PeerToken", c.PeerToken}} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("kubernetes: ServerConfig.%s is empty, want a value", f.name))
		}
	}
	return errors.Join(errs...)
}

// Server is servingkit on Kubernetes in one process: the gateway
// (Handler), per annotated Service a revision front door and the
// activator, and, while it holds the Lease, the autoscaler that scales every
// Service's target. Several replicas share the work: each is a gateway and
// an activator; the Lease holder autoscales, and the others forward their
// activator's load and pokes to it through PeerHandler.
//
// A Service's front door is switched by the autoscaler's decisions on the
// Lease holder (the activator leaves the path once there is burst
// capacity, as in Knative). On the other replicas the activator stays in
// the path: they do not see the decisions, and the activator balances over
// the same ready pods with the containerConcurrency limit, so a request
// costs the same hop.
type Server struct {
	cfg   ServerConfig
	log   *slog.Logger
	ascfg autoscaler.Config

	router *traffic.Router
	act    *activator.Handler
	runner *autoscaler.Runner
	scaler *Scaler
	lease  *Lease
	eps    *EndpointsWatcher
	svcs   informers.SharedInformerFactory
	events record.EventRecorder
	bcast  record.EventBroadcaster
	fwd    *forwarder

	leading atomic.Bool

	mu       sync.Mutex                       // protects the fields below
	services map[string]*service              // by key "namespace/name"
	ready    map[string][]Endpoint            // by key, also for Services not (yet) served
	objects  map[string]*corev1.Service       // last seen, for events
	bad      map[string]string                // key → last reported problem
	ctx      context.Context                  // for reconcilers' Run; set by Run
	wg       sync.WaitGroup                   // reconcilers' Run goroutines
}

// service is one served Service.
type service struct {
	spec   ServiceSpec
	rec    *revision.Reconciler
	serve  *balancer
	door   http.Handler
	cancel context.CancelFunc
}

// NewServer checks cfg and builds a Server; Run runs it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ascfg, err := autoscaler.ParseConfig(cfg.Autoscaler)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: autoscaler config: %w", err)
	}
	s := &Server{
		cfg: cfg, log: cfg.Log, ascfg: ascfg,
		services: map[string]*service{},
		ready:    map[string][]Endpoint{},
		objects:  map[string]*corev1.Service{},
		bad:      map[string]string{},
	}
	s.router, err = traffic.NewRouter(traffic.RouterConfig{Domain: cfg.Domain})
	if err != nil {
		return nil, err
	}
	s.scaler = &Scaler{Scales: cfg.Scales, Target: s.target}
	s.runner, err = autoscaler.NewRunner(autoscaler.Options{
		Scaler:     s.scaler,
		Ready:      autoscaler.ReadyCounterFunc(s.readyCount),
		Scraper:    &autoscaler.HTTPScraper{Lister: autoscaler.ReplicaListerFunc(s.replicaStats)},
		ProxyTimer: autoscaler.ProxyTimerFunc(s.proxyFor),
		Logger:     cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	s.fwd = newForwarder(cfg.PeerToken, cfg.Log)
	s.act, err = activator.New(activator.Options{
		ThrottlerOptions: activator.ThrottlerOptions{Logger: cfg.Log},
		Name:             cfg.Name,
		Poker:            activator.PokerFunc(s.poke),
		Sink:             stats.SinkFunc(s.send),
		ReportingPeriod:  cfg.ReportingPeriod,
	})
	if err != nil {
		return nil, err
	}
	s.runner.Subscribe(s.onDecision)

	lc := cfg.Lease
	lc.Identity = cfg.Name + "@" + cfg.PeerAddr
	lc.OnStarted, lc.OnStopped = s.startLeading, s.stopLeading
	s.lease, err = NewLease(cfg.Client, lc)
	if err != nil {
		return nil, err
	}

	s.eps, err = NewEndpointsWatcher(cfg.Client, cfg.Namespace, s.onEndpoints)
	if err != nil {
		return nil, err
	}
	s.svcs = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(cfg.Namespace))
	_, err = s.svcs.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onService(obj, false) },
		UpdateFunc: func(_, obj any) { s.onService(obj, false) },
		DeleteFunc: func(obj any) { s.onService(obj, true) },
	})
	if err != nil {
		return nil, err
	}
	s.bcast = record.NewBroadcaster()
	s.events = s.bcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "servingkit", Host: cfg.Name})
	return s, nil
}

// Handler is the gateway: requests by Host to each served Service.
func (s *Server) Handler() http.Handler { return s.router }

// Leading reports whether this process holds the Lease (runs the
// autoscaler).
func (s *Server) Leading() bool { return s.leading.Load() }

// Activator returns the process's activator.
func (s *Server) Activator() *activator.Handler { return s.act }

// PeerHandler serves the other servingkit processes: POST /stats takes
// their activators' load and pokes (stats.Handler's wire format), with the
// PeerToken as a bearer token; this process must hold the Lease (503
// otherwise, and the sender tries the holder it sees next time).
func (s *Server) PeerHandler() http.Handler {
	want := []byte("Bearer " + s.cfg.PeerToken)
	in := stats.Handler(func(ctx context.Context, msgs []stats.Message) error {
		return s.runner.Send(ctx, msgs)
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(PeerTokenHeader)), want) != 1 {
			http.Error(w, "servingkit: peer token missing or wrong", http.StatusUnauthorized)
			return
		}
		if !s.leading.Load() {
			http.Error(w, "servingkit: this process does not hold the autoscaler lease", http.StatusServiceUnavailable)
			return
		}
		in.ServeHTTP(w, r)
	})
	return mux
}

// Run starts the informers, the activator, the autoscaler, the peer
// forwarder and the Lease, and returns when ctx ends, after releasing the
// Lease and stopping every goroutine it started. Shut the gateway's
// http.Server down first, then Activator().Shutdown, then end ctx.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()

	s.bcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.cfg.Client.CoreV1().Events("")})
	defer s.bcast.Shutdown()

	var wg sync.WaitGroup
	s.svcs.Start(ctx.Done())
	s.eps.Start(ctx)
	defer s.svcs.Shutdown()
	defer s.eps.Shutdown()
	if !s.eps.WaitForSync(ctx) || !cache.WaitForCacheSync(ctx.Done(), s.svcs.Core().V1().Services().Informer().HasSynced) {
		return ctx.Err()
	}
	wg.Go(func() { _ = s.runner.Run(ctx) })
	wg.Go(func() { s.act.Run(ctx) })
	wg.Go(func() { s.fwd.run(ctx, s.leaderStatsURL) })
	// Contend only once every Service and its endpoints are known, so that
	// the autoscaler starts with the full picture.
	wg.Go(func() { s.lease.Run(ctx) })
	<-ctx.Done()
	wg.Wait()
	s.wg.Wait()
	return nil
}

// leaderStatsURL is where to push stats: the Lease holder's PeerHandler,
// or "" when this process holds it or none is known.
func (s *Server) leaderStatsURL() string {
	if s.leading.Load() {
		return ""
	}
	addr, ok := LeaseHolderAddr(s.lease.Holder())
	if !ok || addr == s.cfg.PeerAddr {
		return ""
	}
	return "http://" + addr + "/stats"
}

// poke is the activator's Poker: the local autoscaler when leading, else
// the holder's.
func (s *Server) poke(rev string, st stats.Stat) {
	if s.leading.Load() {
		s.runner.Poke(rev, st)
		return
	}
	s.fwd.enqueue(stats.Message{Revision: rev, Stat: st})
}

// send is the activator's periodic stats Sink.
func (s *Server) send(ctx context.Context, msgs []stats.Message) error {
	if s.leading.Load() {
		return s.runner.Send(ctx, msgs)
	}
	for _, m := range msgs {
		s.fwd.enqueue(m)
	}
	return nil
}

func (s *Server) startLeading(ctx context.Context) {
	s.mu.Lock()
	s.leading.Store(true)
	svcs := slices.Collect(maps.Values(s.services))
	s.mu.Unlock()
	s.log.Info("autoscaler lease taken", "identity", s.cfg.Name)
	for _, sv := range svcs {
		if err := s.runner.Add(sv.spec.Key, sv.spec.Autoscaling); err != nil {
			s.log.Warn("autoscaler add", "service", sv.spec.Key, "error", err)
		}
	}
}

func (s *Server) stopLeading() {
	s.mu.Lock()
	s.leading.Store(false)
	svcs := slices.Collect(maps.Values(s.services))
	s.mu.Unlock()
	s.log.Info("autoscaler lease lost", "identity", s.cfg.Name)
	now := time.Now()
	for _, sv := range svcs {
		s.runner.Remove(sv.spec.Key)
		sv.rec.Decide(now, s.followerDecision(sv.spec.Key))
	}
}

// followerDecision keeps the activator in the path of a process that does
// not autoscale: it does not see the decisions.
func (s *Server) followerDecision(key string) revision.Decision {
	s.mu.Lock()
	n := len(s.ready[key])
	s.mu.Unlock()
	return revision.Decision{Desired: int32(n), ExcessBurstCapacity: -1}
}

func (s *Server) onDecision(d autoscaler.Decision) {
	if !s.leading.Load() {
		return
	}
	sv := s.service(d.Revision)
	if sv == nil {
		return
	}
	sv.rec.Decide(d.Time, revision.Decision{
		Desired:             int32(d.Desired),
		ExcessBurstCapacity: int32(d.ExcessBurstCapacity),
		Panicking:           d.Panicking,
	})
}

func (s *Server) service(key string) *service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.services[key]
}

func (s *Server) target(key string) (Target, bool) {
	sv := s.service(key)
	if sv == nil {
		return Target{}, false
	}
	return sv.spec.Target, true
}

func (s *Server) readyCount(key string) (int, error) {
	sv := s.service(key)
	if sv == nil {
		return 0, fmt.Errorf("kubernetes: unknown service %q", key)
	}
	return len(s.addrs(key, sv.spec.Port)), nil
}

func (s *Server) proxyFor(key string, now time.Time) (time.Duration, bool) {
	sv := s.service(key)
	if sv == nil {
		return 0, false
	}
	return sv.rec.ProxyFor(now), true
}

func (s *Server) replicaStats(key string) ([]autoscaler.Replica, error) {
	sv := s.service(key)
	if sv == nil {
		return nil, fmt.Errorf("kubernetes: unknown service %q", key)
	}
	var out []autoscaler.Replica
	for _, a := range s.addrs(key, sv.spec.AdminPort) {
		out = append(out, autoscaler.Replica{StatsURL: "http://" + a + "/stats"})
	}
	return out, nil
}

// addrs returns key's ready host:port for the named port.
func (s *Server) addrs(key, port string) []string {
	s.mu.Lock()
	eps := s.ready[key]
	s.mu.Unlock()
	out := make([]string, 0, len(eps))
	for _, e := range eps {
		if a, ok := e.HostPort(port); ok {
			out = append(out, a)
		}
	}
	return out
}

func (s *Server) onEndpoints(svc types.NamespacedName, eps []Endpoint) {
	key := svc.String()
	s.mu.Lock()
	if len(eps) == 0 {
		delete(s.ready, key)
	} else {
		s.ready[key] = eps
	}
	sv := s.services[key]
	s.mu.Unlock()
	if sv != nil {
		s.replicasChanged(sv)
	}
}

// replicasChanged tells the Serve path, the activator and the reconciler
// the Service's ready pods, in that order: on a scale-down the first two
// stop sending before the reconciler may switch modes.
func (s *Server) replicasChanged(sv *service) {
	addrs := s.addrs(sv.spec.Key, sv.spec.Port)
	sv.serve.set(addrs)
	if err := s.act.SetReplicas(sv.spec.Key, addrs); err != nil {
		s.log.Warn("activator replicas", "service", sv.spec.Key, "error", err)
	}
	now := time.Now()
	sv.rec.SetReplicas(now, addrs)
	if !s.leading.Load() {
		sv.rec.Decide(now, revision.Decision{Desired: int32(len(addrs)), ExcessBurstCapacity: -1})
	}
}

// onService follows a Service: served when it has TargetAnnotation and its
// annotations parse, reported when they do not.
func (s *Server) onService(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	o, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	key := o.Namespace + "/" + o.Name
	if _, ok := o.Annotations[TargetAnnotation]; deleted || !ok {
		s.remove(key)
		return
	}
	spec, err := ParseService(o.Namespace, o.Name, o.Annotations, s.ascfg)
	if err != nil {
		s.mu.Lock()
		repeat := s.bad[key] == err.Error()
		s.bad[key] = err.Error()
		s.mu.Unlock()
		if !repeat {
			s.log.Warn("invalid servingkit annotations; the Service keeps its last good configuration", "service", key, "error", err)
			s.events.Event(o, corev1.EventTypeWarning, ReasonInvalidAnnotation, err.Error())
		}
		return
	}
	s.mu.Lock()
	delete(s.bad, key)
	s.objects[key] = o
	s.mu.Unlock()
	if err := s.apply(spec); err != nil {
		s.log.Warn("service", "service", key, "error", err)
		s.events.Event(o, corev1.EventTypeWarning, ReasonInvalidAnnotation, err.Error())
	}
}

func (s *Server) apply(spec ServiceSpec) error {
	if err := s.act.SetRevision(spec.Key, spec.Activator()); err != nil {
		return err
	}
	s.mu.Lock()
	sv, existed := s.services[spec.Key]
	if existed {
		sv.spec = spec
		s.mu.Unlock()
		if s.leading.Load() {
			if err := s.runner.Update(spec.Key, spec.Autoscaling); err != nil {
				return err
			}
		}
		s.updateRoutes()
		s.replicasChanged(sv)
		return nil
	}
	now := time.Now()
	rcfg := revision.Config{MinScale: int32(spec.Autoscaling.MinScale), InitialScale: int32(spec.Autoscaling.InitialScale)}
	if spec.Autoscaling.InitialScale == 0 {
		rcfg.InitialScale, rcfg.ZeroInitialScale = 0, true
	}
	sv = &service{spec: spec, serve: newBalancer(s.act)}
	rec, err := revision.NewReconciler(spec.Key, now, rcfg, revision.ReconcilerOptions{Activator: s.act, Serve: sv.serve})
	if err != nil {
		s.mu.Unlock()
		return err
	}
	rec.SetActivators(now, []string{s.cfg.Name})
	rec.SetRouted(now, true)
	sv.rec, sv.door = rec, rec.FrontDoor()
	s.services[spec.Key] = sv
	ctx := s.ctx
	if ctx != nil {
		var rctx context.Context
		rctx, sv.cancel = context.WithCancel(ctx)
		s.wg.Go(func() { rec.Run(rctx) })
	}
	s.mu.Unlock()
	s.log.Info("service served", "service", spec.Key, "target", spec.Target.String(), "containerConcurrency", spec.ContainerConcurrency)
	s.replicasChanged(sv)
	if s.leading.Load() {
		if err := s.runner.Add(spec.Key, spec.Autoscaling); err != nil {
			return err
		}
	}
	s.updateRoutes()
	return nil
}

func (s *Server) remove(key string) {
	s.mu.Lock()
	sv := s.services[key]
	delete(s.services, key)
	delete(s.objects, key)
	delete(s.bad, key)
	s.mu.Unlock()
	if sv == nil {
		return
	}
	s.runner.Remove(key)
	s.updateRoutes()
	if sv.cancel != nil {
		sv.cancel()
	}
	s.log.Info("service no longer served", "service", key)
}

func (s *Server) updateRoutes() {
	s.mu.Lock()
	var routes []traffic.Route
	doors := traffic.FrontDoorMap{}
	for _, key := range slices.Sorted(maps.Keys(s.services)) {
		sv := s.services[key]
		routes = append(routes, traffic.Route{
			Name: sv.spec.Name, Namespace: sv.spec.Namespace, Hosts: sv.spec.Hosts,
			Table: &traffic.Table{Default: []traffic.Share{{Revision: key, Percent: 100}}},
		})
		doors[key] = sv.door
	}
	objs := maps.Clone(s.objects)
	s.mu.Unlock()
	if err := s.router.Update(routes, doors); err != nil {
		s.log.Error("gateway routes refused; the previous routes stay", "error", err)
		for _, o := range objs {
			s.events.Event(o, corev1.EventTypeWarning, ReasonRouteConflict, err.Error())
		}
	}
}
