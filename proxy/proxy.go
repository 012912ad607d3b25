// Package proxy is the HTTP plumbing for forwarding requests to replicas
// and activators, shared by the queue's sidecar proxy, the activator and
// any host that proxies on its own (the Serve path, a gateway forwarding to
// remote activators): a buffer pool for httputil.ReverseProxy whose Get and
// Put do not allocate, a transport tuned for many short requests to a few
// nearby backends that also speaks cleartext HTTP/2 (h2c) when the
// incoming request arrived over HTTP/2 (unless TransportConfig.DisableH2C),
// server protocol settings that accept h2c, Forwarder, a reverse proxy
// for HTTP/1 requests that allocates a few hundred bytes where
// httputil.ReverseProxy allocates kilobytes, and hands upgrades and HTTP/2
// to an httputil.ReverseProxy, and Client, the Forwarder's HTTP/1.1
// upstream client.
//
// # The Client
//
// http.Transport runs two goroutines per connection and hands each request
// and response across channels; on a proxy hop that and the response's
// http.Response and header map are most of the cost. A Client writes the
// request and reads the response on the handler's goroutine, over
// connections kept alive per upstream address (MaxIdleConnsPerHost,
// IdleConnTimeout). What it does:
//
//   - the request line and header are written from the outbound request
//     (after Rewrite, hop-by-hop headers removed, X-Forwarded-For
//     appended), framed by the Client: Content-Length for a body of known
//     length, chunked for one of unknown length or with trailers (request
//     trailers follow the last chunk), Content-Length: 0 for a bodiless
//     POST, PUT or PATCH; copied framing headers are never written;
//   - the response's status line and fields are parsed straight into the
//     ResponseWriter's header (one string for all their bytes, one slice
//     for their values), its body copied with pooled buffers: by
//     Content-Length, chunked (trailers passed on, announced or with
//     http.TrailerPrefix), or to EOF (the connection is then closed);
//     HEAD, 204 and 304 responses are bodiless;
//   - 1xx responses are passed on (a 100 is the server's to send, when the
//     body is first read); "Expect: 100-continue" waits up to
//     ExpectContinueTimeout for the backend's 100 before the body is sent,
//     and a final answer instead means no body and no reuse;
//   - "Connection: close" either way, and HTTP/1.0 responses without
//     keep-alive, end the connection;
//   - the request's context ending closes the connection
//     (context.AfterFunc), which is then not reused; DialTimeout bounds
//     the dial and ResponseHeaderTimeout the wait for the response header;
//   - a dial failure is returned as the *net.OpError (Op "dial") the
//     dialer gave, so a caller can tell that the request never reached the
//     backend; a request without a body that fails on a reused connection
//     before any byte of a response came back is sent once more on a new
//     connection when repeating it is harmless: GET, HEAD, OPTIONS and
//     TRACE, or a request with an Idempotency-Key or X-Idempotency-Key
//     header (http.Transport's rule). Any other request (a bodiless POST
//     among them) and any request with a body is sent at most once: the
//     backend may have acted on it before the connection went;
//   - an idle connection is checked with a non-blocking peek before reuse
//     (on Linux and the BSDs): one the backend closed, or on which bytes
//     arrived that nobody asked for, is closed instead of used;
//   - request bodies of known length up to 64 KiB are written before the
//     response is read; larger ones, and those of unknown length, by a
//     goroutine of their own while the response is read, so a backend that
//     answers while it reads cannot deadlock the exchange (the inbound
//     server is then switched to full duplex, so it does not consume the
//     rest of the body when the response starts).
//
// A response whose framing is ambiguous or broken is refused (502 when
// nothing was sent to the client yet, the client's response aborted
// otherwise) and its connection closed: Content-Length with
// Transfer-Encoding, differing or malformed Content-Lengths, a transfer
// coding other than chunked, chunked in HTTP/1.0, obs-fold, a CR not
// followed by LF, control characters in a field, a malformed status line
// or chunk size, a header block over MaxResponseHeaderBytes, a 101 nobody
// asked for, more than 10 1xx responses before the final one. Line endings may be bare LFs (RFC 9112 section 2.2).
// A 2xx to CONNECT is a tunnel (RFC 9112 section 6.3): read to the close,
// never pooled. No 1xx is passed on to an HTTP/1.0 client.
//
// What the Client writes cannot be framed two ways: a method, header name
// or value, trailer, Host, query or opaque URL with a space (where one
// does not belong), CR, LF or another control byte is refused before
// anything is sent (the inbound server refuses them first; only a Rewrite
// can set one), and so is a body longer than its ContentLength (before
// its last bytes go out); a body that ends short of its ContentLength or
// fails mid-way cuts the connection off, so the backend never takes part
// of a body for all of it.
//
// Where it differs from http.Transport, deliberately (TestClientAgainstTransport
// runs the same backends against both): it refuses, where the Transport
// reads on, a response with both Content-Length and Transfer-Encoding
// (the Transport lets chunked win), obs-fold (the Transport unfolds; RFC
// 9112 section 5.2 lets a proxy answer 502), whitespace between a field
// name and its colon, and a version other than HTTP/1.0 or HTTP/1.1;
// it allows a header block of MaxResponseHeaderBytes, 1 MiB by default
// (the Transport's default is 10 MiB). Both of the Forwarder's paths pass
// on at most 10 1xx responses before the final one (the Transport alone
// has no bound once a trace hook takes them, as the Forwarder's does). Like the Transport it passes on status
// codes up to 999 and refuses transfer codings other than a lone
// "chunked" ("gzip, chunked", and "gzip" read to close, are 502s).
//
// Left as they are, as in http.Transport: a backend that answers before
// reading a request's body and keeps the connection open gets the next
// request after that body (the backend's framing bug, not the client's);
// bytes a backend sends after a bodiless (HEAD, 204, 304) response are
// caught by the peek only if they arrive before the connection is reused.
//
// What it does not do, and the Forwarder sends through its Transport
// instead: upgrades (websockets), HTTP/2 and h2c, and URLs other than
// "http" (HTTPS upstreams). It has no proxy-from-environment, no
// compression, no HTTP/1.1 pipelining.
//
// It is a leaf: it imports nothing of servingkit's.
//
//	rp := &httputil.ReverseProxy{
//		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
//		Transport:  proxy.NewTransport(proxy.TransportConfig{}),
//		BufferPool: new(proxy.BufferPool),
//	}
//
//	f := &proxy.Forwarder{
//		Rewrite:    func(pr *httputil.ProxyRequest, _ any) { pr.SetURL(target) },
//		Client:     new(proxy.Client),                              // HTTP/1
//		Transport:  proxy.NewTransport(proxy.TransportConfig{}), // upgrades, h2c
//		BufferPool: new(proxy.BufferPool),
//	}
package proxy

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// BufferSize is the size of the copy buffers a BufferPool hands out.
const BufferSize = 32 << 10

// BufferPool is an httputil.BufferPool of BufferSize buffers. The zero value
// is ready to use. Get and Put do not allocate once the pool is warm:
// buffers travel in *[]byte holders, and the empty holders are pooled too
// (boxing a []byte into the pool on every Put would cost an allocation per
// proxied request).
type BufferPool struct{ bufs, holders sync.Pool }

// Get returns a buffer of BufferSize bytes.
func (b *BufferPool) Get() []byte {
	v := b.bufs.Get()
	if v == nil {
		return make([]byte, BufferSize)
	}
	h := v.(*[]byte)
	buf := *h
	*h = nil
	b.holders.Put(h)
	return buf
}

// Put returns a buffer to the pool. Buffers of another size are dropped.
func (b *BufferPool) Put(buf []byte) {
	if cap(buf) != BufferSize {
		return
	}
	h, _ := b.holders.Get().(*[]byte)
	if h == nil {
		h = new([]byte)
	}
	*h = buf[:BufferSize]
	b.bufs.Put(h)
}

// TransportConfig tune NewTransport. Zero values are working defaults.
type TransportConfig struct {
	// MaxIdleConnsPerHost is how many idle keep-alive connections to keep per
	// backend. Zero means 1000 (Knative uses container concurrency, or 1000
	// when it is unlimited).
	MaxIdleConnsPerHost int
	// DialTimeout bounds connecting to a backend. Zero means 5 s.
	DialTimeout time.Duration
	// DisableH2C sends every request over HTTP/1.1, those that arrived
	// over HTTP/2 included, for backends that do not accept cleartext
	// HTTP/2. False means an HTTP/2 request goes out as h2c (see
	// NewTransport).
	DisableH2C bool
}

// NewTransport returns a RoundTripper for proxying to backends on a fast
// network: keep-alive with many idle connections, no proxy from the
// environment, no transparent compression (bodies pass through untouched).
//
// The protocol follows the incoming request, not the backend: a request
// that arrived over HTTP/2 (ProtoMajor 2) is sent with cleartext HTTP/2
// prior knowledge (h2c), every other request over HTTP/1.1, where
// websocket upgrades work. That covers gRPC, but also any client whose
// connection to the front server negotiated HTTP/2, such as a browser over
// TLS. Knative's activator and queue-proxy use the same rule (knative.dev/
// pkg/network's NewProxyAutoTransport), but there the ingress has already
// chosen the protocol by the revision's port name (h2c or not), so only
// h2c revisions receive HTTP/2; here whichever server accepted the request
// decides. The backends servingkit proxies to by default are replica
// queues, which accept h2c when served with ServerProtocols
// (queue.ServerProtocols). For backends that do not, an HTTP/2 request
// fails (the proxy answers 502); set DisableH2C, or use another
// RoundTripper.
func NewTransport(o TransportConfig) http.RoundTripper {
	if o.MaxIdleConnsPerHost == 0 {
		o.MaxIdleConnsPerHost = 1000
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	base := func() *http.Transport {
		return &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			MaxIdleConns:          0, // no global limit; per host below
			MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
			IdleConnTimeout:       90 * time.Second,
			DisableCompression:    true,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     false,
		}
	}
	h1 := base()
	if o.DisableH2C {
		return h1
	}
	h2c := base()
	h2c.Protocols = new(http.Protocols)
	h2c.Protocols.SetUnencryptedHTTP2(true)
	return &autoTransport{h1: h1, h2c: h2c}
}

type autoTransport struct{ h1, h2c *http.Transport }

func (t *autoTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.ProtoMajor == 2 && r.URL.Scheme == "http" {
		return t.h2c.RoundTrip(r)
	}
	return t.h1.RoundTrip(r)
}

// CloseIdleConnections closes idle connections of both transports.
func (t *autoTransport) CloseIdleConnections() {
	t.h1.CloseIdleConnections()
	t.h2c.CloseIdleConnections()
}

// ServerProtocols returns the protocols a plain-TCP server should accept:
// HTTP/1.1 and cleartext HTTP/2 (h2c, with prior knowledge), so gRPC
// clients can connect without TLS.
func ServerProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}
