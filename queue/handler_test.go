package queue

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustNew(t testing.TB, app http.Handler, c Config) *Handler {
	t.Helper()
	h, err := New(app, c)
	require.NoError(t, err)
	return h
}

// serve sends one request through h in memory.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func get(header ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://app.example/path", nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

func TestHandlerPassesThrough(t *testing.T) {
	for _, timed := range []bool{false, true} {
		t.Run(map[bool]string{false: "untimed", true: "timed"}[timed], func(t *testing.T) {
			c := Config{ContainerConcurrency: 2}
			if timed {
				c.TotalTimeout = time.Hour
			}
			h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-App", r.URL.Path)
				w.WriteHeader(http.StatusTeapot)
				_, _ = io.WriteString(w, "short and stout")
			}), c)
			w := serve(h, get())
			assert.Equal(t, http.StatusTeapot, w.Code)
			assert.Equal(t, "/path", w.Header().Get("X-App"))
			assert.Equal(t, "short and stout", w.Body.String())
			assert.Equal(t, 0, h.InFlight())
			assert.Equal(t, 0, h.Breaker().InFlight())
		})
	}
}

// TestTimedSeesOuterHeaders: headers set by middleware before the handler
// stay visible to the application and in the response.
func TestTimedSeesOuterHeaders(t *testing.T) {
	var seen string
	h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = w.Header().Get("X-Outer")
		w.Header().Set("X-Inner", "2")
	}), Config{TotalTimeout: time.Hour})
	w := httptest.NewRecorder()
	w.Header().Set("X-Outer", "1")
	h.ServeHTTP(w, get())
	assert.Equal(t, "1", seen)
	assert.Equal(t, "1", w.Result().Header.Get("X-Outer"))
	assert.Equal(t, "2", w.Result().Header.Get("X-Inner"))
}

// TestProxiedAccounting checks the recorder against hand-computed averages:
// each request is in flight for one second of a two-second period.
func TestProxiedAccounting(t *testing.T) {
	tests := []struct {
		name    string
		header  []string
		proxied bool
	}{
		{name: "direct", header: nil},
		{name: "from the activator", header: []string{ProxyHeader, ProxyHeaderValue}, proxied: true},
		{name: "another proxy value", header: []string{ProxyHeader, "ingress"}},
		{name: "lower-case name", header: []string{"k-proxy-request", "activator"}, proxied: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, timed := range []bool{false, true} {
				mock := clock.NewMock()
				t0 := mock.Now()
				c := Config{ContainerConcurrency: 4, Clock: mock}
				if timed {
					c.TotalTimeout = time.Hour
				}
				h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mock.Add(time.Second) // the request takes one second
				}), c)
				w := serve(h, get(tc.header...))
				require.Equal(t, http.StatusOK, w.Code)
				mock.Add(time.Second)
				rep := h.Recorder().Report(mock.Now())
				assert.Equal(t, 2*time.Second, rep.Period)
				assert.Equal(t, uint64(1), rep.Requests)
				assert.InDelta(t, 0.5, rep.Concurrency, 1e-9)
				if tc.proxied {
					assert.Equal(t, uint64(1), rep.ProxiedRequests)
					assert.InDelta(t, 0.5, rep.ProxiedConcurrency, 1e-9)
				} else {
					assert.Zero(t, rep.ProxiedRequests)
					assert.Zero(t, rep.ProxiedConcurrency)
				}
				assert.Equal(t, t0.Add(2*time.Second), mock.Now())
			}
		})
	}
}

// blockingApp lets requests in and holds them until released.
type blockingApp struct {
	entered chan struct{}
	release chan struct{}
	running atomic.Int32
	max     atomic.Int32
}

func newBlockingApp() *blockingApp {
	return &blockingApp{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (a *blockingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := a.running.Add(1)
	for {
		m := a.max.Load()
		if n <= m || a.max.CompareAndSwap(m, n) {
			break
		}
	}
	a.entered <- struct{}{}
	<-a.release
	a.running.Add(-1)
	_, _ = io.WriteString(w, "done")
}

func TestQueueFullAnswers503(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := newBlockingApp()
		h := mustNew(t, app, Config{ContainerConcurrency: 2, QueueDepth: 1})
		results := make(chan *httptest.ResponseRecorder, 3)
		for range 3 {
			go func() { results <- serve(h, get()) }()
		}
		synctest.Wait()
		assert.Equal(t, int32(2), app.running.Load(), "two slots in use")
		assert.Equal(t, 1, h.Breaker().Waiting(), "one request queued")
		assert.Equal(t, 3, h.InFlight())

		w := serve(h, get())
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Equal(t, "queue: pending request queue full: 2 requests in flight and 1 waiting\n", w.Body.String())

		close(app.release)
		for range 3 {
			w := <-results
			assert.Equal(t, http.StatusOK, w.Code)
			assert.Equal(t, "done", w.Body.String())
		}
		assert.Equal(t, 0, h.InFlight())
		assert.Equal(t, 0, h.Breaker().Pending())
		total, _ := h.Recorder().InFlight()
		assert.Zero(t, total, "the rejected request left the recorder too")
	})
}

func TestQueueWaitRejections(t *testing.T) {
	tests := []struct {
		name     string
		c        Config
		ctx      func() (context.Context, context.CancelFunc)
		status   int
		body     string
		waitedAt time.Duration
	}{
		{
			name:   "MaxWait passes",
			c:      Config{ContainerConcurrency: 1, MaxWait: 250 * time.Millisecond},
			ctx:    func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			status: http.StatusServiceUnavailable,
			body:   "queue: request waited 250ms in the queue without getting a slot (MaxWait)\n",
		},
		{
			name: "request deadline passes",
			c:    Config{ContainerConcurrency: 1},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Second)
			},
			status: http.StatusServiceUnavailable,
			body:   "queue: request deadline passed after waiting 1s in the queue\n",
		},
		{
			name: "client goes away",
			c:    Config{ContainerConcurrency: 1},
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(3*time.Second, cancel)
				return ctx, cancel
			},
			status: StatusClientClosedRequest,
			body:   "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				app := newBlockingApp()
				h := mustNew(t, app, tc.c)
				first := make(chan *httptest.ResponseRecorder)
				go func() { first <- serve(h, get()) }()
				<-app.entered

				ctx, cancel := tc.ctx()
				defer cancel()
				w := serve(h, get().WithContext(ctx))
				assert.Equal(t, tc.status, w.Code)
				assert.Equal(t, tc.body, w.Body.String())
				assert.Equal(t, 1, h.Breaker().InFlight(), "the first request still holds its slot")
				assert.Equal(t, 0, h.Breaker().Waiting())

				close(app.release)
				assert.Equal(t, http.StatusOK, (<-first).Code)
				assert.Equal(t, 0, h.InFlight())
			})
		})
	}
}

// TestConcurrencyLimitUnderLoad: never more than ContainerConcurrency in the
// application, nothing lost, and the books balance afterwards.
func TestConcurrencyLimitUnderLoad(t *testing.T) {
	for _, timed := range []bool{false, true} {
		t.Run(map[bool]string{false: "untimed", true: "timed"}[timed], func(t *testing.T) {
			t.Parallel()
			const cc, clients, each = 4, 32, 50
			var running, peak atomic.Int32
			app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := running.Add(1)
				for {
					m := peak.Load()
					if n <= m || peak.CompareAndSwap(m, n) {
						break
					}
				}
				for range 100 {
					if running.Load() > cc {
						t.Errorf("%d requests in the application, limit %d", running.Load(), cc)
					}
				}
				running.Add(-1)
				w.WriteHeader(http.StatusNoContent)
			})
			c := Config{ContainerConcurrency: cc, QueueDepth: clients}
			if timed {
				c.TotalTimeout = time.Hour
			}
			h := mustNew(t, app, c)
			var ok atomic.Int32
			var wg sync.WaitGroup
			for i := range clients {
				wg.Go(func() {
					for range each {
						r := get()
						if i%2 == 0 {
							r.Header.Set(ProxyHeader, ProxyHeaderValue)
						}
						if serve(h, r).Code == http.StatusNoContent {
							ok.Add(1)
						}
					}
				})
			}
			wg.Wait()
			assert.Equal(t, int32(clients*each), ok.Load(), "every request served")
			assert.LessOrEqual(t, peak.Load(), int32(cc))
			assert.Equal(t, 0, h.InFlight())
			assert.Equal(t, 0, h.Breaker().Pending())
			total, proxied := h.Recorder().InFlight()
			assert.Zero(t, total)
			assert.Zero(t, proxied)
			rep := h.Recorder().Report(time.Now())
			assert.Equal(t, uint64(clients*each), rep.Requests)
			assert.Equal(t, uint64(clients*each/2), rep.ProxiedRequests)
		})
	}
}

func TestPanicReleasesSlot(t *testing.T) {
	for _, timed := range []bool{false, true} {
		t.Run(map[bool]string{false: "untimed", true: "timed"}[timed], func(t *testing.T) {
			c := Config{ContainerConcurrency: 1}
			if timed {
				c.TotalTimeout = time.Hour
			}
			h := mustNew(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }), c)
			assert.PanicsWithValue(t, http.ErrAbortHandler, func() { serve(h, get()) }, "the server sees the application's panic")
			assert.Equal(t, 0, h.InFlight())
			assert.Equal(t, 0, h.Breaker().InFlight())
			total, _ := h.Recorder().InFlight()
			assert.Zero(t, total)
		})
	}
}

func TestStatsNotCountingProbes(t *testing.T) {
	h := mustNew(t, okApp, Config{})
	for range 3 {
		w := serve(h, get(ProbeHeader, ProbeHeaderValue))
		assert.Equal(t, http.StatusOK, w.Code)
	}
	serve(h, get())
	rep := h.Recorder().Report(time.Now())
	assert.Equal(t, uint64(1), rep.Requests, "probes are answered by the queue and not counted")
}

// pushWriter is a server's writer that supports HTTP/2 push.
type pushWriter struct {
	*httptest.ResponseRecorder
	pushed []string
}

func (w *pushWriter) Push(target string, _ *http.PushOptions) error {
	w.pushed = append(w.pushed, target)
	return nil
}

// unwrapper is middleware's writer around the server's, found through
// Unwrap as http.ResponseController does.
type unwrapper struct{ http.ResponseWriter }

func (w unwrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestPushFollowsUnwrap: a push reaches a Pusher under outer middleware's
// writer, and fails with http.ErrNotSupported where there is none.
func TestPushFollowsUnwrap(t *testing.T) {
	for _, timed := range []bool{false, true} {
		t.Run(map[bool]string{false: "untimed", true: "timed"}[timed], func(t *testing.T) {
			c := Config{}
			if timed {
				c.TotalTimeout = time.Hour
			}
			var err error
			h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				err = w.(http.Pusher).Push("/style.css", nil)
			}), c)
			pw := &pushWriter{ResponseRecorder: httptest.NewRecorder()}
			h.ServeHTTP(unwrapper{unwrapper{pw}}, get())
			assert.NoError(t, err)
			assert.Equal(t, []string{"/style.css"}, pw.pushed)

			h.ServeHTTP(unwrapper{httptest.NewRecorder()}, get())
			assert.ErrorIs(t, err, http.ErrNotSupported)
		})
	}
}

// answerRecorder is a server's ResponseWriter that a test may read while
// ServeHTTP runs: a timeout answers the client from the Handler's timer
// goroutine while the application still holds ServeHTTP. Each Flush stamps
// the time and signals flushed, so the test sees when the client got what
// it has.
type answerRecorder struct {
	mu        sync.Mutex
	rec       *httptest.ResponseRecorder
	flushedAt time.Time
	flushed   chan struct{} // one token per flush not yet taken, up to 16
}

func newAnswerRecorder() *answerRecorder {
	return &answerRecorder{rec: httptest.NewRecorder(), flushed: make(chan struct{}, 16)}
}

// Header is the server's map: our code writes to it under the exchange's
// lock, and a test reads it through answer, after the Flush that follows
// those writes.
func (w *answerRecorder) Header() http.Header {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rec.Header()
}

func (w *answerRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rec.Write(p)
}

func (w *answerRecorder) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rec.WriteHeader(code)
}

func (w *answerRecorder) Flush() {
	w.mu.Lock()
	w.rec.Flush()
	w.flushedAt = time.Now()
	w.mu.Unlock()
	select {
	case w.flushed <- struct{}{}:
	default:
	}
}

// answer is what a client has received.
type answer struct {
	code      int
	header    http.Header
	body      string
	flushedAt time.Time // zero: never flushed
}

func (w *answerRecorder) answer() answer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return answer{code: w.rec.Code, header: w.rec.Result().Header, body: w.rec.Body.String(), flushedAt: w.flushedAt}
}

// serveAsync runs one request through h on a goroutine of its own; the
// channel is closed when ServeHTTP returns.
func serveAsync(h http.Handler, r *http.Request) (*answerRecorder, <-chan struct{}) {
	w := newAnswerRecorder()
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		h.ServeHTTP(w, r)
	}()
	return w, returned
}

// assertComplete504 checks that a is a timeout's whole answer: a 504 whose
// body is msg, with its length, and for HTTP/1 Connection: close.
func assertComplete504(t *testing.T, a answer, msg string, args ...any) {
	t.Helper()
	assert.Equal(t, http.StatusGatewayTimeout, a.code, args...)
	assert.Equal(t, msg, a.body, args...)
	assert.Equal(t, strconv.Itoa(len(msg)), a.header.Get("Content-Length"), args...)
	assert.Equal(t, "close", a.header.Get("Connection"), args...)
	assert.Equal(t, "text/plain; charset=utf-8", a.header.Get("Content-Type"), args...)
}
