package main

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ServerConfig bounds what a client can hold on one of the platform's
// listeners (the gateway and the internal listener). Zero values are the
// defaults.
type ServerConfig struct {
	// ReadHeaderTimeout is how long a client may take to send a request's
	// headers. Zero means 10 s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long. Zero means
	// 30 s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block; a larger one gets
	// 431. Zero means 64 KiB (Envoy's default is 60 KiB).
	MaxHeaderBytes int
	// MaxConns is how many connections the listener keeps open at once; one
	// more is accepted and closed at once (shed), so the process never
	// runs out of file descriptors. Zero means connLimit() of the process's
	// descriptor limit (RLIMIT_NOFILE).
	MaxConns int
}

func (c ServerConfig) withDefaults() ServerConfig {
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.MaxConns == 0 {
		c.MaxConns = connLimit(nofile())
	}
	return c
}

// Validate reports every negative field.
func (c ServerConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"ReadHeaderTimeout", int64(c.ReadHeaderTimeout)}, {"IdleTimeout", int64(c.IdleTimeout)},
		{"MaxHeaderBytes", int64(c.MaxHeaderBytes)}, {"MaxConns", int64(c.MaxConns)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("platform: ServerConfig.%s = %d, must be ≥ 0 (0 means the default)", f.name, f.v))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

// controlConns bounds the control endpoint's open connections: it serves
// one user's tools and pages.
const controlConns = 256

// nofile is the process's file-descriptor limit (Go raises the soft limit
// to the hard one at start), or 1024 if unknown.
func nofile() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil || rl.Cur == 0 {
		return 1024
	}
	return rl.Cur
}

// connLimit is the default connection limit of the gateway for a
// descriptor limit n: a quarter of the descriptors and 128 more stay for
// replicas (pipes, their listeners' connections), the control endpoint
// and files, and each gateway connection may need two (the client's, and
// one to a replica or the activator). With n = 20,000 it is 7,436.
func connLimit(n uint64) int {
	budget := int64(n)*3/4 - 128
	return int(max(budget/2, 16))
}

// limitListener keeps at most max accepted connections open: past that it
// accepts and closes at once, so a flood of connections costs one
// descriptor for a moment each, never the process's last ones, and a
// client is told at once instead of waiting in the backlog.
type limitListener struct {
	net.Listener
	max  int64
	open atomic.Int64
	shed atomic.Int64 // connections closed for being over max
}

func newLimitListener(l net.Listener, max int) *limitListener {
	return &limitListener{Listener: l, max: int64(max)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.shed.Add(1)
			_ = c.Close()
			continue
		}
		return &limitConn{Conn: c, l: l}, nil
	}
}

type limitConn struct {
	net.Conn
	once sync.Once
	l    *limitListener
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// CloseWrite lets net/http half-close the connection gracefully, as it
// does with a bare *net.TCPConn.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
