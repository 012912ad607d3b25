package activator

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/proxy"
	"github.com/servingkit/servingkit/queue"
)

// activatorFor serves h on a real listener and points revision "rev" at the
// replica server.
// The wait header is on, so that these tests also pass through the writer
// that sets it.
func activatorFor(t *testing.T, replica *httptest.Server, h2c bool) (*Handler, *httptest.Server) {
	t.Helper()
	h := newTestHandler(t, Options{WaitHeader: waitHeader})
	require.NoError(t, h.SetRevision("rev", RevisionConfig{ContainerConcurrency: 5}))
	require.NoError(t, h.SetReplicas("rev", []string{replica.Listener.Addr().String()}))
	front := httptest.NewUnstartedServer(h)
	if h2c {
		front.Config.Protocols = proxy.ServerProtocols()
	}
	front.Start()
	t.Cleanup(front.Close)
	return h, front
}

func TestWebsocketUpgradePassesThrough(t *testing.T) {
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || r.Header.Get(queue.ProxyHeader) != queue.ProxyHeaderValue {
			http.Error(w, "want a proxied upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString(strings.ToUpper(line))
			_ = brw.Flush()
		}
	}))
	defer replica.Close()
	h, front := activatorFor(t, replica, false)

	conn, err := net.Dial("tcp", front.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: app\r\n%s: rev\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", RevisionHeader)
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)

	st, _ := h.Status("rev")
	assert.Equal(t, 1, st.InFlight, "an open websocket holds its slot")
	for _, msg := range []string{"hello\n", "again\n"} {
		_, err = io.WriteString(conn, msg)
		require.NoError(t, err)
		got, err := br.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, strings.ToUpper(msg), got)
	}
}

func TestServerSentEventsAreFlushed(t *testing.T) {
	next := make(chan struct{})
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range 3 {
			if i > 0 {
				<-next // the client must have seen the previous event
			}
			_, _ = fmt.Fprintf(w, "data: %d\n\n", i)
			_ = rc.Flush()
		}
	}))
	defer replica.Close()
	_, front := activatorFor(t, replica, false)

	req, err := http.NewRequest(http.MethodGet, front.URL+"/events", nil)
	require.NoError(t, err)
	req.Header.Set(RevisionHeader, "rev")
	resp, err := front.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		if i > 0 {
			next <- struct{}{}
		}
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("data: %d\n", i), line)
		_, err = br.ReadString('\n')
		require.NoError(t, err)
	}
}

// gRPC's shape without a gRPC dependency: HTTP/2 over cleartext end to end,
// a bidirectional stream (each message answered before the next is sent)
// and trailers.
func TestGRPCOverH2CPassesThrough(t *testing.T) {
	replica := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 || r.Header.Get("Content-Type") != "application/grpc" {
			http.Error(w, fmt.Sprintf("want HTTP/2 gRPC, got %s %q", r.Proto, r.Header.Get("Content-Type")), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				break
			}
			_, _ = io.WriteString(w, "echo "+line)
			_ = rc.Flush()
		}
		w.Header().Set("Grpc-Status", "0")
	}))
	replica.Config.Protocols = proxy.ServerProtocols()
	replica.Start()
	defer replica.Close()
	_, front := activatorFor(t, replica, true)

	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: protos}}
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, front.URL+"/pkg.Svc/Chat", pr)
	require.NoError(t, err)
	req.Header.Set(RevisionHeader, "rev")
	req.Header.Set("Content-Type", "application/grpc")
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
		got <- result{resp, err}
	}()
	res := <-got
	require.NoError(t, res.err)
	defer res.resp.Body.Close()
	require.Equal(t, http.StatusOK, res.resp.StatusCode)
	assert.Equal(t, 2, res.resp.ProtoMajor)
	br := bufio.NewReader(res.resp.Body)
	for _, msg := range []string{"ping\n", "pong\n"} {
		_, err := io.WriteString(pw, msg)
		require.NoError(t, err)
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "echo "+msg, line)
	}
	require.NoError(t, pw.Close())
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Empty(t, rest)
	assert.Equal(t, "0", res.resp.Trailer.Get("Grpc-Status"))
}

// The activator's wait header is the only one on the response, however the
// replica answers: it may send the same header itself, send 103 Early Hints
// first (after which the reverse proxy clears the header map), or switch
// protocols (a response the proxy writes itself). The option's name is
// given in lower case, as a host might.
func TestWaitHeaderIsTheActivatorsOnly(t *testing.T) {
	hijack101 := func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + waitHeader + ": replica\r\n\r\n")
		_ = brw.Flush()
		_, _ = brw.ReadByte() // until the client hangs up
	}
	for _, tc := range []struct {
		name    string
		replica http.HandlerFunc
		upgrade bool
		code    int
	}{
		{name: "replica sets it too", code: http.StatusOK, replica: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(waitHeader, "replica")
			_, _ = io.WriteString(w, "hi")
		}},
		{name: "after 103 Early Hints", code: http.StatusOK, replica: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set(waitHeader, "replica")
			_, _ = io.WriteString(w, "hi")
		}},
		{name: "replica's error status", code: http.StatusTeapot, replica: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(waitHeader, "replica")
			w.WriteHeader(http.StatusTeapot)
		}},
		{name: "protocol switch", code: http.StatusSwitchingProtocols, upgrade: true, replica: hijack101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replica := httptest.NewServer(tc.replica)
			defer replica.Close()
			h := newTestHandler(t, Options{WaitHeader: strings.ToLower(waitHeader)})
			require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
			require.NoError(t, h.SetReplicas("rev", []string{replica.Listener.Addr().String()}))
			front := httptest.NewServer(h)
			defer front.Close()

			conn, err := net.Dial("tcp", front.Listener.Addr().String())
			require.NoError(t, err)
			defer conn.Close()
			upgrade := ""
			if tc.upgrade {
				upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\n"
			}
			_, err = fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: app\r\n%s: rev\r\n%s\r\n", RevisionHeader, upgrade)
			require.NoError(t, err)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			for resp.StatusCode == http.StatusEarlyHints {
				resp, err = http.ReadResponse(br, nil)
				require.NoError(t, err)
			}
			require.Equal(t, tc.code, resp.StatusCode)
			assert.Equal(t, []string{"0s"}, resp.Header.Values(waitHeader))
		})
	}

	// The activator's own answers carry it too: here the replica dies
	// before it answers.
	addr, _ := dyingReplica(t)
	h := newTestHandler(t, Options{WaitHeader: strings.ToLower(waitHeader)})
	require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
	require.NoError(t, h.SetReplicas("rev", []string{addr}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request("rev", 0))
	assert.Equal(t, http.StatusBadGateway, rec.Code)
	assert.Equal(t, []string{"0s"}, rec.Header().Values(waitHeader))
}

// An HTTP/2 request goes to the replica as h2c by default, which a replica
// serving HTTP/1.1 only refuses (502); with an HTTP/1.1 Transport, the
// documented opt-out, it goes out as HTTP/1.1.
func TestHTTP2RequestToHTTP1Replica(t *testing.T) {
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	defer replica.Close()
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: protos}}
	for _, tc := range []struct {
		name      string
		transport http.RoundTripper
		code      int
		body      string
	}{
		{"default sends h2c", nil, http.StatusBadGateway, ""},
		{"HTTP/1.1 transport", &http.Transport{}, http.StatusOK, "HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler(t, Options{Transport: tc.transport})
			require.NoError(t, h.SetRevision("rev", RevisionConfig{}))
			require.NoError(t, h.SetReplicas("rev", []string{replica.Listener.Addr().String()}))
			front := httptest.NewUnstartedServer(h)
			front.Config.Protocols = proxy.ServerProtocols()
			front.Start()
			defer front.Close()

			req, err := http.NewRequest(http.MethodGet, front.URL+"/", nil)
			require.NoError(t, err)
			req.Header.Set(RevisionHeader, "rev")
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, 2, resp.ProtoMajor, "the client spoke HTTP/2 to the activator")
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.code, resp.StatusCode, "%s", body)
			if tc.body != "" {
				assert.Equal(t, tc.body, string(body))
			}
		})
	}
}
