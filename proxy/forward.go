package proxy

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Forwarder is a reverse proxy for HTTP/1 requests that allocates little:
// what httputil.ReverseProxy does in Rewrite mode. With a Client, HTTP/1
// requests to "http" URLs that are not upgrades go through it: the request
// written and the response read on the handler's goroutine, the outbound
// request and its header map taken from a pool, the response's fields
// parsed straight into the ResponseWriter's header (no http.Response
// unless ModifyResponse is set). Without one, they go through Transport,
// on one allocation for the outbound request (the copy, its URL and the
// ProxyRequest together) and one for its header map, whose value slices
// are shared with the inbound request's. Upgrades (websockets) and
// HTTP/2 requests (h2c gRPC among them) go through an
// httputil.ReverseProxy built from the same fields, over Transport.
//
// What it keeps from ReverseProxy: hop-by-hop headers (Connection and the
// headers it names, Keep-Alive, Proxy-*, TE except "trailers", Trailer,
// Transfer-Encoding, Upgrade) are removed both ways; Forwarded and
// X-Forwarded-* are removed before Rewrite; an absent User-Agent stays
// absent; 1xx responses (103 Early Hints) are passed on; trailers are
// announced and copied; event streams and responses of unknown length are
// flushed as they come; a response cut off by the backend aborts the
// client's (http.ErrAbortHandler). Request framing (Content-Length against
// Transfer-Encoding, obs-fold, header sizes) is the server's: net/http
// refuses what is ambiguous before a handler runs, and the Client or the
// transport frames the outbound request from its own fields, never from
// copied headers.
//
// The fields must not change once it serves. Rewrite must not write into
// the header value slices of pr.Out (they are pr.In's): set new slices.
// On the Client's path the outbound request is reused once Forward
// returns: ErrorHandler and ModifyResponse must not keep it.
type Forwarder struct {
	// Rewrite shapes the outbound request, with arg as Forward was given.
	Rewrite func(pr *httputil.ProxyRequest, arg any)
	// ModifyResponse, if set, may change the response or fail it.
	ModifyResponse func(*http.Response) error
	// ErrorHandler answers a request the backend did not answer; nil: 502.
	// out is the outbound request (its context is the request's).
	ErrorHandler func(w http.ResponseWriter, out *http.Request, err error, arg any)
	// AppendForwardedFor appends the client's IP (from the inbound
	// RemoteAddr) to the X-Forwarded-For that Rewrite left, without an
	// allocation of its own when there was none before.
	AppendForwardedFor bool
	// Client, if set, forwards HTTP/1 requests to "http" URLs that are
	// not upgrades, on the handler's goroutine (see Client).
	Client *Client
	// Transport forwards the rest: every request when Client is nil;
	// upgrades, HTTP/2 requests (h2c) and other schemes when it is set.
	// Nil means http.DefaultTransport.
	Transport  http.RoundTripper
	BufferPool httputil.BufferPool
	ErrorLog   *log.Logger

	generalOnce sync.Once
	general     *httputil.ReverseProxy
}

// outbound is a request's one allocation on the Transport path; on the
// Client's path it is pooled, header map included.
type outbound struct {
	req   http.Request
	url   url.URL
	pr    httputil.ProxyRequest
	trace httptrace.ClientTrace
	w     http.ResponseWriter
	xff   [1]string
	hdr   http.Header
	n1xx  int // informational responses passed on (Transport's path)

	// got1xx runs on the transport's read goroutine, and may still run
	// when RoundTrip has returned (the request's context ended): mu makes
	// it and the handler's writes take turns, and ended stops it.
	mu    sync.Mutex
	ended bool // guarded by mu
}

var outboundPool = sync.Pool{New: func() any { return new(outbound) }}

// argKey carries Forward's arg to the general path.
type argKey struct{}

// ServeHTTP forwards r with a nil arg.
func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.Forward(w, r, r.Context(), nil)
}

// Forward forwards r, under ctx rather than r's context, passing arg to
// Rewrite and ErrorHandler.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, ctx context.Context, arg any) {
	if r.ProtoMajor != 1 || isUpgrade(r.Header) {
		f.generalPath().ServeHTTP(w, r.WithContext(context.WithValue(ctx, argKey{}, arg)))
		return
	}
	var o *outbound
	if f.Client != nil {
		o = outboundPool.Get().(*outbound)
		o.req = *r.WithContext(ctx)
	} else {
		o = &outbound{}
		o.trace.Got1xxResponse = o.got1xx
		// WithContext is inlined, and the copy it makes does not escape.
		o.req = *r.WithContext(httptrace.WithClientTrace(ctx, &o.trace))
	}
	o.w = w
	out := &o.req
	if r.URL != nil {
		o.url = *r.URL
		out.URL = &o.url
	}
	if r.ContentLength == 0 {
		out.Body = nil // lets the transport retry on a reused connection
	}
	body := out.Body
	out.Close = false
	if o.hdr == nil {
		o.hdr = make(http.Header, len(r.Header))
	}
	out.Header = outboundHeader(o.hdr, r.Header)
	o.pr = httputil.ProxyRequest{In: r, Out: out}
	if f.Rewrite != nil {
		f.Rewrite(&o.pr, arg)
	}
	out = o.pr.Out
	if f.AppendForwardedFor {
		if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			if prior := out.Header["X-Forwarded-For"]; len(prior) > 0 {
				ip = strings.Join(prior, ", ") + ", " + ip
			}
			o.xff[0] = ip
			out.Header["X-Forwarded-For"] = o.xff[:]
		}
	}
	if f.Client != nil {
		if out.URL.Scheme == "http" {
			f.viaClient(w, out, ctx, arg)
			o.release()
			return
		}
		// Not the Client's: the Transport's path, with the trace.
		o.trace.Got1xxResponse = o.got1xx
		out = out.WithContext(httptrace.WithClientTrace(ctx, &o.trace))
	}
	if body != nil {
		// The transport closes it, as RoundTrip's contract says; the
		// Client leaves it to the server, which does not wait for a body
		// an Expect: 100-continue request never sent.
		defer body.Close()
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = emptyValue
	}

	rt := f.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	res, err := rt.RoundTrip(out)
	o.mu.Lock()
	o.ended = true // no 1xx from here on: w is the handler's alone
	o.mu.Unlock()
	if err != nil {
		f.fail(w, out, err, arg)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		res.Body.Close()
		f.fail(w, out, errSwitched, arg)
		return
	}
	removeHopByHop(res.Header)
	if f.ModifyResponse != nil {
		if err := f.ModifyResponse(res); err != nil {
			res.Body.Close()
			f.fail(w, out, err, arg)
			return
		}
	}
	dst := w.Header()
	for k, vv := range res.Header {
		if cur, ok := dst[k]; ok {
			dst[k] = append(cur, vv...)
		} else {
			dst[k] = vv // the response is ours: its slices can be shared
		}
	}
	announced := len(res.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range res.Trailer {
			names = append(names, k)
		}
		dst["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(res.StatusCode)

	err = f.copyBody(w, res.Body, streaming(res.ContentLength, res.Header))
	res.Body.Close()
	if err != nil {
		if ctx.Err() == nil && f.ErrorLog != nil {
			f.ErrorLog.Printf("proxy: response body cut off: %v", err)
		}
		// The status is out: abort the response so the client sees it cut
		// off rather than complete.
		panic(http.ErrAbortHandler)
	}
	if len(res.Trailer) > 0 {
		dst = w.Header()
		if len(res.Trailer) == announced {
			for k, vv := range res.Trailer {
				dst[k] = vv
			}
		} else {
			for k, vv := range res.Trailer {
				dst[http.TrailerPrefix+k] = vv
			}
		}
	}
}

// release returns a Client path's outbound to its pool. Nothing may hold
// it: the exchange has ended, and ErrorHandler and ModifyResponse must
// not keep the request.
func (o *outbound) release() {
	o.req = http.Request{}
	o.url = url.URL{}
	o.pr = httputil.ProxyRequest{}
	o.trace = httptrace.ClientTrace{}
	o.w = nil
	o.xff[0] = ""
	o.n1xx, o.ended = 0, false
	if len(o.hdr) > 64 {
		o.hdr = nil
	} else {
		clear(o.hdr)
	}
	outboundPool.Put(o)
}

// viaClient forwards out over f.Client: the request written and the
// response read on this goroutine.
func (f *Forwarder) viaClient(w http.ResponseWriter, out *http.Request, ctx context.Context, arg any) {
	e := exchangePool.Get().(*exchange)
	defer putExchange(e)
	dst := w.Header()
	hdr := dst
	if f.ModifyResponse != nil {
		hdr = make(http.Header)
	}
	if err := e.roundTrip(ctx, f.Client, out, hdr, w); err != nil {
		f.fail(w, out, err, arg)
		return
	}
	status := e.status
	var body io.Reader = e
	if f.ModifyResponse != nil {
		res := &http.Response{
			Status: strconv.Itoa(status) + " " + http.StatusText(status), StatusCode: status,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: hdr, Body: e, ContentLength: -1, Request: out,
		}
		if e.length >= 0 && !e.chunked && !e.toEOF {
			res.ContentLength = e.length
		}
		if err := f.ModifyResponse(res); err != nil {
			f.fail(w, out, err, arg)
			return
		}
		for k, vv := range res.Header {
			if cur, ok := dst[k]; ok {
				dst[k] = append(cur, vv...)
			} else {
				dst[k] = vv
			}
		}
		status, body = res.StatusCode, res.Body
		if res.Body != io.ReadCloser(e) {
			defer res.Body.Close()
		}
	}
	e.trailers = dst
	if e.writing {
		// The request body is still being sent: the server must not
		// consume what is left of it when the response starts (net/http's
		// HTTP/1 default), or the backend would get it cut off.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	w.WriteHeader(status)
	if e.done && body == io.Reader(e) {
		return
	}
	if err := f.copyBody(w, body, streaming(e.length, dst)); err != nil {
		if ctx.Err() == nil && f.ErrorLog != nil {
			f.ErrorLog.Printf("proxy: response body cut off: %v", err)
		}
		panic(http.ErrAbortHandler)
	}
}

// got1xx passes an informational response (103 Early Hints) on.
func (o *outbound) got1xx(code int, header textproto.MIMEHeader) error {
	switch code {
	case http.StatusContinue:
		// The server answers the client's Expect itself, when the
		// transport first reads the body; a second 100 would be one too
		// many.
		return nil
	case http.StatusSwitchingProtocols:
		return nil // not requested on this path; the response fails it
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ended {
		return errors.New("proxy: informational response after the exchange ended")
	}
	// The transport resets its header limit for each 1xx it hands to the
	// trace: the bound is ours, as the Client's.
	if o.n1xx++; o.n1xx > max1xx {
		return errTooMany1xx
	}
	if !o.req.ProtoAtLeast(1, 1) {
		return nil // an HTTP/1.0 client gets no 1xx (RFC 9110 section 15.2)
	}
	h := o.w.Header()
	for k, vv := range header {
		h[k] = vv
	}
	o.w.WriteHeader(code)
	clear(h) // the final response brings its own
	return nil
}

func (f *Forwarder) fail(w http.ResponseWriter, out *http.Request, err error, arg any) {
	if f.ErrorHandler != nil {
		f.ErrorHandler(w, out, err, arg)
		return
	}
	if f.ErrorLog != nil {
		f.ErrorLog.Printf("proxy: %v", err)
	}
	w.WriteHeader(http.StatusBadGateway)
}

// copyBody copies the response body, flushing after every write when
// stream is set. It returns a read error (other than EOF) or a write error.
func (f *Forwarder) copyBody(w http.ResponseWriter, body io.Reader, stream bool) error {
	var buf []byte
	if f.BufferPool != nil {
		buf = f.BufferPool.Get()
		defer f.BufferPool.Put(buf)
	} else {
		buf = make([]byte, 32*1024)
	}
	var flusher http.Flusher
	if stream {
		flusher, _ = w.(http.Flusher)
		if flusher == nil {
			rc := http.NewResponseController(w)
			flusher = flushFunc(func() { _ = rc.Flush() })
		}
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

type flushFunc func()

func (f flushFunc) Flush() { f() }

// streaming reports whether the response is to be flushed as it comes: an
// event stream, or one of unknown length (ReverseProxy's rule).
func streaming(length int64, h http.Header) bool {
	if length == -1 {
		return true
	}
	ct := h["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	const es = "text/event-stream"
	v := strings.TrimLeft(ct[0], " \t")
	if len(v) < len(es) || !strings.EqualFold(v[:len(es)], es) {
		return false
	}
	rest := strings.TrimLeft(v[len(es):], " \t")
	return rest == "" || rest[0] == ';'
}

// generalPath is the httputil.ReverseProxy for upgrades and HTTP/2.
func (f *Forwarder) generalPath() *httputil.ReverseProxy {
	f.generalOnce.Do(func() {
		f.general = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				if f.Rewrite != nil {
					f.Rewrite(pr, pr.In.Context().Value(argKey{}))
				}
				if f.AppendForwardedFor {
					if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
						if prior := pr.Out.Header["X-Forwarded-For"]; len(prior) > 0 {
							ip = strings.Join(prior, ", ") + ", " + ip
						}
						pr.Out.Header["X-Forwarded-For"] = []string{ip}
					}
				}
			},
			ModifyResponse: f.ModifyResponse,
			Transport:      f.Transport,
			BufferPool:     f.BufferPool,
			ErrorLog:       f.ErrorLog,
			ErrorHandler: func(w http.ResponseWriter, out *http.Request, err error) {
				f.fail(w, out, err, out.Context().Value(argKey{}))
			},
		}
	})
	return f.general
}

var emptyValue = []string{""}

// hopHeaders are removed both ways (RFC 9110 section 7.6.1, and what
// ReverseProxy removes).
var hopHeaders = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// outboundHeader copies in without hop-by-hop and forwarding headers; the
// value slices are shared. TE: trailers is kept when asked for.
func outboundHeader(out, in http.Header) http.Header {
	for k, vv := range in {
		out[k] = vv
	}
	removeHopByHop(out)
	for _, k := range [...]string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		delete(out, k)
	}
	if hasToken(in["Te"], "trailers") {
		out["Te"] = teTrailers
	}
	return out
}

var teTrailers = []string{"trailers"}

// removeHopByHop removes the headers named by Connection, then the fixed
// hop-by-hop ones.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = textproto.TrimString(tok); tok != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// isUpgrade reports whether the request asks for a protocol upgrade.
func isUpgrade(h http.Header) bool {
	return len(h["Upgrade"]) > 0 && hasToken(h["Connection"], "upgrade")
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(tok), token) {
				return true
			}
		}
	}
	return false
}
