package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/servingkit/servingkit/stats"
)

// untilStopped returns a context that ends on SIGTERM or SIGINT, or when
// stdin closes if watchStdin (the parent is gone).
func untilStopped(watchStdin bool) (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	if watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	return ctx, cancel
}

// serve serves h on l until ctx ends.
func serve(ctx context.Context, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	_ = srv.Serve(l)
}

// announce prints the process's listening addresses as one JSON line on
// stdout, which the parent waits for.
func announce(addrs map[string]string) {
	b, _ := json.Marshal(addrs)
	fmt.Println(string(b))
}

func logger(role string) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("role", role, "pid", os.Getpid())
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// failoverSink pushes stats to the first autoscaler that takes them: any
// autoscaler forwards them to the owner, so the first live one will do.
type failoverSink struct {
	sinks []*stats.HTTPSink
}

func newFailoverSink(urls []string) *failoverSink {
	c := &http.Client{Timeout: 2 * time.Second}
	s := &failoverSink{}
	for _, u := range urls {
		s.sinks = append(s.sinks, &stats.HTTPSink{URL: u, Client: c})
	}
	return s
}

func (s *failoverSink) Send(ctx context.Context, msgs []stats.Message) error {
	var errs []error
	for _, sk := range s.sinks {
		err := sk.Send(ctx, msgs)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Poke sends an activator's immediate stat the same way, at once.
func (s *failoverSink) Poke(revision string, st stats.Stat) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.Send(ctx, []stats.Message{{Revision: revision, Stat: st}})
}

// readyList is the agent's answer to GET /endpoints.
type readyList struct {
	Ready []string `json:"ready"`
}

func fetchReady(ctx context.Context, c *http.Client, agent, revision string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, agent+"/endpoints?revision="+revision, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent: %s", resp.Status)
	}
	var rl readyList
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&rl); err != nil {
		return nil, err
	}
	return rl.Ready, nil
}
