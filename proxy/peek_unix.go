//go:build linux || darwin || freebsd || netbsd || openbsd

package proxy

import "syscall"

const canPeek = true

// peek looks at the socket without blocking or consuming: EAGAIN means
// nothing to read (a healthy idle connection).
func (pc *conn) peek(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), pc.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	pc.peekN, pc.peekErr = n, err
	return true
}
