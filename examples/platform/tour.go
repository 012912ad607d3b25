package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The guided tour: a scripted demo with its own load generator. It runs
// with short windows so each act takes seconds, not minutes.
var tourConfig = map[string]string{
	"stable-window":              "10s",
	"scale-to-zero-grace-period": "2s",
	"allow-zero-initial-scale":   "true",
}

const tourManifest = `
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: tour, namespace: default}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/initial-scale: "0"
        autoscaling.knative.dev/max-scale: "8"
        autoscaling.knative.dev/target-burst-capacity: "10"
    spec:
      containerConcurrency: 10
      containers:
        - image: ghcr.io/knative/autoscale-go
          env:
            - {name: SLEEP_MS, value: "200"}
            - {name: TARGET, value: "%s"}
%s`

const tourSplit = `  traffic:
    - revisionName: tour-00001
      percent: 80
      tag: v1
    - latestRevision: true
      percent: 20
      tag: v2
`

func runTour(o Options) int {
	o.Autoscaler = tourConfig
	o.DrainQuietPeriod = 500 * time.Millisecond
	p, err := StartPlatform(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		_ = p.Stop(sctx)
	}()
	t := &tour{p: p, out: os.Stdout, client: &http.Client{
		Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 500},
	}}
	say := t.say
	say("servingkit guided tour — gateway http://%s, status http://%s/status; watch it live at http://%s/ in a browser", p.GatewayAddr(), p.ControlAddr(), p.ControlAddr())
	say("Windows are short for the tour: stable %s, panic 10%% of it, scale-to-zero grace %s.",
		tourConfig["stable-window"], tourConfig["scale-to-zero-grace-period"])

	say("\n== 1. A revision at zero, and its first request")
	if err := t.apply(fmt.Sprintf(tourManifest, "v1", "")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !t.waitFor(ctx, "tour-00001 Ready (at zero replicas) and routed", 30*time.Second, func(st Status) bool {
		r, ok := find(st, "default/tour-00001")
		return ok && r.Ready && len(st.Services) == 1 && len(st.Services[0].Traffic) > 0
	}) {
		return 1
	}
	t.table(Status{})
	start := time.Now()
	code, body, err := t.get("?sleep=1")
	if err != nil || code != http.StatusOK {
		fmt.Fprintf(os.Stderr, "first request failed: %d %v\n", code, err)
		return 1
	}
	say("First request from zero answered in %v (start a replica process, wait for it, forward): %s",
		time.Since(start).Round(time.Millisecond), strings.TrimSpace(body))

	go t.liveTable(ctx)

	say("\n== 2. A burst: 150 clients, each request sleeping 200 ms, container concurrency 10")
	say("Watch PANIC turn on and DESIRED jump: the 1 s panic window sees the surge long before the stable window does.")
	res := t.load(ctx, 150, 12*time.Second, "?sleep=200")
	say("Burst done: %s", res)

	say("With spare capacity (excess burst capacity ≥ 0) the front door switches to Serve: requests skip the activator.")

	say("\n== 3. Idle: the revision scales back to zero")
	say("After the stable window without load, the activator takes the path again (Proxy), and after the grace period the last replica goes.")
	if !t.waitFor(ctx, "scale to zero", 90*time.Second, func(st Status) bool {
		r, _ := find(st, "default/tour-00001")
		return r.ReadyCount == 0 && r.Draining == 0 && r.Starting == 0
	}) {
		return 1
	}

	say("\n== 4. v2 with a split: 80%% to v1, 20%% to v2, each also on its own tag host")
	if err := t.apply(fmt.Sprintf(tourManifest, "v2", tourSplit)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !t.waitFor(ctx, "the split routed", 30*time.Second, func(st Status) bool {
		return len(st.Services) == 1 && len(st.Services[0].Traffic) >= 2
	}) {
		return 1
	}
	for tag, url := range p.Status().Services[0].Tags {
		say("  tag %s: curl %s/", tag, url)
	}
	res = t.load(ctx, 20, 8*time.Second, "?sleep=50")
	say("Split load done: %s", res)
	say("\nThe tour is over. Shutting down: replicas drain, nothing is left running.")
	return 0
}

type tour struct {
	p      *Platform
	out    io.Writer
	client *http.Client
	mu     sync.Mutex // serialises output
}

func (t *tour) say(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, format+"\n", args...)
}

func (t *tour) table(prev Status) Status {
	st := t.p.Status()
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "%s\n", st.Time.Format("15:04:05"))
	PrintTable(t.out, st, prev)
	return st
}

func (t *tour) liveTable(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev := t.p.Status()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			prev = t.table(prev)
		}
	}
}

// apply posts a manifest to the control endpoint, as a user would with
// curl: with the bearer token and a YAML content type.
func (t *tour) apply(manifest string) error {
	req, err := http.NewRequest(http.MethodPost, "http://"+t.p.ControlAddr()+"/apply", strings.NewReader(manifest))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.p.ControlToken())
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("apply: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func (t *tour) get(query string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+t.p.GatewayAddr()+"/"+query, nil)
	req.Host = t.p.router.Host("tour", "default", "")
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitFor polls the status until cond holds, printing progress every 5 s.
func (t *tour) waitFor(ctx context.Context, what string, limit time.Duration, cond func(Status) bool) bool {
	start := time.Now()
	last := start
	for !cond(t.p.Status()) {
		if time.Since(start) > limit {
			t.say("gave up waiting for %s after %v", what, limit)
			return false
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			t.say("… waiting for %s (%v so far)", what, time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.say("%s after %v", what, time.Since(start).Round(100*time.Millisecond))
	return true
}

// loadResult summarises a load run.
type loadResult struct {
	ok, failed int
	latencies  []time.Duration
	bodies     map[string]int
}

func (r loadResult) String() string {
	slices.Sort(r.latencies)
	pct := func(q float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[int(q*float64(len(r.latencies)-1))].Round(time.Millisecond)
	}
	var by []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.bodies {
			if !yield(k) {
				return
			}
		}
	}) {
		by = append(by, fmt.Sprintf("%s×%d", k, r.bodies[k]))
	}
	return fmt.Sprintf("%d ok, %d failed; p50 %v, p99 %v; answered by %s",
		r.ok, r.failed, pct(0.5), pct(0.99), strings.Join(by, ", "))
}

// load runs clients closed-loop clients for d.
func (t *tour) load(ctx context.Context, clients int, d time.Duration, query string) loadResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	res := loadResult{bodies: map[string]int{}}
	var wg sync.WaitGroup
	var started atomic.Int64
	for range clients {
		wg.Go(func() {
			started.Add(1)
			for ctx.Err() == nil {
				s := time.Now()
				code, body, err := t.get(query)
				lat := time.Since(s)
				mu.Lock()
				if err == nil && code == http.StatusOK {
					res.ok++
					res.latencies = append(res.latencies, lat)
					who, _, _ := strings.Cut(body, ":")
					res.bodies[who]++
				} else if ctx.Err() == nil {
					res.failed++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res
}

func find(st Status, key string) (RevisionStatus, bool) {
	for _, r := range st.Revisions {
		if r.Key == key {
			return r, true
		}
	}
	return RevisionStatus{}, false
}
