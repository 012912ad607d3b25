package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/proxy"
)

// These tests run over real loopback connections, in both modes: the
// application in process, and behind the sidecar proxy on a server of its
// own, forwarding through its Transport alone or with a proxy.Client for
// HTTP/1. They wait for events, never for time.

var (
	modes    = []string{"in-process", "sidecar", "sidecar-client"}
	sidecars = []string{"sidecar", "sidecar-client"}
)

func startServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.Protocols = ServerProtocols()
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// stack serves app through a queue Handler in the given mode and returns
// the handler and the address clients should use.
func stack(t *testing.T, mode string, app http.Handler, c Config) (*Handler, string) {
	t.Helper()
	var h *Handler
	var err error
	switch mode {
	case "in-process":
		h, err = New(app, c)
	case "sidecar":
		appSrv := startServer(t, app)
		h, err = NewSidecar(SidecarConfig{Config: c, Target: appSrv.Listener.Addr().String()})
	case "sidecar-client":
		appSrv := startServer(t, app)
		client := new(proxy.Client)
		t.Cleanup(client.CloseIdleConnections)
		h, err = NewSidecar(SidecarConfig{Config: c, Target: appSrv.Listener.Addr().String(), Client: client})
	}
	require.NoError(t, err)
	return h, startServer(t, h).Listener.Addr().String()
}

// settled waits for the handler's books to reach zero after a connection
// closed on the other side (the close happens on a goroutine the test does
// not own).
func settled(t *testing.T, h *Handler) {
	t.Helper()
	require.Eventually(t, func() bool {
		return h.InFlight() == 0 && (h.Breaker() == nil || h.Breaker().Pending() == 0)
	}, 10*time.Second, time.Millisecond)
}

func TestStreamWebsocketUpgrade(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			for _, timed := range []bool{false, true} {
				c := Config{ContainerConcurrency: 1}
				if timed {
					c.TotalTimeout = time.Hour
				}
				h, addr := stack(t, mode, upgradeApp, c)
				conn, err := net.Dial("tcp", addr)
				require.NoError(t, err)
				_, err = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
				require.NoError(t, err)
				br := readUpgrade(t, conn)
				for i := range 3 {
					echo(t, conn, br, fmt.Sprintf("message %d", i))
				}
				assert.Equal(t, 1, h.Hijacked(), "timed=%v", timed)
				assert.Equal(t, 1, h.Breaker().InFlight(), "the websocket holds its slot")
				rep := h.Recorder().Report(time.Now())
				assert.Equal(t, uint64(1), rep.Requests)

				require.NoError(t, conn.Close())
				settled(t, h)
				total, _ := h.Recorder().InFlight()
				assert.Zero(t, total)
			}
		})
	}
}

func TestStreamServerSentEvents(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			for _, timed := range []bool{false, true} {
				next := make(chan struct{})
				app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/event-stream")
					for i := range 3 {
						if i > 0 {
							<-next // the client has the previous event: it was flushed
						}
						fmt.Fprintf(w, "data: %d\n\n", i)
						w.(http.Flusher).Flush()
					}
				})
				c := Config{ContainerConcurrency: 2}
				if timed {
					c.IdleTimeout = time.Hour
				}
				h, addr := stack(t, mode, app, c)
				resp, err := http.Get("http://" + addr + "/events")
				require.NoError(t, err)
				assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
				br := bufio.NewReader(resp.Body)
				for i := range 3 {
					line, err := br.ReadString('\n')
					require.NoError(t, err)
					assert.Equal(t, fmt.Sprintf("data: %d\n", i), line)
					_, _ = br.ReadString('\n')
					if i < 2 {
						assert.Equal(t, 1, h.Breaker().InFlight(), "the stream holds its slot")
						next <- struct{}{}
					}
				}
				_, err = br.ReadString('\n')
				assert.ErrorIs(t, err, io.EOF)
				resp.Body.Close()
				settled(t, h)
			}
		})
	}
}

// grpcLikeApp echoes each line of the request body as it arrives, over
// HTTP/2, and ends with a trailer, as a gRPC bidirectional stream does.
var grpcLikeApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		http.Error(w, "want HTTP/2, got "+r.Proto, http.StatusHTTPVersionNotSupported)
		return
	}
	w.Header().Set("Trailer", "Grpc-Status")
	w.Header().Set("Content-Type", "application/grpc")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	br := bufio.NewReader(r.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		_, _ = io.WriteString(w, "echo:"+line)
		w.(http.Flusher).Flush()
	}
	w.Header().Set("Grpc-Status", "0")
})

func h2cClient() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}}
}

func TestStreamGRPCOverH2C(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			for _, timed := range []bool{false, true} {
				c := Config{ContainerConcurrency: 1}
				if timed {
					c.TotalTimeout = time.Hour
				}
				h, addr := stack(t, mode, grpcLikeApp, c)
				pr, pw := io.Pipe()
				req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/echo.Echo/Stream", pr)
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/grpc")
				req.Header.Set("Te", "trailers")
				resp, err := h2cClient().Do(req)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, 2, resp.ProtoMajor)
				br := bufio.NewReader(resp.Body)
				for _, msg := range []string{"a", "b", "c"} {
					_, err := io.WriteString(pw, msg+"\n")
					require.NoError(t, err)
					line, err := br.ReadString('\n')
					require.NoError(t, err)
					assert.Equal(t, "echo:"+msg+"\n", line)
					assert.Equal(t, 1, h.Breaker().InFlight(), "the stream holds its slot")
				}
				require.NoError(t, pw.Close())
				rest, err := io.ReadAll(br)
				require.NoError(t, err)
				assert.Empty(t, rest)
				assert.Equal(t, "0", resp.Trailer.Get("Grpc-Status"), "timed=%v", timed)
				resp.Body.Close()
				settled(t, h)
			}
		})
	}
}

// TestResponseControllerThroughWriter: the writer passes on what
// http.ResponseController needs, in process.
func TestResponseControllerThroughWriter(t *testing.T) {
	for _, timed := range []bool{false, true} {
		errs := make(chan []error, 1)
		app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			e1 := rc.EnableFullDuplex()
			e2 := rc.SetWriteDeadline(time.Now().Add(time.Hour))
			e3 := rc.SetReadDeadline(time.Now().Add(time.Hour))
			e4 := rc.Flush()
			e5 := w.(http.Pusher).Push("/x", nil)
			errs <- []error{e1, e2, e3, e4, e5}
		})
		c := Config{}
		if timed {
			c.TotalTimeout = time.Hour
		}
		_, addr := stack(t, "in-process", app, c)
		resp, err := http.Get("http://" + addr)
		require.NoError(t, err)
		resp.Body.Close()
		got := <-errs
		for _, err := range got[:4] {
			assert.NoError(t, err, "timed=%v", timed)
		}
		assert.ErrorIs(t, got[4], http.ErrNotSupported, "no push over HTTP/1")
	}
}

func TestHijackOverHTTP2NotSupported(t *testing.T) {
	errc := make(chan error, 1)
	_, addr := stack(t, "in-process", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _, err := w.(http.Hijacker).Hijack()
		errc <- err
	}), Config{})
	resp, err := h2cClient().Get("http://" + addr)
	require.NoError(t, err)
	resp.Body.Close()
	assert.ErrorIs(t, <-errc, http.ErrNotSupported)
}

// TestReadFromKeepsServerPath: a file served with io.Copy reaches the
// client whole in both writer modes.
func TestReadFromKeepsServerPath(t *testing.T) {
	body := strings.Repeat("0123456789", 10000)
	for _, timed := range []bool{false, true} {
		c := Config{}
		if timed {
			c.IdleTimeout = time.Hour
		}
		_, addr := stack(t, "in-process", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.Copy(w, strings.NewReader(body))
			assert.NoError(t, err)
		}), c)
		resp, err := http.Get("http://" + addr)
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, body, string(got))
	}
}

func TestSidecarForwarding(t *testing.T) {
	for _, mode := range sidecars {
		t.Run(mode, func(t *testing.T) { testSidecarForwarding(t, mode) })
	}
}

func testSidecarForwarding(t *testing.T, mode string) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Forwarded-For-Seen", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Proto", r.Proto)
		_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI())
	})
	h, addr := stack(t, mode, app, Config{ContainerConcurrency: 4})
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/a/b?c=d", nil)
	require.NoError(t, err)
	req.Host = "hello.default.example.com"
	req.Header.Set(ProxyHeader, ProxyHeaderValue)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "PUT /a/b?c=d", string(body))
	assert.Equal(t, "hello.default.example.com", resp.Header.Get("X-Host"), "the application sees the client's Host")
	assert.Equal(t, "127.0.0.1", resp.Header.Get("X-Forwarded-For-Seen"))
	assert.Equal(t, "HTTP/1.1", resp.Header.Get("X-Proto"))
	rep := h.Recorder().Report(time.Now())
	assert.Equal(t, uint64(1), rep.ProxiedRequests)
}

// TestSidecarKeepsTheClientOfEarlierHops: a gateway or activator in front
// recorded the client in X-Forwarded-For and Forwarded; the application
// still sees it, with this hop appended to X-Forwarded-For.
func TestSidecarKeepsTheClientOfEarlierHops(t *testing.T) {
	for _, mode := range sidecars {
		t.Run(mode, func(t *testing.T) { testSidecarKeepsTheClientOfEarlierHops(t, mode) })
	}
}

func testSidecarKeepsTheClientOfEarlierHops(t *testing.T, mode string) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Forwarded-For-Seen", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("Forwarded-Seen", r.Header.Get("Forwarded"))
	})
	_, addr := stack(t, mode, app, Config{})
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	require.NoError(t, err)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("Forwarded", "for=203.0.113.7;proto=http")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "203.0.113.7, 127.0.0.1", resp.Header.Get("X-Forwarded-For-Seen"))
	assert.Equal(t, "for=203.0.113.7;proto=http", resp.Header.Get("Forwarded-Seen"))
}

func TestSidecarApplicationDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	h, err := NewSidecar(SidecarConfig{Target: addr, Probe: AppProbeConfig{MaxWait: time.Nanosecond}})
	require.NoError(t, err)
	w := serve(h, get())
	assert.Equal(t, http.StatusBadGateway, w.Code)
	assert.Contains(t, w.Body.String(), "queue: application at "+addr)
	err = h.CheckReady(context.Background())
	assert.ErrorContains(t, err, "queue: not ready: queue: application at "+addr+" not ready after 1ns (1 attempts)")
	var opErr *net.OpError
	assert.True(t, errors.As(err, &opErr), "the last attempt's error is kept")
}

func TestEarlyHintsPassThrough(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("X-Final", "yes")
		_, _ = io.WriteString(w, "page")
	})
	for _, mode := range modes {
		for _, timed := range []bool{false, true} {
			c := Config{}
			if timed {
				c.ResponseStartTimeout = time.Hour
			}
			_, addr := stack(t, mode, app, c)
			var hints []textproto.MIMEHeader
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				hints = append(hints, h)
				return nil
			}}
			req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, "http://"+addr, nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, "page", string(body))
			assert.Equal(t, "yes", resp.Header.Get("X-Final"), "%s timed=%v", mode, timed)
			require.Len(t, hints, 1, "%s timed=%v", mode, timed)
			assert.Equal(t, "</style.css>; rel=preload", hints[0].Get("Link"))
		}
	}
}
