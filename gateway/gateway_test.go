package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/gateway"
	"github.com/servingkit/servingkit/internal/refused"
	"github.com/servingkit/servingkit/revision"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// orderCheck is an activator that checks the Serve balancer already has
// each replica set it is given.
type orderCheck struct {
	t   *testing.T
	b   *balancer.Balancer
	mu  sync.Mutex
	got [][]string
}

func (o *orderCheck) SetReplicas(_ string, addrs []string) error {
	assert.Equal(o.t, nonNil(addrs), nonNil(o.b.Replicas()), "the balancer is updated before the activator")
	o.mu.Lock()
	o.got = append(o.got, addrs)
	o.mu.Unlock()
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// The reconciler sees a replica set only after the Serve path and the
// activator: when it switches to Serve the balancer has the replicas, and
// when it switches to Proxy on a scale to zero the balancer and the
// activator have stopped sending to them.
func TestEndpointsOrder(t *testing.T) {
	b, err := balancer.New(balancer.Config{})
	require.NoError(t, err)
	act := &orderCheck{t: t, b: b}
	serve, err := gateway.NewServeHandler(b, nil)
	require.NoError(t, err)
	rec, err := revision.NewReconciler("ns/rev", t0, revision.Config{}, revision.ReconcilerOptions{Activator: http.NotFoundHandler(), Serve: serve})
	require.NoError(t, err)
	eps, err := gateway.NewEndpoints("ns/rev", gateway.EndpointsConfig{Reconciler: rec, Serve: b, Activator: act})
	require.NoError(t, err)
	var switches []revision.Mode
	rec.OnEndpoints(func(_ string, e revision.Endpoints) {
		switches = append(switches, e.Mode)
		if e.Mode == revision.Serve {
			assert.Equal(t, e.Addresses, b.Replicas(), "Serve only with the replicas in the balancer")
			assert.Equal(t, e.Addresses, act.got[len(act.got)-1])
		} else {
			assert.Empty(t, b.Replicas(), "Proxy on scale to zero: the balancer is empty first")
		}
	})
	eps.SetActivators(t0, []string{"10.0.1.1:8012", "10.0.1.2:8012"})
	rec.Decide(t0, revision.Decision{Desired: 2, ExcessBurstCapacity: 10})
	require.NoError(t, eps.SetReady(t0, []string{"10.0.0.2:8012", "10.0.0.1:8012"}))
	assert.Equal(t, revision.Serve, rec.FrontDoor().Mode())
	assert.Equal(t, []string{"10.0.0.1:8012", "10.0.0.2:8012"}, eps.Ready())
	require.NoError(t, eps.SetReady(t0, nil))
	assert.Equal(t, revision.Proxy, rec.FrontDoor().Mode())
	assert.Equal(t, []revision.Mode{revision.Proxy, revision.Proxy, revision.Serve, revision.Proxy}, switches, "created, activators, replicas, scaled to zero")
	assert.Len(t, act.got, 2)

	err = eps.SetReady(t0, []string{"10.0.0.1:8012", "nope", "10.0.0.1:8012"})
	assert.ErrorContains(t, err, `address "nope": want host:port`)
	assert.ErrorContains(t, err, `address "10.0.0.1:8012" listed twice`)
	assert.Empty(t, b.Replicas(), "a rejected set changes nothing")
	assert.Len(t, act.got, 2)

	_, err = gateway.NewEndpoints("", gateway.EndpointsConfig{})
	assert.ErrorContains(t, err, "key is empty")
	assert.ErrorContains(t, err, "Reconciler is nil")
	_, err = gateway.NewEndpoints("ns/other", gateway.EndpointsConfig{Reconciler: rec})
	assert.ErrorContains(t, err, "Reconciler is revision ns/rev's, want ns/other's")
}

// Both kinds of activator count their requests to a removed replica.
var (
	_ gateway.InFlightCounter = (*activator.Handler)(nil)
	_ gateway.InFlightCounter = (*activator.Throttler)(nil)
)

// gateTransport holds each request after the Serve path picked its replica
// and before it is sent, until open is closed: the moment a scale-down can
// fall into.
type gateTransport struct {
	entered chan string
	open    chan struct{}
}

func (g *gateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	g.entered <- r.URL.Host
	<-g.open
	return http.DefaultTransport.RoundTrip(r)
}

// A request the Serve path picked a replica for just before a scale-down
// removed it is still on its way there: InFlight keeps counting it (and
// the activator's requests) after SetReady, so a host that waits for 0
// before it stops the replica loses nothing. Without that count, the host
// saw 0 at once, stopped the replica, and the request found it gone (502).
func TestEndpointsInFlightAfterRemoval(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	aAddr, bAddr := strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://")
	bl, err := balancer.New(balancer.Config{})
	require.NoError(t, err)
	gate := &gateTransport{entered: make(chan string, 1), open: make(chan struct{})}
	serve, err := gateway.NewServeHandler(bl, gate)
	require.NoError(t, err)
	th, err := activator.NewThrottler(activator.ThrottlerOptions{})
	require.NoError(t, err)
	require.NoError(t, th.SetRevision("ns/rev", activator.RevisionConfig{ContainerConcurrency: 10}))
	rec, err := revision.NewReconciler("ns/rev", t0, revision.Config{}, revision.ReconcilerOptions{Activator: http.NotFoundHandler(), Serve: serve})
	require.NoError(t, err)
	eps, err := gateway.NewEndpoints("ns/rev", gateway.EndpointsConfig{Reconciler: rec, Serve: bl, Activator: th})
	require.NoError(t, err)
	require.NoError(t, eps.SetReady(t0, []string{aAddr}))

	done := make(chan *httptest.ResponseRecorder)
	go func() {
		w := httptest.NewRecorder()
		serve.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://x/", nil))
		done <- w
	}()
	require.Equal(t, aAddr, <-gate.entered)
	lease, err := th.Acquire(t.Context(), "ns/rev")
	require.NoError(t, err)
	require.Equal(t, aAddr, lease.Addr())

	require.NoError(t, eps.SetReady(t0, []string{bAddr}))
	assert.Equal(t, int64(2), eps.InFlight(aAddr), "a is out of the set, but a Serve request and an activator lease are on their way to it")
	lease.Release()
	assert.Equal(t, int64(1), eps.InFlight(aAddr))
	close(gate.open)
	w := <-done
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), "a")
	assert.Equal(t, int64(0), eps.InFlight(aAddr), "now a can be stopped")
	assert.Equal(t, int64(0), eps.InFlight(bAddr))
}

func backend(t *testing.T, name string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s %s", name, r.Host, r.Header.Get(revision.RevisionHeader), body)
	}))
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, h http.Handler, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://hello.default.example/", strings.NewReader(body))
	r.Header.Set(revision.RevisionHeader, "ns/rev") // as a front door sets it
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestServeHandler(t *testing.T) {
	b, err := balancer.New(balancer.Config{})
	require.NoError(t, err)
	h, err := gateway.NewServeHandler(b, nil)
	require.NoError(t, err)
	code, body := get(t, h, "")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "no ready replica")

	seen := map[string]int{}
	s1, s2 := backend(t, "one"), backend(t, "two")
	require.NoError(t, b.SetReplicas([]string{s1.Listener.Addr().String(), s2.Listener.Addr().String()}))
	for range 50 {
		code, body := get(t, h, "hi")
		require.Equal(t, http.StatusOK, code, body)
		name, rest, _ := strings.Cut(body, " ")
		assert.Equal(t, "hello.default.example ns/rev hi", rest, "host, headers and body pass")
		seen[name]++
	}
	assert.Len(t, seen, 2, "both replicas get requests: %v", seen)
	for _, a := range b.Replicas() {
		assert.Zero(t, b.InFlight(a))
	}

	// A replica that died before the endpoints caught up: its requests,
	// refused before anything was sent, go to another, body and all.
	dead := deadAddr(t)
	require.NoError(t, b.SetReplicas([]string{dead, s1.Listener.Addr().String()}))
	for i := range 20 {
		code, body := get(t, h, fmt.Sprint("req-", i))
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, fmt.Sprintf("one hello.default.example ns/rev req-%d", i), body)
	}
	for _, a := range b.Replicas() {
		assert.Zero(t, b.InFlight(a), "every reservation released, %s", a)
	}
	require.NoError(t, b.SetReplicas([]string{dead}))
	code, body = get(t, h, "")
	assert.Equal(t, http.StatusBadGateway, code)
	assert.Contains(t, body, "replica unreachable: connection refused by "+dead)
}

// First available would send every retry to the same dead first replica;
// the retry skips it.
func TestServeHandlerRetriesPastFirstAvailable(t *testing.T) {
	b, err := balancer.New(balancer.Config{ContainerConcurrency: 1})
	require.NoError(t, err)
	require.Equal(t, balancer.PolicyFirstAvailable, b.Policy())
	h, err := gateway.NewServeHandler(b, nil)
	require.NoError(t, err)
	live := backend(t, "live")
	require.NoError(t, b.SetReplicas([]string{"127.0.0.1:1", deadAddr(t), live.Listener.Addr().String()}))
	code, body := get(t, h, "x")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "live hello.default.example ns/rev x", body)
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string { return refused.Addr(t) }

// An activator that refuses connections is left out at once, for every
// revision, and its request goes to another with its body intact; after
// DeadTime it is tried again.
func TestRemoteActivatorsFailOver(t *testing.T) {
	clk := clock.NewMock()
	acts, err := gateway.NewActivators(gateway.ActivatorsConfig{Clock: clk, DeadTime: 5 * time.Second})
	require.NoError(t, err)
	ra := acts.For("ns/rev")
	code, body := get(t, ra, "")
	assert.Equal(t, http.StatusServiceUnavailable, code, "no activator")
	assert.Contains(t, body, gateway.ErrNoActivator.Error())

	live := backend(t, "live")
	dead := deadAddr(t)
	ra.SetAddresses([]string{dead, live.Listener.Addr().String()})
	for i := range 20 {
		code, body := get(t, ra, fmt.Sprint("req-", i))
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, fmt.Sprintf("live hello.default.example ns/rev req-%d", i), body, "the revision header and body reach the activator")
	}
	assert.False(t, acts.Alive(dead))
	assert.True(t, acts.Alive(live.Listener.Addr().String()))
	other := acts.For("ns/other")
	other.SetAddresses([]string{dead})
	code, _ = get(t, other, "")
	assert.Equal(t, http.StatusServiceUnavailable, code, "a dead activator is tried when it is the only one, and fails")
	clk.Add(5 * time.Second)
	assert.True(t, acts.Alive(dead), "tried again after DeadTime")

	// A failure after the request was sent is not retried: it may have
	// had effects.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(broken.Close)
	ra.SetAddresses([]string{broken.Listener.Addr().String()})
	code, body = get(t, ra, "x")
	assert.Equal(t, http.StatusBadGateway, code, body)

	_, err = gateway.NewActivators(gateway.ActivatorsConfig{DeadTime: -1})
	assert.ErrorContains(t, err, "DeadTime = -1ns, must be >= 0")
}

func BenchmarkEndpointsSetReady(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprint("replicas=", n), func(b *testing.B) {
			bl, _ := balancer.New(balancer.Config{})
			serve, _ := gateway.NewServeHandler(bl, nil)
			rec, _ := revision.NewReconciler("ns/rev", t0, revision.Config{}, revision.ReconcilerOptions{Activator: http.NotFoundHandler(), Serve: serve})
			act, _ := activator.NewThrottler(activator.ThrottlerOptions{})
			defer act.Close()
			_ = act.SetRevision("ns/rev", activator.RevisionConfig{ContainerConcurrency: 10})
			eps, _ := gateway.NewEndpoints("ns/rev", gateway.EndpointsConfig{Reconciler: rec, Serve: bl, Activator: act})
			sets := [2][]string{}
			for i := range n {
				sets[0] = append(sets[0], fmt.Sprintf("10.0.0.%d:8012", i))
				sets[1] = append(sets[1], fmt.Sprintf("10.0.1.%d:8012", i))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := eps.SetReady(t0, sets[i&1]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// With Remote, the front door's Proxy path follows the revision's
// activator subset as the reconciler chooses it.
func TestEndpointsRemoteActivators(t *testing.T) {
	acts, err := gateway.NewActivators(gateway.ActivatorsConfig{})
	require.NoError(t, err)
	ra := acts.For("ns/rev")
	b, _ := balancer.New(balancer.Config{})
	serve, _ := gateway.NewServeHandler(b, nil)
	rec, err := revision.NewReconciler("ns/rev", t0, revision.Config{}, revision.ReconcilerOptions{Activator: ra, Serve: serve})
	require.NoError(t, err)
	eps, err := gateway.NewEndpoints("ns/rev", gateway.EndpointsConfig{Reconciler: rec, Serve: b, Remote: ra})
	require.NoError(t, err)
	all := []string{"10.0.1.4:8012", "10.0.1.1:8012", "10.0.1.3:8012", "10.0.1.2:8012"}
	eps.SetActivators(t0, all)
	want := revision.ChooseSubset(all, revision.MinActivators, "ns/rev")
	assert.Len(t, want, 2)
	assert.Equal(t, want, ra.Addresses())
	assert.Equal(t, want, rec.State().Endpoints.Addresses)
	assert.Equal(t, []string{"10.0.1.1:8012", "10.0.1.2:8012", "10.0.1.3:8012", "10.0.1.4:8012"}, eps.Activators())
}

// The Serve path keeps the client the hops before recorded in
// X-Forwarded-For and Forwarded.
func TestServeHandlerKeepsForwardingHeaders(t *testing.T) {
	b, err := balancer.New(balancer.Config{})
	require.NoError(t, err)
	h, err := gateway.NewServeHandler(b, nil)
	require.NoError(t, err)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s", r.Header.Get("X-Forwarded-For"), r.Header.Get("Forwarded"))
	}))
	defer app.Close()
	require.NoError(t, b.SetReplicas([]string{app.Listener.Addr().String()}))
	req := httptest.NewRequest(http.MethodGet, "http://hello.default.example/", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("Forwarded", "for=203.0.113.7")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, "203.0.113.7|for=203.0.113.7", rec.Body.String())
}

// With Self, each process's activator takes its share of the replicas from
// its place in the revision's activator subset: two activators split four
// replicas without overlap.
func TestEndpointsActivatorSubset(t *testing.T) {
	all := []string{"10.0.1.1:8012", "10.0.1.2:8012", "10.0.1.3:8012"}
	subset := revision.ChooseSubset(all, revision.MinActivators, "ns/rev")
	replicas := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"}
	var shares [][]string
	for _, self := range all {
		th, err := activator.NewThrottler(activator.ThrottlerOptions{})
		require.NoError(t, err)
		require.NoError(t, th.SetRevision("ns/rev", activator.RevisionConfig{ContainerConcurrency: 5}))
		rec, err := revision.NewReconciler("ns/rev", t0, revision.Config{}, revision.ReconcilerOptions{})
		require.NoError(t, err)
		eps, err := gateway.NewEndpoints("ns/rev", gateway.EndpointsConfig{Reconciler: rec, Activator: th, Self: self})
		require.NoError(t, err)
		eps.SetActivators(t0, all)
		require.NoError(t, eps.SetReady(t0, replicas))
		st, _ := th.Status("ns/rev")
		if slices.Contains(subset, self) {
			assert.Len(t, st.Assigned, 2, "%s is in the subset: half", self)
			shares = append(shares, st.Assigned)
		} else {
			assert.Equal(t, replicas, st.Assigned, "%s is not in the subset: every replica", self)
		}
	}
	require.Len(t, shares, 2)
	assert.ElementsMatch(t, replicas, append(shares[0], shares[1]...), "the two shares cover the replicas without overlap")
}
