package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/stats"
)

// runAutoscaler is one autoscaler process: a Runner for the revisions it
// owns, Shards with a FileLease over -lock-dir for the ownership, the
// agent as scaler backend and ready counter. It serves /stats (the first
// hop, from activators and replicas), /stats/forwarded (from its peers),
// /decision (the owner's decisions, for the gateways) and /owner.
func runAutoscaler(args []string) error {
	fs := flag.NewFlagSet("autoscaler", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	lockDir := fs.String("lock-dir", "", "directory of the bucket lock files, shared by the autoscalers")
	agentURL := fs.String("agent", "", "the agent's base URL")
	revisions := fs.String("revisions", "", "comma-separated revision keys")
	cc := fs.Int("cc", 0, "the revisions' container concurrency")
	buckets := fs.Int("buckets", 1, "ownership buckets")
	proxied := fs.String("always-proxy", "", "comma-separated revision keys that keep the activator in their path (target-burst-capacity -1)")
	var cfgKeys kv
	fs.Var(&cfgKeys, "config", "config-autoscaler key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := logger("autoscaler")
	ctx, cancel := untilStopped(true)
	defer cancel()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	holder := "http://" + l.Addr().String() + "/stats/forwarded"
	cfg, err := autoscaler.ParseConfig(cfgKeys)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	backend := &agentBackend{url: *agentURL, client: client}
	runner, err := autoscaler.NewRunner(autoscaler.Options{Scaler: backend, Ready: backend, Logger: log})
	if err != nil {
		return err
	}
	lease, err := autoscaler.NewFileLease(*lockDir)
	if err != nil {
		return err
	}
	shards, err := autoscaler.NewShards(autoscaler.ShardsConfig{
		Runner: runner, Lease: lease, Holder: holder, Buckets: *buckets,
		RenewInterval: 500 * time.Millisecond, Logger: log,
	})
	if err != nil {
		return err
	}
	alwaysProxy := map[string]bool{}
	for _, rev := range splitList(*proxied) {
		alwaysProxy[rev] = true
	}
	for _, rev := range splitList(*revisions) {
		var ann map[string]string
		if alwaysProxy[rev] {
			ann = map[string]string{autoscaler.TargetBurstCapacityAnnotation: "-1"}
		}
		spec, err := cfg.RevisionSpec(ann, *cc)
		if err != nil {
			return err
		}
		if err := shards.Add(rev, spec); err != nil {
			return err
		}
	}
	runner.Subscribe(func(d autoscaler.Decision) {
		if d.Desired != d.Ready {
			log.Info("decision", "revision", d.Revision, "desired", d.Desired, "ready", d.Ready, "stable", d.StableLoad, "panic", d.Panicking)
		}
	})
	mux := http.NewServeMux()
	mux.Handle("POST /stats", stats.Handler(shards.Send))
	mux.Handle("POST /stats/forwarded", stats.Handler(shards.Deliver))
	mux.HandleFunc("GET /decision", func(w http.ResponseWriter, r *http.Request) {
		rev := r.URL.Query().Get("revision")
		d, ok := runner.Decision(rev)
		if !ok || !shards.Owns(rev) {
			http.Error(w, "autoscaler: not the owner of "+rev, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(decision{Desired: d.Desired, ExcessBurstCapacity: d.ExcessBurstCapacity, Panicking: d.Panicking})
	})
	mux.HandleFunc("GET /owner", func(w http.ResponseWriter, r *http.Request) {
		owner, _ := shards.Owner(r.URL.Query().Get("revision"))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"owner": owner, "self": holder, "pid": os.Getpid()})
	})
	go func() { _ = runner.Run(ctx) }()
	go func() { _ = shards.Run(ctx) }()
	announce(map[string]string{"addr": l.Addr().String(), "holder": holder})
	serve(ctx, l, mux)
	return lease.Close()
}

// decision is what GET /decision answers: the owner's latest decision, as
// the gateways' reconcilers take it.
type decision struct {
	Desired             int  `json:"desired"`
	ExcessBurstCapacity int  `json:"excessBurstCapacity"`
	Panicking           bool `json:"panicking"`
}

// agentBackend is the scaler backend and ready counter over the agent's
// HTTP API.
type agentBackend struct {
	url    string
	client *http.Client
}

func (b *agentBackend) Scale(ctx context.Context, revision string, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/scale?revision="+revision+"&n="+strconv.Itoa(n), nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("agent: %s", resp.Status)
	}
	return nil
}

func (b *agentBackend) ReadyCount(revision string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ready, err := fetchReady(ctx, b.client, b.url, revision)
	return len(ready), err
}

// kv is a repeatable key=value flag.
type kv map[string]string

func (m *kv) String() string { return fmt.Sprint(map[string]string(*m)) }

func (m *kv) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want key=value, got %q", s)
	}
	if *m == nil {
		*m = kv{}
	}
	(*m)[k] = v
	return nil
}
