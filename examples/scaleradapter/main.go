// Command scaleradapter shows how to plug your own infrastructure into the
// autoscaler: implement autoscaler.Scaler (set a revision's replica count)
// and autoscaler.ReadyCounter (how many are ready), here for a made-up
// "instance group" HTTP API such as a cloud or a Nomad job would offer.
//
// It runs for about 20 seconds against a simulated API: load arrives, the
// runner scales the group up, instances boot, load goes away, the group is
// scaled back to zero.
//
//	go run ./examples/scaleradapter
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/stats"
)

// groupScaler is the adapter: one instance group per revision.
type groupScaler struct {
	base   string // the API's base URL
	client *http.Client
}

// Scale sets the group's size. It must be idempotent: the runner calls it
// with the count it wants, and again on its next tick if this call fails.
func (g *groupScaler) Scale(ctx context.Context, revision string, n int) error {
	body := strings.NewReader(fmt.Sprintf(`{"size":%d}`, n))
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, g.base+"/groups/"+groupName(revision), body)
	if err != nil {
		return err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("resize %s to %d: %w", revision, n, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("resize %s to %d: %s", revision, n, resp.Status)
	}
	return nil
}

// ReadyCount tells the decider how many instances serve now (Knative counts
// ready pods). A group that does not exist yet has none.
func (g *groupScaler) ReadyCount(revision string) (int, error) {
	resp, err := g.client.Get(g.base + "/groups/" + groupName(revision))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, nil
	}
	var st struct{ Ready int }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, err
	}
	return st.Ready, nil
}

// groupName maps the host's revision key to a name the API accepts.
func groupName(revision string) string { return strings.ReplaceAll(revision, "/", "--") }

func main() {
	api := newFakeAPI(400 * time.Millisecond) // instances take 400 ms to boot
	srv := httptest.NewServer(api)
	defer srv.Close()

	adapter := &groupScaler{base: srv.URL, client: &http.Client{Timeout: 5 * time.Second}}
	runner, err := autoscaler.NewRunner(autoscaler.Options{Scaler: adapter, Ready: adapter})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runner.Subscribe(func(d autoscaler.Decision) { fmt.Println("decision:", d) })

	cfg, _ := autoscaler.ParseConfig(map[string]string{"stable-window": "6s", "scale-to-zero-grace-period": "1s"})
	spec, err := cfg.RevisionSpec(map[string]string{"autoscaling.knative.dev/target": "10"}, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	const rev = "default/orders-00001"
	ctx, cancel := context.WithTimeout(context.Background(), 22*time.Second)
	defer cancel()
	go func() { _ = runner.Run(ctx) }()
	if err := runner.Add(rev, spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	// Your replicas (or activators) push their load; here we pretend: 40
	// requests in flight for 6 s, then nothing.
	for i := range 20 {
		load := 0.0
		if i < 6 {
			load = 40
		}
		ready, _ := adapter.ReadyCount(rev)
		err := runner.Send(ctx, []stats.Message{{Revision: rev, Stat: stats.Stat{Source: "replicas", Concurrency: load}}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		fmt.Printf("t=%2ds load=%2.0f ready=%d\n", i, load, ready)
		time.Sleep(time.Second)
	}
	fmt.Println("resize calls the API received:", api.calls())
}

// fakeAPI simulates an instance-group API: PUT /groups/{name} {"size":n},
// GET /groups/{name} → {"size":n,"ready":k}. Instances become ready boot
// after they are asked for; the first resize fails, to show the retry.
type fakeAPI struct {
	boot time.Duration
	mu   sync.Mutex
	grp  map[string]*group
	log  []string
}

type group struct {
	size   int
	bootAt []time.Time // when each instance is ready
}

func newFakeAPI(boot time.Duration) *fakeAPI { return &fakeAPI{boot: boot, grp: map[string]*group{}} }

func (a *fakeAPI) calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/groups/")
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.grp[name]
	switch r.Method {
	case http.MethodPut:
		var req struct{ Size int }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Size < 0 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		if len(a.log) == 0 {
			a.log = append(a.log, fmt.Sprintf("%d (failed)", req.Size))
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		a.log = append(a.log, fmt.Sprint(req.Size))
		if g == nil {
			g = &group{}
			a.grp[name] = g
		}
		for len(g.bootAt) < req.Size {
			g.bootAt = append(g.bootAt, time.Now().Add(a.boot))
		}
		g.bootAt = g.bootAt[:req.Size]
		g.size = req.Size
	case http.MethodGet:
		if g == nil {
			http.NotFound(w, r)
			return
		}
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ready := 0
	for _, t := range g.bootAt {
		if !time.Now().Before(t) {
			ready++
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]int{"size": g.size, "ready": ready})
}
