package gateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/proxy"
	"github.com/servingkit/servingkit/revision"
)

// DefaultDeadTime is ActivatorsConfig.DeadTime's zero value.
const DefaultDeadTime = 2 * time.Second

// ErrNoActivator is in the body of a 503 a RevisionActivators answers when
// none of the revision's activators could be reached.
var ErrNoActivator = errors.New("gateway: no activator of this revision reachable")

// ActivatorsConfig configures Activators. The zero value is a working
// default.
type ActivatorsConfig struct {
	// Transport forwards requests to activators. Nil means servingkit's
	// default: a proxy.Client for HTTP/1 requests (on the handler's
	// goroutine), and proxy.NewTransport's defaults for upgrades and
	// HTTP/2 (h2c). A non-nil Transport forwards every request.
	Transport http.RoundTripper
	// DeadTime is how long an activator that refused a connection is left
	// out before a request tries it again. Zero means DefaultDeadTime;
	// must not be negative.
	DeadTime time.Duration
	// Clock times DeadTime. Nil means the real clock.
	Clock clock.Clock
	// Logger receives activators marked dead, at warn level. Nil means
	// silent.
	Logger *slog.Logger
}

// Validate reports a negative DeadTime.
func (c ActivatorsConfig) Validate() error {
	if c.DeadTime < 0 {
		return fmt.Errorf("gateway: ActivatorsConfig.DeadTime = %v, must be >= 0 (0 means %v)", c.DeadTime, DefaultDeadTime)
	}
	return nil
}

// Activators forwards the Proxy path of revisions to activators over HTTP,
// so that activators can run in other processes and on other machines.
// One Activators serves every revision of a gateway and keeps, per
// activator address, whether it is alive; For returns a revision's
// handler, which forwards to that revision's activator subset.
//
// Each forwarded request carries the revision's key in
// revision.RevisionHeader, which the activator's default resolver reads.
// The activators' port must be reachable by gateways only: the header is
// trusted.
//
// An activator that refuses a connection (dial error: nothing of the
// request was sent) is left out at once, for every revision, for DeadTime,
// and the request is sent to another activator of the revision; a request
// whose forwarding failed after it was sent is answered 502, as it may
// have had effects. Safe for simultaneous use.
type Activators struct {
	clock    clock.Clock
	log      *slog.Logger
	deadTime time.Duration
	rp       *proxy.Forwarder

	mu    sync.Mutex // protects state
	state map[string]*activatorState
}

// activatorState is one activator address, shared by every revision.
type activatorState struct {
	addr      string
	deadUntil atomic.Int64 // unix nanoseconds; 0 means alive
}

// attempt is one forwarding try, passed to the Forwarder as its arg.
type attempt struct {
	key    string // the revision's
	addr   string
	body   *countingBody
	refuse bool // the connection was refused: retry elsewhere
	last   bool // no retry left: answer the error
}

// NewActivators returns an Activators, or an error for an invalid cfg.
func NewActivators(cfg ActivatorsConfig) (*Activators, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var client *proxy.Client
	if cfg.Transport == nil {
		client = new(proxy.Client)
		cfg.Transport = proxy.NewTransport(proxy.TransportConfig{})
	}
	if cfg.DeadTime == 0 {
		cfg.DeadTime = DefaultDeadTime
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Activators{clock: cfg.Clock, log: cfg.Logger, deadTime: cfg.DeadTime, state: map[string]*activatorState{}}
	a.rp = &proxy.Forwarder{
		Rewrite: func(pr *httputil.ProxyRequest, arg any) {
			at := arg.(*attempt)
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", at.addr
			pr.Out.Host = pr.In.Host
			// The activator's default resolver reads the revision from
			// this header; set here, so any front door will do.
			pr.Out.Header.Set(revision.RevisionHeader, at.key)
			for _, k := range forwardedHeaders {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
		},
		Client:     client,
		Transport:  cfg.Transport,
		BufferPool: new(proxy.BufferPool),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error, arg any) {
			at := arg.(*attempt)
			if refused(err) && !at.body.read.Load() {
				at.refuse = true
				return
			}
			if r.Context().Err() != nil {
				return // the client went away
			}
			http.Error(w, "gateway: activator "+at.addr+" failed: "+err.Error(), http.StatusBadGateway)
		},
	}
	return a, nil
}

// refused reports whether err means the request never reached the
// activator: the connection could not be made.
func refused(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

func (a *Activators) stateOf(addr string) *activatorState {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.state[addr]
	if !ok {
		s = &activatorState{addr: addr}
		a.state[addr] = s
	}
	return s
}

// Alive reports whether addr is not left out as dead now.
func (a *Activators) Alive(addr string) bool { return a.stateOf(addr).alive(a.clock.Now()) }

func (s *activatorState) alive(now time.Time) bool {
	d := s.deadUntil.Load()
	return d == 0 || now.UnixNano() >= d
}

func (a *Activators) markDead(s *activatorState, err error) {
	s.deadUntil.Store(a.clock.Now().Add(a.deadTime).UnixNano())
	a.log.Warn("gateway: activator left out", "activator", s.addr, "for", a.deadTime, "error", err)
}

// For returns a handler for the revision named key, with no activator
// address yet (see RevisionActivators.SetAddresses).
func (a *Activators) For(key string) *RevisionActivators {
	ra := &RevisionActivators{a: a, key: key}
	ra.set.Store(&activatorSet{})
	return ra
}

// RevisionActivators is the Proxy path of one revision to its activators:
// give it to revision.ReconcilerOptions.Activator, and to
// EndpointsConfig.Remote, which keeps its addresses in line with the
// revision's activator subset. It balances requests over the live
// activators by power of two choices on its requests in flight to each.
type RevisionActivators struct {
	a      *Activators
	key    string
	set    atomic.Pointer[activatorSet]
	cursor atomic.Uint64
}

type activatorSet struct {
	addrs  []string
	states []*activatorState
	slots  []*balancer.Slot
}

// SetAddresses makes addrs ("host:port" each) the revision's activators.
func (ra *RevisionActivators) SetAddresses(addrs []string) {
	addrs = slices.Clone(addrs)
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	old := ra.set.Load()
	next := &activatorSet{addrs: addrs, states: make([]*activatorState, len(addrs)), slots: make([]*balancer.Slot, len(addrs))}
	for i, addr := range addrs {
		next.states[i] = ra.a.stateOf(addr)
		if j, ok := slices.BinarySearch(old.addrs, addr); ok {
			next.slots[i] = old.slots[j]
		} else {
			next.slots[i] = new(balancer.Slot)
		}
	}
	ra.set.Store(next)
}

// Addresses returns the revision's activators, sorted.
func (ra *RevisionActivators) Addresses() []string { return slices.Clone(ra.set.Load().addrs) }

// ServeHTTP forwards r to a live activator of the revision, and to another
// if that one refuses the connection. With no activator, or none
// reachable, it answers 503 with Retry-After.
func (ra *RevisionActivators) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	set := ra.set.Load()
	r, body := withCountingBody(r)
	tried := make([]bool, len(set.addrs))
	for range set.addrs {
		i := ra.pick(set, tried, true)
		if i < 0 {
			// Every untried activator is left out as dead: try them
			// anyway rather than fail the request.
			i = ra.pick(set, tried, false)
		}
		if i < 0 {
			break
		}
		tried[i] = true
		at := &attempt{key: ra.key, addr: set.addrs[i], body: body}
		ra.a.rp.Forward(w, r, r.Context(), at)
		set.slots[i].Release()
		if !at.refuse {
			return
		}
		ra.a.markDead(set.states[i], errors.New("connection refused"))
	}
	w.Header().Set("Retry-After", "1")
	http.Error(w, ErrNoActivator.Error(), http.StatusServiceUnavailable)
}

// pick reserves the less loaded of two untried activators, live ones only
// if live, or returns -1 if none is left.
func (ra *RevisionActivators) pick(set *activatorSet, tried []bool, live bool) int {
	now := ra.a.clock.Now()
	// Few activators per revision (Knative: 2 and up); filter into a
	// small stack array, falling back to the heap past it.
	var buf [16]*balancer.Slot
	var idx [16]int
	slots, index := buf[:0], idx[:0]
	for i, s := range set.states {
		if !tried[i] && (!live || s.alive(now)) {
			slots = append(slots, set.slots[i])
			index = append(index, i)
		}
	}
	if len(slots) == 0 {
		return -1
	}
	j := balancer.Pick(balancer.PolicyPowerOfTwo, slots, balancer.Unlimited, &ra.cursor, nil)
	if j < 0 {
		return -1
	}
	return index[j]
}

// withCountingBody returns r with its body, if any, wrapped in a
// countingBody (on a shallow copy: the caller's request is not modified).
func withCountingBody(r *http.Request) (*http.Request, *countingBody) {
	body := &countingBody{rc: http.NoBody}
	if r.Body != nil && r.Body != http.NoBody {
		body.rc = r.Body
		r = r.WithContext(r.Context())
		r.Body = body
	}
	return r, body
}

// countingBody passes a request body through, ignoring Close from the
// transport (the server closes it) and noting whether any of it was read,
// so a request whose body was not touched can be sent again.
type countingBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.read.Store(true)
	}
	return n, err
}

func (b *countingBody) Close() error { return nil }
