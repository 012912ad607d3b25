package main

import (
	"context"
	"net"
	"sync"
	"syscall"
	"time"
)

// firstConn keeps one connection to a replica's program, made when its
// readiness check first passed, for the queue's first request: the first
// request of a cold start then finds the program's end accepted and
// waiting, instead of paying for a new connection (measured at about 1 ms
// on the 2-core machine: the program's accept, a goroutine on each side).
//
// The connection is given out once, and only within firstConnTTL and if
// the program has not closed it or sent anything on it; it is closed
// after that, so that a program serving one connection at a time is not
// kept waiting on it for long. Safe for simultaneous use.
type firstConn struct {
	addr string // the program's host:port; only dials to it take the connection

	mu sync.Mutex // protects c
	c  net.Conn
}

// firstConnTTL is how long a kept connection waits for the first request:
// the request held during a cold start comes within milliseconds.
const firstConnTTL = 250 * time.Millisecond

// put keeps c, or closes it if a connection is kept already.
func (f *firstConn) put(c net.Conn) {
	f.mu.Lock()
	if f.c != nil {
		f.mu.Unlock()
		c.Close()
		return
	}
	f.c = c
	f.mu.Unlock()
	time.AfterFunc(firstConnTTL, func() {
		f.mu.Lock()
		expired := f.c == c
		if expired {
			f.c = nil
		}
		f.mu.Unlock()
		if expired {
			c.Close()
		}
	})
}

// fill dials the program and keeps the connection, unless one is kept.
func (f *firstConn) fill(ctx context.Context, d *net.Dialer) {
	f.mu.Lock()
	kept := f.c != nil
	f.mu.Unlock()
	if kept {
		return
	}
	if c, err := d.DialContext(ctx, "tcp", f.addr); err == nil {
		f.put(c)
	}
}

// take returns the kept connection if it can carry a request, or nil.
func (f *firstConn) take() net.Conn {
	f.mu.Lock()
	c := f.c
	f.c = nil
	f.mu.Unlock()
	if c == nil {
		return nil
	}
	if !idleOpen(c) {
		c.Close()
		return nil
	}
	return c
}

// dialContext returns dial, except that a dial to the program takes the
// kept connection first.
func (f *firstConn) dialContext(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == f.addr {
			if c := f.take(); c != nil {
				return c, nil
			}
		}
		return dial(ctx, network, addr)
	}
}

// idleOpen reports whether c is open with nothing to read: one
// non-blocking peek at the socket (EAGAIN).
func idleOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	var perr error
	if err := rc.Control(func(fd uintptr) {
		_, _, perr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}); err != nil {
		return false
	}
	return perr == syscall.EAGAIN
}
