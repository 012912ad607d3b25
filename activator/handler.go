package activator

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/proxy"
	"github.com/servingkit/servingkit/queue"
	"github.com/servingkit/servingkit/stats"
)

// DefaultName begins the stats Source of a Handler whose Options.Name is
// empty: "activator-<host name>-<process id>-<n>", n counting the
// Handlers of the process, so that no two activators report under one
// name.
const DefaultName = "activator"

// handlers counts the Handlers made in this process, for default names.
var handlers atomic.Int64

// defaultName is a Source no other activator uses.
func defaultName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return fmt.Sprintf("%s-%s-%d-%d", DefaultName, host, os.Getpid(), handlers.Add(1))
}

// StatusClientClosedRequest is the status logged for a request whose
// client went away before it was answered (nginx's 499); the client never
// sees it. It is the queue's.
const StatusClientClosedRequest = queue.StatusClientClosedRequest

// Poker is told about a revision's first request (the first after a period
// without load) at once, so that an autoscaler at zero can scale up without
// waiting for the next report: Knative's immediate stat, Concurrency 1 and
// RPS 1. The stat has no Source: it is a one-off that the activator's next
// report makes up for (that report leaves the first request out), so the
// autoscaler must add it to that report, not take the report, which has
// the activator's Source, as the activator's latest word for the second
// (see autoscaler.Collector). The autoscaler's runner implements it. Poke
// is called on the request's goroutine, outside any lock; it should not
// block for long.
type Poker interface {
	Poke(revision string, s stats.Stat)
}

// PokerFunc adapts a function to a Poker.
type PokerFunc func(revision string, s stats.Stat)

// Poke calls f(revision, s).
func (f PokerFunc) Poke(revision string, s stats.Stat) { f(revision, s) }

// Options configure a Handler. The zero value of each field is a working
// default.
type Options struct {
	// ThrottlerOptions configure waiting, balancing and probing: the clock,
	// the subset, the prober, the logger.
	ThrottlerOptions
	// Name is this activator's stats Source, unique among the
	// activators reporting to one autoscaler: the autoscaler counts one
	// stat per source and second (see autoscaler.Collector), so two
	// activators under one name would count as one. Empty means a name
	// made unique (see DefaultName).
	Name string
	// Resolver tells which revision a request is for. Nil means
	// HeaderResolver(RevisionHeader).
	Resolver Resolver
	// Transport forwards requests to replicas. Nil means servingkit's
	// default: HTTP/1 requests go through a proxy.Client, which writes the
	// request and reads the response on the handler's goroutine over
	// kept-alive connections (up to 1000 idle per replica); upgrades
	// (websockets) and HTTP/2 requests go through proxy.NewTransport's
	// transport: keep-alive, no proxy from the environment, no
	// compression, and the protocol of the incoming request: a request
	// that arrived over HTTP/2 (gRPC, but also a browser whose TLS
	// connection negotiated HTTP/2) is sent as cleartext HTTP/2 (h2c), any
	// other over HTTP/1.1. Knative's
	// activator has the same rule, but its ingress sends HTTP/2 only to
	// revisions whose port is named h2c; here the server in front of the
	// Handler decides. Replica queues served with queue.ServerProtocols
	// accept h2c. For replicas that do not, supply a Transport that speaks
	// HTTP/1.1 only, such as an *http.Transport whose Protocols are nil
	// (its zero value, or a clone of http.DefaultTransport without its
	// Proxy): HTTP/2 requests then go out as HTTP/1.1. A non-nil
	// Transport forwards every request (the proxy.Client is not used).
	Transport http.RoundTripper
	// Poker gets the immediate stat of each revision's first request. Nil
	// means none is sent.
	Poker Poker
	// Sink receives the periodic stats while Run runs. Nil means Run only
	// keeps them for the Reporter's Latest.
	Sink stats.Sink
	// ReportingPeriod is the time between stats reports. Zero means
	// stats.DefaultReportingPeriod (1 s); must not be negative.
	ReportingPeriod time.Duration
	// WaitHeader, if not empty, names a response header that carries the
	// time the request waited for capacity, as a Go duration ("0s",
	// "1.25s"). It is on every final response, the replica's and the
	// activator's own, with the activator's value only: a value the
	// replica sent under the same name is dropped.
	WaitHeader string
	// OnColdStart, if not nil, is called for every request that waited for
	// capacity or was turned away for a full queue. See ColdStart.
	OnColdStart func(ColdStart)
	// ServerTiming, if not nil, gives the Server-Timing header of every
	// request that waited for capacity, forwarded or turned away after
	// waiting (Timing.TurnedAway): it is called with the request's Timing
	// on the request's goroutine, just before the response header is
	// written, and its result, unless "", is added to the header (after
	// the replica's own Server-Timing values, if any). A request whose
	// client went away gets none.
	// Timing.ServerTiming formats the activator's breakdown; a host can
	// add its own metrics, such as when its autoscaler decided to scale.
	ServerTiming func(Timing) string
	// Observer, if not nil, is called for every request once the Handler
	// has answered it (see Observation), on the request's goroutine,
	// outside any lock. It must be safe for simultaneous use. Nil costs
	// nothing; set, a request costs a pooled status writer, two clock
	// reads and the call.
	Observer func(Observation)
}

// Validate reports every out-of-range field, naming the field, its value and
// the allowed range.
func (o Options) Validate() error {
	var errs []error
	if err := o.ThrottlerOptions.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.ReportingPeriod < 0 {
		errs = append(errs, fmt.Errorf("activator: Options.ReportingPeriod = %v, must be >= 0 (0 means %v)", o.ReportingPeriod, stats.DefaultReportingPeriod))
	}
	if o.WaitHeader != "" && !validHeaderName(o.WaitHeader) {
		errs = append(errs, fmt.Errorf("activator: Options.WaitHeader = %q, must be a valid header name (letters, digits, !#$%%&'*+-.^_`|~) or empty", o.WaitHeader))
	}
	return errors.Join(errs...)
}

func validHeaderName(s string) bool {
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return s != ""
}

// Handler is the activator: an http.Handler that serves requests for many
// revisions. For each request it finds the revision (Resolver), counts the
// request toward the revision's load from arrival to the end of the
// response, waits in the embedded Throttler for a replica slot — poking the
// autoscaler on the revision's first request — and forwards the request to
// the replica with a reverse proxy, marked with queue.ProxyHeader so the
// replica's queue counts it as proxied. Websocket upgrades, server-sent
// events and gRPC (HTTP/2 over cleartext) pass through.
//
// Answers it gives itself:
//   - 404 when the revision is unknown or the request names none;
//   - 503 when the revision's queue is full, MaxWait passed, the revision
//     was removed, or the Handler is shutting down;
//   - 504 "activator request timeout" when the revision timeout passed
//     before the replica answered;
//   - 502 when the replica did not answer, with a body that names the
//     revision, the replica and the cause.
//
// A request is not lost to a replica that cannot be connected to. When the
// connection for a request fails before any byte of it was sent — the dial
// was refused, reset or timed out, and nothing of its body was read — the
// replica is taken out of rotation (it is probed until it accepts a
// connection, or passes the Prober's probe) and the request goes to
// another replica, or back in line for one, with its deadline unchanged: up
// to ConnectTries tries, then 502. A request that was sent, even in part,
// is never sent again, since the replica may have acted on it: when its
// replica dies in the middle, it gets 502 saying that the connection closed
// before the replica answered.
//
// The host drives it through the embedded Throttler (SetRevision,
// SetReplicas, RemoveRevision, SetSubset), runs Run for the stats, and calls
// Shutdown to drain. A Handler is safe for simultaneous use.
type Handler struct {
	*Throttler

	name        string
	resolver    Resolver
	transport   http.RoundTripper
	client      *proxy.Client // nil when the host gave a Transport
	poker       Poker
	onColdStart func(ColdStart)
	timing      func(Timing) string
	observer    func(Observation) // nil: no observation is made
	waitHeader  string
	clock       clock.Clock
	log         *slog.Logger
	errLog      *log.Logger
	bufPool     *proxy.BufferPool
	reporter    *stats.Reporter
	start       time.Time

	active   atomic.Int64 // requests inside ServeHTTP
	draining atomic.Bool
	idle     chan struct{} // a token when active drops to 0 while draining
}

// New returns a Handler, or an error naming each invalid option.
func New(o Options) (*Handler, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	t, err := NewThrottler(o.ThrottlerOptions)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		Throttler:   t,
		name:        o.Name,
		resolver:    o.Resolver,
		transport:   o.Transport,
		poker:       o.Poker,
		onColdStart: o.OnColdStart,
		timing:      o.ServerTiming,
		observer:    o.Observer,
		waitHeader:  http.CanonicalHeaderKey(o.WaitHeader),
		clock:       t.clock,
		log:         t.log,
		bufPool:     new(proxy.BufferPool),
		idle:        make(chan struct{}, 1),
	}
	if h.name == "" {
		h.name = defaultName()
	}
	if h.resolver == nil {
		h.resolver = HeaderResolver(RevisionHeader)
	}
	if h.transport == nil {
		h.client = new(proxy.Client)
		h.transport = proxy.NewTransport(proxy.TransportConfig{})
	}
	h.errLog = slog.NewLogLogger(h.log.Handler(), slog.LevelDebug)
	h.start = h.clock.Now()
	h.reporter, err = stats.NewReporter(h.Stats, stats.ReporterOptions{
		Period: o.ReportingPeriod,
		Clock:  h.clock,
		Sink:   o.Sink,
		Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	t.newProxy = h.newProxy
	return h, nil
}

// Run sends the periodic stats to the Sink until ctx is done.
func (h *Handler) Run(ctx context.Context) { h.reporter.Run(ctx) }

// Reporter returns the stats reporter Run drives, for its Latest batch and
// SendErrors count.
func (h *Handler) Reporter() *stats.Reporter { return h.reporter }

// ServeHTTP handles one request as the type's doc describes, for the
// revision its Resolver finds.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.ServeRevision(w, r, "")
}

// ServeRevision handles one request for revision as ServeHTTP does, without
// asking the Resolver: the entry point of a caller that knows the revision,
// such as a revision's front door, which then need not mark the request
// (and must not write into the request's header map, which net/http leaves
// to the caller). An empty revision means ask the Resolver.
func (h *Handler) ServeRevision(w http.ResponseWriter, r *http.Request, revision string) {
	// Counted before the draining check, so that Shutdown, which sets
	// draining and then waits for the count to drop, cannot miss it.
	h.active.Add(1)
	defer h.leave()
	if h.observer != nil {
		h.serveObserved(w, r, revision)
		return
	}
	h.serve(w, r, revision, nil)
}

// serve handles one request for key ("": the Resolver's); ob, if not nil,
// collects what the observer is told.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, key string, ob *observed) {
	if h.draining.Load() {
		if ob != nil {
			ob.outcome = OutcomeShuttingDown
		}
		http.Error(w, ErrShuttingDown.Error(), http.StatusServiceUnavailable)
		return
	}
	if key == "" {
		var err error
		if key, err = h.resolver.Revision(r); err != nil {
			if ob != nil {
				ob.outcome = OutcomeUnknownRevision
			}
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
	}
	rv := h.Throttler.lookup(key)
	if rv == nil {
		if ob != nil {
			ob.outcome = OutcomeUnknownRevision
		}
		http.Error(w, fmt.Sprintf("%v %q: not served by this activator", ErrUnknownRevision, key), http.StatusNotFound)
		return
	}
	if ob != nil {
		ob.rev = rv.name
	}
	now := h.clock.Now()
	e, first := rv.stats.in(now)
	defer h.statOut(rv, e)
	if first && h.poker != nil {
		h.poker.Poke(key, stats.Stat{Concurrency: 1, RPS: 1, Uptime: now.Sub(h.start), Time: now})
	}
	ctx := r.Context()
	if d := rv.set.Load().cfg.Timeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = h.clock.WithTimeout(ctx, d)
		defer cancel()
	}
	l, err := rv.acquire(ctx)
	if ob != nil {
		ob.waited = l.waited
	}
	if err != nil {
		outcome := h.reject(w, rv, l, err, nil, now)
		if ob != nil {
			ob.outcome = outcome
		}
		return
	}
	if l.queued {
		h.report(ColdStart{Revision: rv.name, Waited: l.waited, Cold: l.cold, Outcome: OutcomeServed})
	}
	h.forward(w, r, ctx, rv, l, now, ob)
}

// forward sends the request to l's replica and, while the connection to
// the replica fails before anything was sent, to others (see Handler). ob,
// if not nil, collects what the observer is told.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, ctx context.Context, rv *revision, l Lease, arrived time.Time, ob *observed) {
	// Released on return, and if the proxy panics (http.ErrAbortHandler
	// when the response is cut off).
	defer func() {
		if l.r != nil {
			l.Release()
		}
	}()
	fw := newForward(w)
	defer fw.free()
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		fw.body = newSentBody(r)
		r = &fw.body.req // each try sets its own view of the body on this copy
	}
	waited := l.waited
	l0queued, l0cold := l.queued, l.cold
	if l.queued && h.timing != nil {
		fw.timing = h.timing
		fw.clk = h.clock
		fw.t = Timing{Revision: rv.name, Arrived: arrived, Cold: l.cold}
	}
	for tries := 1; ; tries++ {
		if fw.body != nil {
			r.Body = fw.body.try(tries)
		}
		if h.waitHeader != "" {
			fw.setWait(h.waitHeader, waited)
		}
		if fw.timing != nil {
			fw.leased = h.clock.Now()
			fw.t.Queued = waited
			if at := rv.readyAt.Load(); fw.t.Cold && at != 0 {
				fw.t.Ready = max(time.Unix(0, at).Sub(arrived), 0)
			}
		}
		l.r.proxy.Forward(fw, r, ctx, nil)
		unsent := fw.unsent
		if unsent == nil {
			if ob != nil {
				ob.proxied = true
				switch ctx.Err() {
				case context.DeadlineExceeded:
					ob.outcome = OutcomeTimeout
				case context.Canceled:
					ob.outcome = OutcomeCanceled
				}
			}
			return
		}
		fw.unsent = nil
		// Out of rotation first, so that the slot released next does not
		// go to a waiter for the same replica.
		rv.markUnreachable(l.r)
		l.Release()
		l = Lease{}
		h.log.Warn("activator: replica unreachable; trying again", "revision", rv.name, "try", tries, "error", unsent)
		if tries == ConnectTries {
			if ob != nil {
				ob.proxied = true // tried: a 502, as for a replica that did not answer
			}
			http.Error(fw, fmt.Sprintf("activator: revision %q: could not connect to a replica in %d tries; last, %v",
				rv.name, tries, unsent), http.StatusBadGateway)
			return
		}
		next, err := rv.acquire(ctx)
		waited += next.waited
		if ob != nil {
			ob.waited = waited
		}
		if err != nil {
			next.waited = waited
			next.queued = next.queued || l0queued
			next.cold = next.cold || l0cold
			fw.timing = nil // reject gives the Server-Timing of a request turned away
			outcome := h.reject(fw, rv, next, err, unsent, arrived)
			if ob != nil {
				ob.outcome = outcome
			}
			return
		}
		l = next
	}
}

func (h *Handler) leave() {
	if h.active.Add(-1) == 0 && h.draining.Load() {
		select {
		case h.idle <- struct{}{}:
		default:
		}
	}
}

func (h *Handler) statOut(rv *revision, e *statEntry) { rv.stats.out(e, h.clock.Now()) }

func (h *Handler) setWaitHeader(w http.ResponseWriter, waited time.Duration) {
	if h.waitHeader != "" {
		w.Header()[h.waitHeader] = []string{waitValue(waited)}
	}
}

func waitValue(waited time.Duration) string {
	if waited > 0 {
		return waited.String()
	}
	return "0s"
}

func (h *Handler) report(c ColdStart) {
	if h.onColdStart != nil {
		h.onColdStart(c)
	}
}

// reject answers a request that got no replica, and returns the outcome;
// unsent, if not nil, is why an earlier try of it failed.
func (h *Handler) reject(w http.ResponseWriter, rv *revision, l Lease, err error, unsent error, arrived time.Time) Outcome {
	status, outcome := http.StatusInternalServerError, Outcome(-1)
	switch {
	case errors.Is(err, ErrQueueFull):
		status, outcome = http.StatusServiceUnavailable, OutcomeQueueFull
	case errors.Is(err, ErrMaxWait):
		status, outcome = http.StatusServiceUnavailable, OutcomeMaxWait
	case errors.Is(err, ErrRevisionRemoved):
		status, outcome = http.StatusServiceUnavailable, OutcomeRemoved
	case errors.Is(err, context.DeadlineExceeded):
		status, outcome = http.StatusGatewayTimeout, OutcomeTimeout
	case errors.Is(err, context.Canceled):
		status, outcome = StatusClientClosedRequest, OutcomeCanceled
	}
	if l.queued && outcome >= 0 {
		h.report(ColdStart{Revision: rv.name, Waited: l.waited, Cold: l.cold, Outcome: outcome})
	}
	h.setWaitHeader(w, l.waited)
	if l.queued && h.timing != nil && outcome >= 0 && outcome != OutcomeCanceled {
		t := Timing{Revision: rv.name, Arrived: arrived, Cold: l.cold, Queued: l.waited, TurnedAway: true, Outcome: outcome}
		if at := rv.readyAt.Load(); t.Cold && at != 0 {
			t.Ready = max(time.Unix(0, at).Sub(arrived), 0)
		}
		if v := h.timing(t); v != "" {
			w.Header().Add("Server-Timing", v)
		}
	}
	msg := err.Error()
	if unsent != nil {
		msg += "; it was back in line because an earlier try " + unsent.Error()
	}
	http.Error(w, msg, status)
	return outcome
}

// Shutdown stops taking new requests — they get 503 — and waits until the
// requests already in (waiting or forwarded) finish or time out, then stops
// probing. If ctx ends first it returns an error saying how many remain;
// they carry on.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.draining.Store(true)
	for {
		n := h.active.Load()
		if n == 0 {
			// Pass the wake-up on to any other Shutdown waiting.
			select {
			case h.idle <- struct{}{}:
			default:
			}
			break
		}
		select {
		case <-h.idle:
		case <-ctx.Done():
			return fmt.Errorf("activator: Shutdown: %d requests still waiting or in flight: %w", h.active.Load(), ctx.Err())
		}
	}
	h.Throttler.Close()
	return nil
}

// forwardedHeaders are removed from the outbound request by the Forwarder
// before Rewrite (as by ReverseProxy's Rewrite mode); the activator is one
// hop inside the platform, so it passes them on as they came.
var forwardedHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// proxiedValue is the ProxyHeader's value, shared by every outbound
// request's header (never written into).
var proxiedValue = []string{queue.ProxyHeaderValue}

// newProxy builds the reverse proxy of one replica. The request keeps its
// Host, path and query; the activator marks it as proxied, drops the
// revision header and appends the client to X-Forwarded-For.
func (h *Handler) newProxy(r *replica) *proxy.Forwarder {
	addr := r.addr
	var modify func(*http.Response) error
	if h.waitHeader != "" {
		modify = func(res *http.Response) error {
			delete(res.Header, h.waitHeader) // the activator's value is set; see forward.setWait
			return nil
		}
	}
	return &proxy.Forwarder{
		Rewrite: func(pr *httputil.ProxyRequest, _ any) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = addr
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			for _, k := range forwardedHeaders {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
			pr.Out.Header[queue.ProxyHeader] = proxiedValue
			delete(pr.Out.Header, RevisionHeader)
		},
		AppendForwardedFor: true,
		ModifyResponse:     modify,
		Client:             h.client,
		Transport:          h.transport,
		BufferPool:         h.bufPool,
		ErrorLog:           h.errLog,
		ErrorHandler:       func(w http.ResponseWriter, req *http.Request, err error, _ any) { h.proxyError(w, req, err, r) },
	}
}

// proxyError answers a request the replica did not answer.
func (h *Handler) proxyError(w http.ResponseWriter, req *http.Request, err error, r *replica) {
	switch req.Context().Err() {
	case context.DeadlineExceeded:
		within := "before the request's deadline"
		if d := r.rev.Load().set.Load().cfg.Timeout; d > 0 {
			within = fmt.Sprintf("within %v", d)
		} // else NoTimeout: the deadline was the caller's, not the revision's
		http.Error(w, fmt.Sprintf("activator request timeout: revision %q, replica %s: no response %s",
			r.rev.Load().name, r.addr, within), http.StatusGatewayTimeout)
	case context.Canceled:
		w.WriteHeader(StatusClientClosedRequest)
	default:
		if fw, ok := w.(*forward); ok && fw.retryable(req, err) {
			fw.unsent = &unsentError{addr: r.addr, err: err}
			return // ServeHTTP tries again
		}
		name := r.rev.Load().name
		h.log.Warn("activator: forwarding failed", "revision", name, "replica", r.addr, "error", err)
		http.Error(w, fmt.Sprintf("activator: revision %q, replica %s: %s", name, r.addr, failure(err)), http.StatusBadGateway)
	}
}
