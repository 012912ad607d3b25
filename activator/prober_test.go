package activator

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/queue"
)

// A listed replica that fails its probe gets no traffic; probes back off
// 50, 100, 200, 400, 800 ms, then every second; the first passing probe
// hands the waiting request over at once.
func TestProbeBeforeUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ready atomic.Bool
		var mu sync.Mutex
		var attempts []time.Duration
		start := time.Now()
		prober := ProberFunc(func(ctx context.Context, addr string) error {
			mu.Lock()
			attempts = append(attempts, time.Since(start))
			mu.Unlock()
			dl, ok := ctx.Deadline()
			assert.True(t, ok)
			assert.Equal(t, DefaultProbeTimeout, time.Until(dl))
			if ready.Load() {
				return nil
			}
			return errors.New("connection refused")
		})
		be := newFakeBackend(0)
		h := newTestHandler(t, Options{ThrottlerOptions: ThrottlerOptions{Prober: prober}, Transport: be, WaitHeader: waitHeader})
		require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
		require.NoError(t, h.SetReplicas("rev", []string{"10.0.0.1:8012"}))
		st, _ := h.Status("rev")
		assert.Equal(t, 1, st.Listed)
		assert.Equal(t, 0, st.Ready)
		assert.Equal(t, 0, st.Capacity)

		rec, done := serve(h, request("rev", 0))
		time.Sleep(2600 * time.Millisecond)
		assert.Empty(t, be.counts(), "no traffic before the probe passes")
		ready.Store(true)
		<-done
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, 3550*time.Millisecond, waitedOf(t, rec))
		ms := time.Millisecond
		assert.Equal(t, []time.Duration{0, 50 * ms, 150 * ms, 350 * ms, 750 * ms, 1550 * ms, 2550 * ms, 3550 * ms}, attempts)
		st, _ = h.Status("rev")
		assert.Equal(t, 1, st.Ready)
		mustShutdown(t, h)
	})
}

func TestProbeTimeoutAndUnlisting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		prober := ProberFunc(func(ctx context.Context, addr string) error {
			calls.Add(1)
			<-ctx.Done() // a replica that never answers
			return ctx.Err()
		})
		th := newTestThrottler(t, ThrottlerOptions{Prober: prober, ProbeTimeout: 100 * time.Millisecond, ProbeInterval: 10 * time.Millisecond, ProbeMaxInterval: 20 * time.Millisecond})
		require.NoError(t, th.SetRevision("rev", RevisionConfig{}))
		require.NoError(t, th.SetReplicas("rev", []string{"10.0.0.1:8012"}))
		time.Sleep(250 * time.Millisecond) // probes at 0, 110 and 230 ms
		assert.Equal(t, int32(3), calls.Load())
		require.NoError(t, th.SetReplicas("rev", nil))
		synctest.Wait()
		time.Sleep(time.Minute)
		assert.Equal(t, int32(3), calls.Load(), "an unlisted replica is no longer probed")
		th.Close()
	})
}

func TestCloseStopsProbing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newTestThrottler(t, ThrottlerOptions{Prober: ProberFunc(func(context.Context, string) error { return errors.New("no") })})
		require.NoError(t, th.SetRevision("rev", RevisionConfig{}))
		require.NoError(t, th.SetReplicas("rev", addrs(3)))
		time.Sleep(time.Second)
		th.Close() // returns only once every probe goroutine ended
		require.NoError(t, th.SetReplicas("rev", addrs(4)))
		st, _ := th.Status("rev")
		assert.Equal(t, 0, st.Ready, "after Close new replicas stay unprobed and unused")
	})
}

// queueReplica is a replica whose queue answers readiness probes like
// servingkit's and Knative's: 200 "queue" when ready, 503 when not.
type queueReplica struct {
	ready  atomic.Bool
	probes chan *http.Request
	served atomic.Int32
}

func (q *queueReplica) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(queue.ProbeHeader) == queue.ProbeHeaderValue {
		select {
		case q.probes <- r:
		default:
		}
		if !q.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, queue.ProbeHeaderValue)
		return
	}
	q.served.Add(1)
	_, _ = io.WriteString(w, "app says hi")
}

func TestHTTPProber(t *testing.T) {
	q := &queueReplica{probes: make(chan *http.Request, 10)}
	srv := httptest.NewServer(q)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	p := &HTTPProber{}

	err := p.Probe(context.Background(), addr)
	assert.EqualError(t, err, "activator: probe http://"+addr+"/healthz: status 503, want 200")
	probe := <-q.probes
	assert.Equal(t, "/healthz", probe.URL.Path)
	assert.Equal(t, ProbeUserAgent, probe.UserAgent())

	q.ready.Store(true)
	assert.NoError(t, p.Probe(context.Background(), addr))
	<-q.probes

	wrong := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "an app, no queue") }))
	defer wrong.Close()
	waddr := wrong.Listener.Addr().String()
	assert.EqualError(t, p.Probe(context.Background(), waddr), `activator: probe http://`+waddr+`/healthz: body "an app, no queue", want "queue"`)

	assert.NoError(t, (&HTTPProber{Path: "/ready", Transport: http.DefaultTransport}).Probe(context.Background(), addr))
	assert.Equal(t, "/ready", (<-q.probes).URL.Path)
}

// A replica that is listed before it listens gets no traffic: the request
// waits until the replica listens and its queue says ready.
func TestListedButNotListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now

	h := newTestHandler(t, Options{ThrottlerOptions: ThrottlerOptions{
		Prober:           &HTTPProber{},
		ProbeInterval:    time.Millisecond,
		ProbeMaxInterval: 5 * time.Millisecond,
	}})
	require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
	require.NoError(t, h.SetReplicas("rev", []string{addr}))
	rec, done := serve(h, request("rev", 0))
	// Real sockets, so no synctest: poll until the serving goroutine has
	// queued the request, which then cannot leave before a probe passes.
	waiting := func() bool { st, _ := h.Status("rev"); return st.Waiting == 1 }
	require.Eventually(t, waiting, time.Minute, time.Millisecond, "the request never queued")

	q := &queueReplica{probes: make(chan *http.Request, 1)}
	srv := httptest.NewUnstartedServer(q)
	srv.Listener, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	srv.Start()
	defer srv.Close()
	<-q.probes // listening, but not ready yet
	<-q.probes
	assert.Equal(t, int32(0), q.served.Load())
	assert.True(t, waiting(), "the request still waits while the replica is not ready")

	q.ready.Store(true)
	<-done
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "app says hi", rec.Body.String())
	assert.Equal(t, int32(1), q.served.Load())
	mustShutdown(t, h)
}
