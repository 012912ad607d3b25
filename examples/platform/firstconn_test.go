package main

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// connPair returns both ends of a loopback TCP connection to a listener
// at addr (the program's end is accepted).
func connPair(t *testing.T, l net.Listener) (ours, theirs net.Conn) {
	t.Helper()
	ours, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	theirs, err = l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	return ours, theirs
}

// A dial to the program takes the kept connection, once; other dials,
// and later ones, connect anew.
func TestFirstConnDial(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	f := &firstConn{addr: l.Addr().String()}
	kept, _ := connPair(t, l)
	f.put(kept)

	var dialed []string
	dial := f.dialContext(func(_ context.Context, _, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		return nil, errors.New("dialed")
	})
	_, err = dial(context.Background(), "tcp", "127.0.0.1:1")
	assert.EqualError(t, err, "dialed", "another address")
	c, err := dial(context.Background(), "tcp", l.Addr().String())
	require.NoError(t, err)
	assert.Same(t, kept, c)
	_, err = dial(context.Background(), "tcp", l.Addr().String())
	assert.EqualError(t, err, "dialed", "given out once")
	assert.Equal(t, []string{"127.0.0.1:1", l.Addr().String()}, dialed)
}

// A kept connection the program closed, or sent something on, is not
// given out: the request would fail on it or read a stray answer.
func TestFirstConnStale(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	for _, tc := range []struct {
		name string
		do   func(theirs net.Conn)
	}{
		{"closed", func(theirs net.Conn) { theirs.Close() }},
		{"unsolicited bytes", func(theirs net.Conn) { _, _ = theirs.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &firstConn{addr: l.Addr().String()}
			ours, theirs := connPair(t, l)
			f.put(ours)
			tc.do(theirs)
			require.Eventually(t, func() bool { return !idleOpen(ours) }, 10*time.Second, time.Millisecond)
			assert.Nil(t, f.take())
			_, err := ours.Read(make([]byte, 1))
			assert.ErrorIs(t, err, net.ErrClosed, "closed by take")
		})
	}
}

// A kept connection nobody took is closed after firstConnTTL, so that a
// program serving one connection at a time is not kept waiting on it; one
// kept already makes another put close its connection.
func TestFirstConnTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &firstConn{addr: "program:8080"}
		ours, theirs := net.Pipe()
		f.put(ours)
		extra, extraTheirs := net.Pipe()
		f.put(extra)
		_, err := extraTheirs.Read(make([]byte, 1))
		assert.ErrorIs(t, err, io.EOF, "a second connection is closed at once")

		time.Sleep(firstConnTTL - time.Millisecond)
		synctest.Wait()
		f.mu.Lock()
		assert.Same(t, ours, f.c, "still kept")
		f.mu.Unlock()
		time.Sleep(time.Millisecond)
		synctest.Wait()
		_, err = theirs.Read(make([]byte, 1))
		assert.ErrorIs(t, err, io.EOF, "closed after the TTL")
		assert.Nil(t, f.take())
	})
}

// fill connects to the program and keeps the connection, unless one is
// kept.
func TestFirstConnFill(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	f := &firstConn{addr: l.Addr().String()}
	f.fill(context.Background(), &net.Dialer{})
	theirs, err := l.Accept()
	require.NoError(t, err)
	defer theirs.Close()
	c := f.take()
	require.NotNil(t, c)
	defer c.Close()
	assert.Equal(t, theirs.RemoteAddr().String(), c.LocalAddr().String())

	kept, _ := connPair(t, l)
	f.put(kept)
	f.fill(context.Background(), &net.Dialer{})
	assert.Same(t, kept, f.take(), "the kept one stays")
}

// A spare's warm-up runs its steps against itself: the readiness check
// on a watched connection and a request through a sidecar queue, whose
// Client takes the connection the check left.
func TestWarmUp(t *testing.T) {
	assert.True(t, warmUp())
}
