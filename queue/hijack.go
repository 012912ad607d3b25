package queue

import (
	"io"
	"net"
	"sync/atomic"
)

// hijackedConn is the connection an application gets from Hijack. Closing it
// ends the request: the slot goes back to the breaker and the drain stops
// waiting for it.
type hijackedConn struct {
	net.Conn
	ex     *exchange
	closed atomic.Bool
}

// Close closes the connection and, the first time, ends the request.
func (c *hijackedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		ex := c.ex
		ex.h.untrack(c)
		ex.unlive()
		ex.unref()
	}
	return err
}

// ReadFrom and WriteTo keep the kernel's splice path of a TCP connection
// for proxied upgrades.
func (c *hijackedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

func (c *hijackedConn) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.Conn.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, readerOnly{c.Conn})
}

type readerOnly struct{ io.Reader }

func (h *Handler) track(c *hijackedConn) {
	h.connMu.Lock()
	h.conns[c] = struct{}{}
	h.connMu.Unlock()
}

func (h *Handler) untrack(c *hijackedConn) {
	h.connMu.Lock()
	delete(h.conns, c)
	h.connMu.Unlock()
}

// closeHijacked closes every hijacked connection still open and returns how
// many there were.
func (h *Handler) closeHijacked() int {
	h.connMu.Lock()
	open := make([]*hijackedConn, 0, len(h.conns))
	for c := range h.conns {
		open = append(open, c)
	}
	h.connMu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
	return len(open)
}
