//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package proxy

const canPeek = false

func (pc *conn) peek(uintptr) bool { return true }
