// Command greeter is a user's program for the local platform, as it would
// be a container image for Knative: it listens on $PORT, answers
// "<GREETING> from <revision>!" on every path but /healthz, which answers
// "ok", logs each request to stdout, and finishes its requests on SIGTERM.
//
//	go build -o bin/greeter ./examples/platform/programs/greeter
//	go run ./examples/platform -f examples/platform/manifests/greeter.yaml
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT") // set by the platform, as by Knative
	if port == "" {
		port = "8080"
	}
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "Hello"
	}
	revision := os.Getenv("K_REVISION")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s from %s", r.Method, r.URL.Path, r.Header.Get("X-Forwarded-For"))
		fmt.Fprintf(w, "%s from %s!\n", greeting, revision)
	})
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.SetOutput(os.Stdout)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		log.Print("SIGTERM: finishing requests")
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("greeter %s listening on %s", revision, srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
