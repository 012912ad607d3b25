//go:build unix

// Package refused gives tests a loopback address where every connection
// is refused, for as long as the test runs.
//
// Listening on port 0 and closing the listener is not enough: the kernel
// may give the same port to the next listener the test opens (its own
// server, say), and "dead" then answers. Here the port stays bound by a
// socket that never listens (without SO_REUSEADDR, so that no listener can
// take it), and a connection to it is refused.
package refused

import (
	"net"
	"strconv"
	"syscall"
	"testing"
)

// Addr returns "127.0.0.1:port", where connections are refused until tb
// ends.
func Addr(tb testing.TB) string {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("refused: socket: %v", err)
	}
	tb.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatalf("refused: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		tb.Fatalf("refused: getsockname: %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}
