package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().(*net.TCPAddr).AddrPort()
	require.NoError(t, l.Close())
	return addr
}

// The watch keeps trying while the port refuses, says why once, and
// returns the connection the program accepted once it listens.
func TestWatchPortReturnsOnceListening(t *testing.T) {
	addr := freeAddr(t)
	var refusals []error
	refused := make(chan struct{})
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := watchPort(context.Background(), addr, time.Second, func(err error) {
			refusals = append(refusals, err)
			close(refused)
		})
		done <- result{c, err}
	}()
	<-refused // it tried while nothing listened
	select {
	case r := <-done:
		t.Fatalf("returned while nothing listened: %v, %v", r.c, r.err)
	default:
	}
	l, err := net.Listen("tcp", addr.String())
	require.NoError(t, err)
	defer l.Close()
	r := <-done
	require.NoError(t, r.err)
	defer r.c.Close()
	accepted, err := l.Accept()
	require.NoError(t, err)
	defer accepted.Close()
	assert.Equal(t, accepted.RemoteAddr().String(), r.c.LocalAddr().String(), "the program's end of the returned connection")
	_, err = r.c.Write([]byte("x"))
	require.NoError(t, err)
	var b [1]byte
	_, err = accepted.Read(b[:])
	require.NoError(t, err)

	require.Len(t, refusals, 1, "the first refusal only")
	assert.ErrorIs(t, refusals[0], syscall.ECONNREFUSED)
	assert.Equal(t, "dial tcp "+addr.String()+": connect: connection refused", refusals[0].Error(), "as the net package says it")
}

func TestWatchPortEnds(t *testing.T) {
	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := watchPort(ctx, freeAddr(t), time.Second, func(error) { cancel() })
			done <- err
		}()
		assert.ErrorIs(t, <-done, context.Canceled)
	})
	t.Run("a full accept queue", func(t *testing.T) {
		// A listener that accepts nothing, with an accept queue of one:
		// once it is full, a connect waits until its timeout, which is
		// not a refusal, so the watch gives up (the prober then attempts
		// as scheduled).
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		defer syscall.Close(fd)
		require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
		require.NoError(t, syscall.Listen(fd, 0))
		sa, err := syscall.Getsockname(fd)
		require.NoError(t, err)
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*syscall.SockaddrInet4).Port))
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := watchPort(context.Background(), addr, 50*time.Millisecond, func(error) { t.Error("reported as a refusal") })
			if err != nil {
				assert.Nil(t, c)
				assert.False(t, errors.Is(err, syscall.ECONNREFUSED), "%v", err)
				return
			}
			held = append(held, c) // in the queue
			require.Less(t, len(held), 10, "the accept queue never filled")
		}
	})
}

func TestWatchPortIPv6(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback here:", err)
	}
	defer l.Close()
	c, err := watchPort(context.Background(), l.Addr().(*net.TCPAddr).AddrPort(), time.Second, nil)
	require.NoError(t, err)
	assert.Equal(t, l.Addr().String(), c.RemoteAddr().String())
	c.Close()
}

func TestWatchGap(t *testing.T) {
	us, ms := time.Microsecond, time.Millisecond
	for _, tc := range []struct{ elapsed, want time.Duration }{
		{0, 400 * us}, {10 * ms, 400 * us}, {20 * ms, 800 * us}, {100 * ms, 4 * ms},
		{125 * ms, 5 * ms}, {time.Minute, 5 * ms},
	} {
		assert.Equal(t, tc.want, watchGap(tc.elapsed), "after %v", tc.elapsed)
	}
}
