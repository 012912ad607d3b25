package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/stats"
)

// ErrDraining is returned by Handler.CheckReady once Drain has been called:
// the replica reports not-ready so that no new traffic is sent to it.
var ErrDraining = errors.New("queue: draining")

// StatusClientClosedRequest is the status recorded for a request whose client
// went away while it waited for a slot (nginx's 499). The client never sees
// it; it is there for access logs and metrics.
const StatusClientClosedRequest = 499

// Handler keeps one replica within its concurrency limit and reports its
// load. In front of an application (New: its own http.Handler, in process;
// NewSidecar: a reverse proxy to another port) it
//
//   - answers readiness probes (ProbeHeader: ProbeHeaderValue) itself;
//   - records every other request's arrival and departure in a
//     stats.Recorder, as proxied when ProxyHeader is ProxyHeaderValue;
//   - lets at most ContainerConcurrency requests reach the application,
//     queueing up to QueueDepth more (503 beyond that, or after MaxWait);
//   - enforces the total, response-start and idle timeouts (504);
//   - drains: see Drain.
//
// A hijacked connection (a websocket) and a streaming response hold their
// slot and count as in flight until they end.
//
// As net/http requires, the application must not use its ResponseWriter, or
// a header map it got from it, once its ServeHTTP has returned: the Handler
// reuses them for later requests. A hijacked connection is the
// application's until it closes it.
//
// With no timeout configured a request costs no goroutine, context or
// closure: the per-request state lives in a pooled response writer. With
// timeouts it costs no goroutine either: the application runs on the
// ServeHTTP goroutine, and the Handler's one deadline heap and timer watch
// every request in flight. When a timeout passes, the timer's goroutine
// answers the client itself — a complete 504, flushed, or the message
// appended to a response already started — and cancels the application's
// context; ServeHTTP returns when the application does. The application's
// request copy and its cancellable context, together 384 B, are all a
// timed request allocates, and they come from slabs of 16 (one allocation
// per 16 requests; see appSlab); an application that waits on its context adds
// the context package's cancelable context under the request's (three
// allocations, and its parent's map of children).
//
// An application that ignores its context keeps running after its
// timeout, and keeps its slot, its connection and its ServeHTTP call until
// it returns: its client has the whole 504 at the deadline (over HTTP/1
// with Connection: close; an HTTP/2 stream ends when ServeHTTP returns), and
// its writes fail with http.ErrHandlerTimeout. A writer that cannot flush
// (middleware's, without Flush or Unwrap) delivers the 504 only then.
//
// The Handler's timer belongs to the testing/synctest bubble it was made
// in: a test that uses a Handler with timeouts inside a bubble must build
// it inside that bubble.
//
// A Handler is safe for simultaneous use.
type Handler struct {
	app     http.Handler
	breaker *Breaker // nil without a concurrency limit
	rec     *stats.Recorder
	ready   Checker
	clock   clock.Clock
	real    bool // clock is the real one: use package time directly
	logger  *slog.Logger
	epoch   time.Time // origin of lastRequest

	observer func(Observation) // nil: no observation is made

	timed                              bool
	total, responseStart, idle         time.Duration
	firstWait                          time.Duration // the shortest timeout on
	exchanges                          sync.Pool     // of *exchange, for this Handler only
	shards                             []timedShard  // timed only; see timedShard
	nextShard                          atomic.Uint32 // the shard of the next new exchange
	quiet, maxQuiet, hijackedDrainTime time.Duration

	// active counts accepted requests whose application call has not
	// returned (waiting in the queue included); hijacked counts requests
	// whose connection was hijacked and is not yet done. A request moves
	// from active to hijacked when it hijacks.
	active   atomic.Int64
	hijacked atomic.Int64

	draining    atomic.Bool
	lastRequest atomic.Int64  // time since epoch of the latest request seen while draining
	drainWake   chan struct{} // written before draining is set; signalled when a counter reaches 0
	drainOnce   sync.Once
	drained     chan struct{} // closed when the drain has finished
	drainErr    error         // set before drained is closed

	connMu sync.Mutex // protects conns
	conns  map[*hijackedConn]struct{}
}

// New returns a Handler that runs app in process, or an error naming each
// invalid Config field.
func New(app http.Handler, c Config) (*Handler, error) {
	if app == nil {
		return nil, errors.New("queue: New: app handler is nil")
	}
	return newHandler(app, c)
}

func newHandler(app http.Handler, c Config) (*Handler, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	h := &Handler{
		app:               app,
		ready:             c.Readiness,
		clock:             c.Clock,
		logger:            c.Logger,
		observer:          c.Observer,
		timed:             c.timed(),
		total:             c.TotalTimeout,
		responseStart:     c.ResponseStartTimeout,
		idle:              c.IdleTimeout,
		quiet:             c.quietPeriod(),
		maxQuiet:          c.maxQuietPeriod(),
		hijackedDrainTime: c.hijackedDrainTimeout(),
		conns:             make(map[*hijackedConn]struct{}),
	}
	h.exchanges.New = h.newExchange
	for _, d := range []time.Duration{c.TotalTimeout, c.ResponseStartTimeout, c.IdleTimeout} {
		if d > 0 && (h.firstWait == 0 || d < h.firstWait) {
			h.firstWait = d
		}
	}
	if h.clock == nil {
		h.clock, h.real = clock.New(), true
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	h.epoch = h.clock.Now()
	if h.timed {
		h.shards = make([]timedShard, min(max(runtime.GOMAXPROCS(0), 1), maxTimedShards))
		for i := range h.shards {
			h.shards[i].deadlines.init(h)
		}
	}
	h.rec = stats.NewRecorder(h.epoch)
	if c.ContainerConcurrency > 0 {
		b, err := NewBreaker(BreakerParams{
			QueueDepth:      c.queueDepth(),
			MaxConcurrency:  c.ContainerConcurrency,
			InitialCapacity: c.ContainerConcurrency,
			MaxWait:         c.MaxWait,
			Clock:           h.clock,
		})
		if err != nil {
			return nil, err
		}
		h.breaker = b
	}
	return h, nil
}

// ServeHTTP answers a readiness probe itself and sends every other request
// through the breaker to the application.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Direct map reads: the header names are canonical, and Header.Get
	// would canonicalize them again on every request.
	if v := r.Header[ProbeHeader]; len(v) != 0 && v[0] == ProbeHeaderValue {
		h.serveProbe(w, r)
		return
	}
	if h.timed {
		h.serveTimed(w, r)
		return
	}
	ex := h.getExchange(w, false)
	ex.live.Store(1)
	ex.refs.Store(1)
	ex.start = h.now()
	h.serve(ex, r, ex.start)
	ex.unref()
}

// serve accounts for one request, arrived at now, and runs it through the
// breaker and the application, writing to ex. The accounting ends when the
// application has returned and, if it hijacked the connection, the
// connection is closed.
func (h *Handler) serve(ex *exchange, r *http.Request, now time.Time) {
	h.active.Add(1)
	if h.draining.Load() {
		h.noteRequest(now)
	}
	v := r.Header[ProxyHeader]
	ex.proxied = len(v) != 0 && v[0] == ProxyHeaderValue
	h.rec.In(now, ex.proxied)
	defer ex.appDone()
	if h.breaker != nil {
		if err := h.breaker.Acquire(r.Context()); err != nil {
			h.reject(ex, r, err)
			return
		}
		ex.acquired = true
	}
	h.app.ServeHTTP(ex, r)
}

// reject answers a request that did not get a slot.
func (h *Handler) reject(ex *exchange, r *http.Request, err error) {
	var status int
	var outcome Outcome
	var msg string
	var waited time.Duration
	if we := (*WaitError)(nil); errors.As(err, &we) {
		waited = we.Waited.Round(time.Millisecond)
	}
	switch {
	case errors.Is(err, ErrQueueFull):
		status, outcome = http.StatusServiceUnavailable, OutcomeQueueFull
		msg = fmt.Sprintf("queue: pending request queue full: %d requests in flight and %d waiting", h.breaker.InFlight(), h.breaker.Waiting())
	case errors.Is(err, ErrQueueTimeout):
		status, outcome = http.StatusServiceUnavailable, OutcomeMaxWait
		msg = fmt.Sprintf("queue: request waited %v in the queue without getting a slot (MaxWait)", waited)
	case errors.Is(err, context.DeadlineExceeded):
		status, outcome = http.StatusServiceUnavailable, OutcomeDeadline
		msg = fmt.Sprintf("queue: request deadline passed after waiting %v in the queue", waited)
	case errors.Is(err, context.Canceled):
		// The client is gone (or a timeout already answered it): nobody
		// reads a body.
		status, outcome = StatusClientClosedRequest, OutcomeCanceled
	default:
		status, outcome = http.StatusInternalServerError, OutcomeError
		msg = "queue: " + err.Error()
	}
	if h.logger.Enabled(r.Context(), slog.LevelDebug) {
		h.logger.Debug("queue: request rejected", "status", status, "error", err, "method", r.Method, "path", r.URL.Path)
	}
	ex.setOutcome(outcome)
	if msg == "" {
		ex.WriteHeader(status)
		return
	}
	http.Error(ex, msg, status)
}

// serveProbe answers a K-Network-Probe: queue request: 200 "queue" when
// ready, 503 with the reason otherwise.
func (h *Handler) serveProbe(w http.ResponseWriter, r *http.Request) {
	if err := h.CheckReady(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, ProbeHeaderValue)
}

// CheckReady returns nil if the replica should get traffic: it is not
// draining and the Readiness check (if any) passes. A sidecar's check polls
// the application until it answers (see AppProbe).
func (h *Handler) CheckReady(ctx context.Context) error {
	if h.draining.Load() {
		return ErrDraining
	}
	if h.ready != nil {
		if err := h.ready.Check(ctx); err != nil {
			return fmt.Errorf("queue: not ready: %w", err)
		}
	}
	return nil
}

// Breaker returns the handler's breaker, or nil when ContainerConcurrency
// is 0. Its capacity may be changed with UpdateConcurrency while serving.
func (h *Handler) Breaker() *Breaker { return h.breaker }

// Recorder returns the recorder of the handler's requests, for a Reporter.
func (h *Handler) Recorder() *stats.Recorder { return h.rec }

// InFlight returns the number of accepted requests not yet finished: those
// waiting for a slot, those the application is handling, and hijacked
// connections still open.
func (h *Handler) InFlight() int { return int(h.active.Load() + h.hijacked.Load()) }

// Hijacked returns the number of hijacked connections still open.
func (h *Handler) Hijacked() int { return int(h.hijacked.Load()) }

// now reads the handler's clock; the real one without an interface call.
func (h *Handler) now() time.Time {
	if h.real {
		return time.Now()
	}
	return h.clock.Now()
}

// leave decrements counter (active or hijacked) and wakes a drain waiting
// for it to reach zero.
func (h *Handler) leave(counter *atomic.Int64) {
	// The drain sets draining before it reads the counters, and we read
	// draining after the decrement, so one of us sees the other: either
	// the drain sees zero, or we see draining and wake it.
	if counter.Add(-1) == 0 && h.draining.Load() {
		select {
		case h.drainWake <- struct{}{}:
		default:
		}
	}
}
