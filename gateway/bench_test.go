package gateway_test

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"testing"

	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/gateway"
	"github.com/servingkit/servingkit/internal/canned"
	"github.com/servingkit/servingkit/proxy"
)

// rawClient sends GETs on one kept-alive connection and reads each
// response, allocating nothing per request.
type rawClient struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
}

func newRawClient(b *testing.B, addr string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &rawClient{c: c, br: bufio.NewReader(c), req: []byte("GET /x HTTP/1.1\r\nHost: app.example.com\r\nUser-Agent: bench\r\n\r\n")}
}

func (rc *rawClient) do(b *testing.B) {
	if _, err := rc.c.Write(rc.req); err != nil {
		b.Fatal(err)
	}
	n := -1
	status := false
	for {
		line, err := rc.br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if !status {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200")) {
				b.Fatalf("response %q", line)
			}
			status = true
			continue
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if n < 0 {
		b.Fatal("no Content-Length")
	}
	if _, err := rc.br.Discard(n); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkProxiedRequest measures one proxied GET over loopback, server
// to backend and back, as the gateway's process pays for it (the client
// and the backend allocate nothing): the Serve path (ServeHandler), the
// Proxy path (remote Activators, the backend standing in for an
// activator), and a stock httputil.ReverseProxy hop.
//
//	go test -run '^$' -bench ProxiedRequest -benchmem ./gateway/
func BenchmarkProxiedRequest(b *testing.B) {
	backend := canned.Backend(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
	serveOn := func(h http.Handler) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := &http.Server{Handler: h}
		go s.Serve(ln)
		b.Cleanup(func() { s.Close() })
		return ln.Addr().String()
	}
	bl, err := balancer.New(balancer.Config{})
	if err != nil {
		b.Fatal(err)
	}
	if err := bl.SetReplicas([]string{backend}); err != nil {
		b.Fatal(err)
	}
	serve, err := gateway.NewServeHandler(bl, nil)
	if err != nil {
		b.Fatal(err)
	}
	acts, err := gateway.NewActivators(gateway.ActivatorsConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ra := acts.For("ns/rev")
	ra.SetAddresses([]string{backend})
	target := &url.URL{Scheme: "http", Host: backend}
	stock := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: proxy.NewTransport(proxy.TransportConfig{}),
	}
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"serve", serve},
		{"proxy", ra},
		{"stock-reverseproxy", stock},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rc := newRawClient(b, serveOn(tc.h))
			rc.do(b) // connections up
			b.ReportAllocs()
			for b.Loop() {
				rc.do(b)
			}
		})
	}
}
