package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// Client is an HTTP/1.1 client for Forwarder that writes the request and
// reads the response on the handler's goroutine, over kept-alive
// connections pooled per upstream address. http.Transport runs two
// goroutines per connection and hands every request and response across a
// channel; on a proxy hop that is about half the CPU of a request. A
// Forwarder uses its Client for HTTP/1 requests to "http" URLs that are not
// upgrades; everything else goes through its Transport.
//
// The zero value is ready to use. The fields must not change once it is
// in use. Safe for simultaneous use.
type Client struct {
	// DialTimeout bounds connecting to a backend. Zero means 5 s.
	DialTimeout time.Duration
	// DialContext, if set, connects to backends in place of a
	// net.Dialer with DialTimeout (which then does not apply), as
	// http.Transport.DialContext does: for example to hand the first
	// request to a backend a connection made ahead of it. Its errors are
	// returned as it gave them.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxIdleConnsPerHost is how many idle kept-alive connections to keep
	// per backend address. Zero means 1000 (as NewTransport); negative
	// means none: every connection is closed after its request.
	MaxIdleConnsPerHost int
	// IdleConnTimeout is how long an idle connection is kept. Zero means
	// 90 s.
	IdleConnTimeout time.Duration
	// ResponseHeaderTimeout, if positive, bounds the wait for the
	// response's header once the request is written.
	ResponseHeaderTimeout time.Duration
	// ExpectContinueTimeout is how long a request with "Expect:
	// 100-continue" waits for the backend's 100 before its body is sent
	// anyway. Zero means 1 s.
	ExpectContinueTimeout time.Duration
	// MaxResponseHeaderBytes bounds a response's header block (status
	// line and fields, and each 1xx's and the trailers' on their own).
	// Zero means 1 MiB, the server's default for request headers
	// (http.DefaultMaxHeaderBytes).
	MaxResponseHeaderBytes int

	mu     sync.Mutex
	hosts  map[string]*hostConns
	dialer net.Dialer
	once   sync.Once
}

type hostConns struct{ idle []*conn }

const (
	defaultDialTimeout     = 5 * time.Second
	defaultIdleConnTimeout = 90 * time.Second
	defaultExpectContinue  = time.Second
	defaultMaxIdlePerHost  = 1000
)

func (c *Client) init() {
	c.once.Do(func() {
		d := c.DialTimeout
		if d == 0 {
			d = defaultDialTimeout
		}
		c.dialer = net.Dialer{Timeout: d, KeepAlive: 30 * time.Second}
	})
}

func (c *Client) maxIdle() int {
	if c.MaxIdleConnsPerHost == 0 {
		return defaultMaxIdlePerHost
	}
	return c.MaxIdleConnsPerHost
}

func (c *Client) maxHeaderBytes() int {
	if c.MaxResponseHeaderBytes <= 0 {
		return 1 << 20
	}
	return c.MaxResponseHeaderBytes
}

// CloseIdleConnections closes the connections now idle.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	var all []*conn
	for addr, h := range c.hosts {
		for _, pc := range h.idle {
			pc.idle = false
			all = append(all, pc)
		}
		delete(c.hosts, addr)
	}
	c.mu.Unlock()
	for _, pc := range all {
		pc.timer.Stop()
		pc.c.Close()
	}
}

// conn is one upstream connection.
type conn struct {
	client *Client
	addr   string
	c      net.Conn
	raw    syscall.RawConn // nil when the connection has none
	timer  *time.Timer     // closes it when idle too long
	idle   bool            // in its host's idle list; guarded by client.mu
	closed bool            // only the request's goroutine touches it

	// For stale: the peek's result.
	peekFn  func(uintptr) bool
	peekBuf [1]byte
	peekN   int
	peekErr error
	// closeFn closes the socket, for context.AfterFunc (it runs on
	// another goroutine, so it does not touch closed).
	closeFn func()
}

// get returns an idle connection to addr, or a new one when there is none
// or fresh is set, and whether it was idle.
func (c *Client) get(ctx context.Context, addr string, fresh bool) (*conn, bool, error) {
	c.init()
	for !fresh {
		c.mu.Lock()
		h := c.hosts[addr]
		if h == nil || len(h.idle) == 0 {
			c.mu.Unlock()
			break
		}
		pc := h.idle[len(h.idle)-1]
		h.idle[len(h.idle)-1] = nil
		h.idle = h.idle[:len(h.idle)-1]
		pc.idle = false
		c.mu.Unlock()
		pc.timer.Stop()
		if pc.stale() {
			pc.discard()
			continue
		}
		return pc, true, nil
	}
	dial := c.dialer.DialContext
	if c.DialContext != nil {
		dial = c.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err // from a net.Dialer, a *net.OpError whose Op is "dial"
	}
	pc := &conn{client: c, addr: addr, c: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		pc.raw, _ = sc.SyscallConn()
	}
	pc.peekFn = pc.peek
	pc.closeFn = func() { nc.Close() }
	return pc, false, nil
}

// put returns a connection whose exchange ended cleanly to the idle pool,
// or closes it when the pool is full.
func (c *Client) put(pc *conn) {
	max := c.maxIdle()
	if max < 0 {
		pc.close()
		return
	}
	c.mu.Lock()
	if c.hosts == nil {
		c.hosts = map[string]*hostConns{}
	}
	h := c.hosts[pc.addr]
	if h == nil {
		h = &hostConns{}
		c.hosts[pc.addr] = h
	}
	if len(h.idle) >= max {
		c.mu.Unlock()
		pc.close()
		return
	}
	d := c.IdleConnTimeout
	if d == 0 {
		d = defaultIdleConnTimeout
	}
	// The timer is set before pc is listed idle, under c.mu: once listed,
	// another request's get may take pc and stop its timer.
	if pc.timer == nil {
		pc.timer = time.AfterFunc(d, pc.expire)
	} else {
		pc.timer.Reset(d)
	}
	h.idle = append(h.idle, pc)
	pc.idle = true
	c.mu.Unlock()
}

// expire closes pc if it is still idle.
func (pc *conn) expire() {
	c := pc.client
	c.mu.Lock()
	if !pc.idle {
		c.mu.Unlock()
		return
	}
	pc.idle = false
	if h := c.hosts[pc.addr]; h != nil {
		for i, x := range h.idle {
			if x == pc {
				h.idle = append(h.idle[:i], h.idle[i+1:]...)
				h.idle[len(h.idle):cap(h.idle)][0] = nil
				break
			}
		}
		if len(h.idle) == 0 {
			delete(c.hosts, pc.addr) // a replica gone for good leaves nothing behind
		}
	}
	c.mu.Unlock()
	pc.c.Close()
}

func (pc *conn) close() {
	pc.closed = true
	pc.c.Close()
}

// discard closes a connection that will not go back to the pool, and
// forgets its address when it has no idle connection left: replicas come
// and go on new addresses, and an entry for each would stay forever.
func (pc *conn) discard() {
	pc.close()
	c := pc.client
	c.mu.Lock()
	if h := c.hosts[pc.addr]; h != nil && len(h.idle) == 0 {
		delete(c.hosts, pc.addr)
	}
	c.mu.Unlock()
}

// stale reports whether an idle connection cannot take a request: the
// backend closed or reset it, or sent bytes nobody asked for (which would
// otherwise be read as the next request's response). One non-blocking
// peek at the socket, where the platform has one.
func (pc *conn) stale() bool {
	if pc.raw == nil || !canPeek {
		return false
	}
	pc.peekN, pc.peekErr = 0, nil
	if err := pc.raw.Read(pc.peekFn); err != nil {
		return true
	}
	if pc.peekErr != nil {
		return !errors.Is(pc.peekErr, syscall.EAGAIN)
	}
	return true // EOF (0) or unsolicited bytes
}
