package queue

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pathApp answers with its path as body, X-Request header and X-Trailer
// trailer, after sleeping for the duration in the query's sleep. A write
// that comes after the request timed out is sent to late.
func pathApp(late chan<- error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("sleep"))
		w.Header().Set("X-Request", r.URL.Path)
		time.Sleep(d)
		_, err := io.WriteString(w, r.URL.Path)
		if r.Context().Err() != nil {
			late <- err
		}
		w.Header().Set(http.TrailerPrefix+"X-Trailer", r.URL.Path)
	})
}

// TestTimedExchangeReuse: requests time out while their application
// ignores its context and keeps running (and keeps its exchange); their
// clients have the whole 504 at the deadline all the same. Requests served
// meanwhile and after, on exchanges that come back from the pool, each get
// exactly their own answer at exactly their time. A recycled exchange
// carries nothing of its previous request: no late write, no stale heap
// entry taken for a timeout, no timer left armed for another request's
// deadline.
func TestTimedExchangeReuse(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		msg  string
	}{
		{"total timeout only", Config{TotalTimeout: time.Second},
			"queue: request timeout: the request ran longer than the total timeout (1s)\n"},
		{"all three timeouts", Config{TotalTimeout: 2 * time.Second, ResponseStartTimeout: time.Second, IdleTimeout: 2 * time.Second},
			"queue: request timeout: no response started within the response-start timeout (1s)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const clients, rounds = 4, 10
				late := make(chan error, clients*rounds)
				h := mustNew(t, pathApp(late), tc.c)
				var wg sync.WaitGroup
				for c := range clients {
					wg.Go(func() {
						var lateReturned []<-chan struct{}
						for i := range rounds {
							// Each late application runs for 3 s, through the
							// next two rounds of its client.
							path := fmt.Sprintf("/late-%d-%d", c, i)
							start := time.Now()
							w, returned := serveAsync(h, httptest.NewRequest(http.MethodGet, path+"?sleep=3s", nil))
							lateReturned = append(lateReturned, returned)
							<-w.flushed
							a := w.answer()
							assert.Equal(t, time.Second, a.flushedAt.Sub(start), path)
							assertComplete504(t, a, tc.msg, path)
							assert.Empty(t, a.header.Get("X-Request"), path)

							path = fmt.Sprintf("/ok-%d-%d", c, i)
							start = time.Now()
							rec := serve(h, httptest.NewRequest(http.MethodGet, path+"?sleep=500ms", nil))
							assert.Equal(t, 500*time.Millisecond, time.Since(start), path)
							res := rec.Result()
							assert.Equal(t, http.StatusOK, res.StatusCode, path)
							assert.Equal(t, path, rec.Body.String())
							assert.Equal(t, path, res.Header.Get("X-Request"))
							assert.Equal(t, http.Header{"X-Trailer": {path}}, res.Trailer, path)
						}
						for _, returned := range lateReturned {
							<-returned
						}
					})
				}
				wg.Wait()
				assert.Equal(t, 0, h.InFlight())
				close(late)
				n := 0
				for err := range late {
					n++
					assert.ErrorIs(t, err, http.ErrHandlerTimeout)
				}
				assert.Equal(t, clients*rounds, n, "every late application wrote once, and failed")
			})
		})
	}
}

// TestTimedSequence: the handler's one timer, set for a request that has
// left, fires early for the next and is set again. One request after
// another, each on the exchange the previous one returned (mostly), each
// timing out, or not, at exactly its time: a timeout's answer is flushed at
// its deadline, while the application, ignoring its context, runs on;
// otherwise the answer is complete when ServeHTTP returns.
func TestTimedSequence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rsMsg = "queue: request timeout: no response started within the response-start timeout (1s)\n"
		seen := map[*exchange]bool{}
		reused := 0
		h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ex := w.(*exchange); seen[ex] {
				reused++
			} else {
				seen[ex] = true
			}
			q := r.URL.Query()
			before, _ := time.ParseDuration(q.Get("before"))
			after, _ := time.ParseDuration(q.Get("after"))
			time.Sleep(before)
			_, _ = io.WriteString(w, r.URL.Path)
			time.Sleep(after)
		}), Config{ResponseStartTimeout: time.Second, IdleTimeout: 3 * time.Second})

		steps := []struct {
			query      string
			status     int
			body       string
			answeredAt time.Duration
		}{
			// Looked at at 1 s for the response start, then at 3.5 s for
			// the idle timeout; it returns at 1.2 s, leaving the timer set
			// later than the next request's 1 s.
			{"before=500ms&after=700ms", http.StatusOK, "/0", 1200 * time.Millisecond},
			{"before=5s", http.StatusGatewayTimeout, rsMsg, time.Second},
			// Leaves the timer set 1 s after its start, before the next
			// request's deadline: it fires early and is set again.
			{"before=100ms", http.StatusOK, "/2", 100 * time.Millisecond},
			{"before=5s", http.StatusGatewayTimeout, rsMsg, time.Second},
			{"before=900ms&after=2900ms", http.StatusOK, "/4", 3800 * time.Millisecond},
			{"before=200ms&after=3100ms", http.StatusOK, "/5" + "queue: request timeout: nothing written for the idle timeout (3s)\n", 3200 * time.Millisecond},
		}
		for round := range 5 {
			for i, st := range steps {
				start := time.Now()
				w, returned := serveAsync(h, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/%d?%s", i, st.query), nil))
				select {
				case <-w.flushed: // only a timeout flushes
				case <-returned:
				}
				a := w.answer()
				assert.Equal(t, st.answeredAt, time.Since(start), "round %d step %d", round, i)
				assert.Equal(t, st.status, a.code, "round %d step %d", round, i)
				assert.Equal(t, st.body, a.body, "round %d step %d", round, i)
				<-returned
				assert.Equal(t, a, w.answer(), "round %d step %d: nothing after the answer", round, i)
			}
		}
		assert.Equal(t, 0, h.InFlight())
		assert.NotZero(t, reused, "requests ran on recycled exchanges")
		t.Logf("%d requests, %d exchanges", 5*len(steps), len(seen))
	})
}

// TestTimedMockClock: with a clock.Mock the timeouts run on the mock's
// function timer, which answers the client while the application, ignoring
// its context, still runs.
func TestTimedMockClock(t *testing.T) {
	const msg = "queue: request timeout: the request ran longer than the total timeout (1s)\n"
	mock := clock.NewMock()
	entered := make(chan struct{})
	release := make(chan struct{})
	causes := make(chan error, 1)
	h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			<-release
			causes <- context.Cause(r.Context())
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), Config{ContainerConcurrency: 1, TotalTimeout: time.Second, Clock: mock})

	for i := range 3 {
		w, returned := serveAsync(h, httptest.NewRequest(http.MethodGet, "/block", nil))
		<-entered // in the heap, its timer armed, before the application starts
		mock.Add(999 * time.Millisecond)
		select {
		case <-w.flushed:
			t.Fatalf("round %d: answered before the timeout", i)
		default:
		}
		mock.Add(time.Millisecond)
		<-w.flushed
		assertComplete504(t, w.answer(), msg, "round %d", i)
		select {
		case <-returned:
			t.Fatalf("round %d: ServeHTTP returned before the application", i)
		default:
		}
		release <- struct{}{}
		var te *TimeoutError
		require.ErrorAs(t, <-causes, &te)
		assert.Equal(t, TotalTimeoutKind, te.Kind)
		<-returned

		rec := serve(h, get())
		assert.Equal(t, http.StatusOK, rec.Code, "round %d", i)
		assert.Equal(t, "ok", rec.Body.String())
	}
}

// TestTimedStress: concurrent timed requests on one Handler with the real
// clock, half of them running until their timeout: each response is its
// own or the 504, never another request's, and a timed-out application's
// late writes fail. Run with -race, it checks the hand-over of pooled
// exchanges, timers and channels between requests.
func TestTimedStress(t *testing.T) {
	t.Parallel()
	const msg = "queue: request timeout: the request ran longer than the total timeout (2ms)\n"
	h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request", r.URL.Path)
		if r.URL.Query().Has("block") {
			<-r.Context().Done()
			_, err := io.WriteString(w, "late")
			assert.ErrorIs(t, err, http.ErrHandlerTimeout)
			return
		}
		_, _ = io.WriteString(w, r.URL.Path)
		w.Header().Set(http.TrailerPrefix+"X-Trailer", r.URL.Path)
	}), Config{ContainerConcurrency: 4, TotalTimeout: 2 * time.Millisecond})

	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for i := range 60 {
				path := fmt.Sprintf("/%d/%d", c, i)
				block := i%2 == 0
				url := path
				if block {
					url += "?block"
				}
				w := serve(h, httptest.NewRequest(http.MethodGet, url, nil))
				res := w.Result()
				switch {
				case block || res.StatusCode == http.StatusGatewayTimeout:
					assert.Equal(t, http.StatusGatewayTimeout, res.StatusCode, path)
					assert.Equal(t, msg, w.Body.String(), path)
					assert.Empty(t, res.Header.Get("X-Request"), path)
					assert.Empty(t, res.Trailer, path)
				case w.Body.String() == path+msg:
					// The timeout fired between the write and the return.
					assert.Equal(t, http.StatusOK, res.StatusCode, path)
					assert.Equal(t, path, res.Header.Get("X-Request"))
					assert.Empty(t, res.Trailer, path)
				default:
					assert.Equal(t, http.StatusOK, res.StatusCode, path)
					assert.Equal(t, path, w.Body.String())
					assert.Equal(t, path, res.Header.Get("X-Request"))
					assert.Equal(t, http.Header{"X-Trailer": {path}}, res.Trailer, path)
				}
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool { return h.InFlight() == 0 }, 10*time.Second, time.Millisecond,
		"the timed-out applications return once their context is cancelled")
}
