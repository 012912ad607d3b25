package activator

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/benbjohnson/clock"
)

// ConnectTries is how many replicas one request is sent to, at most, when
// the connections to them fail before anything was written (see Handler).
const ConnectTries = 5

// forward is one request's trip through a replica's reverse proxy: the
// ResponseWriter the proxy writes to. It puts the activator's wait header
// on the final response, and the proxy's error handler hands a failed
// connection back through it (unsent) instead of answering, so that the
// request can be tried again. Handlers take one from forwardPool; the
// proxy uses it only while its ServeHTTP runs.
type forward struct {
	http.ResponseWriter
	waitKey   string   // the wait header, "" for none
	waitValue []string // its value
	final     bool     // a final (non-1xx) status was written
	body      *sentBody
	unsent    error // the last try could not connect; nothing was written either way

	// For Options.ServerTiming; timing is nil when the request gets none.
	timing func(Timing) string
	clk    clock.Clock
	t      Timing
	leased time.Time // when the current try got its replica
}

var forwardPool = sync.Pool{New: func() any { return new(forward) }}

func newForward(w http.ResponseWriter) *forward {
	fw := forwardPool.Get().(*forward)
	fw.ResponseWriter = w
	return fw
}

func (fw *forward) free() {
	*fw = forward{}
	forwardPool.Put(fw)
}

// setWait sets the wait header for a proxied response, so that the
// activator's value is its only one, whatever path the reverse proxy takes:
//   - it is set now, for the proxy's error answers and for a 101, which
//     the proxy writes itself on the hijacked connection;
//   - the proxy's ModifyResponse drops the replica's values of the header
//     (the proxy adds the replica's headers to those already set);
//   - WriteHeader sets it again when the final status is written, because
//     the proxy clears the header map after passing on a 1xx response such
//     as 103 Early Hints.
func (fw *forward) setWait(key string, waited time.Duration) {
	fw.waitKey, fw.waitValue = key, []string{waitValue(waited)}
	fw.Header()[key] = fw.waitValue
}

func (fw *forward) WriteHeader(code int) {
	if !fw.final && code >= 200 {
		fw.final = true
		if fw.waitKey != "" {
			fw.Header()[fw.waitKey] = fw.waitValue
		}
		if fw.timing != nil {
			fw.t.Forwarded = fw.clk.Now().Sub(fw.leased)
			if v := fw.timing(fw.t); v != "" {
				fw.Header().Add("Server-Timing", v)
			}
		}
	}
	fw.ResponseWriter.WriteHeader(code)
}

func (fw *forward) Write(b []byte) (int, error) {
	if !fw.final {
		fw.WriteHeader(http.StatusOK)
	}
	return fw.ResponseWriter.Write(b)
}

// Unwrap keeps the proxy's flushing and hijacking working through fw.
func (fw *forward) Unwrap() http.ResponseWriter { return fw.ResponseWriter }

// retryable reports whether the request, whose try failed with err, may be
// sent again: its connection to the replica failed (the dial was refused,
// reset or timed out), so the replica got no byte of it; nothing of its
// body was read; nothing was written to the client; and it is still
// wanted.
func (fw *forward) retryable(req *http.Request, err error) bool {
	if fw.final || req.Context().Err() != nil || (fw.body != nil && fw.body.read.Load()) {
		return false
	}
	return notConnected(err)
}

// notConnected reports whether err is a failure to connect: nothing was
// sent.
func notConnected(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// sentBody is a request's body, shared by its tries, that records whether
// anything read it, so that a request is retried only if no byte of it can
// have left. It carries the copy of the request that the tries are sent
// with, each with its own view of the body, so that the caller's request
// is not modified.
type sentBody struct {
	req   http.Request // a shallow copy of the caller's
	rc    io.ReadCloser
	read  atomic.Bool
	first tryBody // the first try's view, in the same allocation
}

func newSentBody(r *http.Request) *sentBody {
	b := &sentBody{req: *r, rc: r.Body}
	b.first.b = b
	return b
}

// try returns the body to send on try n (1 for the first).
func (b *sentBody) try(n int) io.ReadCloser {
	if n == 1 {
		return &b.first
	}
	return &tryBody{b: b} // a retry: rare, and after a failed dial
}

// tryBody is one try's view of a sentBody. A transport closes the body of
// a request it could not send (RoundTrip's contract), and so does the
// Forwarder; closing the request's own body then would leave the next try
// nothing to send, since a server's request body cannot be read once
// closed. So a try's Close closes the request's body only once something
// has read it (no try can follow); before that it ends only this try, whose
// reads fail from then on, and the server closes the request's body when
// the handler returns. Read marks the body read before it checks for
// Close, and Close marks the try closed before it checks for a read (both
// sequentially consistent atomics), so a Read that races a Close either
// fails at once or has its underlying read ended by that Close.
type tryBody struct {
	b      *sentBody
	closed atomic.Bool
}

var errTryClosed = errors.New("activator: request body read after its try was closed")

func (t *tryBody) Read(p []byte) (int, error) {
	t.b.read.Store(true)
	if t.closed.Load() {
		return 0, errTryClosed
	}
	return t.b.rc.Read(p)
}

func (t *tryBody) Close() error {
	t.closed.Store(true)
	if t.b.read.Load() {
		return t.b.rc.Close()
	}
	return nil
}

// unsentError is a try that could not connect to a replica.
type unsentError struct {
	addr string
	err  error
}

func (e *unsentError) Error() string {
	return fmt.Sprintf("could not connect to replica %s: %v", e.addr, e.err)
}

func (e *unsentError) Unwrap() error { return e.err }

// failure says, for a 502's body, why a replica did not answer a request
// it was sent.
func failure(err error) string {
	switch {
	case notConnected(err):
		return fmt.Sprintf("could not connect: %v", err)
	case connectionLost(err):
		return fmt.Sprintf("the connection closed before the replica answered (did the replica stop?); "+
			"not retried, since the replica may have received the request: %v", err)
	}
	return err.Error()
}

// connectionLost reports whether err says the connection to the replica
// closed or broke after it was made.
func connectionLost(err error) bool {
	for _, target := range []error{io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNABORTED} {
		if errors.Is(err, target) {
			return true
		}
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op != "dial"
}
