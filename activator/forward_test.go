package activator

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/internal/refused"
	"github.com/servingkit/servingkit/proxy"
)

// deadAddr returns the address of a listener that was closed: connecting
// to it is refused.
func deadAddr(t *testing.T) string { return refused.Addr(t) }

// echoReplica answers every request with "<replica> <method> <body>".
func echoReplica(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", name, r.Method, b)
	}))
	t.Cleanup(s.Close)
	return s
}

// dyingReplica accepts connections, reads a request's head and closes the
// connection without answering, as a replica killed mid-request does. It
// counts the connections it accepted.
func dyingReplica(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	accepted = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_, _ = http.ReadRequest(bufio.NewReader(c))
			_ = c.Close()
		}
	}()
	return ln.Addr().String(), accepted
}

func post(rev, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://example.com/", strings.NewReader(body))
	r.Header.Set(RevisionHeader, rev)
	return r
}

// TestRefusedConnectionGoesToAnotherReplica: a listed replica whose port
// refuses connections (its process died) costs no request: each one that
// picks it goes to the live replica, body and all, and the dead one leaves
// the rotation.
func TestRefusedConnectionGoesToAnotherReplica(t *testing.T) {
	live := echoReplica(t, "live")
	dead := deadAddr(t)
	h := newTestHandler(t, Options{})
	defer mustShutdown(t, h)
	// Round robin over two replicas: the dead one is picked at once.
	require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 10, Policy: PolicyRoundRobin}))
	require.NoError(t, h.SetReplicas("rev", []string{dead, live.Listener.Addr().String()}))
	for i := range 10 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, post("rev", fmt.Sprintf("payload %d", i)))
		require.Equal(t, http.StatusOK, rec.Code, "request %d: %s", i, rec.Body)
		require.Equal(t, fmt.Sprintf("live POST payload %d", i), rec.Body.String())
	}
	st, _ := h.Status("rev")
	assert.Equal(t, []string{live.Listener.Addr().String()}, st.Assigned, "the dead replica is out of rotation")
	assert.Equal(t, 2, st.Listed, "but still listed: the host decides that")
	assert.Equal(t, 0, st.InFlight)
}

// TestRefusedConnectionWaitsInLine: when the only replica refuses, the
// request goes back in line and is served by the next replica listed; the
// dead one, once it listens again, is probed back into rotation.
func TestRefusedConnectionWaitsInLine(t *testing.T) {
	dead := deadAddr(t)
	h := newTestHandler(t, Options{})
	defer mustShutdown(t, h)
	require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1}))
	require.NoError(t, h.SetReplicas("rev", []string{dead}))
	rec, done := serve(h, post("rev", "hello"))
	require.Eventually(t, func() bool { return h.Waiting("rev") == 1 }, 10*time.Second, 5*time.Millisecond,
		"the request waits for a replica after the refused connection")
	live := echoReplica(t, "live")
	require.NoError(t, h.SetReplicas("rev", []string{dead, live.Listener.Addr().String()}))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting request was not served by the new replica")
	}
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "live POST hello", rec.Body.String())

	// The dead replica's port listens again: the dial probe lets it back.
	ln, err := net.Listen("tcp", dead)
	if err != nil {
		t.Skipf("cannot listen on %s again to check the re-admission: %v", dead, err)
	}
	defer ln.Close()
	require.Eventually(t, func() bool {
		st, _ := h.Status("rev")
		return slices.Contains(st.Assigned, dead)
	}, 10*time.Second, 5*time.Millisecond, "a replica that accepts connections again is back in rotation")
}

// TestRefusedEverywhereIs502AfterConnectTries: a request is tried on at
// most ConnectTries replicas, then answered 502 naming the last failure.
func TestRefusedEverywhereIs502AfterConnectTries(t *testing.T) {
	h := newTestHandler(t, Options{})
	defer mustShutdown(t, h)
	var dead []string
	for range ConnectTries + 2 {
		dead = append(dead, deadAddr(t))
	}
	require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1}))
	require.NoError(t, h.SetReplicas("rev", dead))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request("rev", 0))
	require.Equal(t, http.StatusBadGateway, rec.Code)
	assert.Contains(t, rec.Body.String(), fmt.Sprintf(`activator: revision "rev": could not connect to a replica in %d tries; last, could not connect to replica 127.0.0.1:`, ConnectTries))
	assert.Contains(t, rec.Body.String(), "connection refused")
	st, _ := h.Status("rev")
	assert.Len(t, st.Assigned, 2, "each try took one dead replica out")
}

// TestRefusedThenMaxWaitNamesTheCause: a request back in line that gets no
// replica says why it was back in line.
func TestRefusedThenMaxWaitNamesTheCause(t *testing.T) {
	dead := deadAddr(t)
	h := newTestHandler(t, Options{})
	defer mustShutdown(t, h)
	require.NoError(t, h.SetRevision("rev", RevisionConfig{MaxWait: 50 * time.Millisecond}))
	require.NoError(t, h.SetReplicas("rev", []string{dead}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request("rev", 0))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Contains(t, rec.Body.String(), "(max wait reached); it was back in line because an earlier try could not connect to replica "+dead)
}

// TestReplicaDyingMidRequestIs502: a request the replica received before
// it died is not sent again (the replica may have acted on it); its 502
// says what happened.
func TestReplicaDyingMidRequestIs502(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			addr, accepted := dyingReplica(t)
			h := newTestHandler(t, Options{Transport: transportFor(proto)})
			defer mustShutdown(t, h)
			require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 1, Policy: PolicyFirstAvailable}))
			require.NoError(t, h.SetReplicas("rev", []string{addr}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, post("rev", "once"))
			require.Equal(t, http.StatusBadGateway, rec.Code)
			body := rec.Body.String()
			assert.Contains(t, body, fmt.Sprintf(`activator: revision "rev", replica %s: the connection closed before the replica answered (did the replica stop?); not retried`, addr))
			assert.Equal(t, int32(1), accepted.Load(), "sent once")
		})
	}
}

// transportFor is the activator's default transport for "h2c" and an
// HTTP/1.1-only one otherwise.
func transportFor(proto string) http.RoundTripper {
	if proto == "h2c" {
		return nil
	}
	return &http.Transport{}
}

// A retried request keeps its context: one that ends while it is back in
// line ends the wait.
func TestRefusedThenCanceled(t *testing.T) {
	dead := deadAddr(t)
	h := newTestHandler(t, Options{})
	defer mustShutdown(t, h)
	require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
	require.NoError(t, h.SetReplicas("rev", []string{dead}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request("rev", 0).WithContext(ctx))
	require.Equal(t, http.StatusGatewayTimeout, rec.Code)
	assert.Contains(t, rec.Body.String(), "back in line because an earlier try could not connect")
}

// TestRefusedConnectionKeepsTheBodyBehindAServer: behind a real server,
// whose request bodies cannot be read once closed, a request whose first
// replica refused the connection reaches the live one with its whole body,
// whatever forwards it: the proxy.Client (HTTP/1), a host's
// *http.Transport, or the reverse proxy with the h2c transport (a request
// that came over HTTP/2). A transport closes the body of a request it
// could not send; that must not cost the next try its body.
func TestRefusedConnectionKeepsTheBodyBehindAServer(t *testing.T) {
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	for _, tc := range []struct {
		name      string
		transport http.RoundTripper
		inbound   *http.Protocols // nil: HTTP/1.1
	}{
		{"HTTP/1.1, proxy.Client", nil, nil},
		{"HTTP/1.1, host's http.Transport", &http.Transport{}, nil},
		{"HTTP/2 (h2c), reverse proxy", nil, h2c},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				fmt.Fprintf(w, "live %s %s", r.Method, b)
			}))
			live.Config.Protocols = proxy.ServerProtocols()
			live.Start()
			defer live.Close()
			dead := deadAddr(t)
			h := newTestHandler(t, Options{Transport: tc.transport})
			defer mustShutdown(t, h)
			// Round robin over two replicas: every other request picks the
			// dead one first.
			require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 10, Policy: PolicyRoundRobin}))
			require.NoError(t, h.SetReplicas("rev", []string{dead, live.Listener.Addr().String()}))
			front := httptest.NewUnstartedServer(h)
			front.Config.Protocols = proxy.ServerProtocols()
			front.Start()
			defer front.Close()
			client := &http.Client{Transport: &http.Transport{Protocols: tc.inbound}}
			defer client.CloseIdleConnections()
			for i := range 4 {
				body := fmt.Sprintf("payload %d", i)
				req, err := http.NewRequest(http.MethodPost, front.URL, strings.NewReader(body))
				require.NoError(t, err)
				req.Header.Set(RevisionHeader, "rev")
				res, err := client.Do(req)
				require.NoError(t, err)
				got, err := io.ReadAll(res.Body)
				res.Body.Close()
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, res.StatusCode, "request %d: %s", i, got)
				require.Equal(t, "live POST "+body, string(got), "request %d", i)
				if tc.inbound != nil {
					require.Equal(t, 2, res.ProtoMajor)
				}
			}
		})
	}
}
