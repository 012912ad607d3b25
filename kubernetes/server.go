package kubernetes

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/gateway"
	"github.com/servingkit/servingkit/revision"
	"github.com/servingkit/servingkit/stats"
	"github.com/servingkit/servingkit/traffic"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// FieldManager is the field manager of servingkit's writes to Services
// (ServingModeAnnotation), so that a user's server-side apply, which owns
// the other fields, neither removes nor conflicts with it.
const FieldManager = "servingkit"

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
	// Lease configures the autoscaler's bucket Leases: Namespace is
	// required.
	Lease LeaseConfig
	// Buckets is how many buckets the Services are hashed into, each owned
	// by one replica's autoscaler; every replica must use the same number.
	// Zero means 1 (Knative's default: one owner for all).
	Buckets int
	// Autoscaler holds config-autoscaler keys (Knative's ConfigMap) for
	// every Service. Nil means Knative's defaults.
	Autoscaler map[string]string
	// StickyHeader and StickyCookie name a request header and a cookie
	// whose value keeps a client on one target of a traffic split
	// (TrafficAnnotation) while the split is unchanged; "" means none (the
	// core's traffic.RouterConfig).
	StickyHeader, StickyCookie string
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
// activator, and an autoscaler that decides and scales the Services in the
// buckets this process owns (autoscaler.Shards over coordination.k8s.io
// Leases). Several replicas share the work: each is a gateway and an
// activator; each Service's load and pokes reach its owner's autoscaler,
// forwarded through PeerHandler when another replica owns it.
//
// A Service's front door follows the autoscaler's decisions on every
// replica (the activator leaves the path once there is burst capacity, as
// in Knative): the owner drives its own from each decision and publishes
// the mode the decision wants in ServingModeAnnotation, patched only when
// it changes; the other replicas drive theirs from that annotation, as
// Knative's activators and ingresses follow the ServerlessService's mode.
type Server struct {
	cfg   ServerConfig
	log   *slog.Logger
	ascfg autoscaler.Config

	router *traffic.Router
	act    *activator.Handler
	runner *autoscaler.Runner
	shards *autoscaler.Shards
	scaler *Scaler
	lease  *Lease
	holder string // this process in the Leases: "<name>@<peer address>"
	eps    *EndpointsWatcher
	svcs   informers.SharedInformerFactory
	events record.EventRecorder
	bcast  record.EventBroadcaster
	peer   *http.Client // forwards stats to other owners, with the token

	pubWake chan struct{} // capacity 1: publish has work
	svcReg  cache.ResourceEventHandlerRegistration

	mu       sync.Mutex                 // protects the fields below
	services map[string]*service        // by key "namespace/name"
	ready    map[string][]Endpoint      // by key, also for Services not (yet) served
	objects  map[string]*corev1.Service // last seen, for events
	bad      map[string]string          // key → last reported problem
	routes   map[string]*trafficRoute   // Services with TrafficAnnotation, by key
	publish  map[string]string          // key → serving mode to publish
	synced   bool                       // the informers listed everything: report unknown targets
	ctx      context.Context            // for reconcilers' Run; set by Run
	wg       sync.WaitGroup             // reconcilers' Run goroutines
}

// service is one served Service.
type service struct {
	spec   ServiceSpec
	rec    *revision.Reconciler
	eps    *gateway.Endpoints
	door   http.Handler
	cancel context.CancelFunc
	owned  atomic.Bool // this process's autoscaler owns the Service

	// remote is the ServingModeAnnotation as last seen on the Service
	// ("" when absent); the front door follows it where another replica
	// owns the Service.
	remote atomic.Pointer[string]
	// want is the mode this process's autoscaler wants, as its owner.
	want atomic.Pointer[string]

	viaActivator, viaServe atomic.Int64 // requests by front-door path
}

// trafficRoute is a Service with TrafficAnnotation.
type trafficRoute struct {
	spec TrafficSpec
	obj  *corev1.Service
	last *traffic.Table // the last table installed, kept while a target is unknown
}

func (sv *service) remoteMode() string {
	if p := sv.remote.Load(); p != nil {
		return *p
	}
	return ""
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
		routes:   map[string]*trafficRoute{},
		publish:  map[string]string{},
		pubWake:  make(chan struct{}, 1),
	}
	// Stateless splits: every servingkit replica, including one that
	// restarted or missed an update, sends a sticky key where its peers do.
	s.router, err = traffic.NewRouter(traffic.RouterConfig{Domain: cfg.Domain, StickyHeader: cfg.StickyHeader, StickyCookie: cfg.StickyCookie, StatelessSplits: true})
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
	s.lease, err = NewLease(cfg.Client.CoordinationV1(), cfg.Lease)
	if err != nil {
		return nil, err
	}
	s.holder = cfg.Name + "@" + cfg.PeerAddr
	s.peer = &http.Client{
		Timeout:   5 * time.Second,
		Transport: &tokenTransport{token: "Bearer " + cfg.PeerToken, next: http.DefaultTransport},
	}
	s.shards, err = autoscaler.NewShards(autoscaler.ShardsConfig{
		Runner:        s.runner,
		Lease:         s.lease,
		Holder:        s.holder,
		Buckets:       cfg.Buckets,
		RenewInterval: s.lease.cfg.Duration / 3,
		Forward:       s.forward,
		Logger:        cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	s.act, err = activator.New(activator.Options{
		ThrottlerOptions: activator.ThrottlerOptions{Logger: cfg.Log},
		Name:             cfg.Name,
		Poker:            s.shards,
		Sink:             stats.SinkFunc(s.shards.Send),
		ReportingPeriod:  cfg.ReportingPeriod,
	})
	if err != nil {
		return nil, err
	}
	s.runner.Subscribe(s.onDecision)

	s.eps, err = NewEndpointsWatcher(cfg.Client, cfg.Namespace, s.onEndpoints)
	if err != nil {
		return nil, err
	}
	s.svcs = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(cfg.Namespace))
	s.svcReg, err = s.svcs.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
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

// Owns reports whether this process's autoscaler owns the Service key.
func (s *Server) Owns(key string) bool { return s.shards.Owns(key) }

// Activator returns the process's activator.
func (s *Server) Activator() *activator.Handler { return s.act }

// ForwardedStatsPath is where PeerHandler takes stats that another
// replica's autoscaler forwards to this one, the owner of their Services.
const ForwardedStatsPath = "/stats/forwarded"

// PeerHandler serves the other servingkit replicas: POST
// ForwardedStatsPath takes the load and pokes of the Services this
// replica's autoscaler owns (stats.Handler's wire format, at most
// stats.MaxBatchBytes), with the PeerToken as a bearer token (401
// otherwise).
func (s *Server) PeerHandler() http.Handler {
	want := []byte("Bearer " + s.cfg.PeerToken)
	in := stats.Handler(s.shards.Deliver)
	mux := http.NewServeMux()
	mux.HandleFunc(ForwardedStatsPath, func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(PeerTokenHeader)), want) != 1 {
			http.Error(w, "servingkit: peer token missing or wrong", http.StatusUnauthorized)
			return
		}
		in.ServeHTTP(w, r)
	})
	return mux
}

// forward is Shards' Forward: stats for Services another replica owns go
// to its PeerHandler, at the address in its holder name.
func (s *Server) forward(holder string) stats.Sink {
	_, addr, ok := strings.Cut(holder, "@")
	if !ok || addr == "" {
		return stats.SinkFunc(func(context.Context, []stats.Message) error {
			return fmt.Errorf("kubernetes: autoscaler holder %q has no peer address", holder)
		})
	}
	return &stats.HTTPSink{URL: "http://" + addr + ForwardedStatsPath, Client: s.peer}
}

// Run starts the informers, the activator, the autoscaler and its bucket
// Leases, and returns when ctx ends, after releasing the Leases it holds
// and stopping every goroutine it started. Shut the gateway's http.Server
// down first, then Activator().Shutdown, then end ctx.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()

	s.bcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.cfg.Client.CoreV1().Events("")})
	defer s.bcast.Shutdown()

	s.svcs.Start(ctx.Done())
	s.eps.Start(ctx)
	defer s.svcs.Shutdown()
	defer s.eps.Shutdown()
	if !s.eps.WaitForSync(ctx) || !cache.WaitForCacheSync(ctx.Done(), s.svcReg.HasSynced) {
		return ctx.Err()
	}
	// Every Service is known: a split's target that is still unknown is
	// reported from now on.
	s.mu.Lock()
	s.synced = true
	s.mu.Unlock()
	s.updateRoutes()
	var wg sync.WaitGroup
	wg.Go(func() { s.publishLoop(ctx) })
	wg.Go(func() { _ = s.runner.Run(ctx) })
	wg.Go(func() { s.act.Run(ctx) })
	// Contend for buckets only once every Service and its endpoints are
	// known, so that an adopted Service starts from the full picture.
	wg.Go(func() { _ = s.shards.Run(ctx) })
	wg.Go(func() { s.followLoop(ctx) })
	<-ctx.Done()
	wg.Wait()
	s.wg.Wait()
	return nil
}

// followLoop keeps the front doors of the Services this process does not
// autoscale in Proxy mode (see followerDecision), once a second, and
// notes ownership changes.
func (s *Server) followLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		svcs := slices.Collect(maps.Values(s.services))
		s.mu.Unlock()
		now := time.Now()
		for _, sv := range svcs {
			owns := s.shards.Owns(sv.spec.Key)
			if sv.owned.Swap(owns) != owns {
				s.log.Info("autoscaler ownership", "service", sv.spec.Key, "owned", owns)
			}
			if !owns {
				sv.rec.Decide(now, s.followerDecision(sv.spec.Key))
			}
		}
	}
}

// followerDecision is the decision a replica that does not own the
// Service's autoscaler gives its front door: the mode the owner published
// in ServingModeAnnotation, as a decision that wants it (Desired the ready
// pods seen here, excess burst capacity 0 for Serve and -1 for Proxy, see
// revision.WantMode), so that the effective mode still falls back to Proxy
// when this replica sees no ready pod. Without a published mode the
// activator stays in the path.
func (s *Server) followerDecision(key string) revision.Decision {
	sv := s.service(key)
	n := 0
	ebc := int32(-1)
	if sv != nil {
		n = len(s.addrs(key, sv.spec.Port))
		if sv.remoteMode() == revision.Serve.String() {
			ebc = 0
		}
	}
	return revision.Decision{Desired: int32(n), ExcessBurstCapacity: ebc}
}

// onDecision runs on the owner (the Runner holds only owned Services): the
// front door follows the decision, and the mode it wants is published for
// the other replicas when it differs from the Service's annotation.
func (s *Server) onDecision(d autoscaler.Decision) {
	sv := s.service(d.Revision)
	if sv == nil {
		return
	}
	sv.owned.Store(true)
	rd := revision.Decision{
		Desired:             int32(min(d.Desired, 1<<31-1)),
		ExcessBurstCapacity: int32(max(min(d.ExcessBurstCapacity, 1<<31-1), -1<<31)),
		Panicking:           d.Panicking,
	}
	sv.rec.Decide(d.Time, rd)
	want := revision.WantMode(rd.Desired, rd.ExcessBurstCapacity).String()
	sv.want.Store(&want)
	if sv.remoteMode() != want {
		s.enqueuePublish(d.Revision, want)
	}
}

// enqueuePublish asks publishLoop to write mode into key's
// ServingModeAnnotation.
func (s *Server) enqueuePublish(key, mode string) {
	s.mu.Lock()
	s.publish[key] = mode
	s.mu.Unlock()
	select {
	case s.pubWake <- struct{}{}:
	default:
	}
}

// publishLoop patches ServingModeAnnotation on the Services this replica
// owns, one merge patch of that one annotation per change, off the
// autoscaler's goroutine. A patch that fails is logged and retried at the
// owner's next decision that still disagrees with the annotation.
func (s *Server) publishLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.pubWake:
		}
		s.mu.Lock()
		work := s.publish
		s.publish = map[string]string{}
		s.mu.Unlock()
		for _, key := range slices.Sorted(maps.Keys(work)) {
			mode := work[key]
			sv := s.service(key)
			if sv == nil || !s.shards.Owns(key) || sv.remoteMode() == mode {
				continue
			}
			if w := sv.want.Load(); w != nil && *w != mode {
				continue // a newer decision is queued or published
			}
			ns, name, _ := strings.Cut(key, "/")
			patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, ServingModeAnnotation, mode)
			_, err := s.cfg.Client.CoreV1().Services(ns).Patch(ctx, name, types.MergePatchType, patch,
				metav1.PatchOptions{FieldManager: FieldManager})
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("publish serving mode", "service", key, "mode", mode, "error", err)
				}
				continue
			}
			s.log.Info("serving mode published", "service", key, "mode", mode)
		}
	}
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

// replicasChanged hands the Service's ready pods to its gateway.Endpoints,
// which tells the Serve balancer, the activator and the reconciler in the
// order that loses no request.
func (s *Server) replicasChanged(sv *service) {
	addrs := s.addrs(sv.spec.Key, sv.spec.Port)
	now := time.Now()
	if err := sv.eps.SetReady(now, addrs); err != nil {
		s.log.Warn("ready pods", "service", sv.spec.Key, "error", err)
	}
	if !s.shards.Owns(sv.spec.Key) {
		sv.rec.Decide(now, s.followerDecision(sv.spec.Key))
	}
}

// onService follows a Service: served when it has TargetAnnotation and its
// annotations parse, a traffic split when it has TrafficAnnotation,
// reported when they do not parse.
func (s *Server) onService(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	o, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	key := o.Namespace + "/" + o.Name
	_, hasTarget := o.Annotations[TargetAnnotation]
	_, hasTraffic := o.Annotations[TrafficAnnotation]
	if deleted || (!hasTarget && !hasTraffic) {
		s.remove(key)
		s.removeRoute(key)
		return
	}
	if hasTraffic {
		if tr, err := ParseTraffic(o.Namespace, o.Name, o.Annotations); err != nil {
			s.report(o, key+"#traffic", err)
		} else {
			s.mu.Lock()
			delete(s.bad, key+"#traffic")
			r := s.routes[key]
			if r == nil {
				r = &trafficRoute{}
				s.routes[key] = r
			}
			r.spec, r.obj = tr, o
			s.mu.Unlock()
		}
	} else {
		s.removeRoute(key)
	}
	if !hasTarget {
		s.remove(key)
		s.updateRoutes()
		return
	}
	spec, err := ParseService(o.Namespace, o.Name, o.Annotations, s.ascfg)
	if err != nil {
		s.report(o, key, err)
		s.updateRoutes()
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
	if sv := s.service(key); sv != nil {
		s.observeMode(sv, o.Annotations[ServingModeAnnotation])
	}
}

// observeMode takes a Service's ServingModeAnnotation: a replica that does
// not own the Service drives its front door from it at once; the owner
// publishes its own mode again if the annotation lost it (a user's write).
func (s *Server) observeMode(sv *service, mode string) {
	if old := sv.remoteMode(); old != mode {
		sv.remote.Store(&mode)
	}
	key := sv.spec.Key
	if !s.shards.Owns(key) {
		sv.rec.Decide(time.Now(), s.followerDecision(key))
		return
	}
	if w := sv.want.Load(); w != nil && *w != mode {
		s.enqueuePublish(key, *w)
	}
}

// report logs err and records it as a Warning event on o once per
// distinct error (id tells the Service's parts apart).
func (s *Server) report(o *corev1.Service, id string, err error) {
	s.mu.Lock()
	repeat := s.bad[id] == err.Error()
	s.bad[id] = err.Error()
	s.mu.Unlock()
	if !repeat {
		s.log.Warn("invalid servingkit annotations; the Service keeps its last good configuration", "service", o.Namespace+"/"+o.Name, "error", err)
		s.events.Event(o, corev1.EventTypeWarning, ReasonInvalidAnnotation, err.Error())
	}
}

func (s *Server) removeRoute(key string) {
	s.mu.Lock()
	_, ok := s.routes[key]
	delete(s.routes, key)
	delete(s.bad, key+"#traffic")
	s.mu.Unlock()
	if ok {
		s.updateRoutes()
	}
}

// serveOrActivator is a Service's Serve path: the balancer, or the
// activator when no pod is ready — a scale-down that the front door has not
// followed yet — so that the request waits for a pod instead of failing.
type serveOrActivator struct {
	b     *balancer.Balancer
	serve http.Handler
	act   http.Handler  // counts its own requests
	n     *atomic.Int64 // requests sent to serve
}

func (h *serveOrActivator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.b.Len() == 0 {
		h.act.ServeHTTP(w, r)
		return
	}
	h.n.Add(1)
	h.serve.ServeHTTP(w, r)
}

// counted counts the requests it passes to h.
type counted struct {
	n *atomic.Int64
	h http.Handler
}

func (c counted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.h.ServeHTTP(w, r)
}

func (s *Server) apply(spec ServiceSpec) error {
	if err := s.act.SetRevision(spec.Key, spec.Activator()); err != nil {
		return err
	}
	s.mu.Lock()
	sv, existed := s.services[spec.Key]
	if existed && reflect.DeepEqual(sv.spec, spec) {
		// Only other fields or annotations changed (servingkit's own
		// ServingModeAnnotation among them).
		s.mu.Unlock()
		return nil
	}
	if existed {
		sv.spec = spec
		s.mu.Unlock()
		if err := s.shards.Update(spec.Key, spec.Autoscaling); err != nil {
			return err
		}
		s.updateRoutes()
		s.replicasChanged(sv)
		return nil
	}
	s.mu.Unlock()
	now := time.Now()
	rcfg := revision.Config{MinScale: int32(spec.Autoscaling.MinScale), InitialScale: int32(spec.Autoscaling.InitialScale)}
	if spec.Autoscaling.InitialScale == 0 {
		rcfg.InitialScale, rcfg.ZeroInitialScale = 0, true
	}
	b, err := balancer.New(balancer.Config{ContainerConcurrency: spec.ContainerConcurrency})
	if err != nil {
		return err
	}
	serve, err := gateway.NewServeHandler(b, nil)
	if err != nil {
		return err
	}
	sv = &service{spec: spec}
	act := counted{n: &sv.viaActivator, h: s.act}
	rec, err := revision.NewReconciler(spec.Key, now, rcfg, revision.ReconcilerOptions{
		Activator: act, Serve: &serveOrActivator{b: b, serve: serve, act: act, n: &sv.viaServe}})
	if err != nil {
		return err
	}
	eps, err := gateway.NewEndpoints(spec.Key, gateway.EndpointsConfig{Reconciler: rec, Serve: b, Activator: s.act})
	if err != nil {
		return err
	}
	rec.SetActivators(now, []string{s.cfg.Name})
	rec.SetRouted(now, true)
	sv.rec, sv.eps, sv.door = rec, eps, rec.FrontDoor()
	s.mu.Lock()
	s.services[spec.Key] = sv
	if s.ctx != nil {
		var rctx context.Context
		rctx, sv.cancel = context.WithCancel(s.ctx)
		s.wg.Go(func() { rec.Run(rctx) })
	}
	s.mu.Unlock()
	s.log.Info("service served", "service", spec.Key, "target", spec.Target.String(), "containerConcurrency", spec.ContainerConcurrency)
	s.replicasChanged(sv)
	if err := s.shards.Add(spec.Key, spec.Autoscaling); err != nil {
		return err
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
	s.shards.Remove(key)
	s.updateRoutes()
	if sv.cancel != nil {
		sv.cancel()
	}
	s.log.Info("service no longer served", "service", key)
}

// updateRoutes installs every Service's route in the gateway: a served
// Service's hosts go to its front door, unless it has a traffic split; a
// split's hosts (and its tags' hosts) go to its target Services' front
// doors. A split naming a Service that is not served keeps its last
// installed table (or is not routed) and gets a Warning event; a route the
// Router refuses gets one too; every other route is installed.
func (s *Server) updateRoutes() {
	s.mu.Lock()
	var routes []traffic.Route
	var objs []*corev1.Service // by route index, for the Router's errors
	type problem struct {
		o   *corev1.Service
		id  string
		err error
	}
	var problems []problem
	doors := traffic.FrontDoorMap{}
	for _, key := range slices.Sorted(maps.Keys(s.services)) {
		sv := s.services[key]
		doors[key] = sv.door
		if _, split := s.routes[key]; split {
			continue
		}
		routes = append(routes, traffic.Route{
			Name: sv.spec.Name, Namespace: sv.spec.Namespace, Hosts: sv.spec.Hosts,
			Table: &traffic.Table{Default: []traffic.Share{{Revision: key, Percent: 100}}},
		})
		objs = append(objs, s.objects[key])
	}
	for _, key := range slices.Sorted(maps.Keys(s.routes)) {
		r := s.routes[key]
		var unknown []string
		for _, t := range r.spec.Targets() {
			if _, ok := s.services[t]; !ok {
				unknown = append(unknown, t)
			}
		}
		tbl := r.spec.Table
		if len(unknown) > 0 {
			if s.synced {
				problems = append(problems, problem{r.obj, key + "#targets", fmt.Errorf("kubernetes: Service %s: %w", key, &AnnotationError{
					TrafficAnnotation, r.spec.Value,
					fmt.Sprintf("Services of namespace %s that servingkit serves (with a valid %s); not served: %s", r.spec.Namespace, TargetAnnotation, strings.Join(unknown, ", ")),
				})})
			}
			tbl = r.last
		} else {
			delete(s.bad, key+"#targets")
		}
		if tbl == nil {
			continue
		}
		r.last = tbl
		routes = append(routes, traffic.Route{Name: r.spec.Name, Namespace: r.spec.Namespace, Hosts: r.spec.Hosts, Table: tbl})
		objs = append(objs, r.obj)
	}
	s.mu.Unlock()
	for _, p := range problems {
		s.report(p.o, p.id, p.err)
	}
	err := s.router.Update(routes, doors)
	if err == nil {
		return
	}
	s.log.Error("gateway routes refused", "error", err)
	var ue *traffic.UpdateError
	if !errors.As(err, &ue) {
		return
	}
	for _, re := range ue.Routes {
		if re.Index >= 0 && re.Index < len(objs) && objs[re.Index] != nil {
			s.events.Event(objs[re.Index], corev1.EventTypeWarning, ReasonRouteConflict, re.Error())
		}
	}
}

// MetricsHandler serves this replica's front-door counters and modes in
// the Prometheus text format:
//
//	servingkit_frontdoor_requests_total{service,path} counter: requests a Service's front door sent to the activator (path="activator") or straight to a pod (path="serve")
//	servingkit_frontdoor_mode{service} gauge: the front door's mode now, 1 Serve, 0 Proxy
//	servingkit_autoscaler_owner{service} gauge: 1 where this replica's autoscaler owns the Service
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		svcs := maps.Clone(s.services)
		s.mu.Unlock()
		var b strings.Builder
		keys := slices.Sorted(maps.Keys(svcs))
		b.WriteString("# TYPE servingkit_frontdoor_requests_total counter\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "servingkit_frontdoor_requests_total{service=%q,path=\"activator\"} %d\n", k, svcs[k].viaActivator.Load())
			fmt.Fprintf(&b, "servingkit_frontdoor_requests_total{service=%q,path=\"serve\"} %d\n", k, svcs[k].viaServe.Load())
		}
		b.WriteString("# TYPE servingkit_frontdoor_mode gauge\n")
		for _, k := range keys {
			m := 0
			if svcs[k].rec.State().Endpoints.Mode == revision.Serve {
				m = 1
			}
			fmt.Fprintf(&b, "servingkit_frontdoor_mode{service=%q} %d\n", k, m)
		}
		b.WriteString("# TYPE servingkit_autoscaler_owner gauge\n")
		for _, k := range keys {
			o := 0
			if s.shards.Owns(k) {
				o = 1
			}
			fmt.Fprintf(&b, "servingkit_autoscaler_owner{service=%q} %d\n", k, o)
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte(b.String()))
	})
}

// tokenTransport adds the peer token to every request.
type tokenTransport struct {
	token string
	next  http.RoundTripper
}

func (t *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(PeerTokenHeader, t.token)
	return t.next.RoundTrip(r)
}
