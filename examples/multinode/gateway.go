package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/gateway"
	"github.com/servingkit/servingkit/queue"
	"github.com/servingkit/servingkit/revision"
	"github.com/servingkit/servingkit/traffic"
)

// runGateway is one gateway process with its activator: the router and a
// front door per revision on -addr, whose Proxy path goes to the
// revision's activators over HTTP (this process's and the others'), and
// an activator on -activator-addr. The ready replicas come from the agent
// through one gateway.Endpoints per revision; stats and pokes go to any
// autoscaler.
func runGateway(args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "gateway listen address")
	actAddr := fs.String("activator-addr", "127.0.0.1:0", "this process's activator listen address")
	activators := fs.String("activators", "", "comma-separated addresses of every activator, this one's included")
	agentURL := fs.String("agent", "", "the agent's base URL")
	statsURLs := fs.String("stats", "", "comma-separated autoscaler stats URLs")
	services := fs.String("services", "", "comma-separated name=revision-key pairs, in namespace default")
	domain := fs.String("domain", "example.com", "the routes' domain")
	cc := fs.Int("cc", 0, "the revisions' container concurrency")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := logger("gateway")
	ctx, cancel := untilStopped(true)
	defer cancel()

	gl, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	al, err := net.Listen("tcp", *actAddr)
	if err != nil {
		return err
	}
	sink := newFailoverSink(splitList(*statsURLs))
	act, err := activator.New(activator.Options{
		Poker: sink, Sink: sink, WaitHeader: ActivatorWaitHeader,
		ThrottlerOptions: activator.ThrottlerOptions{Logger: log},
	})
	if err != nil {
		return err
	}
	acts, err := gateway.NewActivators(gateway.ActivatorsConfig{Logger: log})
	if err != nil {
		return err
	}
	router, err := traffic.NewRouter(traffic.RouterConfig{Domain: *domain})
	if err != nil {
		return err
	}
	allActivators := splitList(*activators)
	if len(allActivators) == 0 {
		allActivators = []string{al.Addr().String()}
	}
	doors := traffic.FrontDoorMap{}
	var routes []traffic.Route
	now := time.Now()
	for _, pair := range splitList(*services) {
		name, key, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("-services: want name=revision-key, got %q", pair)
		}
		if err := act.SetRevision(key, activator.RevisionConfig{ContainerConcurrency: *cc}); err != nil {
			return err
		}
		b, err := balancer.New(balancer.Config{ContainerConcurrency: *cc})
		if err != nil {
			return err
		}
		serve, err := gateway.NewServeHandler(b, nil)
		if err != nil {
			return err
		}
		remote := acts.For(key)
		rec, err := revision.NewReconciler(key, now, revision.Config{}, revision.ReconcilerOptions{Activator: remote, Serve: serve})
		if err != nil {
			return err
		}
		eps, err := gateway.NewEndpoints(key, gateway.EndpointsConfig{Reconciler: rec, Serve: b, Activator: act, Self: al.Addr().String(), Remote: remote})
		if err != nil {
			return err
		}
		eps.SetActivators(now, allActivators)
		go rec.Run(ctx)
		go followAgent(ctx, log, *agentURL, eps)
		go followDecisions(ctx, splitList(*statsURLs), rec)
		rec.OnEndpoints(func(key string, e revision.Endpoints) {
			log.Info("mode", "revision", key, "mode", e.Mode, "addresses", len(e.Addresses))
		})
		doors[key] = rec.FrontDoor()
		routes = append(routes, traffic.Route{Name: name, Namespace: "default", Table: &traffic.Table{
			Default: []traffic.Share{{Revision: key, Percent: 100}},
		}})
	}
	if err := router.Update(routes, doors); err != nil {
		return err
	}
	go act.Run(ctx)
	go func() {
		srv := &http.Server{Handler: act, Protocols: queue.ServerProtocols(), ReadHeaderTimeout: 10 * time.Second}
		go func() { <-ctx.Done(); _ = srv.Close() }()
		_ = srv.Serve(al)
	}()
	announce(map[string]string{"addr": gl.Addr().String(), "activator": al.Addr().String()})
	serve(ctx, gl, router)
	return nil
}

// ActivatorWaitHeader is on every response that went through an
// activator (Proxy mode), not on those served straight from a replica.
const ActivatorWaitHeader = "X-Activator-Wait"

// followDecisions polls the autoscalers for the owner's decision on the
// revision and hands it to the reconciler, which switches the front door
// between the activators and the replicas (a Kubernetes host would read
// it from the PodAutoscaler's status instead).
func followDecisions(ctx context.Context, statsURLs []string, rec *revision.Reconciler) {
	c := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, u := range statsURLs {
			var d decision
			if getDecision(ctx, c, strings.TrimSuffix(u, "/stats")+"/decision?revision="+rec.Key(), &d) == nil {
				rec.Decide(time.Now(), revision.Decision{
					Desired:             int32(min(d.Desired, math.MaxInt32)),
					ExcessBurstCapacity: int32(max(min(d.ExcessBurstCapacity, math.MaxInt32), math.MinInt32)),
					Panicking:           d.Panicking,
				})
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func getDecision(ctx context.Context, c *http.Client, url string, d *decision) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(d)
}

// followAgent polls the agent for the revision's ready replicas and hands
// every change to the revision's Endpoints (a Kubernetes host would watch
// EndpointSlices instead).
func followAgent(ctx context.Context, log *slog.Logger, agentURL string, eps *gateway.Endpoints) {
	c := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last []string
	for {
		ready, err := fetchReady(ctx, c, agentURL, eps.Key())
		if err == nil && (last == nil || !slices.Equal(ready, last)) {
			if err := eps.SetReady(time.Now(), ready); err != nil {
				log.Warn("endpoints", "revision", eps.Key(), "error", err)
			} else {
				last = ready
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
