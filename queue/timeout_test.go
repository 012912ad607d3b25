package queue

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// step is one thing the application does: wait, then write (and flush).
type step struct {
	after time.Duration // sleep first
	write string        // then write this, if not empty
}

// scriptedApp plays steps, ignoring its context, and records the errors of
// its writes.
type scriptedApp struct {
	steps     []step
	writeErrs []error
	cause     error
	finished  chan struct{} // closed when the application returns
}

func (a *scriptedApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, s := range a.steps {
		time.Sleep(s.after)
		if s.write != "" {
			_, err := io.WriteString(w, s.write)
			a.writeErrs = append(a.writeErrs, err)
			http.NewResponseController(w).Flush()
		}
	}
	a.cause = context.Cause(r.Context())
	close(a.finished)
}

func TestTimeouts(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name       string
		c          Config
		steps      []step
		status     int
		body       string
		answeredAt time.Duration // when ServeHTTP returned
		kind       TimeoutKind   // 0: no timeout
		writeErrs  []error
	}{
		{
			name:   "total fires before the response starts",
			c:      Config{TotalTimeout: 2 * s},
			steps:  []step{{after: 5 * s, write: "late"}},
			status: http.StatusGatewayTimeout, answeredAt: 2 * s, kind: TotalTimeoutKind,
			body:      "queue: request timeout: the request ran longer than the total timeout (2s)\n",
			writeErrs: []error{http.ErrHandlerTimeout},
		},
		{
			name:   "total fires after the response started: message appended",
			c:      Config{TotalTimeout: 2 * s},
			steps:  []step{{write: "partial "}, {after: 5 * s, write: "late"}},
			status: http.StatusOK, answeredAt: 2 * s, kind: TotalTimeoutKind,
			body:      "partial queue: request timeout: the request ran longer than the total timeout (2s)\n",
			writeErrs: []error{nil, http.ErrHandlerTimeout},
		},
		{
			name:   "total does not fire in time",
			c:      Config{TotalTimeout: 10 * s},
			steps:  []step{{after: 3 * s, write: "a"}, {after: 3 * s, write: "b"}},
			status: http.StatusOK, answeredAt: 6 * s, body: "ab",
			writeErrs: []error{nil, nil},
		},
		{
			name:   "response-start fires",
			c:      Config{ResponseStartTimeout: s, TotalTimeout: 10 * s},
			steps:  []step{{after: 3 * s, write: "late"}},
			status: http.StatusGatewayTimeout, answeredAt: s, kind: ResponseStartTimeoutKind,
			body:      "queue: request timeout: no response started within the response-start timeout (1s)\n",
			writeErrs: []error{http.ErrHandlerTimeout},
		},
		{
			name:   "response-start is met, then the response may take its time",
			c:      Config{ResponseStartTimeout: s},
			steps:  []step{{after: s / 2, write: "first "}, {after: 5 * s, write: "second"}},
			status: http.StatusOK, answeredAt: 5*s + s/2, body: "first second",
			writeErrs: []error{nil, nil},
		},
		{
			name:   "idle fires before any write",
			c:      Config{IdleTimeout: s},
			steps:  []step{{after: 2 * s, write: "late"}},
			status: http.StatusGatewayTimeout, answeredAt: s, kind: IdleTimeoutKind,
			body:      "queue: request timeout: nothing written for the idle timeout (1s)\n",
			writeErrs: []error{http.ErrHandlerTimeout},
		},
		{
			name: "idle is reset by each write",
			c:    Config{IdleTimeout: s},
			steps: []step{{after: 900 * time.Millisecond, write: "1"}, {after: 900 * time.Millisecond, write: "2"},
				{after: 900 * time.Millisecond, write: "3"}, {after: 900 * time.Millisecond, write: "4"}},
			status: http.StatusOK, answeredAt: 3600 * time.Millisecond, body: "1234",
			writeErrs: []error{nil, nil, nil, nil},
		},
		{
			name:   "idle fires mid-stream: message appended",
			c:      Config{IdleTimeout: s},
			steps:  []step{{after: 500 * time.Millisecond, write: "1"}, {after: 800 * time.Millisecond, write: "2"}, {after: 3 * s, write: "3"}},
			status: http.StatusOK, answeredAt: 2300 * time.Millisecond, kind: IdleTimeoutKind,
			body:      "12queue: request timeout: nothing written for the idle timeout (1s)\n",
			writeErrs: []error{nil, nil, http.ErrHandlerTimeout},
		},
		{
			name:   "the most specific timeout is named when several pass at once",
			c:      Config{TotalTimeout: s, ResponseStartTimeout: s, IdleTimeout: s},
			steps:  []step{{after: 2 * s}},
			status: http.StatusGatewayTimeout, answeredAt: s, kind: ResponseStartTimeoutKind,
			body: "queue: request timeout: no response started within the response-start timeout (1s)\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				app := &scriptedApp{steps: tc.steps, finished: make(chan struct{})}
				tc.c.ContainerConcurrency = 1
				h := mustNew(t, app, tc.c)
				start := time.Now()
				w, returned := serveAsync(h, get())
				time.Sleep(tc.answeredAt)
				synctest.Wait()
				// What the client has when it has its answer.
				a := w.answer()
				assert.Equal(t, tc.status, a.code)
				assert.Equal(t, tc.body, a.body)
				if tc.kind != 0 {
					assert.Equal(t, tc.answeredAt, a.flushedAt.Sub(start), "flushed at the deadline")
					if tc.status == http.StatusGatewayTimeout {
						assertComplete504(t, a, tc.body)
					}
					select {
					case <-returned:
						t.Error("ServeHTTP returned before the application")
					default:
					}
					assert.Equal(t, 1, h.Breaker().InFlight(), "the application still runs and keeps its slot")
					assert.Equal(t, 1, h.InFlight())
				}

				<-app.finished
				<-returned
				assert.Equal(t, a, w.answer(), "nothing reached the client after its answer")
				assert.Equal(t, tc.writeErrs, app.writeErrs)
				assert.Equal(t, 0, h.Breaker().InFlight())
				assert.Equal(t, 0, h.InFlight())
				var te *TimeoutError
				if tc.kind == 0 {
					assert.NoError(t, app.cause)
					return
				}
				require.ErrorAs(t, app.cause, &te, "the context says why it was cancelled")
				assert.Equal(t, tc.kind, te.Kind)
				assert.ErrorIs(t, app.cause, ErrRequestTimeout)
			})
		})
	}
}

// TestTimeoutCancelsQueueWait: the total timeout covers the time in the
// queue, as Knative's does.
func TestTimeoutCancelsQueueWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const msg = "queue: request timeout: the request ran longer than the total timeout (2s)\n"
		app := newBlockingApp()
		h := mustNew(t, app, Config{ContainerConcurrency: 1, TotalTimeout: 2 * time.Second})
		first, firstReturned := serveAsync(h, get())
		<-app.entered

		start := time.Now()
		w := serve(h, get())
		assert.Equal(t, 2*time.Second, time.Since(start), "the queued request leaves the queue at its deadline")
		assert.Equal(t, http.StatusGatewayTimeout, w.Code)
		assert.Equal(t, msg, w.Body.String())
		synctest.Wait()
		assert.Equal(t, 0, h.Breaker().Waiting(), "the timed-out request left the queue")

		// The first one timed out too, and its client has the whole 504,
		// but its application ignores its context and still runs.
		assertComplete504(t, first.answer(), msg)
		assert.Equal(t, 1, h.Breaker().InFlight())
		close(app.release)
		<-firstReturned
		assert.Equal(t, 0, h.InFlight())
		assert.Equal(t, 0, h.Breaker().InFlight())
	})
}

// TestNoTimeoutAfterTheApplicationReturned: when the application returns at
// the instant a timeout is due, the client gets either the application's
// response or the 504, never the application's response with a timeout
// message appended. Which one wins is up to the scheduler, so it is run many
// times.
func TestNoTimeoutAfterTheApplicationReturned(t *testing.T) {
	const msg = "queue: request timeout: the request ran longer than the total timeout (1s)\n"
	for range 100 {
		synctest.Test(t, func(t *testing.T) {
			h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(time.Second) // returns as the total timeout fires
			}), Config{TotalTimeout: time.Second})
			w := serve(h, get())
			switch w.Code {
			case http.StatusOK:
				require.Empty(t, w.Body.String(), "the application's empty 200, with nothing appended")
			case http.StatusGatewayTimeout:
				require.Equal(t, msg, w.Body.String())
			default:
				t.Fatalf("status %d", w.Code)
			}
			synctest.Wait()
			require.Equal(t, 0, h.InFlight())
		})
	}
}

// TestTimeoutWriterAfterTimeout: every way of writing fails after a
// timeout, and headers set then do not reach the response.
func TestTimeoutWriterAfterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errs := make(chan []error, 1)
		h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			w.Header().Set("X-Late", "1")
			w.WriteHeader(http.StatusCreated)
			_, e1 := w.Write([]byte("x"))
			_, e2 := io.WriteString(w, "y")
			e3 := http.NewResponseController(w).Flush()
			_, _, e4 := http.NewResponseController(w).Hijack()
			_, e5 := w.(io.ReaderFrom).ReadFrom(eofReader{})
			e6 := http.NewResponseController(w).SetWriteDeadline(time.Now())
			e7 := http.NewResponseController(w).EnableFullDuplex()
			e8 := http.NewResponseController(w).SetReadDeadline(time.Now())
			errs <- []error{e1, e2, e3, e4, e5, e6, e7, e8}
		}), Config{TotalTimeout: time.Second})
		w := serve(h, get())
		assert.Equal(t, http.StatusGatewayTimeout, w.Code)
		for i, err := range <-errs {
			if i == 4 {
				assert.NoError(t, err, "nothing to copy, nothing written")
				continue
			}
			assert.ErrorIs(t, err, http.ErrHandlerTimeout, "write %d", i)
		}
		assert.Empty(t, w.Header().Get("X-Late"))
	})
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// TestTimedPanicAfterTimeoutIsLogged: a panic nobody can re-raise any more
// does not crash the process.
func TestTimedPanicAfterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(2 * time.Second)
			panic("late")
		}), Config{ContainerConcurrency: 1, TotalTimeout: time.Second})
		assert.Equal(t, http.StatusGatewayTimeout, serve(h, get()).Code)
		time.Sleep(time.Minute)
		assert.Equal(t, 0, h.Breaker().InFlight())
	})
}

func TestTimeoutKindString(t *testing.T) {
	assert.Equal(t, "total timeout", TotalTimeoutKind.String())
	assert.Equal(t, "response-start timeout", ResponseStartTimeoutKind.String())
	assert.Equal(t, "idle timeout", IdleTimeoutKind.String())
	assert.Equal(t, "TimeoutKind(9)", TimeoutKind(9).String())
	assert.True(t, errors.Is(&TimeoutError{Kind: IdleTimeoutKind}, ErrRequestTimeout))
}

// TestTimedHeaderMapIsPrivate: a header map the application got after its
// response started is its own, not the server's. Once a timeout has ended
// the exchange the server reads its map (for trailers, possibly while
// serving the connection's next request), and the application, still
// running, may write to the map it holds: the two must not be the same.
func TestTimedHeaderMapIsPrivate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		finished := make(chan struct{})
		h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(finished)
			_, _ = io.WriteString(w, "partial ")
			hdr := w.Header()
			<-r.Context().Done()
			hdr.Set(http.TrailerPrefix+"X-Late", "1")
		}), Config{TotalTimeout: time.Second})
		w := serve(h, get())
		<-finished
		assert.Equal(t, "partial queue: request timeout: the request ran longer than the total timeout (1s)\n", w.Body.String())
		assert.NotContains(t, w.Header(), http.TrailerPrefix+"X-Late", "written after the timeout, into the server's map")
		assert.Empty(t, w.Result().Trailer)
	})
}

// TestTimedTrailers: headers set after the response started reach the
// client as trailers, declared or not, and the application reads back the
// headers it set.
func TestTimedTrailers(t *testing.T) {
	for _, timed := range []bool{false, true} {
		t.Run(map[bool]string{false: "untimed", true: "timed"}[timed], func(t *testing.T) {
			c := Config{}
			if timed {
				c.TotalTimeout = time.Hour
			}
			var readBack string
			h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Declared")
				w.Header().Set("X-App", "1")
				_, _ = io.WriteString(w, "body")
				readBack = w.Header().Get("X-App")
				w.Header().Set("X-Declared", "d")
				w.Header().Set(http.TrailerPrefix+"X-Undeclared", "u")
			}), c)
			res := serve(h, get()).Result()
			assert.Equal(t, "1", res.Header.Get("X-App"))
			assert.Equal(t, "1", readBack)
			assert.Equal(t, http.Header{"X-Declared": {"d"}, "X-Undeclared": {"u"}}, res.Trailer)
		})
	}
}

// controlWriter is a server's writer with deadlines and full duplex. It
// records each call, and whether the exchange's lock was held during it.
type controlWriter struct {
	*httptest.ResponseRecorder
	ex    *exchange
	calls []string
}

func (w *controlWriter) SetReadDeadline(time.Time) error  { return w.call("read deadline") }
func (w *controlWriter) SetWriteDeadline(time.Time) error { return w.call("write deadline") }
func (w *controlWriter) EnableFullDuplex() error          { return w.call("full duplex") }

func (w *controlWriter) call(name string) error {
	if w.ex.mu.TryLock() {
		w.ex.mu.Unlock()
		name += " without the lock"
	}
	w.calls = append(w.calls, name)
	return nil
}

// TestTimedControlUnderLock: deadlines and full duplex set through
// http.ResponseController reach the server's writer under the exchange's
// lock, so a timeout cannot end the exchange in between (and the
// connection, then serving its next request, get this one's deadline).
func TestTimedControlUnderLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &controlWriter{ResponseRecorder: httptest.NewRecorder()}
		h := mustNew(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.ex = rw.(*exchange)
			rc := http.NewResponseController(rw)
			assert.NoError(t, rc.SetReadDeadline(time.Now()))
			assert.NoError(t, rc.SetWriteDeadline(time.Now()))
			assert.NoError(t, rc.EnableFullDuplex())
		}), Config{TotalTimeout: time.Second})
		h.ServeHTTP(w, get())
		assert.Equal(t, []string{"read deadline", "write deadline", "full duplex"}, w.calls)
		assert.Equal(t, http.StatusOK, w.Code)

		// After a timeout the calls fail and never reach the server's writer.
		w = &controlWriter{ResponseRecorder: httptest.NewRecorder()}
		errs := make(chan []error, 1)
		h = mustNew(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.ex = rw.(*exchange)
			<-r.Context().Done()
			rc := http.NewResponseController(rw)
			errs <- []error{rc.SetReadDeadline(time.Now()), rc.SetWriteDeadline(time.Now()), rc.EnableFullDuplex()}
		}), Config{TotalTimeout: time.Second})
		h.ServeHTTP(w, get())
		assert.Equal(t, http.StatusGatewayTimeout, w.Code)
		for i, err := range <-errs {
			assert.ErrorIs(t, err, http.ErrHandlerTimeout, "call %d", i)
		}
		assert.Empty(t, w.calls)
	})
}
