package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/internal/canned"
	"github.com/servingkit/servingkit/internal/race"
)

// scripted is a backend that answers on raw TCP: for every request head
// (and its body, when framed by Content-Length or chunked) it calls
// answer, which writes whatever bytes it likes and says whether to keep
// the connection open for another request.
type scripted struct {
	ln    net.Listener
	conns atomic.Int32
	mu    sync.Mutex
	heads []string // each request's head as received, with its body
}

func newScripted(t *testing.T, answer func(head string, c net.Conn) (keep bool)) *scripted {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &scripted{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					head, err := readRawRequest(br)
					if err != nil {
						return
					}
					s.mu.Lock()
					s.heads = append(s.heads, head)
					s.mu.Unlock()
					if !answer(head, c) {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *scripted) addr() string { return s.ln.Addr().String() }

func (s *scripted) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.heads...)
}

// readRawRequest reads a request head and its body as sent, framing and
// all.
func readRawRequest(br *bufio.Reader) (string, error) {
	var b strings.Builder
	cl, chunked := 0, false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		b.WriteString(line)
		if line == "\r\n" {
			break
		}
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch strings.ToLower(k) {
		case "content-length":
			cl, _ = strconv.Atoi(strings.TrimSpace(v))
		case "transfer-encoding":
			chunked = strings.TrimSpace(v) == "chunked"
		}
	}
	if chunked {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return "", err
			}
			b.WriteString(line)
			n, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
			if err != nil {
				return "", err
			}
			if n == 0 {
				for { // trailers
					line, err := br.ReadString('\n')
					if err != nil {
						return "", err
					}
					b.WriteString(line)
					if line == "\r\n" {
						return b.String(), nil
					}
				}
			}
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(br, buf); err != nil {
				return "", err
			}
			b.Write(buf)
		}
	}
	buf := make([]byte, cl)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", err
	}
	b.Write(buf)
	return b.String(), nil
}

// clientFront is a Forwarder over a Client to addr, served on loopback.
type clientFront struct {
	srv    *httptest.Server
	f      *Forwarder
	errs   chan error
	client *Client
}

func newClientFront(t *testing.T, addr string, c *Client) *clientFront {
	if c == nil {
		c = &Client{}
	}
	cf := &clientFront{errs: make(chan error, 100), client: c}
	cf.f = &Forwarder{
		Rewrite: func(pr *httputil.ProxyRequest, _ any) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", addr
			pr.Out.Host = pr.In.Host
		},
		Client:     c,
		BufferPool: new(BufferPool),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error, _ any) {
			cf.errs <- err
			http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
		},
	}
	cf.srv = httptest.NewServer(cf.f)
	t.Cleanup(cf.srv.Close)
	t.Cleanup(c.CloseIdleConnections)
	return cf
}

func (cf *clientFront) get(t *testing.T, path string) (*http.Response, string, error) {
	resp, err := cf.srv.Client().Get(cf.srv.URL + path)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// TestClientMaliciousBackend: responses whose framing is ambiguous or
// broken never reach the client as a complete response, and their
// connections are not reused.
func TestClientMaliciousBackend(t *testing.T) {
	huge := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 1000)+"\r\n", 40) + "Content-Length: 2\r\n\r\nok"
	tests := []struct {
		name     string
		response string
		want     int    // status the client gets; 0: the response is aborted
		body     string // when want is 200
	}{
		{"Content-Length and Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 502, ""},
		{"two different Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 502, ""},
		{"Content-Length not a number", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", 502, ""},
		{"Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", 502, ""},
		{"identical duplicate Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 200, "abc"},
		{"unknown transfer coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 502, ""},
		{"two Transfer-Encoding fields", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 502, ""},
		{"chunked in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 502, ""},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok", 502, ""},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", 502, ""},
		{"bare CR in a field", "HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\nContent-Length: 2\r\n\r\nok", 502, ""},
		{"NUL in a value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", 502, ""},
		{"header block too large", huge, 502, ""},
		{"malformed status line", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", 502, ""},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", 502, ""},
		{"101 unasked", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", 502, ""},
		{"endless 103s", strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 11) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 502, ""},
		{"bare LF line endings", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 200, "ok"},
		{"invalid chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 0, ""},
		{"chunk size overflow", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n", 0, ""},
		{"chunk size of 16 significant digits", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\nabc\r\n0\r\n\r\n", 0, ""},
		{"chunk size with leading zeros", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000000000002\r\nok\r\n0000\r\n\r\n", 200, "ok"},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n", 0, ""},
		{"long Content-Length, then close", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, ""},
		{"chunked cut off", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			back := newScripted(t, func(_ string, c net.Conn) bool {
				_, _ = io.WriteString(c, tc.response)
				return false // close after the response
			})
			cf := newClientFront(t, back.addr(), &Client{MaxResponseHeaderBytes: 16 << 10})
			resp, body, err := cf.get(t, "/")
			if tc.want == 0 {
				assert.Error(t, err, "the client's response is aborted, never complete")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, resp.StatusCode, body)
			if tc.want == 200 {
				assert.Equal(t, tc.body, body)
			} else {
				assert.Contains(t, body, "upstream: proxy: ")
			}
		})
	}
}

// TestClientLyingShortContentLength: bytes beyond a response's
// Content-Length are never read as the next request's response.
func TestClientLyingShortContentLength(t *testing.T) {
	var n atomic.Int32
	back := newScripted(t, func(_ string, c net.Conn) bool {
		if n.Add(1) == 1 {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
		} else {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
		}
		return true
	})
	cf := newClientFront(t, back.addr(), nil)
	_, body, err := cf.get(t, "/1")
	require.NoError(t, err)
	assert.Equal(t, "ok", body)
	_, body, err = cf.get(t, "/2")
	require.NoError(t, err)
	assert.Equal(t, "fresh", body, "the second request's own response")
	assert.Equal(t, int32(2), back.conns.Load(), "the first connection was not reused")

	// The extra bytes come once the connection is idle in the pool: the
	// peek before reuse catches them.
	if !canPeek {
		t.Skip("no socket peek on this platform")
	}
	n.Store(0)
	idle, sent := make(chan struct{}), make(chan struct{})
	back2 := newScripted(t, func(_ string, c net.Conn) bool {
		if n.Add(1) == 1 {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			<-idle
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
			close(sent) // on loopback, written means in the proxy's socket
		} else {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
		}
		return true
	})
	cf2 := newClientFront(t, back2.addr(), nil)
	_, body, err = cf2.get(t, "/1")
	require.NoError(t, err)
	assert.Equal(t, "ok", body)
	close(idle) // the response reached the client: the exchange is over
	<-sent
	_, body, err = cf2.get(t, "/2")
	require.NoError(t, err)
	assert.Equal(t, "fresh", body)
}

// TestClientReuse: a connection is reused after a response read to its
// end (Content-Length, chunked, bodiless HEAD/204/304), and not after a
// response read to EOF, one with Connection: close, an HTTP/1.0 one, or
// one the client stopped reading.
func TestClientReuse(t *testing.T) {
	tests := []struct {
		name, method, response string
		reused                 bool
	}{
		{"Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
		{"chunked with trailers", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n", true},
		{"HEAD with a length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true},
		{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", true},
		{"304 with a length", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", true},
		{"HTTP/1.0 keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", true},
		{"Connection: close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false},
		{"HTTP/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			back := newScripted(t, func(_ string, c net.Conn) bool {
				_, _ = io.WriteString(c, tc.response)
				return true
			})
			cf := newClientFront(t, back.addr(), nil)
			for range 2 {
				req, _ := http.NewRequest(tc.method, cf.srv.URL+"/", nil)
				resp, err := cf.srv.Client().Do(req)
				require.NoError(t, err)
				_, err = io.ReadAll(resp.Body)
				require.NoError(t, err)
				resp.Body.Close()
			}
			want := int32(2)
			if tc.reused {
				want = 1
			}
			assert.Equal(t, want, back.conns.Load())
		})
	}

	t.Run("read to EOF", func(t *testing.T) {
		back := newScripted(t, func(_ string, c net.Conn) bool {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil EOF")
			return false
		})
		cf := newClientFront(t, back.addr(), nil)
		for range 2 {
			_, body, err := cf.get(t, "/")
			require.NoError(t, err)
			assert.Equal(t, "until EOF", body)
		}
		assert.Equal(t, int32(2), back.conns.Load())
	})

	t.Run("client stopped reading", func(t *testing.T) {
		big := strings.Repeat("x", 64<<10)
		var backConns atomic.Int32
		back := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/small" {
				_, _ = io.WriteString(w, "ok")
				return
			}
			for range 1024 { // 64 MiB: more than any socket buffers hold
				if _, err := io.WriteString(w, big); err != nil {
					return
				}
			}
		}))
		back.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				backConns.Add(1)
			}
		}
		back.Start()
		t.Cleanup(back.Close)
		cf := newClientFront(t, back.Listener.Addr().String(), nil)
		resp, err := cf.srv.Client().Get(cf.srv.URL + "/big")
		require.NoError(t, err)
		_, err = io.ReadFull(resp.Body, make([]byte, 1000))
		require.NoError(t, err)
		resp.Body.Close() // the client goes away mid-body
		require.Eventually(t, func() bool {
			_, body, err := cf.get(t, "/small")
			return err == nil && body == "ok"
		}, 10*time.Second, 10*time.Millisecond)
		assert.Equal(t, int32(2), backConns.Load(), "a new connection after the partly read response")
	})
}

// TestClientStaleRetry: a reused connection that fails before any byte of
// a response came back is retried once on a new connection for a request
// without a body, and not for one with a body.
func TestClientStaleRetry(t *testing.T) {
	var n atomic.Int32
	back := newScripted(t, func(head string, c net.Conn) bool {
		if n.Add(1) == 2 {
			return false // the second request: closed unanswered, as an idle connection the backend timed out
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	cf := newClientFront(t, back.addr(), nil)
	_, body, err := cf.get(t, "/1")
	require.NoError(t, err)
	assert.Equal(t, "ok", body)
	resp, body, err := cf.get(t, "/2")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, int32(3), n.Load(), "sent twice: the retry on a new connection")

	n.Store(0)
	_, _, err = cf.get(t, "/3") // opens the connection again
	require.NoError(t, err)
	resp, err = cf.srv.Client().Post(cf.srv.URL+"/4", "text/plain", strings.NewReader("body"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode, "a request with a body is not sent again")
	assert.Equal(t, int32(2), n.Load())

	// A connection the backend closed while it was idle is seen closed
	// before it is used (the peek): even a request with a body gets
	// through, on a new connection.
	if !canPeek {
		t.Skip("no socket peek on this platform")
	}
	idle, closed := make(chan struct{}), make(chan struct{})
	var m atomic.Int32
	back2 := newScripted(t, func(_ string, c net.Conn) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if m.Add(1) == 1 {
			<-idle
			c.Close()
			close(closed)
			return false
		}
		return true
	})
	cf2 := newClientFront(t, back2.addr(), nil)
	_, _, err = cf2.get(t, "/1")
	require.NoError(t, err)
	close(idle)
	<-closed
	resp, err = cf2.srv.Client().Post(cf2.srv.URL+"/2", "text/plain", strings.NewReader("body"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int32(2), back2.conns.Load())
}

// TestClientDialError: a failed dial reaches the error handler as a
// *net.OpError whose Op is "dial" (the activator and the gateway retry
// those elsewhere), and no other request was sent.
func TestClientDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	cf := newClientFront(t, addr, nil)
	resp, _, err := cf.get(t, "/")
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	got := <-cf.errs
	var op *net.OpError
	require.ErrorAs(t, got, &op)
	assert.Equal(t, "dial", op.Op)
}

// TestClientDialContext: a Client with DialContext gets its connections
// from it (the network and the backend's address as the request named
// it), keeps them alive as its own, and passes its errors on as they came.
func TestClientDialContext(t *testing.T) {
	backend := newScripted(t, func(_ string, c net.Conn) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	var mu sync.Mutex
	var dials []string
	fail := errors.New("no connection for you")
	c := &Client{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dials = append(dials, network+" "+addr)
		n := len(dials)
		mu.Unlock()
		if n > 1 {
			return nil, fail
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	cf := newClientFront(t, backend.addr(), c)
	for range 2 {
		resp, body, err := cf.get(t, "/")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "ok", body)
	}
	assert.Equal(t, []string{"tcp " + backend.addr()}, dials, "the second request reused the first's connection")

	c.CloseIdleConnections()
	resp, _, err := cf.get(t, "/")
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.ErrorIs(t, <-cf.errs, fail)
}

// TestClientRequestFraming: what the backend receives is framed by the
// client, never by copied headers: one Content-Length, chunked for bodies
// of unknown length (with trailers), Content-Length: 0 for a bodiless
// POST, hop-by-hop headers gone.
func TestClientRequestFraming(t *testing.T) {
	back := newScripted(t, func(_ string, c net.Conn) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	cf := newClientFront(t, back.addr(), nil)
	raw := func(req string) string {
		c, err := net.Dial("tcp", cf.srv.Listener.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		_, _ = io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		got := back.received()
		return got[len(got)-1]
	}
	h := raw("POST /a?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n\r\nabc")
	assert.True(t, strings.HasPrefix(h, "POST /a?q=1 HTTP/1.1\r\nHost: h\r\n"), h)
	assert.Equal(t, 1, strings.Count(h, "Content-Length: 3\r\n"), h)
	assert.NotContains(t, h, "X-Hop")
	assert.NotContains(t, h, "Keep-Alive")
	assert.NotContains(t, h, "Connection")
	assert.NotContains(t, h, "User-Agent", "an absent User-Agent stays absent")
	assert.True(t, strings.HasSuffix(h, "\r\n\r\nabc"), h)

	h = raw("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n")
	assert.Contains(t, h, "Transfer-Encoding: chunked\r\n")
	assert.Contains(t, h, "Trailer: X-Sum\r\n")
	assert.NotContains(t, h, "Content-Length")
	_, chunks, _ := strings.Cut(h, "\r\n\r\n")
	decoded, err := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(chunks)))
	require.NoError(t, err, h)
	assert.Equal(t, "abcde", string(decoded))
	assert.True(t, strings.HasSuffix(h, "\r\n0\r\nX-Sum: 5\r\n\r\n"), h)

	h = raw("POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
	assert.Contains(t, h, "Content-Length: 0\r\n")

	h = raw("GET /g HTTP/1.1\r\nHost: h\r\n\r\n")
	assert.NotContains(t, h, "Content-Length")
	assert.NotContains(t, h, "Transfer-Encoding")

	h = raw("GET /bare-lf HTTP/1.1\nHost: h\nX-A: 1\n\n")
	assert.Contains(t, h, "\r\nX-A: 1\r\n", "re-framed with CRLF")
}

// TestClientTrailersAndHeaders: announced trailers arrive as trailers,
// unannounced ones too (http.TrailerPrefix); headers the backend's
// Connection names do not.
func TestClientTrailersAndHeaders(t *testing.T) {
	back := newScripted(t, func(_ string, c net.Conn) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nConnection: X-Secret\r\nX-Secret: s\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Odd-Name: v\r\n"+
			"Transfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\nX-Sum: 42\r\nX-Late: 7\r\n\r\n")
		return true
	})
	cf := newClientFront(t, back.addr(), nil)
	resp, body, err := cf.get(t, "/")
	require.NoError(t, err)
	assert.Equal(t, "body", body)
	assert.Equal(t, "42", resp.Trailer.Get("X-Sum"))
	assert.Equal(t, "7", resp.Trailer.Get("X-Late"))
	assert.Empty(t, resp.Header.Get("X-Secret"))
	assert.Equal(t, []string{"a=1", "b=2"}, resp.Header["Set-Cookie"])
	assert.Equal(t, "v", resp.Header.Get("X-Odd-Name"))
}

// TestClientExpectRefused: a backend that answers Expect: 100-continue
// with a final status gets no body, and its connection is closed, not
// reused.
func TestClientExpectRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	after := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		_, _ = io.WriteString(c, "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 2\r\n\r\nno")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		rest, _ := io.ReadAll(br) // until the proxy closes the connection
		after <- string(rest)
	}()
	cf := newClientFront(t, ln.Addr().String(), nil)
	c, err := net.Dial("tcp", cf.srv.Listener.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, _ = io.WriteString(c, "PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusExpectationFailed, resp.StatusCode)
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "no", string(b))
	assert.Empty(t, <-after, "no body reached the backend, and the connection was closed")
}

// TestClientCancelMidBody: a client that goes away in the middle of its
// request body cuts the upstream request off: the backend never reads a
// complete body.
func TestClientCancelMidBody(t *testing.T) {
	part := strings.Repeat("x", 5000) // more than the client's write buffer: the backend gets the head
	for _, tc := range []struct{ name, framing, part string }{
		{"Content-Length", "Content-Length: 10000\r\n", part},
		{"chunked", "Transfer-Encoding: chunked\r\n", "1388\r\n" + part + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bodyErr := make(chan error, 1)
			back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, err := io.ReadAll(r.Body)
				bodyErr <- err
			}))
			t.Cleanup(back.Close)
			cf := newClientFront(t, back.Listener.Addr().String(), nil)
			c, err := net.Dial("tcp", cf.srv.Listener.Addr().String())
			require.NoError(t, err)
			_, _ = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: h\r\n"+tc.framing+"\r\n"+tc.part)
			c.Close()
			select {
			case err := <-bodyErr:
				assert.Error(t, err, "the backend saw the body cut off")
			case <-time.After(10 * time.Second):
				t.Fatal("the backend's request was not cut off")
			}
			assert.Error(t, <-cf.errs, "the proxy saw the body fail")
		})
	}
}

// TestClientIdlePool: idle connections are bounded per host and closed
// after IdleConnTimeout.
func TestClientIdlePool(t *testing.T) {
	release := make(chan struct{})
	var inFlight atomic.Int32
	back := newScripted(t, func(_ string, c net.Conn) bool {
		inFlight.Add(1)
		<-release
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	c := &Client{MaxIdleConnsPerHost: 2}
	cf := newClientFront(t, back.addr(), c)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _, _, _ = cf.get(t, "/") })
	}
	require.Eventually(t, func() bool { return inFlight.Load() == 4 }, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	c.mu.Lock()
	idle := len(c.hosts[back.addr()].idle)
	c.mu.Unlock()
	assert.Equal(t, 2, idle, "MaxIdleConnsPerHost")

	c2 := &Client{IdleConnTimeout: time.Millisecond}
	back2 := newScripted(t, func(_ string, c net.Conn) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	cf2 := newClientFront(t, back2.addr(), c2)
	_, _, err := cf2.get(t, "/")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		c2.mu.Lock()
		defer c2.mu.Unlock()
		return c2.hosts[back2.addr()] == nil
	}, 10*time.Second, time.Millisecond, "the idle connection expired")
}

// TestClientContextCanceled: the request's context ending closes the
// upstream connection; the error handler sees the context's error.
func TestClientContextCanceled(t *testing.T) {
	closed := make(chan struct{})
	back := newScripted(t, func(_ string, c net.Conn) bool {
		_, err := c.Read(make([]byte, 1)) // blocks until the proxy closes
		if errors.Is(err, io.EOF) {
			close(closed)
		}
		return false
	})
	var got error
	f := &Forwarder{
		Rewrite:      func(pr *httputil.ProxyRequest, _ any) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", back.addr() },
		Client:       &Client{},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error, _ any) { got = err },
	}
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodGet, "http://a/x", nil).WithContext(ctx)
	go func() {
		require.Eventually(t, func() bool { return len(back.received()) == 1 }, 10*time.Second, time.Millisecond)
		cancel()
	}()
	f.ServeHTTP(httptest.NewRecorder(), req)
	assert.ErrorIs(t, got, context.Canceled)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream connection was not closed")
	}
}

// testClientForwarderAllocs (TestForwarderAllocs/client) pins the Client
// path's allocations for a GET
// to a backend that allocates nothing: the Forwarder's and the Client's
// together (the outbound request and the exchange are pooled).
func testClientForwarderAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector makes sync.Pool drop objects: allocation counts are checked without -race")
	}
	addr := canned.Backend(t, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
	f := &Forwarder{
		Rewrite:    func(pr *httputil.ProxyRequest, _ any) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", addr },
		Client:     &Client{},
		BufferPool: new(BufferPool),
	}
	req := httptest.NewRequest(http.MethodGet, "http://a/x", nil)
	req.Header.Set("Accept", "*/*")
	w := &nopWriter{h: http.Header{}}
	run := func() {
		clear(w.h)
		f.ServeHTTP(w, req)
	}
	run() // dials
	allocs := testing.AllocsPerRun(200, run)
	t.Logf("background context: %.1f allocations per request", allocs)
	assert.LessOrEqual(t, allocs, 2.0, "the response's fields: one string, one value slice")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req = req.WithContext(ctx)
	allocs = testing.AllocsPerRun(200, run)
	t.Logf("cancelable context: %.1f allocations per request", allocs)
	assert.LessOrEqual(t, allocs, 4.0, "and the cancellation hook (context.AfterFunc)")
}

// TestClientModifyResponseAndFallback: ModifyResponse sees the Client's
// response and may change it; an "https" upstream goes through the
// Transport even when a Client is set.
func TestClientModifyResponseAndFallback(t *testing.T) {
	back := newScripted(t, func(_ string, c net.Conn) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 201 Created\r\nX-Drop: 1\r\nX-Keep: k\r\nContent-Length: 4\r\n\r\nbody")
		return true
	})
	cf := newClientFront(t, back.addr(), nil)
	var seen *http.Response
	cf.f.ModifyResponse = func(res *http.Response) error {
		seen = res
		delete(res.Header, "X-Drop")
		res.Header.Set("X-Added", "a")
		return nil
	}
	resp, body, err := cf.get(t, "/")
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "body", body)
	assert.Empty(t, resp.Header.Get("X-Drop"))
	assert.Equal(t, "k", resp.Header.Get("X-Keep"))
	assert.Equal(t, "a", resp.Header.Get("X-Added"))
	require.NotNil(t, seen)
	assert.Equal(t, int64(4), seen.ContentLength)
	_, _, err = cf.get(t, "/")
	require.NoError(t, err)
	assert.Equal(t, int32(1), back.conns.Load(), "the body read to its end through ModifyResponse's response: reused")

	tlsBack := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "over TLS")
	}))
	t.Cleanup(tlsBack.Close)
	f := &Forwarder{
		Rewrite: func(pr *httputil.ProxyRequest, _ any) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "https", tlsBack.Listener.Addr().String()
		},
		Client:    &Client{},
		Transport: tlsBack.Client().Transport,
	}
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://a/", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "over TLS", rec.Body.String())
}

// TestClientLargeBodiesFullDuplex: bodies larger than any socket buffer go
// both ways at once through the Client, for a backend that answers while
// it reads (the request body is written by a goroutine of its own), framed
// by length and chunked; the connection is reused afterwards.
func TestClientLargeBodiesFullDuplex(t *testing.T) {
	var backConns atomic.Int32
	back := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.Copy(w, r.Body)
	}))
	back.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			backConns.Add(1)
		}
	}
	back.Start()
	t.Cleanup(back.Close)
	cf := newClientFront(t, back.Listener.Addr().String(), nil)
	cf.f.ErrorLog = log.New(tWriter{t}, "", 0)
	payload := strings.Repeat("0123456789abcdef", 1<<18) // 4 MiB
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(payload)
		if chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPost, cf.srv.URL+"/echo", body)
		resp, err := cf.srv.Client().Do(req)
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err, "chunked %v", chunked)
		assert.Equal(t, len(payload), len(got))
		assert.True(t, string(got) == payload, "the echo is the body")
	}
	assert.Equal(t, int32(1), backConns.Load(), "one connection for both")
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// Connections handed back and taken again by many requests at once: a
// connection's idle timer is set before it is listed idle, so a request
// that takes it at once stops a timer that exists (a -race stress test;
// the timer was set after the listing, racing the taker's Stop).
func TestClientReuseUnderConcurrency(t *testing.T) {
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(back.Close)
	cf := newClientFront(t, back.Listener.Addr().String(), nil)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			// A connection of its own to the front each time: every
			// request runs on a new server goroutine, so connections to
			// the backend go from goroutine to goroutine.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			for range 30 {
				resp, err := client.Get(cf.srv.URL + "/")
				if !assert.NoError(t, err) {
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				assert.Equal(t, "ok", string(body))
			}
		})
	}
	wg.Wait()
}
