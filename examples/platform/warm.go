package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/servingkit/servingkit/queue"
)

// warmUp runs, in a spare replica process waiting for its spec, what a
// cold start will run first: the network's set-up, an HTTP readiness
// check on a connection made by watchPort, a replica's queue started as
// for a program (metrics, reporter, servers: startQueue) and one request
// through it (its server, its timed path and its proxy.Client) to a
// stand-in program in this process. A fresh process pays for the first
// run of every code path (pages of the binary faulted in, heap spans
// made): about 0.8 ms for the first listener, and a few tenths of a
// millisecond on each step of the first request. It reports whether every
// step worked; a spare that could not warm up serves all the same.
func warmUp() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })}
	go func() { _ = app.Serve(appLn) }()
	defer app.Close()

	target := appLn.Addr().String()
	first := &firstConn{addr: target}
	client := programClient(false, 0, first)
	defer client.CloseIdleConnections()
	spec := ReplicaSpec{Name: "warm-up", Revision: "warm-up/warm-up", Timeout: time.Minute}
	h, servers, _ := startQueue(ctx, spec, slog.New(slog.DiscardHandler), func(c queue.Config) (*queue.Handler, error) {
		c.Readiness = queue.CheckerFunc(func(context.Context) error { return nil })
		return queue.NewSidecar(queue.SidecarConfig{
			Config:    c,
			Target:    target,
			Transport: programTransport(false, 0, first),
			Client:    client,
		})
	})
	if h == nil {
		return false
	}
	defer servers.shutdown()

	ok := true
	for _, addr := range []string{target, servers.serveAddr} {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return false
		}
		c, err := watchPort(ctx, ap, time.Second, nil)
		if err != nil {
			return false
		}
		p := newProber(&ProbeSpec{Kind: "http", Path: "/", Timeout: time.Second}, int(ap.Port()), nil, "")
		idle, err := p.checkHTTPOn(ctx, c)
		if idle && addr == target {
			first.put(c) // for the request through the queue
		} else {
			c.Close()
		}
		ok = ok && err == nil
	}
	return ok
}
