package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/servingkit/servingkit/traffic"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// helloIn is a hello service at zero in a namespace, answering
// "Hello <target>!".
func helloIn(ns, name, target string) string {
	return strings.NewReplacer("name: hello, namespace: default", "name: "+name+", namespace: "+ns).
		Replace(fmt.Sprintf(helloAtZero, target))
}

// send makes a request to addr with a Host and headers.
func (tp *testPlatform) send(addr, host, path string, header ...string) (int, string) {
	tp.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr, nil)
	require.NoError(tp.t, err)
	req.URL.Opaque = path // sent as is, %2F and all
	req.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := tp.client.Do(req)
	require.NoError(tp.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(tp.t, err)
	return resp.StatusCode, string(b)
}

// Issue 11, routing: a name collision froze routing for every service; a
// cluster-local service was public; K-Network-Probe from outside was
// answered by the replica's queue; %2F became a path separator.
func TestE2EGatewayAttacks(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t)
	gw := tp.GatewayAddr()

	// hello with a candidate tag; then a service named candidate-hello.
	tp.deploy(helloIn("default", "hello", "hello")+`
  traffic:
    - {latestRevision: true, percent: 100, tag: candidate}
`, "default/hello-00001", "default/hello")
	svc, err := ParseService([]byte(helloIn("default", "candidate-hello", "impostor")))
	require.NoError(t, err)
	_, err = tp.Apply(svc)
	var rc *RouteConflictError
	require.ErrorAs(t, err, &rc, "the conflicting service is refused")
	assert.EqualError(t, err, `route conflict (DomainTaken): host "candidate-hello.default.localhost" of service default/candidate-hello is already served by the tag "candidate" of service default/hello`)
	// /apply reports it as 409.
	req, _ := http.NewRequest(http.MethodPost, "http://"+tp.ControlAddr()+"/apply", strings.NewReader(helloIn("default", "candidate-hello", "impostor")))
	req.Header.Set("Authorization", "Bearer "+tp.ControlToken())
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := tp.client.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusConflict, resp.StatusCode, string(body))
	assert.Contains(t, string(body), "DomainTaken")

	// Every other service keeps routing, a new one in another namespace
	// included; the cluster-local one only on the internal listener.
	tp.deploy(helloIn("acme", "greeter", "greeter"), "acme/greeter-00001", "acme/greeter")
	tp.deploy(strings.Replace(helloIn("default", "secret", "secret"), "namespace: default}", "namespace: default, labels: {networking.knative.dev/visibility: cluster-local}}", 1),
		"default/secret-00001", "default/secret")
	code, body2 := tp.send(gw, "greeter.acme.localhost", "/")
	assert.Equal(t, 200, code)
	assert.Equal(t, "Hello greeter!\n", body2)
	_, body2 = tp.send(gw, "candidate-hello.default.localhost", "/")
	assert.Equal(t, "Hello hello!\n", body2, "the tag host still reaches hello")

	code, _ = tp.send(gw, "secret.default.localhost", "/")
	assert.Equal(t, 404, code, "a cluster-local service is not on the public gateway by host")
	code, _ = tp.send(gw, "127.0.0.1", "/default/secret")
	assert.Equal(t, 404, code, "nor by path")
	code, _ = tp.send(gw, "secret.default.svc.cluster.local", "/")
	assert.Equal(t, 404, code, "nor by its cluster-local host")
	in := tp.InternalAddr()
	_, body2 = tp.send(in, "secret.default.svc.cluster.local", "/")
	assert.Equal(t, "Hello secret!\n", body2, "internal listener, by host")
	_, body2 = tp.send(in, "127.0.0.1", "/default/secret")
	assert.Equal(t, "Hello secret!\n", body2, "internal listener, by path")
	_, body2 = tp.send(in, "greeter.acme.svc.cluster.local", "/")
	assert.Equal(t, "Hello greeter!\n", body2, "the internal listener serves public services too")
	for _, s := range tp.Status().Services {
		if s.Name == "default/secret" {
			assert.Equal(t, VisibilityClusterLocal, s.Visibility)
			assert.Contains(t, s.URL, "secret.default.svc.cluster.local:")
		}
	}

	// K-Network-Probe from outside reaches the app, not the queue.
	code, body2 = tp.send(gw, "greeter.acme.localhost", "/", "K-Network-Probe", "queue")
	assert.Equal(t, 200, code)
	assert.Equal(t, "Hello greeter!\n", body2, "answered by the app, not the queue's probe")

	// An encoded slash is no separator: hello's path does not lead to
	// acme/greeter.
	// A byte the client should have escaped ("{") once made the router
	// read the path with every %2F turned into a slash.
	for _, p := range []string{"/default/hello%2f..%2f..%2facme%2fgreeter", "/default/hello/x%2f..%2f..%2f..%2facme%2fgreeter",
		"/default/hello%2f..%2f..%2facme%2fgreeter/{", "/default/hello/x%2f..%2f..%2f..%2facme%2fgreeter/|"} {
		_, body2 = tp.send(gw, "127.0.0.1", p)
		assert.NotEqual(t, "Hello greeter!\n", body2, p)
	}
	_, body2 = tp.send(gw, "127.0.0.1", "/acme/greeter")
	assert.Equal(t, "Hello greeter!\n", body2)
}

// Issue 11, connections: idle keep-alive connections stayed open for good,
// and enough of them exhausted the file descriptors. The gateway closes
// idle connections, slow headers and big headers, and sheds connections
// past its limit while serving those it has.
//
// Each timeout is checked on a gateway of its own, the others long: on a
// loaded machine, setting up 20 connections takes longer than a short idle
// timeout (a connection closed for idleness frees its place for the 21st),
// and a client can be descheduled between dial and write for longer than
// a short header timeout.
func TestE2EGatewayConnectionLimits(t *testing.T) {
	t.Parallel()
	start := func(header, idle time.Duration) *Platform {
		p, err := StartPlatform(Options{Addr: "127.0.0.1:0", ControlAddr: "127.0.0.1:0",
			ControlTokenFile: t.TempDir() + "/token",
			Gateway:          ServerConfig{ReadHeaderTimeout: header, IdleTimeout: idle, MaxHeaderBytes: 4 << 10, MaxConns: 20}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Stop(t.Context()) })
		return p
	}
	// hold opens 20 keep-alive connections, each after one request.
	hold := func(gw string) []net.Conn {
		var conns []net.Conn
		for range 20 {
			c, err := net.Dial("tcp", gw)
			require.NoError(t, err)
			conns = append(conns, c)
			_, err = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: nope.localhost\r\n\r\n")
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			assert.Equal(t, 404, resp.StatusCode)
			resp.Body.Close()
		}
		return conns
	}

	// Past the limit, a 21st connection is shed at once: closed without an
	// answer, while the 20 stay open.
	p := start(time.Minute, time.Hour)
	conns := hold(p.GatewayAddr())
	require.Equal(t, int64(20), p.gatewayConns.open.Load())
	extra, err := net.Dial("tcp", p.GatewayAddr())
	require.NoError(t, err)
	_, _ = io.WriteString(extra, "GET /x HTTP/1.1\r\nHost: nope.localhost\r\n\r\n")
	requireClosed(t, extra, 10*time.Second)
	assert.Equal(t, int64(1), p.gatewayConns.shed.Load())
	for _, c := range conns {
		c.Close()
	}
	require.Eventually(t, func() bool { return p.gatewayConns.open.Load() == 0 }, 10*time.Second, 10*time.Millisecond)

	// Idle connections are closed (300 ms; generous bound).
	p = start(time.Minute, 300*time.Millisecond)
	gw := p.GatewayAddr()
	for _, c := range hold(gw) {
		requireClosed(t, c, 10*time.Second)
	}
	require.Eventually(t, func() bool { return p.gatewayConns.open.Load() == 0 }, 10*time.Second, 10*time.Millisecond)

	// Headers sent too slowly: the connection is closed.
	slow, err := net.Dial("tcp", start(300*time.Millisecond, time.Minute).GatewayAddr())
	require.NoError(t, err)
	_, _ = io.WriteString(slow, "GET / HTTP/1.1\r\nHost: a")
	requireClosed(t, slow, 10*time.Second)

	// Headers too big: 431.
	big, err := net.Dial("tcp", gw)
	require.NoError(t, err)
	defer big.Close()
	_, _ = io.WriteString(big, "GET / HTTP/1.1\r\nHost: nope.localhost\r\nX-Big: "+strings.Repeat("a", 16<<10)+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(big), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	// And the gateway still serves.
	c, err := net.Dial("tcp", gw)
	require.NoError(t, err)
	defer c.Close()
	_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: nope.localhost\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	assert.Equal(t, 404, resp.StatusCode)
}

// requireClosed waits until the server closes c: a read returns EOF or a
// reset (after any response bytes).
func requireClosed(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(within)))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", within)
	}
}

// The default connection limit leaves descriptors for everything else:
// two per connection plus a quarter of the limit and 128.
func TestConnLimitLeavesHeadroom(t *testing.T) {
	for _, n := range []uint64{1024, 4096, 20000, 1 << 20} {
		l := uint64(connLimit(n))
		assert.LessOrEqual(t, 2*l+n/4+128, n+1, "n=%d: limit %d", n, l)
		assert.Greater(t, l, n/4, "n=%d: limit %d is needlessly small", n, l)
	}
	assert.Equal(t, 7436, connLimit(20000))
	assert.Equal(t, 16, connLimit(100), "a floor for tiny limits")
	d := ServerConfig{}.withDefaults()
	assert.Equal(t, ServerConfig{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10, MaxConns: connLimit(nofile())}, d,
		"the defaults examples/README states")
	assert.EqualError(t, ServerConfig{IdleTimeout: -1, MaxConns: -2}.Validate(),
		"platform: ServerConfig.IdleTimeout = -1, must be ≥ 0 (0 means the default)\nplatform: ServerConfig.MaxConns = -2, must be ≥ 0 (0 means the default)")
}

// Should two services' routes collide anyway (Apply refuses it, but the
// route loop must not depend on that), the router refuses only one of
// them, the route loop marks that service with DomainTaken, and every
// other service is routed.
func TestRouteLoopMarksARefusedRouteOnly(t *testing.T) {
	t.Parallel()
	p, err := NewPlatform(Options{Addr: "127.0.0.1:0", ControlAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	pinned := func(ns string, targets ...traffic.Target) (*service, traffic.Spec) {
		spec := traffic.Spec{Traffic: targets}
		spec.SetDefaults()
		require.NoError(t, spec.Validate())
		tbl, err := traffic.Resolve(spec, nil)
		require.NoError(t, err)
		return &service{ns: ns, table: tbl}, spec
	}
	add := func(ns, name string, targets ...traffic.Target) {
		s, spec := pinned(ns, targets...)
		s.name, s.traffic = name, spec
		p.services[s.key()] = s
	}
	// Tables already in place, revisions not ready: the loop keeps routing
	// the tables it has (and notes the revisions' problem).
	add("default", "hello", traffic.Target{RevisionName: "default/hello-1", Percent: 100}, traffic.Target{RevisionName: "default/hello-1", Tag: "candidate"})
	add("default", "candidate-hello", traffic.Target{RevisionName: "default/cand-1", Percent: 100})
	add("team-b", "other", traffic.Target{RevisionName: "team-b/other-1", Percent: 100})
	p.reconcileRoutes(time.Now())

	var refused []string
	for _, s := range p.Status().Services {
		if strings.HasPrefix(s.Problem, "DomainTaken: ") {
			refused = append(refused, s.Name)
			assert.Contains(t, s.Problem, `host "candidate-hello.default.localhost" with path prefix "" is also claimed by default/`, "the gateway's refusal")
			assert.Contains(t, s.Problem, `; DomainTaken: host "candidate-hello.default.svc.cluster.local" with path prefix "" is also claimed by default/`, "the internal listener's")
		}
	}
	assert.Len(t, refused, 1, "exactly one of the colliding services is refused")
	serve := func(r http.Handler, host, path string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
		w := &codeRecorder{header: http.Header{}}
		r.ServeHTTP(w, req)
		return w.code
	}
	// 503: routed, to a revision without a front door; 404: not routed.
	assert.Equal(t, 503, serve(p.router, "other.team-b.localhost", "/"), "an unrelated service is routed")
	assert.Equal(t, 503, serve(p.router, "127.0.0.1", "/team-b/other"))
	assert.Equal(t, 503, serve(p.inner, "other.team-b.svc.cluster.local", "/"))
	assert.Equal(t, 503, serve(p.router, "candidate-hello.default.localhost", "/"), "one of the two has the host")
}

type codeRecorder struct {
	header http.Header
	code   int
}

func (w *codeRecorder) Header() http.Header { return w.header }
func (w *codeRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(b), nil
}
func (w *codeRecorder) WriteHeader(code int) { w.code = code }
