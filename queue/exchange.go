package queue

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servingkit/servingkit/proxy"
)

// exchange is the response writer the application sees, and the state of
// one request. Each Handler pools its own: without timeouts a request
// allocates nothing, with them only its context and the request copy that
// carries it (an appRequest, from a slab).
//
// Untimed, every method passes straight through to the server's writer: the
// request runs on the server's goroutine and nothing else touches it. Timed,
// the application still runs on the ServeHTTP goroutine, but a timeout
// answers the client from the Handler's timer goroutine (see expire) while
// the application may be writing, so every method that reaches the server's
// writer takes mu, and the application writes headers into a private map (a
// timeout then writes its 504 to the server's map without racing the
// application's writes to its own).
//
// Lifetimes. live counts what keeps the request in flight — the application
// call, and a hijacked connection — and the accounting (slot release, stats
// out) runs when it reaches zero. refs counts who may still touch the
// exchange — the ServeHTTP call, a hijacked connection, and the timer
// goroutine while it looks at the request — and it goes back to the pool at
// zero.
type exchange struct {
	h     *Handler    // the pool's owner; fixed
	shard *timedShard // timed only: its deadlines and appRequests; fixed

	exchangeState
}

// exchangeState is the per-request part of an exchange, zeroed when the
// exchange goes back to the pool.
type exchangeState struct {
	w http.ResponseWriter

	proxied  bool // set before the application runs
	acquired bool // holds a breaker slot
	timed    bool
	start    time.Time // arrival
	// For Config.Observer. status is written under mu when timed, outcome
	// and answered before the application runs or, by a timeout, under mu.
	status   int       // the response's status once written; see noteStatus
	outcome  Outcome   // OutcomeServed unless the queue ended the request
	answered time.Time // when a timeout answered the client, if one did
	hijacked atomic.Bool
	live     atomic.Int32
	refs     atomic.Int32

	// Timed mode only, set before the application runs.
	req   *http.Request   // the application's request
	ctx   *requestContext // its context
	http1 bool            // the client speaks HTTP/1.x: a 504 closes the connection

	mu        sync.Mutex  // protects the fields below and every use of w
	header    http.Header // the application's headers
	committed bool        // the response has started: headers are in w
	timedOut  bool        // a timeout answered; writes fail
	returned  bool        // the application returned; no timeout applies
	lastWrite time.Time   // last write (or arrival), for IdleTimeout

	// The Handler's deadlines' own, under its mu.
	checkAt   time.Time // when to look at the request next
	heapIndex int       // its index in the heap plus one; 0: not in it
}

// copyBuffers serve ReadFrom when the server's writer cannot.
var copyBuffers proxy.BufferPool

// newExchange is the pool's New.
func (h *Handler) newExchange() any {
	ex := &exchange{h: h}
	if h.timed {
		ex.header = make(http.Header)
		ex.shard = &h.shards[int(h.nextShard.Add(1))%len(h.shards)]
	}
	return ex
}

func (h *Handler) getExchange(w http.ResponseWriter, timed bool) *exchange {
	ex := h.exchanges.Get().(*exchange)
	ex.w, ex.timed = w, timed
	return ex
}

// unref drops one reference, and pools the exchange when it was the last.
func (ex *exchange) unref() {
	if ex.refs.Add(-1) != 0 {
		return
	}
	hdr := ex.header
	if len(hdr) != 0 {
		clear(hdr)
	}
	ex.exchangeState = exchangeState{header: hdr}
	ex.h.exchanges.Put(ex)
}

// appDone runs when the application call returns (or the request was
// rejected before reaching it).
func (ex *exchange) appDone() {
	h := ex.h
	hijacked := ex.hijacked.Load()
	ex.unlive()
	if !hijacked {
		h.leave(&h.active)
	}
}

// unlive drops one reason to stay in flight; the last one ends the request:
// its slot goes back to the breaker and its departure to the recorder.
func (ex *exchange) unlive() {
	if ex.live.Add(-1) != 0 {
		return
	}
	h := ex.h
	if ex.acquired {
		h.breaker.Release()
	}
	now := h.now()
	h.rec.Out(now, ex.proxied)
	if h.observer != nil {
		ex.observe(now)
	}
	if ex.hijacked.Load() {
		h.leave(&h.hijacked)
	}
}

// Header returns the header map the application should write to. Timed, it
// is always the exchange's private map, even once the response has started
// (trailers): a timeout writes its 504's headers to the server's map from
// the timer goroutine while the application may still write to the map it
// holds. The map is copied into the server's when the response starts, and
// again (trailers) when the application returns in time.
func (ex *exchange) Header() http.Header {
	if !ex.timed {
		return ex.w.Header()
	}
	return ex.header
}

func (ex *exchange) Write(p []byte) (int, error) {
	if !ex.timed {
		ex.noteStatus(http.StatusOK)
		return ex.w.Write(p)
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.timedOut {
		return 0, http.ErrHandlerTimeout
	}
	ex.noteStatus(http.StatusOK)
	ex.commitLocked()
	ex.touchLocked()
	return ex.w.Write(p)
}

// WriteString keeps the server's allocation-free string path.
func (ex *exchange) WriteString(s string) (int, error) {
	if !ex.timed {
		ex.noteStatus(http.StatusOK)
		return io.WriteString(ex.w, s)
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.timedOut {
		return 0, http.ErrHandlerTimeout
	}
	ex.noteStatus(http.StatusOK)
	ex.commitLocked()
	ex.touchLocked()
	return io.WriteString(ex.w, s)
}

func (ex *exchange) WriteHeader(code int) {
	if !ex.timed {
		ex.noteStatus(code)
		ex.w.WriteHeader(code)
		return
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.timedOut {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Informational (103 Early Hints): sent with the current headers,
		// and the response has not started.
		copyHeader(ex.w.Header(), ex.header)
		ex.w.WriteHeader(code)
		return
	}
	ex.noteStatus(code)
	ex.commitLocked()
	ex.touchLocked()
	ex.w.WriteHeader(code)
}

// ReadFrom keeps the server's sendfile path when untimed; timed, the copy
// goes through Write so that each chunk counts for IdleTimeout.
func (ex *exchange) ReadFrom(src io.Reader) (int64, error) {
	if !ex.timed {
		if rf, ok := ex.w.(io.ReaderFrom); ok {
			ex.noteStatus(http.StatusOK)
			return rf.ReadFrom(src)
		}
	}
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	return io.CopyBuffer(writerOnly{ex}, src, buf)
}

// writerOnly hides ReadFrom so that io.CopyBuffer does not recurse.
type writerOnly struct{ io.Writer }

// Flush sends what was written so far to the client (server-sent events
// depend on it).
func (ex *exchange) Flush() { _ = ex.FlushError() }

// FlushError is Flush with the error, for http.ResponseController.
func (ex *exchange) FlushError() error {
	if !ex.timed {
		ex.noteStatus(http.StatusOK)
		return http.NewResponseController(ex.w).Flush()
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.timedOut {
		return http.ErrHandlerTimeout
	}
	ex.noteStatus(http.StatusOK)
	ex.commitLocked()
	return http.NewResponseController(ex.w).Flush()
}

// Hijack takes over the connection (websocket upgrades). The request keeps
// its slot and counts as in flight until the returned connection is closed;
// request timeouts no longer apply to it. After a timeout it fails with
// http.ErrHandlerTimeout; on HTTP/2 with an error wrapping
// http.ErrNotSupported.
func (ex *exchange) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if ex.timed {
		ex.mu.Lock()
		defer ex.mu.Unlock()
		if ex.timedOut {
			return nil, nil, http.ErrHandlerTimeout
		}
	}
	conn, brw, err := http.NewResponseController(ex.w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h := ex.h
	hc := &hijackedConn{Conn: conn, ex: ex}
	ex.live.Add(1)
	ex.refs.Add(1)
	ex.hijacked.Store(true)
	// Count it as hijacked before it stops counting as active, so a drain
	// never sees both at zero in between.
	h.hijacked.Add(1)
	h.track(hc)
	h.leave(&h.active)
	return hc, brw, nil
}

// Push forwards an HTTP/2 server push if the server supports it, looking
// through the Unwrap chain of middleware's writers for a Pusher, as
// http.ResponseController does for its methods.
func (ex *exchange) Push(target string, opts *http.PushOptions) error {
	if ex.timed {
		ex.mu.Lock()
		defer ex.mu.Unlock()
		if ex.timedOut {
			return http.ErrHandlerTimeout
		}
	}
	w := ex.w
	for {
		switch t := w.(type) {
		case http.Pusher:
			return t.Push(target, opts)
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return http.ErrNotSupported
		}
	}
}

// SetReadDeadline, SetWriteDeadline and EnableFullDuplex serve
// http.ResponseController, which finds them here rather than through Unwrap:
// timed, they must reach the server's writer under mu, since a timeout may
// be writing to it from the timer goroutine, and they fail once a timeout
// has answered: the connection then belongs to the 504.
func (ex *exchange) SetReadDeadline(d time.Time) error {
	return ex.control(func(w http.ResponseWriter) error { return http.NewResponseController(w).SetReadDeadline(d) })
}

func (ex *exchange) SetWriteDeadline(d time.Time) error {
	return ex.control(func(w http.ResponseWriter) error { return http.NewResponseController(w).SetWriteDeadline(d) })
}

func (ex *exchange) EnableFullDuplex() error {
	return ex.control(func(w http.ResponseWriter) error { return http.NewResponseController(w).EnableFullDuplex() })
}

// control calls f with the server's writer, under mu when timed, and fails
// with http.ErrHandlerTimeout once a timeout has ended the exchange.
func (ex *exchange) control(f func(http.ResponseWriter) error) error {
	if ex.timed {
		ex.mu.Lock()
		defer ex.mu.Unlock()
		if ex.timedOut {
			return http.ErrHandlerTimeout
		}
	}
	return f(ex.w)
}

// Unwrap gives the server's writer to code that looks for its methods;
// http.ResponseController needs none, the exchange has them all. Timed, a
// caller of the server's writer bypasses mu, and so may race a timeout
// (code that wants the server's writer takes that on); after a timeout the
// response is the 504's, so Unwrap gives a writer on which everything fails
// instead.
func (ex *exchange) Unwrap() http.ResponseWriter {
	if !ex.timed {
		return ex.w
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.timedOut {
		return timedOutWriter{}
	}
	return ex.w
}

// timedOutWriter stands for the server's writer after a timeout.
type timedOutWriter struct{}

func (timedOutWriter) Header() http.Header              { return http.Header{} }
func (timedOutWriter) Write([]byte) (int, error)        { return 0, http.ErrHandlerTimeout }
func (timedOutWriter) WriteHeader(int)                  {}
func (timedOutWriter) SetReadDeadline(time.Time) error  { return http.ErrHandlerTimeout }
func (timedOutWriter) SetWriteDeadline(time.Time) error { return http.ErrHandlerTimeout }
func (timedOutWriter) EnableFullDuplex() error          { return http.ErrHandlerTimeout }
func (timedOutWriter) FlushError() error                { return http.ErrHandlerTimeout }
func (timedOutWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrHandlerTimeout
}

// commitLocked starts the response: the application's headers are copied to
// the server's map. The application keeps its map, and reads back what it
// set, as with net/http. ex.mu must be held.
func (ex *exchange) commitLocked() {
	if ex.committed {
		return
	}
	ex.committed = true
	dst := ex.w.Header()
	if len(dst) != 0 {
		clear(dst)
	}
	copyHeader(dst, ex.header)
}

// touchLocked records a write for IdleTimeout. ex.mu must be held.
func (ex *exchange) touchLocked() {
	if ex.h.idle > 0 {
		ex.lastWrite = ex.h.now()
	}
}

// copyHeader copies src's fields into dst. (An empty src, the common case,
// costs no iteration.)
func copyHeader(dst, src http.Header) {
	if len(src) == 0 {
		return
	}
	for k, v := range src {
		dst[k] = v
	}
}
