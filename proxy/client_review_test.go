package proxy

import (
	"bufio"
	"context"
	"io"
	"math/rand/v2"
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
)

// TestClientStaleRetryNotReplayable: a bodiless request that is not
// replayable (POST, PATCH, PUT, DELETE... without an Idempotency-Key) and
// was written in full on a reused connection the backend then closed
// unanswered is not sent again: the backend may have acted on it. GET,
// HEAD, OPTIONS and TRACE, and requests carrying Idempotency-Key or
// X-Idempotency-Key, are (as http.Transport's rule).
func TestClientStaleRetryNotReplayable(t *testing.T) {
	tests := []struct {
		method string
		header string
		resent bool
	}{
		{"POST", "", false},
		{"PATCH", "", false},
		{"DELETE", "", false},
		{"GET", "", true},
		{"HEAD", "", true},
		{"OPTIONS", "", true},
		{"POST", "Idempotency-Key", true},
		{"POST", "X-Idempotency-Key", true},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.header, func(t *testing.T) {
			var n atomic.Int32
			back := newScripted(t, func(head string, c net.Conn) bool {
				if n.Add(1) == 2 {
					return false // read in full, then closed unanswered (the backend crashed on it)
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				return true
			})
			cf := newClientFront(t, back.addr(), nil)
			_, _, err := cf.get(t, "/warm")
			require.NoError(t, err)
			req, _ := http.NewRequest(tc.method, cf.srv.URL+"/act", nil)
			if tc.header != "" {
				req.Header.Set(tc.header, "k1")
			}
			resp, err := cf.srv.Client().Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			var acts int
			for _, h := range back.received() {
				if strings.HasPrefix(h, tc.method+" /act ") {
					acts++
				}
			}
			if tc.resent {
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, 2, acts, "sent once more on a new connection")
			} else {
				assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
				assert.Equal(t, 1, acts, "a non-idempotent request is never sent twice")
			}
		})
	}
}

// TestClientRequestTargetInjection: a request target that Rewrite set with
// control characters or spaces (RawQuery and Opaque are written as they
// are) is refused before a byte reaches the backend: it would split the
// request line or inject fields.
func TestClientRequestTargetInjection(t *testing.T) {
	back := newScripted(t, func(_ string, c net.Conn) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	for _, tc := range []struct {
		name string
		set  func(out *http.Request)
	}{
		{"CRLF in RawQuery", func(out *http.Request) { out.URL.RawQuery = "a=1 HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /admin" }},
		{"space in RawQuery", func(out *http.Request) { out.URL.RawQuery = "a=1 HTTP/1.0" }},
		{"NUL in RawQuery", func(out *http.Request) { out.URL.RawQuery = "a=\x00" }},
		{"LF in Opaque", func(out *http.Request) { out.URL.Opaque = "/x\nX-Injected: 1" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{}
			errs := make(chan error, 1)
			f := &Forwarder{
				Rewrite: func(pr *httputil.ProxyRequest, _ any) {
					pr.Out.URL.Scheme, pr.Out.URL.Host = "http", back.addr()
					tc.set(pr.Out)
				},
				Client: c,
				ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error, _ any) {
					errs <- err
					w.WriteHeader(http.StatusBadGateway)
				},
			}
			t.Cleanup(c.CloseIdleConnections)
			w := httptest.NewRecorder()
			f.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			assert.Equal(t, http.StatusBadGateway, w.Code)
			select {
			case err := <-errs:
				assert.ErrorContains(t, err, "request target")
			default:
				t.Error("no error: the request was sent")
			}
		})
	}
	assert.Empty(t, back.received(), "nothing reached the backend")
}

// TestClientHostsBounded: an address whose connections are all closed
// leaves no entry behind in the Client's map (replicas come and go, each
// on a new address), whether pooling is off or the connection was not
// reusable.
func TestClientHostsBounded(t *testing.T) {
	const keep = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	for _, tc := range []struct {
		name      string
		max       int
		responses []string
	}{
		{"pooling off", -1, []string{keep}},
		{"Connection: close", 0, []string{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"}},
		{"broken response", 0, []string{"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nok"}},
		{"reused, then closed", 0, []string{keep, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"}},
		{"reused, then broken", 0, []string{keep, "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{MaxIdleConnsPerHost: tc.max}
			for range 3 {
				var n atomic.Int32
				back := newScripted(t, func(_ string, nc net.Conn) bool {
					_, _ = io.WriteString(nc, tc.responses[int(n.Add(1)-1)%len(tc.responses)])
					return true
				})
				cf := newClientFront(t, back.addr(), c)
				for range tc.responses {
					_, _, err := cf.get(t, "/")
					require.NoError(t, err)
				}
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			assert.Empty(t, c.hosts)
		})
	}
}

// TestClientStress: many concurrent requests over few connections, some
// cancelled at random points (before the request is written, while the
// response head or body is awaited), some with bodies: every response that
// completes is the request's own (the backend echoes the path and body),
// and the idle pool stays within its bound. Run it with -race.
func TestClientStress(t *testing.T) {
	back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if rand.IntN(4) == 0 {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) // let cancellations land mid-exchange
		}
		w.Header().Set("X-Path", r.URL.Path)
		if rand.IntN(2) == 0 {
			w.(http.Flusher).Flush() // chunked
		}
		_, _ = io.WriteString(w, r.URL.Path+"|")
		_, _ = w.Write(body)
	}))
	t.Cleanup(back.Close)
	c := &Client{MaxIdleConnsPerHost: 4}
	f := &Forwarder{
		Rewrite: func(pr *httputil.ProxyRequest, _ any) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", back.Listener.Addr().String()
		},
		Client:       c,
		BufferPool:   new(BufferPool),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error, _ any) { w.WriteHeader(http.StatusBadGateway) },
	}
	t.Cleanup(c.CloseIdleConnections)
	var ok, cancelled atomic.Int32
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 60 {
				path := "/g" + string(rune('a'+g)) + "/" + strings.Repeat("x", i%7)
				var body string
				method := "GET"
				if i%3 == 0 {
					method, body = "POST", strings.Repeat(string(rune('A'+g)), 1+(i*997)%(80<<10))
				}
				ctx, cancel := context.WithCancel(context.Background())
				if rand.IntN(5) == 0 {
					time.AfterFunc(time.Duration(rand.IntN(1500))*time.Microsecond, cancel)
				}
				var rb io.Reader
				if body != "" {
					rb = strings.NewReader(body)
				}
				r := httptest.NewRequestWithContext(ctx, method, path, rb)
				w := httptest.NewRecorder()
				func() {
					defer func() {
						if p := recover(); p != nil && p != http.ErrAbortHandler {
							panic(p)
						}
					}()
					f.Forward(w, r, ctx, nil)
				}()
				if ctx.Err() == nil && w.Code == http.StatusOK {
					ok.Add(1)
					assert.Equal(t, path+"|"+body, w.Body.String())
					assert.Equal(t, path, w.Header().Get("X-Path"))
				} else if ctx.Err() == nil {
					t.Errorf("%s %s: status %d without a cancellation", method, path, w.Code)
				} else {
					cancelled.Add(1)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	t.Logf("%d completed, %d cancelled", ok.Load(), cancelled.Load())
	assert.Positive(t, ok.Load())
	c.mu.Lock()
	for addr, h := range c.hosts {
		assert.LessOrEqual(t, len(h.idle), 4, addr)
	}
	c.mu.Unlock()
}

// TestClientAgainstTransport runs the same broken or odd backends against
// a Forwarder over a Client and one over an http.Transport. Where they
// differ, the difference is deliberate and in the package doc: the Client
// is the stricter (RFC 9112 lets a proxy reject these, and they are the
// stuff of response smuggling).
func TestClientAgainstTransport(t *testing.T) {
	tests := []struct {
		name, response   string
		client, transprt string // "502", "200 <body>", or "aborted"
	}{
		{"Content-Length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "502", "200 abc"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok", "502", "200 ok"},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", "502", "200 ok"},
		{"HTTP/1.2", "HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", "502", "200 ok"},
		{"gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "502", "502"},
		{"gzip (read to close)", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", "502", "502"},
		{"identity", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nabc", "502", "502"},
		{"NUL in a value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", "502", "502"},
		{"empty field name", "HTTP/1.1 200 OK\r\n: empty\r\nContent-Length: 2\r\n\r\nok", "502", "502"},
		{"status 999", "HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok", "999 ok", "999 ok"},
		{"odd bytes in the reason", "HTTP/1.1 200 \x00\x7f\xff\r\nContent-Length: 2\r\n\r\nok", "200 ok", "200 ok"},
		{"chunk size with leading zeros", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000002\r\nok\r\n0\r\n\r\n", "200 ok", "200 ok"},
		{"chunk extension", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a=\"b\"\r\nok\r\n0\r\n\r\n", "200 ok", "200 ok"},
		{"chunk data without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX0\r\n\r\n", "aborted", "aborted"},
		{"11 103s", strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 11) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "502", "502"},
		{"unasked 100", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "200 ok", "200 ok"},
		{"HTTP/1.0 read to close", "HTTP/1.0 200 OK\r\n\r\nok", "200 ok", "200 ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, viaClient := range []bool{true, false} {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				t.Cleanup(func() { ln.Close() })
				go func() {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					defer c.Close()
					if _, err := readRawRequest(bufio.NewReader(c)); err == nil {
						_, _ = io.WriteString(c, tc.response)
					}
				}()
				f := &Forwarder{
					Rewrite: func(pr *httputil.ProxyRequest, _ any) {
						pr.Out.URL.Scheme, pr.Out.URL.Host = "http", ln.Addr().String()
					},
					ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error, _ any) { w.WriteHeader(http.StatusBadGateway) },
				}
				want := tc.transprt
				if viaClient {
					f.Client, want = &Client{}, tc.client
				} else {
					tr := &http.Transport{}
					t.Cleanup(tr.CloseIdleConnections)
					f.Transport = tr
				}
				srv := httptest.NewServer(f)
				t.Cleanup(srv.Close)
				got := "aborted"
				if resp, err := srv.Client().Get(srv.URL); err == nil {
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					switch {
					case err != nil:
					case resp.StatusCode == http.StatusBadGateway:
						got = "502"
					default:
						got = strconv.Itoa(resp.StatusCode) + " " + string(b)
					}
				}
				assert.Equal(t, want, got, "client=%v", viaClient)
			}
		})
	}
}

// TestClientBodyLongerThanContentLength: a Rewrite that sets a body longer
// than its ContentLength gets an error, and the backend never sees a
// complete request (the first ContentLength bytes framed as the whole
// body); a body of exactly that length goes through.
func TestClientBodyLongerThanContentLength(t *testing.T) {
	for _, size := range []int{3, 100 << 10} {
		back := newScripted(t, func(_ string, c net.Conn) bool {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
		for _, extra := range []int{1, 0} {
			c := &Client{}
			t.Cleanup(c.CloseIdleConnections)
			errs := make(chan error, 1)
			f := &Forwarder{
				Rewrite: func(pr *httputil.ProxyRequest, _ any) {
					pr.Out.URL.Scheme, pr.Out.URL.Host = "http", back.addr()
					pr.Out.Body = io.NopCloser(strings.NewReader(strings.Repeat("a", size+extra)))
					pr.Out.ContentLength = int64(size)
				},
				Client: c,
				ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error, _ any) {
					errs <- err
					w.WriteHeader(http.StatusBadGateway)
				},
			}
			w := httptest.NewRecorder()
			f.ServeHTTP(w, httptest.NewRequest("POST", "/", strings.NewReader("x")))
			if extra > 0 {
				assert.Equal(t, http.StatusBadGateway, w.Code, "size %d", size)
				select {
				case err := <-errs:
					assert.ErrorContains(t, err, "longer than its ContentLength", "size %d", size)
				default:
					t.Errorf("size %d: no error", size)
				}
				assert.Empty(t, back.received(), "size %d: the backend got a complete request", size)
			} else {
				assert.Equal(t, http.StatusOK, w.Code, "size %d", size)
				require.Len(t, back.received(), 1)
			}
		}
	}
}

// TestClientConnectNotReused: a 2xx to CONNECT makes the connection a
// tunnel (RFC 9112 section 6.3), whatever its Content-Length says: what
// follows is read to the close and passed on, never taken for the next
// response, and the connection is no other request's.
func TestClientConnectNotReused(t *testing.T) {
	back := newScripted(t, func(head string, c net.Conn) bool {
		if strings.HasPrefix(head, "CONNECT ") {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\ntunnel bytes")
			return false
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	cf := newClientFront(t, back.addr(), nil)
	w := httptest.NewRecorder()
	cf.f.ServeHTTP(w, httptest.NewRequest("CONNECT", "/", nil))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "tunnel bytes", w.Body.String())
	cf.client.mu.Lock()
	assert.Empty(t, cf.client.hosts, "not pooled")
	cf.client.mu.Unlock()
}

// TestClient1xxNotToHTTP10: informational responses are not passed on to
// an HTTP/1.0 client (RFC 9110 section 15.2: a server must not send it
// one), on the Client's path and the Transport's.
func TestClient1xxNotToHTTP10(t *testing.T) {
	back := newScripted(t, func(_ string, c net.Conn) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	for _, viaClient := range []bool{true, false} {
		cf := newClientFront(t, back.addr(), nil)
		if !viaClient {
			cf.f.Client = nil
		}
		for _, proto := range []string{"HTTP/1.0", "HTTP/1.1"} {
			c, err := net.Dial("tcp", cf.srv.Listener.Addr().String())
			require.NoError(t, err)
			_, _ = io.WriteString(c, "GET / "+proto+"\r\nHost: h\r\n\r\n")
			first, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			require.NoError(t, err)
			if proto == "HTTP/1.0" {
				assert.Contains(t, first, " 200 ", "client=%v %s", viaClient, proto)
			} else {
				assert.Contains(t, first, " 103 ", "client=%v %s", viaClient, proto)
			}
		}
	}
}

// TestClientPooledExchangeBounded: a response of many tiny fields (within
// MaxResponseHeaderBytes) does not leave its pooled exchange holding their
// index: what the pool keeps is bounded as the line and scratch buffers.
func TestClientPooledExchangeBounded(t *testing.T) {
	many := "HTTP/1.1 200 OK\r\n" + strings.Repeat("A: 1\r\nB: 2\r\n", 20000) + "Connection: a, b\r\n" +
		strings.Repeat("Trailer: x\r\n", 200) + "Content-Length: 2\r\n\r\nok"
	back := newScripted(t, func(_ string, c net.Conn) bool {
		_, _ = io.WriteString(c, many)
		return true
	})
	cf := newClientFront(t, back.addr(), nil)
	var e *exchange
	cf.f.ModifyResponse = func(r *http.Response) error {
		e = r.Body.(*exchange)
		return nil
	}
	w := httptest.NewRecorder()
	cf.f.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	require.Equal(t, "ok", w.Body.String())
	require.NotNil(t, e)
	// The exchange has been reset and pooled (by this goroutine: nothing
	// else runs a request to take it).
	assert.LessOrEqual(t, cap(e.fields), 1024)
	assert.LessOrEqual(t, cap(e.announced), 64)
	assert.LessOrEqual(t, cap(e.scratch), 64<<10)
}
