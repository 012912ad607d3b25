// Package queue keeps one replica within its concurrency limit, and reports
// its load. It is Knative's queue-proxy as a library, usable two ways:
//
//   - in process: New wraps the application's own http.Handler, with no
//     proxy hop (what knative/serving#7210 asked for). Without request
//     timeouts the per-request cost is a few atomics, two clock reads and a
//     pooled writer, with no allocation; with them, add a deadline heap
//     entry, a few uncontended locks and the application's request copy and
//     context (384 B, allocated 16 at a time: one allocation per 16
//     requests). The application runs on the server's
//     goroutine either way: a timeout is answered by the Handler's timer,
//     while the application may still be busy, with a complete 504, and
//     cancels the application's context;
//   - as a sidecar: NewSidecar forwards to an application on another port
//     through a proxy.Forwarder with a tuned transport (and, if given, a
//     proxy.Client for HTTP/1 on the handler's goroutine) and pooled buffers;
//     with timeouts, the timeout's cancellation of the request's context
//     ends the proxied request, so the slot is free at once.
//
// Both are the same Handler: readiness probes answered by the queue
// (ProbeHeader), a stats.Recorder of every request (proxied when the
// activator marked it with ProxyHeader), a Breaker (ContainerConcurrency
// slots and a bounded queue: 503 when it is full or after MaxWait), the
// total, response-start and idle timeouts (504 naming the one that fired),
// and Drain, which reports not-ready, keeps serving through a quiet period
// and then finishes every accepted request. Websockets (hijacked
// connections), server-sent events and gRPC over h2c stream through, and
// hold their slot until they end.
//
// Around it: a Reporter turns the recorder into one stats.Message per
// period for the replica's revision, kept for scraping and optionally
// pushed to a stats.Sink; AdminHandler serves GET /ready, GET /stats and
// /wait-for-drain on a separate port; an AppProbe is the sidecar's
// readiness check of the application.
//
// In process:
//
//	h, err := queue.New(app, queue.Config{ContainerConcurrency: 10, TotalTimeout: 5 * time.Minute})
//	rep, err := queue.NewReporter(h.Recorder(), queue.ReporterConfig{Revision: "default/hello-00001", Replica: podName})
//	go rep.Run(ctx)
//	go http.ListenAndServe(":9090", queue.AdminHandler(h, rep))
//	srv := &http.Server{Addr: ":8080", Handler: h, Protocols: queue.ServerProtocols()}
//	go srv.ListenAndServe()
//	<-shutdown
//	_ = h.Drain(ctx) // not-ready, quiet period, every accepted request done
//	_ = srv.Shutdown(ctx)
//
// As a sidecar, only the constructor changes:
//
//	h, err := queue.NewSidecar(queue.SidecarConfig{
//		Config: queue.Config{ContainerConcurrency: 10},
//		Target: "127.0.0.1:8081",              // the application
//		Probe:  queue.AppProbeConfig{Path: "/healthz"}, // default: TCP connect
//	})
//
// The Breaker is usable on its own (the activator uses it):
//
//	b, err := queue.NewBreaker(queue.BreakerParams{QueueDepth: 100, MaxConcurrency: 10, InitialCapacity: 10})
//	err = b.Do(ctx, func() { ... }) // ErrQueueFull, or a *WaitError
package queue
