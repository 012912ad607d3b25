package queue

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/internal/race"
)

// These tests pin what the timed path promises since the application runs
// on the ServeHTTP goroutine: the client has the timeout's whole answer at
// the deadline although ServeHTTP returns only with the application, over
// HTTP/1 and HTTP/2 through a real net/http server (on in-memory pipes, so
// that they run in a testing/synctest bubble), and no goroutine is started
// per request.

// pipeListener is a net.Listener whose connections are net.Pipe ends:
// blocking on one is durable in a synctest bubble, unlike on a socket.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	dials  atomic.Int32
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	l.dials.Add(1)
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// pipeServer serves h on a real http.Server over pipes and returns a client
// for it, speaking HTTP/1.1 or (h2c) HTTP/2. Both are closed when the test
// ends.
func pipeServer(t *testing.T, h http.Handler, http2 bool) (*http.Client, *pipeListener) {
	t.Helper()
	l := newPipeListener()
	srv := &http.Server{Handler: h, Protocols: ServerProtocols()}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	tr := &http.Transport{DialContext: l.dial}
	if http2 {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = srv.Close()
		<-served
	})
	return &http.Client{Transport: tr}, l
}

const totalMsg2s = "queue: request timeout: the request ran longer than the total timeout (2s)\n"

// TestTimedAnswerOverHTTP1: an application that ignores its context keeps
// running past the total timeout, and its client has the whole 504 at the
// deadline all the same: status, Content-Length and body, and Connection:
// close so that it does not send another request on a connection whose
// handler is still busy. The application keeps its slot until it returns.
func TestTimedAnswerOverHTTP1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		lateWrite := make(chan error, 1)
		h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
			_, err := io.WriteString(w, "late")
			lateWrite <- err
		}), Config{ContainerConcurrency: 1, TotalTimeout: 2 * time.Second})
		client, _ := pipeServer(t, h, false)

		start := time.Now()
		resp, err := client.Get("http://app.example/slow")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err, "the body ends at its Content-Length")
		resp.Body.Close()
		assert.Equal(t, 2*time.Second, time.Since(start), "answered at the deadline")
		assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
		assert.Equal(t, totalMsg2s, string(body))
		assert.Equal(t, int64(len(totalMsg2s)), resp.ContentLength)
		assert.True(t, resp.Close, "Connection: close")
		assert.Equal(t, "HTTP/1.1", resp.Proto)

		time.Sleep(time.Minute)
		assert.Equal(t, 1, h.InFlight(), "the application still runs")
		assert.Equal(t, 1, h.Breaker().InFlight(), "and keeps its slot")
		close(release)
		assert.ErrorIs(t, <-lateWrite, http.ErrHandlerTimeout)
		synctest.Wait()
		assert.Equal(t, 0, h.InFlight())
		assert.Equal(t, 0, h.Breaker().InFlight())
	})
}

// TestTimedAnswerOverHTTP2: over HTTP/2 the client gets the 504's headers
// and its whole body at the deadline; the stream ends when the application
// returns — at once for one that listens to its context, later for one
// that does not. The connection goes on serving other streams meanwhile:
// the 504 does not shut it down.
func TestTimedAnswerOverHTTP2(t *testing.T) {
	for _, listens := range []bool{true, false} {
		t.Run(map[bool]string{true: "the application listens to its context", false: "the application ignores its context"}[listens], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const runsFor = time.Minute // an application that ignores its context
				h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/ok" {
						_, _ = io.WriteString(w, "ok")
						return
					}
					if listens {
						<-r.Context().Done()
						return
					}
					time.Sleep(runsFor)
				}), Config{TotalTimeout: 2 * time.Second})
				client, l := pipeServer(t, h, true)

				start := time.Now()
				resp, err := client.Get("http://app.example/slow")
				require.NoError(t, err)
				assert.Equal(t, 2*time.Second, time.Since(start))
				assert.Equal(t, "HTTP/2.0", resp.Proto)
				assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
				require.Equal(t, int64(len(totalMsg2s)), resp.ContentLength)
				body := make([]byte, resp.ContentLength)
				_, err = io.ReadFull(resp.Body, body)
				require.NoError(t, err)
				assert.Equal(t, totalMsg2s, string(body))
				assert.Equal(t, 2*time.Second, time.Since(start), "the whole body at the deadline")

				// Another stream on the same connection.
				var reused bool
				trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
				req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, "http://app.example/ok", nil)
				require.NoError(t, err)
				ok, err := client.Do(req)
				require.NoError(t, err)
				okBody, _ := io.ReadAll(ok.Body)
				ok.Body.Close()
				assert.Equal(t, "ok", string(okBody))
				assert.True(t, reused, "the connection serves other streams")
				assert.Equal(t, int32(1), l.dials.Load())

				// The stream ends with the application.
				rest, err := io.ReadAll(resp.Body)
				assert.NoError(t, err)
				assert.Empty(t, rest)
				resp.Body.Close()
				want := 2 * time.Second
				if !listens {
					want = runsFor
				}
				assert.Equal(t, want, time.Since(start), "the stream ends when ServeHTTP returns")
				synctest.Wait()
				assert.Equal(t, 0, h.InFlight())
			})
		})
	}
}

// goroutinesCreated reads the runtime's count of goroutines created, or
// reports false where the runtime does not keep it (before Go 1.26).
func goroutinesCreated() (uint64, bool) {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0, false
	}
	return s[0].Value.Uint64(), true
}

// TestTimedNoGoroutinePerRequest: a timed request runs its application on
// the ServeHTTP goroutine and starts none, whether or not the application
// waits on its context; and the end of the request unregisters the
// context from its parent, so that a server canceling the parent after
// ServeHTTP returns (as net/http does after every request) starts none
// either.
func TestTimedNoGoroutinePerRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var outside, inside int
		h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inside = runtime.NumGoroutine()
			select {
			case <-r.Context().Done():
				t.Error("canceled")
			default:
			}
			_, _ = io.WriteString(w, "ok")
		}), Config{ContainerConcurrency: 10, TotalTimeout: time.Minute, ResponseStartTimeout: time.Minute, IdleTimeout: time.Minute})
		const n = 1000
		w := &benchWriter{h: make(http.Header)}
		serveOne := func() {
			parent, cancel := context.WithCancel(context.Background())
			h.ServeHTTP(w, httptest.NewRequestWithContext(parent, http.MethodGet, "/", nil))
			cancel()
		}
		serveOne() // the pool's first exchange, the timer: made once
		synctest.Wait()
		runtime.GC() // the collector's workers start with its first cycle
		before, counted := goroutinesCreated()
		for i := range n {
			outside = runtime.NumGoroutine()
			serveOne()
			require.Equal(t, outside, inside, "request %d: the application runs on the ServeHTTP goroutine", i)
		}
		synctest.Wait()
		if !counted {
			t.Log("runtime/metrics has no /sched/goroutines-created before Go 1.26: checked the application's goroutine only")
			return
		}
		after, _ := goroutinesCreated()
		assert.Zero(t, after-before, "goroutines created for %d timed requests", n)
	})
}

// TestTimedTimeoutRacesFirstWrite: the application writes its first byte at
// the instant the total timeout passes. Whichever takes the exchange's lock
// first, the client gets one coherent answer: the whole 504 with the
// application's write failed, or the application's 200 and body with the
// timeout's message appended; never a mix, never both statuses.
func TestTimedTimeoutRacesFirstWrite(t *testing.T) {
	const msg = "queue: request timeout: the request ran longer than the total timeout (1s)\n"
	outcomes := map[string]int{}
	for range 200 {
		synctest.Test(t, func(t *testing.T) {
			var writeErr error
			h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(time.Second)
				_, writeErr = io.WriteString(w, "hello ")
				<-r.Context().Done()
			}), Config{TotalTimeout: time.Second})
			w, returned := serveAsync(h, get())
			<-returned
			a := w.answer()
			switch a.code {
			case http.StatusGatewayTimeout:
				outcomes["504"]++
				assertComplete504(t, a, msg)
				assert.ErrorIs(t, writeErr, http.ErrHandlerTimeout)
			case http.StatusOK:
				outcomes["200+message"]++
				assert.Equal(t, "hello "+msg, a.body)
				assert.NoError(t, writeErr)
				assert.Empty(t, a.header.Get("Connection"))
			default:
				t.Fatalf("status %d", a.code)
			}
			assert.Equal(t, 0, h.InFlight())
		})
	}
	t.Log(outcomes)
}

// TestTimedPanicAfterTimeoutIsLogged: after a timeout has answered, a panic
// of the application is logged and the response ends as answered;
// http.ErrAbortHandler, a proxy's reaction to its canceled upstream, is not
// logged. Before a timeout, a panic passes through to the server.
func TestTimedPanicAfterTimeoutIsLogged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		value  any
		logged bool
	}{
		{"a bug", "late", true},
		{"an abort", http.ErrAbortHandler, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs bytes.Buffer
				h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					<-r.Context().Done()
					panic(tc.value)
				}), Config{ContainerConcurrency: 1, TotalTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
				w := serve(h, get())
				assert.Equal(t, http.StatusGatewayTimeout, w.Code)
				assert.Equal(t, "queue: request timeout: the request ran longer than the total timeout (1s)\n", w.Body.String())
				assert.Equal(t, 0, h.Breaker().InFlight())
				if tc.logged {
					assert.Contains(t, logs.String(), "application panicked after its request timed out")
					assert.Contains(t, logs.String(), "panic=late")
				} else {
					assert.Empty(t, logs.String())
				}
			})
		})
	}
}

// TestTimedContextDoneAllocs pins what an application that waits on its
// context adds to the request's share of a slab: the context package's
// cancelable context under the parent, its cancel function and its done
// channel, made when the application first asks for Done. (Behind a real
// server, the parent's map of children comes on top, made once per parent,
// which net/http makes per request.)
func TestTimedContextDoneAllocs(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector makes sync.Pool drop objects: allocation counts are checked without -race")
	}
	h, err := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		default:
		}
	}), Config{ContainerConcurrency: 1000, TotalTimeout: 5 * time.Minute})
	require.NoError(t, err)
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(parent, http.MethodGet, "http://example.com/", nil)
	w := &benchWriter{h: make(http.Header)}
	h.ServeHTTP(w, req) // the parent's map of children, made once per parent
	// 1,600 requests: 3 each, and 100 slabs (TestTimedAllocs).
	allocs := testing.AllocsPerRun(1, func() {
		for range 1600 {
			h.ServeHTTP(w, req)
		}
	})
	// A collection during the run may empty the exchange pool: a few
	// exchanges made anew on top.
	assert.GreaterOrEqual(t, allocs, 3.0*1600+100)
	assert.LessOrEqual(t, allocs, 3.0*1600+110)
}

// TestTimedSidecarCancelsUpstream: behind the sidecar, a timeout cancels
// the proxied request, so the proxy returns at once and frees the slot; the
// client has the whole 504, or the message appended to a response the
// application had started, ended cleanly. (Real sockets: the assertions
// wait for events, not for time.)
func TestTimedSidecarCancelsUpstream(t *testing.T) {
	for _, started := range []bool{false, true} {
		t.Run(map[bool]string{false: "before the response", true: "after the response started"}[started], func(t *testing.T) {
			canceled := make(chan struct{})
			app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if started {
					_, _ = io.WriteString(w, "partial ")
					w.(http.Flusher).Flush()
				}
				<-r.Context().Done()
				close(canceled)
			})
			h, addr := stack(t, "sidecar", app, Config{ContainerConcurrency: 1, IdleTimeout: 50 * time.Millisecond})
			resp, err := http.Get("http://" + addr)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err, "the response ends cleanly")
			const msg = "queue: request timeout: nothing written for the idle timeout (50ms)\n"
			if started {
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Equal(t, "partial "+msg, string(body))
			} else {
				assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
				assert.Equal(t, msg, string(body))
				assert.True(t, resp.Close)
			}
			<-canceled
			settled(t, h)
		})
	}
}
