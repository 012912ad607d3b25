package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h, Protocols: ServerProtocols()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestTransportProtocol checks the protocol a proxy built on NewTransport
// speaks to its backend: HTTP/1.1 requests go out as HTTP/1.1, HTTP/2 (h2c)
// requests as h2c by default and as HTTP/1.1 with DisableH2C.
func TestTransportProtocol(t *testing.T) {
	backend := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	u, _ := url.Parse(backend)
	h2 := &http.Transport{Protocols: new(http.Protocols)}
	h2.Protocols.SetUnencryptedHTTP2(true)
	for _, tc := range []struct {
		name           string
		opts           TransportConfig
		wantH1, wantH2 string
	}{
		{"default keeps the protocol", TransportConfig{}, "HTTP/1.1", "HTTP/2.0"},
		{"DisableH2C sends HTTP/1.1", TransportConfig{DisableH2C: true}, "HTTP/1.1", "HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp := httputil.NewSingleHostReverseProxy(u)
			rp.Transport = NewTransport(tc.opts)
			rp.BufferPool = &BufferPool{}
			front := serve(t, rp)
			get := func(c *http.Client) string {
				resp, err := c.Get(front)
				require.NoError(t, err)
				defer resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				b, _ := io.ReadAll(resp.Body)
				return string(b)
			}
			assert.Equal(t, tc.wantH1, get(&http.Client{}))
			assert.Equal(t, tc.wantH2, get(&http.Client{Transport: h2}))
		})
	}
}

// An HTTP/2 request to a backend that speaks only HTTP/1.1 fails under the
// default, which is why DisableH2C exists, and succeeds with it.
func TestTransportDisableH2CForHTTP1Backends(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	for _, tc := range []struct {
		name string
		opts TransportConfig
		ok   bool
	}{
		{"default", TransportConfig{}, false},
		{"DisableH2C", TransportConfig{DisableH2C: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
			require.NoError(t, err)
			req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0 // as a proxied HTTP/2 request
			resp, err := NewTransport(tc.opts).RoundTrip(req)
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			assert.Equal(t, "HTTP/1.1", string(b))
		})
	}
}

func TestBufferPool(t *testing.T) {
	var p BufferPool
	b := p.Get()
	assert.Len(t, b, BufferSize)
	p.Put(b[:10])
	assert.Len(t, p.Get(), BufferSize)
	p.Put(make([]byte, 5)) // wrong size: dropped, not handed out
	assert.Len(t, p.Get(), BufferSize)
}

func TestBufferPoolDoesNotAllocateWhenWarm(t *testing.T) {
	var p BufferPool
	p.Put(p.Get())
	allocs := testing.AllocsPerRun(100, func() { p.Put(p.Get()) })
	// sync.Pool may drop items at a GC; allow for a rare refill.
	assert.Less(t, allocs, 0.5)
}
