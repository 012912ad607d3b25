package activator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/queue"
	"github.com/servingkit/servingkit/stats"
)

const waitHeader = "X-Activator-Wait"

func waitedOf(t *testing.T, rec *httptest.ResponseRecorder) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(rec.Header().Get(waitHeader))
	require.NoError(t, err, "wait header %q", rec.Header().Get(waitHeader))
	return d
}

// A thousand requests arrive at a revision scaled to zero; five seconds
// later one replica with CC = 10 appears. Every request succeeds; each goes
// out the instant a slot frees (request i, in arrival order, leaves at
// 5 s + ⌊i/10⌋ × 10 ms, the replica taking 10 ms per request); the replica
// never has more than 10 in flight; the autoscaler is poked once.
func TestColdStartThousandRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			n       = 1000
			cc      = 10
			service = 10 * time.Millisecond
			coldFor = 5 * time.Second
		)
		var pokes []stats.Stat
		var pokeMu sync.Mutex
		be := newFakeBackend(service)
		var cs coldStarts
		h := newTestHandler(t, Options{
			Name:        "act-0",
			Transport:   be,
			WaitHeader:  waitHeader,
			OnColdStart: cs.hook,
			Poker: PokerFunc(func(rev string, s stats.Stat) {
				pokeMu.Lock()
				pokes = append(pokes, s)
				pokeMu.Unlock()
				assert.Equal(t, "rev", rev)
			}),
		})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: cc}))

		start := time.Now()
		recs := make([]*httptest.ResponseRecorder, n)
		dones := make([]<-chan struct{}, n)
		for i := range n {
			recs[i], dones[i] = serve(h, request("rev", i))
			synctest.Wait() // queue them in a known order
		}
		require.Equal(t, n, h.Waiting("rev"))
		require.Len(t, pokes, 1, "the first request pokes at once, the others do not")
		assert.Equal(t, stats.Stat{Concurrency: 1, RPS: 1, Time: start}, pokes[0], "no Source: the autoscaler adds it to the activator's report")

		time.Sleep(coldFor)
		require.NoError(t, h.SetReplicas("rev", []string{"10.0.0.1:8012"}))
		for _, d := range dones {
			<-d
		}

		for i, rec := range recs {
			require.Equal(t, http.StatusOK, rec.Code, "request %d: %s", i, rec.Body)
			assert.Equal(t, "hello from 10.0.0.1:8012", rec.Body.String())
			want := coldFor + time.Duration(i/cc)*service
			assert.Equal(t, want, waitedOf(t, rec), "request %d waited past its handoff", i)
			st, ok := be.start(i)
			require.True(t, ok)
			assert.Equal(t, start.Add(want), st, "request %d sent late", i)
		}
		assert.Equal(t, cc, be.max("10.0.0.1:8012"), "the replica never sees more than CC in flight")
		reports := cs.all()
		require.Len(t, reports, n)
		for _, r := range reports {
			assert.Equal(t, OutcomeServed, r.Outcome)
			assert.True(t, r.Cold)
		}
		mustShutdown(t, h)
	})
}

func TestQueueFullAnsweredAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cs coldStarts
		h := newTestHandler(t, Options{Transport: newFakeBackend(0), OnColdStart: cs.hook, WaitHeader: waitHeader})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1, MaxWaiting: 5}))
		var dones []<-chan struct{}
		for i := range 5 {
			_, d := serve(h, request("rev", i))
			dones = append(dones, d)
		}
		synctest.Wait()
		require.Equal(t, 5, h.Waiting("rev"))

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, request("rev", 5))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, `activator: queue full: revision "rev" already has 5 requests waiting for capacity (MaxWaiting 5)`+"\n", rec.Body.String())
		assert.Equal(t, "0s", rec.Header().Get(waitHeader))
		assert.Equal(t, []ColdStart{{Revision: "rev", Cold: true, Outcome: OutcomeQueueFull}}, cs.all())

		// Lowering MaxWaiting keeps the requests already waiting; the body
		// gives the real count.
		require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1, MaxWaiting: 2}))
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, request("rev", 6))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, `activator: queue full: revision "rev" already has 5 requests waiting for capacity (MaxWaiting 2)`+"\n", rec.Body.String())

		require.NoError(t, h.SetReplicas("rev", []string{"10.0.0.1:8012"}))
		for _, d := range dones {
			<-d
		}
		mustShutdown(t, h)
	})
}

func TestWaitLimits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      RevisionConfig
		wantCode int
		wantBody string
		wantWait time.Duration
		outcome  Outcome
	}{{
		name:     "max wait",
		cfg:      RevisionConfig{MaxWait: 2 * time.Second},
		wantCode: http.StatusServiceUnavailable,
		wantBody: `activator: revision "rev": waited 2s for capacity without getting a replica (max wait reached)`,
		wantWait: 2 * time.Second,
		outcome:  OutcomeMaxWait,
	}, {
		name:     "revision timeout",
		cfg:      RevisionConfig{Timeout: 3 * time.Second},
		wantCode: http.StatusGatewayTimeout,
		wantBody: `activator request timeout: revision "rev": waited 3s for capacity`,
		wantWait: 3 * time.Second,
		outcome:  OutcomeTimeout,
	}, {
		name:     "timeout before max wait",
		cfg:      RevisionConfig{Timeout: time.Second, MaxWait: 2 * time.Second},
		wantCode: http.StatusGatewayTimeout,
		wantBody: `activator request timeout: revision "rev": waited 1s for capacity`,
		wantWait: time.Second,
		outcome:  OutcomeTimeout,
	}, {
		name:     "default timeout is Knative's 300 s",
		cfg:      RevisionConfig{},
		wantCode: http.StatusGatewayTimeout,
		wantBody: `activator request timeout: revision "rev": waited 5m0s for capacity`,
		wantWait: 300 * time.Second,
		outcome:  OutcomeTimeout,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var cs coldStarts
				be := newFakeBackend(0)
				h := newTestHandler(t, Options{Transport: be, OnColdStart: cs.hook, WaitHeader: waitHeader})
				require.NoError(t, h.SetRevision("rev", tc.cfg))
				start := time.Now()
				rec, done := serve(h, request("rev", 0))
				<-done
				assert.Equal(t, tc.wantWait, time.Since(start))
				assert.Equal(t, tc.wantCode, rec.Code)
				assert.Equal(t, tc.wantBody+"\n", rec.Body.String())
				assert.Equal(t, tc.wantWait, waitedOf(t, rec))
				assert.Equal(t, []ColdStart{{Revision: "rev", Waited: tc.wantWait, Cold: true, Outcome: tc.outcome}}, cs.all())
				assert.Equal(t, 0, h.Waiting("rev"))
				mustShutdown(t, h)
			})
		})
	}
}

func TestTimeoutWhileForwarding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		be := newFakeBackend(time.Hour)
		h := newTestHandler(t, Options{Transport: be})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{Timeout: 10 * time.Second}))
		require.NoError(t, h.SetReplicas("rev", []string{"10.0.0.1:8012"}))
		start := time.Now()
		rec, done := serve(h, request("rev", 0))
		<-done
		assert.Equal(t, 10*time.Second, time.Since(start))
		assert.Equal(t, http.StatusGatewayTimeout, rec.Code)
		assert.Equal(t, `activator request timeout: revision "rev", replica 10.0.0.1:8012: no response within 10s`+"\n", rec.Body.String())
		st, _ := h.Status("rev")
		assert.Equal(t, 0, st.InFlight, "the slot is released")
		mustShutdown(t, h)
	})
}

// With NoTimeout the revision sets no deadline; one from the caller's
// context is reported as such, not as a revision timeout of -1ns.
func TestCallerDeadlineWhileForwarding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHandler(t, Options{Transport: newFakeBackend(time.Hour)})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{Timeout: NoTimeout}))
		require.NoError(t, h.SetReplicas("rev", []string{"10.0.0.1:8012"}))
		ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
		defer cancel()
		rec, done := serve(h, request("rev", 0).WithContext(ctx))
		<-done
		assert.Equal(t, http.StatusGatewayTimeout, rec.Code)
		assert.Equal(t, `activator request timeout: revision "rev", replica 10.0.0.1:8012: no response before the request's deadline`+"\n", rec.Body.String())
		mustShutdown(t, h)
	})
}

func TestClientCancelLeavesQueueAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cs coldStarts
		be := newFakeBackend(0)
		h := newTestHandler(t, Options{Transport: be, OnColdStart: cs.hook})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1}))
		ctx, cancel := context.WithCancel(context.Background())
		rec, done := serve(h, request("rev", 0).WithContext(ctx))
		_, other := serve(h, request("rev", 1))
		synctest.Wait()
		require.Equal(t, 2, h.Waiting("rev"))

		time.Sleep(time.Second)
		cancel()
		<-done // without any time passing
		assert.Equal(t, 1, h.Waiting("rev"))
		assert.Equal(t, StatusClientClosedRequest, rec.Code)
		assert.Contains(t, rec.Body.String(), `revision "rev": request canceled after waiting 1s for capacity`)

		require.NoError(t, h.SetReplicas("rev", []string{"10.0.0.1:8012"}))
		<-other
		assert.Equal(t, map[string]int{"10.0.0.1:8012": 1}, be.counts(), "the canceled request is never sent")
		assert.Equal(t, []Outcome{OutcomeCanceled, OutcomeServed}, outcomes(cs.all()))
		mustShutdown(t, h)
	})
}

func outcomes(cs []ColdStart) []Outcome {
	out := make([]Outcome, len(cs))
	for i, c := range cs {
		out[i] = c.Outcome
	}
	return out
}

// Removing a replica under load: its requests in flight finish normally,
// it gets no new request, and waiting requests go to the replica left.
func TestReplicaRemovedUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		be := newFakeBackend(0)
		be.gate = make(chan struct{})
		h := newTestHandler(t, Options{Transport: be})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 5}))
		a, b := "10.0.0.1:8012", "10.0.0.2:8012"
		require.NoError(t, h.SetReplicas("rev", []string{a, b}))

		var recs []*httptest.ResponseRecorder
		var dones []<-chan struct{}
		for i := range 10 {
			rec, d := serve(h, request("rev", i))
			recs, dones = append(recs, rec), append(dones, d)
		}
		synctest.Wait()
		require.Equal(t, map[string]int{a: 5, b: 5}, be.counts(), "round robin fills both")

		require.NoError(t, h.SetReplicas("rev", []string{a}))
		for i := 10; i < 13; i++ {
			rec, d := serve(h, request("rev", i))
			recs, dones = append(recs, rec), append(dones, d)
		}
		synctest.Wait()
		st, _ := h.Status("rev")
		assert.Equal(t, 3, st.Waiting, "a is full and b is gone")
		assert.Equal(t, 10, st.InFlight)
		assert.Equal(t, []string{a}, st.Assigned)

		// Finish everything, one request at a time.
		for range 13 {
			be.gate <- struct{}{}
			synctest.Wait()
		}
		for i, d := range dones {
			<-d
			assert.Equal(t, http.StatusOK, recs[i].Code, "request %d: %s", i, recs[i].Body)
		}
		assert.Equal(t, map[string]int{a: 8, b: 5}, be.counts(), "b got nothing after it was removed")
		assert.Equal(t, 5, be.max(a))
		mustShutdown(t, h)
	})
}

func TestRevisionRemovedWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cs coldStarts
		h := newTestHandler(t, Options{Transport: newFakeBackend(0), OnColdStart: cs.hook})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
		require.NoError(t, h.SetRevision("other", RevisionConfig{}))
		assert.ElementsMatch(t, []string{"rev", "other"}, h.Revisions())
		rec, done := serve(h, request("rev", 0))
		synctest.Wait()
		time.Sleep(1500 * time.Millisecond)
		assert.True(t, h.RemoveRevision("rev"))
		assert.Equal(t, []string{"other"}, h.Revisions())
		<-done
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, `activator: revision "rev" was removed while the request waited 1.5s for capacity`+"\n", rec.Body.String())
		assert.Equal(t, []Outcome{OutcomeRemoved}, outcomes(cs.all()))

		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, request("rev", 1))
		assert.Equal(t, http.StatusNotFound, rec.Code)
		assert.False(t, h.RemoveRevision("rev"))
		assert.ErrorIs(t, h.SetReplicas("rev", []string{"10.0.0.1:1"}), ErrUnknownRevision)
		mustShutdown(t, h)
	})
}

func TestNotFound(t *testing.T) {
	h := newTestHandler(t, Options{Transport: newFakeBackend(0)})
	for _, tc := range []struct {
		name string
		rev  string
		want string
	}{
		{"no header", "", "activator: no revision in the request: header Knative-Serving-Revision is empty\n"},
		{"unknown revision", "ns/nope", `activator: unknown revision "ns/nope": not served by this activator` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, request(tc.rev, 0))
			assert.Equal(t, http.StatusNotFound, rec.Code)
			assert.Equal(t, tc.want, rec.Body.String())
		})
	}
}

func TestCustomResolver(t *testing.T) {
	be := newFakeBackend(0)
	h := newTestHandler(t, Options{Transport: be, Resolver: ResolverFunc(func(r *http.Request) (string, error) {
		return r.Host, nil
	})})
	require.NoError(t, h.SetRevision("hello.example.com", RevisionConfig{}))
	require.NoError(t, h.SetReplicas("hello.example.com", []string{"10.0.0.1:8012"}))
	r := httptest.NewRequest(http.MethodGet, "http://hello.example.com/", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	assert.Equal(t, http.StatusOK, rec.Code)
}

func TestForwardedRequest(t *testing.T) {
	be := newFakeBackend(0)
	h := newTestHandler(t, Options{Transport: be})
	require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
	require.NoError(t, h.SetReplicas("rev", []string{"10.0.0.1:8012"}))
	r := httptest.NewRequest(http.MethodPost, "http://app.example.com/a/b?x=1&y=%zz", nil)
	r.Header.Set(RevisionHeader, "rev")
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Custom", "kept")
	r.RemoteAddr = "192.0.2.1:5555"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusOK, rec.Code)

	out := be.last
	assert.Equal(t, "http://10.0.0.1:8012/a/b?x=1&y=%zz", out.URL.String())
	assert.Equal(t, "app.example.com", out.Host, "the Host is the client's")
	assert.Equal(t, queue.ProxyHeaderValue, out.Header.Get(queue.ProxyHeader))
	assert.Empty(t, out.Header.Get(RevisionHeader), "the revision header stays inside the activator")
	assert.Equal(t, "203.0.113.9, 192.0.2.1", out.Header.Get("X-Forwarded-For"))
	assert.Equal(t, "https", out.Header.Get("X-Forwarded-Proto"))
	assert.Equal(t, "kept", out.Header.Get("X-Custom"))
}

func TestUnreachableReplicaIs502(t *testing.T) {
	h := newTestHandler(t, Options{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, errRefused
	})})
	require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
	require.NoError(t, h.SetReplicas("rev", []string{"10.0.0.1:8012"}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request("rev", 0))
	assert.Equal(t, http.StatusBadGateway, rec.Code)
	assert.Equal(t, `activator: revision "rev", replica 10.0.0.1:8012: connection refused`+"\n", rec.Body.String())
	st, _ := h.Status("rev")
	assert.Equal(t, 0, st.InFlight)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type constError string

func (e constError) Error() string { return string(e) }

const errRefused = constError("connection refused")

func TestShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		be := newFakeBackend(time.Second)
		h := newTestHandler(t, Options{Transport: be})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
		waiting, wdone := serve(h, request("rev", 0))
		synctest.Wait()

		var shutErr error
		shut := make(chan struct{})
		go func() {
			defer close(shut)
			shutErr = h.Shutdown(context.Background())
		}()
		synctest.Wait()

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, request("rev", 1))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
		assert.Equal(t, "activator: shutting down, not accepting new requests\n", rec.Body.String())

		start := time.Now()
		require.NoError(t, h.SetReplicas("rev", []string{"10.0.0.1:8012"}))
		<-wdone
		<-shut
		require.NoError(t, shutErr)
		assert.Equal(t, http.StatusOK, waiting.Code, "the waiting request is still served")
		assert.Equal(t, time.Second, time.Since(start), "Shutdown returned when it finished")
	})
}

// Two Shutdown calls at once both return when the last request is done.
func TestConcurrentShutdowns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHandler(t, Options{Transport: newFakeBackend(time.Second)})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
		require.NoError(t, h.SetReplicas("rev", addrs(1)))
		_, done := serve(h, request("rev", 0))
		synctest.Wait()
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- h.Shutdown(context.Background()) }()
		}
		<-done
		require.NoError(t, <-errs)
		require.NoError(t, <-errs)
	})
}

func TestShutdownDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHandler(t, Options{Transport: newFakeBackend(0)})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{Timeout: time.Minute}))
		rec, done := serve(h, request("rev", 0))
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := h.Shutdown(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.EqualError(t, err, "activator: Shutdown: 1 requests still waiting or in flight: context deadline exceeded")
		<-done
		assert.Equal(t, http.StatusGatewayTimeout, rec.Code, "it times out as usual")
		mustShutdown(t, h)
	})
}

func TestOptionsValidate(t *testing.T) {
	_, err := New(Options{
		ThrottlerOptions: ThrottlerOptions{
			Subset:           Subset{Index: 3, Count: 2},
			ProbeTimeout:     -1,
			ProbeInterval:    time.Second,
			ProbeMaxInterval: time.Millisecond,
		},
		ReportingPeriod: -time.Second,
		WaitHeader:      "Bad Header",
	})
	require.Error(t, err)
	for _, want := range []string{
		"ThrottlerOptions.Subset.Index = 3, must be in [-1, 2)",
		"ThrottlerOptions.ProbeTimeout = -1ns, must be >= 0 (0 means 300ms)",
		"ThrottlerOptions.ProbeMaxInterval = 1ms, must be >= ProbeInterval = 1s",
		"Options.ReportingPeriod = -1s, must be >= 0 (0 means 1s)",
		`Options.WaitHeader = "Bad Header", must be a valid header name`,
	} {
		assert.Contains(t, err.Error(), want)
	}
	// A zero ProbeInterval is the default 50 ms, which a smaller maximum
	// would undercut.
	_, err = New(Options{ThrottlerOptions: ThrottlerOptions{ProbeMaxInterval: 10 * time.Millisecond}})
	assert.ErrorContains(t, err, "ThrottlerOptions.ProbeMaxInterval = 10ms, must be >= ProbeInterval = 50ms")
	_, err = New(Options{ThrottlerOptions: ThrottlerOptions{ProbeInterval: -1, ProbeMaxInterval: -1, Subset: Subset{Count: -1}}})
	for _, want := range []string{
		"ThrottlerOptions.ProbeInterval = -1ns, must be >= 0 (0 means 50ms)",
		"ThrottlerOptions.ProbeMaxInterval = -1ns, must be >= 0 (0 means 1s)",
		"ThrottlerOptions.Subset.Count = -1, must be in [0, 2147483647]",
	} {
		assert.Contains(t, err.Error(), want)
	}
}

// The stress test: many clients, a revision whose replicas churn, a CC
// limit that no replica may exceed, deadlines that expire. Everything that
// got a replica finishes; nothing is left waiting or in flight.
func TestThrottlerStress(t *testing.T) {
	t.Parallel()
	const cc = 3
	th := newTestThrottler(t, ThrottlerOptions{})
	require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: cc, MaxWait: 50 * time.Millisecond}))
	pool := addrs(6)
	var mu sync.Mutex
	inFlight := map[string]int{}
	var served, failed atomic.Int64

	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			lo := i % len(pool)
			hi := min(lo+1+i%3, len(pool))
			if err := th.SetReplicas("rev", pool[lo:hi]); err != nil {
				t.Error(err)
				return
			}
			if i%7 == 0 {
				require.NoError(t, th.SetRevision("rev", RevisionConfig{ContainerConcurrency: cc, MaxWait: 50 * time.Millisecond, Policy: Policy(1 + i%4)}))
			}
		}
	})
	var clients sync.WaitGroup
	for range 8 {
		clients.Go(func() {
			for range 2000 {
				l, err := th.Acquire(context.Background(), "rev")
				if err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				inFlight[l.Addr()]++
				if inFlight[l.Addr()] > cc {
					t.Errorf("replica %s has %d in flight, CC is %d", l.Addr(), inFlight[l.Addr()], cc)
				}
				mu.Unlock()
				runtime.Gosched() // hold the slot while others act
				mu.Lock()
				inFlight[l.Addr()]--
				mu.Unlock()
				l.Release()
				served.Add(1)
			}
		})
	}
	clients.Wait()
	close(stop)
	churn.Wait()
	assert.Equal(t, int64(8*2000), served.Load()+failed.Load())
	assert.Positive(t, served.Load())
	st, _ := th.Status("rev")
	assert.Equal(t, 0, st.Waiting)
	assert.Equal(t, 0, st.InFlight)
}

func TestClientCancelWhileForwarding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		be := newFakeBackend(time.Hour)
		h := newTestHandler(t, Options{Transport: be})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1}))
		require.NoError(t, h.SetReplicas("rev", addrs(1)))
		ctx, cancel := context.WithCancel(context.Background())
		rec, done := serve(h, request("rev", 0).WithContext(ctx))
		_, next := serve(h, request("rev", 1))
		synctest.Wait()
		assert.Equal(t, 1, h.Waiting("rev"))
		cancel()
		<-done
		assert.Equal(t, StatusClientClosedRequest, rec.Code)
		synctest.Wait()
		assert.Equal(t, 0, h.Waiting("rev"), "the freed slot went to the next request")
		<-next
		mustShutdown(t, h)
	})
}
