// Package canned is a test backend for benchmarks and allocation tests of
// the proxying packages: a raw TCP server that answers every GET on a
// kept-alive connection with the same bytes, allocating nothing per
// request, so that what a test counts is the proxy's.
package canned

import (
	"bufio"
	"net"
	"testing"
)

// Backend listens on a loopback port until the test ends and answers
// every request head it reads (GETs: no body) with resp, which must be a
// whole HTTP/1.1 response. It returns the address.
func Backend(tb testing.TB, resp string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	out := []byte(resp)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c, out)
		}
	}()
	return ln.Addr().String()
}

func serve(c net.Conn, out []byte) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		for { // the request head, up to its empty line
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}
