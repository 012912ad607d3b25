// Command testapp is the small application the integration tests run
// behind the queue in each pod they play: it answers "hello from <pod>",
// after ?sleep=<duration> (at most 10 s) when asked.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	pod := flag.String("pod", "", "pod name to answer with")
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil && d > 0 && d <= 10*time.Second {
			time.Sleep(d)
		}
		fmt.Fprintf(w, "hello from %s\n", *pod)
	})
	srv := &http.Server{Addr: *addr, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
