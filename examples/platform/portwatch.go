package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// watchPort waits until addr accepts a TCP connection, and returns that
// connection. It calls refused, if not nil, with the first refusal. It
// returns an error when an attempt fails otherwise than refused, and
// ctx.Err() when ctx ends.
//
// A readiness check waits with it for its first attempt, while the
// program starts and its port refuses connections: a refused connect on
// loopback costs about 7 µs (on one socket, connected again after each
// refusal), an HTTP attempt a connection, a request and two goroutines.
// The attempts are watchGap apart, slept with nanosleep(2): the runtime's
// timers do not wake a process that has nothing else to do sooner than
// about 1 ms (its poller waits in whole milliseconds).
func watchPort(ctx context.Context, addr netip.AddrPort, timeout time.Duration, refused func(error)) (net.Conn, error) {
	d := portDialer{addr: addr, timeout: timeout, fd: -1}
	defer d.close()
	start := time.Now()
	yielded := start
	for first := true; ; first = false {
		c, err := d.connect()
		switch {
		case err == nil:
			return c, nil
		case !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.EINTR):
			return nil, err
		case first && refused != nil:
			refused(err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		nanosleep(watchGap(time.Since(start)))
		if time.Since(yielded) > 5*time.Millisecond {
			// A goroutine that never yields draws the runtime's preemption
			// signals after 10 ms; yielding at every attempt woke another
			// thread each time.
			runtime.Gosched()
			yielded = time.Now()
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// watchGap is the gap between watchPort's attempts elapsed after the
// first: a twenty-fifth of elapsed, from 400 µs up to 5 ms. A program that
// starts listening is noticed within about 4 % of its start-up (plus the
// time to wake this process, 0.1-0.3 ms here). An attempt and its sleep
// cost about 35 µs of CPU, most of it the wake-up (measured on the 2-core
// machine): 40 attempts, 1.4 ms, in the first 20 ms, then 200 a second
// (under 1 % of a core). A gap half as long noticed the program 0.1-0.2 ms
// sooner for twice the CPU, which the program's own start-up competes
// with.
func watchGap(elapsed time.Duration) time.Duration {
	return min(max(elapsed/25, 400*time.Microsecond), 5*time.Millisecond)
}

// portDialer makes blocking connects to addr, bounded by timeout
// (SO_SNDTIMEO): on loopback the kernel answers within the call, refused
// or connected, so they need no poller. A socket whose connect was refused
// is connected again (Linux allows it), which saves a socket and a close
// per attempt.
type portDialer struct {
	addr    netip.AddrPort
	timeout time.Duration
	fd      int // -1: none
}

func (d *portDialer) connect() (net.Conn, error) {
	sa := syscall.Sockaddr(&syscall.SockaddrInet6{Port: int(d.addr.Port()), Addr: d.addr.Addr().As16()})
	family := syscall.AF_INET6
	if a := d.addr.Addr().Unmap(); a.Is4() {
		family, sa = syscall.AF_INET, &syscall.SockaddrInet4{Port: int(d.addr.Port()), Addr: a.As4()}
	}
	if d.fd < 0 {
		fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, os.NewSyscallError("socket", err)
		}
		tv := syscall.NsecToTimeval(max(d.timeout, time.Millisecond).Nanoseconds())
		if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv); err != nil {
			syscall.Close(fd)
			return nil, os.NewSyscallError("setsockopt", err)
		}
		d.fd = fd
	}
	if err := syscall.Connect(d.fd, sa); err != nil {
		if err != syscall.ECONNREFUSED {
			d.close() // interrupted or timed out: the connect may go on; start afresh
		}
		// As the net package says it: "dial tcp 127.0.0.1:8080: connect:
		// connection refused".
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(d.addr), Err: os.NewSyscallError("connect", err)}
	}
	f := os.NewFile(uintptr(d.fd), d.addr.String())
	d.fd = -1
	defer f.Close()
	return net.FileConn(f) // a duplicate, non-blocking, on the runtime's poller
}

// close closes the socket, if one is open.
func (d *portDialer) close() {
	if d.fd >= 0 {
		syscall.Close(d.fd)
		d.fd = -1
	}
}

// nanosleep sleeps d on this thread, keeping its P: through the runtime's
// syscall path (syscall.Nanosleep) the P is handed off and taken back on
// every sleep, which made an attempt and its sleep cost 60 µs of CPU
// rather than 35-40 (measured), CPU the starting program could use. The
// other goroutines meanwhile run on the other Ps (or are stolen from this
// one's queue).
func nanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	for {
		_, _, errno := syscall.RawSyscall6(syscall.SYS_CLOCK_NANOSLEEP, clockMonotonic, 0, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0, 0)
		if errno != syscall.EINTR {
			return
		}
	}
}

// clockMonotonic is CLOCK_MONOTONIC.
const clockMonotonic = 1
