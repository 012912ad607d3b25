package httpx

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

// TestTransportKeepsProtocol checks that a proxy built on NewTransport sends
// HTTP/1.1 requests as HTTP/1.1 and HTTP/2 (h2c) requests as h2c.
func TestTransportKeepsProtocol(t *testing.T) {
	backend := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	u, _ := url.Parse(backend)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = NewTransport(TransportOptions{})
	rp.BufferPool = &BufferPool{}
	front := serve(t, rp)

	get := func(c *http.Client) string {
		resp, err := c.Get(front)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	assert.Equal(t, "HTTP/1.1", get(&http.Client{}))

	h2 := &http.Transport{Protocols: new(http.Protocols)}
	h2.Protocols.SetUnencryptedHTTP2(true)
	assert.Equal(t, "HTTP/2.0", get(&http.Client{Transport: h2}))
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
