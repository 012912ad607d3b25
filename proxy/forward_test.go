package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/internal/race"
)

// seen is what the backend received.
type seen struct {
	mu   sync.Mutex
	reqs []seenReq
}

type seenReq struct {
	method, path string
	header       http.Header
	body         string
	trailer      http.Header
	proto        int
}

func (s *seen) add(r seenReq) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
}

func (s *seen) all() []seenReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenReq(nil), s.reqs...)
}

// pair is a backend and a Forwarder in front of it, both on loopback.
type pair struct {
	back, front *httptest.Server
	seen        *seen
	backConns   atomic.Int32
}

func newPair(t *testing.T, client bool, app http.Handler, tune func(*Forwarder)) *pair {
	p := &pair{seen: &seen{}}
	p.back = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.seen.add(seenReq{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: string(body), trailer: r.Trailer.Clone(), proto: r.ProtoMajor})
		if app != nil {
			app.ServeHTTP(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok:"+string(body))
	}))
	p.back.Config.Protocols = ServerProtocols()
	p.back.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			p.backConns.Add(1)
		}
	}
	p.back.Start()
	t.Cleanup(p.back.Close)
	target, _ := url.Parse(p.back.URL)
	f := &Forwarder{
		Rewrite: func(pr *httputil.ProxyRequest, _ any) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport:  NewTransport(TransportConfig{}),
		BufferPool: new(BufferPool),
	}
	if client {
		f.Client = &Client{}
	}
	if tune != nil {
		tune(f)
	}
	p.front = httptest.NewUnstartedServer(f)
	p.front.Config.Protocols = ServerProtocols()
	p.front.Config.MaxHeaderBytes = 8 << 10
	p.front.Start()
	t.Cleanup(p.front.Close)
	return p
}

// bothPaths runs test through the Forwarder's Client and through its
// Transport.
func bothPaths(t *testing.T, test func(t *testing.T, client bool)) {
	t.Run("client", func(t *testing.T) { test(t, true) })
	t.Run("transport", func(t *testing.T) { test(t, false) })
}

// raw sends bytes on a new connection to the front and returns what came
// back until the server closed it or a second passed.
func (p *pair) raw(t *testing.T, req string) string {
	c, err := net.Dial("tcp", p.front.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, req)
	require.NoError(t, err)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestForwarderSmuggling: requests whose framing is ambiguous are refused
// before anything reaches the backend, and nothing smuggled behind a body
// ever reaches it as a request of its own.
func TestForwarderSmuggling(t *testing.T) { bothPaths(t, testForwarderSmuggling) }

func testForwarderSmuggling(t *testing.T, client bool) {
	p := newPair(t, client, nil, nil)
	tests := []struct {
		name   string
		req    string
		status string // the first status line's code, "" for any 4xx/5xx
	}{
		{"two different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc", "400"},
		{"space before the colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc", "400"},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "501"},
		{"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "501"},
		{"oversize header", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", "431"},
		{"no Host on HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", "400"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(p.seen.all())
			out := p.raw(t, tc.req)
			require.True(t, strings.HasPrefix(out, "HTTP/1.1 "), "a response: %q", out)
			code := out[9:12]
			if tc.status != "" {
				assert.Equal(t, tc.status, code, out)
			} else {
				assert.GreaterOrEqual(t, code, "400", out)
			}
			assert.Len(t, p.seen.all(), before, "nothing reached the backend")
		})
	}

	// obs-fold: net/http replaces it with a space (RFC 9112 section 5.2
	// allows that or a 400); the backend gets one line.
	t.Run("obs-fold unfolded", func(t *testing.T) {
		before := len(p.seen.all())
		out := p.raw(t, "GET /fold HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\nConnection: close\r\n\r\n")
		require.True(t, strings.HasPrefix(out, "HTTP/1.1 200"), out)
		reqs := p.seen.all()[before:]
		require.Len(t, reqs, 1)
		assert.Equal(t, []string{"1 folded"}, reqs[0].header["X-A"])
	})

	// Content-Length and Transfer-Encoding together: the chunked framing
	// wins and Content-Length is dropped (RFC 9112 section 6.1), and the
	// outbound request is framed afresh by the transport, so the backend
	// reads the body the gateway read and nothing more. What follows the
	// chunked body is the client's own next request on its own
	// connection. (RFC 9112 asks the server to close the connection after
	// such a request; net/http keeps it open, and a handler cannot see that
	// Content-Length was there.)
	t.Run("Content-Length with chunked", func(t *testing.T) {
		before := len(p.seen.all())
		out := p.raw(t, "POST /cl-te HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		require.True(t, strings.HasPrefix(out, "HTTP/1.1 200"), out)
		reqs := p.seen.all()[before:]
		require.Len(t, reqs, 2, out)
		assert.Equal(t, "/cl-te", reqs[0].path)
		assert.Equal(t, "abc", reqs[0].body, "the body as the gateway framed it")
		assert.Equal(t, "/next", reqs[1].path)
		assert.Empty(t, reqs[1].body)
	})

	// A bad chunk: the request may have started towards the backend (the
	// body streams), but it ends there; what follows never arrives as a
	// request.
	t.Run("bad chunk size", func(t *testing.T) {
		before := len(p.seen.all())
		out := p.raw(t, "POST /badchunk HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
		assert.False(t, strings.HasPrefix(out, "HTTP/1.1 200"), out)
		for _, r := range p.seen.all()[before:] {
			assert.NotEqual(t, "/smuggled", r.path)
			assert.Empty(t, r.body, "no byte of a malformed body")
		}
	})

	// A body that claims more than it sends: the backend never gets the
	// bytes that follow as a request.
	t.Run("short body then a request", func(t *testing.T) {
		before := len(p.seen.all())
		p.raw(t, "POST /short HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\nabcGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
		for _, r := range p.seen.all()[before:] {
			assert.NotEqual(t, "/smuggled", r.path, "bytes of a body reached the backend as a request")
		}
	})
}

// TestForwarderHopByHop: hop-by-hop headers, and those Connection names,
// go neither way; end-to-end ones do; User-Agent stays absent when absent.
func TestForwarderHopByHop(t *testing.T) { bothPaths(t, testForwarderHopByHop) }

func testForwarderHopByHop(t *testing.T, client bool) {
	p := newPair(t, client, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Back-Secret")
		w.Header().Set("X-Back-Secret", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-End", "e")
	}), nil)
	out := p.raw(t, "GET /h HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: 300\r\n"+
		"Proxy-Authorization: Basic x\r\nTe: trailers, deflate\r\nX-Forwarded-For: 1.2.3.4\r\nX-Keep: k\r\n\r\n")
	require.True(t, strings.HasPrefix(out, "HTTP/1.1 200"), out)
	reqs := p.seen.all()
	require.Len(t, reqs, 1)
	h := reqs[0].header
	for _, k := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization", "X-Forwarded-For", "User-Agent", "Connection"} {
		assert.Empty(t, h[k], "request header %s", k)
	}
	assert.Equal(t, []string{"trailers"}, h["Te"])
	assert.Equal(t, []string{"k"}, h["X-Keep"])
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
	require.NoError(t, err)
	assert.Empty(t, resp.Header.Get("X-Back-Secret"))
	assert.Empty(t, resp.Header.Get("Keep-Alive"))
	assert.Equal(t, "e", resp.Header.Get("X-End"))
}

// TestForwarderBodiesAndTrailers: a chunked request body with trailers
// reaches the backend whole; response trailers reach the client; upstream
// connections are kept alive across requests.
func TestForwarderBodiesAndTrailers(t *testing.T) { bothPaths(t, testForwarderBodiesAndTrailers) }

func testForwarderBodiesAndTrailers(t *testing.T, client bool) {
	p := newPair(t, client, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	}), nil)
	hc := p.front.Client()
	for i := range 20 {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, p.front.URL+"/t", pr)
		req.Trailer = http.Header{"X-Req-Sum": nil}
		go func() {
			_, _ = io.WriteString(pw, "chunk1,")
			_, _ = io.WriteString(pw, "chunk2")
			req.Trailer.Set("X-Req-Sum", fmt.Sprint(i))
			pw.Close()
		}()
		resp, err := hc.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "body", string(b))
		assert.Equal(t, "42", resp.Trailer.Get("X-Sum"), "response trailer")
		last := p.seen.all()[i]
		assert.Equal(t, "chunk1,chunk2", last.body)
		assert.Equal(t, fmt.Sprint(i), last.trailer.Get("X-Req-Sum"), "request trailer")
	}
	assert.Equal(t, int32(1), p.backConns.Load(), "one kept-alive backend connection for 20 sequential requests")
}

// TestForwarderInformational: Expect: 100-continue gets its 100 through
// the hop, and a 103 Early Hints is passed on before the final response.
func TestForwarderInformational(t *testing.T) { bothPaths(t, testForwarderInformational) }

func testForwarderInformational(t *testing.T, client bool) {
	p := newPair(t, client, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hints" {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
		}
		_, _ = io.WriteString(w, "final")
	}), nil)
	var got []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { got = append(got, code); return nil }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, p.front.URL+"/hints", nil)
	resp, err := p.front.Client().Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "final", string(b))
	assert.Equal(t, []int{http.StatusEarlyHints}, got)

	c, err := net.Dial("tcp", p.front.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, _ = io.WriteString(c, "POST /c HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "HTTP/1.1 100 Continue\r\n", line, "the 100 before the body is sent")
	_, _ = br.ReadString('\n')
	_, _ = io.WriteString(c, "abc")
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	assert.Equal(t, "final", string(b))
	assert.Equal(t, "abc", p.seen.all()[len(p.seen.all())-1].body)
}

// TestForwarderStreamingAndCutOff: an event stream is flushed event by
// event; a response the backend cuts off is cut off for the client too.
func TestForwarderStreamingAndCutOff(t *testing.T) { bothPaths(t, testForwarderStreamingAndCutOff) }

func testForwarderStreamingAndCutOff(t *testing.T, client bool) {
	release := make(chan struct{})
	p := newPair(t, client, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: one\n\n")
			http.NewResponseController(w).Flush()
			<-release
		case "/cut":
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "short")
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}
	}), nil)
	resp, err := p.front.Client().Get(p.front.URL + "/sse")
	require.NoError(t, err)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "data: one\n", line, "the event arrived while the backend still streams")
	close(release)
	resp.Body.Close()

	// Cut off before or after the header reached the client: either way
	// the client sees an error, never a complete response.
	resp, err = p.front.Client().Get(p.front.URL + "/cut")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	assert.Error(t, err, "the client sees the response cut off")
}

// TestForwarderCancelAndTimeout: a client that goes away cancels the
// backend's request; a backend that does not answer in the transport's
// time gets the error handler's answer.
func TestForwarderCancelAndTimeout(t *testing.T) { bothPaths(t, testForwarderCancelAndTimeout) }

func testForwarderCancelAndTimeout(t *testing.T, client bool) {
	canceled := make(chan struct{})
	p := newPair(t, client, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(2 * time.Second)
			return
		}
		<-r.Context().Done()
		close(canceled)
	}), func(f *Forwarder) {
		f.Transport = &http.Transport{ResponseHeaderTimeout: 200 * time.Millisecond}
		if f.Client != nil {
			f.Client = &Client{ResponseHeaderTimeout: 200 * time.Millisecond}
		}
		f.ErrorHandler = func(w http.ResponseWriter, out *http.Request, err error, _ any) {
			http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.front.URL+"/wait", nil)
	go func() {
		for len(p.seen.all()) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err := p.front.Client().Do(req)
	require.Error(t, err)
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend's request was not canceled")
	}

	resp, err := p.front.Client().Get(p.front.URL + "/slow")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, string(b), "timeout awaiting response headers")
}

// TestForwarderGeneralPath: upgrades and HTTP/2 requests go through the
// general path and work: a hijacked echo, and h2c end to end.
func TestForwarderGeneralPath(t *testing.T) { bothPaths(t, testForwarderGeneralPath) }

func testForwarderGeneralPath(t *testing.T, client bool) {
	p := newPair(t, client, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "echo" {
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "echo")
			w.WriteHeader(http.StatusSwitchingProtocols)
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			line, _ := brw.ReadString('\n')
			_, _ = brw.WriteString("echo " + line)
			_ = brw.Flush()
			return
		}
		_, _ = fmt.Fprintf(w, "proto %d", r.ProtoMajor)
	}), nil)
	c, err := net.Dial("tcp", p.front.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	_, _ = io.WriteString(c, "hi\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "echo hi\n", line)

	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	resp, err = (&http.Client{Transport: h2c}).Get(p.front.URL + "/h2")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 2, resp.ProtoMajor)
	assert.Equal(t, "proto 2", string(b), "h2c to the backend too")
}

// TestForwarderAllocs pins the Transport path's allocations around a round
// trip that allocates nothing of its own, and the Client path's (see
// testClientForwarderAllocs).
func TestForwarderAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector makes sync.Pool drop objects: allocation counts are checked without -race")
	}
	t.Run("client", testClientForwarderAllocs)
	res := &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, ContentLength: 0}
	f := &Forwarder{
		Rewrite:    func(pr *httputil.ProxyRequest, _ any) { pr.Out.URL.Host = "backend" },
		Transport:  roundTripFunc(func(*http.Request) (*http.Response, error) { return res, nil }),
		BufferPool: new(BufferPool),
	}
	req := httptest.NewRequest(http.MethodGet, "http://a/x", nil)
	req.Header.Set("Accept", "*/*")
	w := &nopWriter{h: http.Header{}}
	allocs := testing.AllocsPerRun(200, func() { f.ServeHTTP(w, req) })
	assert.LessOrEqual(t, allocs, 5.0, "outbound, header map (2), trace context, 1xx hook")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}
