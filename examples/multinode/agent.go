package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// agent starts and stops replica processes, as a kubelet would, and lists
// the ready ones, as an EndpointSlice would. It is the one piece of this
// example that a real deployment gets from its orchestrator.
type agent struct {
	log  *slog.Logger
	self string   // the executable
	args []string // replica flags

	mu   sync.Mutex
	revs map[string]*revReplicas
}

type revReplicas struct {
	procs  []*replicaProc // live, oldest first
	scales []int          // every count asked by POST /scale, in order
}

type replicaProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string // set once ready
	gone  bool   // being stopped
}

func runAgent(args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	statsURLs := fs.String("stats", "", "comma-separated autoscaler stats URLs, for replicas")
	cc := fs.Int("cc", 0, "replicas' container concurrency")
	work := fs.Duration("work", 50*time.Millisecond, "replicas' time per request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	a := &agent{
		log: logger("agent"), self: self, revs: map[string]*revReplicas{},
		args: []string{"-stats", *statsURLs, "-cc", strconv.Itoa(*cc), "-work", work.String()},
	}
	ctx, cancel := untilStopped(true)
	defer cancel()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /scale", a.handleScale)
	mux.HandleFunc("GET /endpoints", a.handleEndpoints)
	mux.HandleFunc("GET /count", a.handleCount)
	mux.HandleFunc("GET /scales", a.handleScales)
	announce(map[string]string{"addr": l.Addr().String()})
	serve(ctx, l, mux)
	a.stopAll()
	return nil
}

func (a *agent) rev(key string) *revReplicas {
	r, ok := a.revs[key]
	if !ok {
		r = &revReplicas{}
		a.revs[key] = r
	}
	return r
}

func (a *agent) handleScale(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("revision")
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if key == "" || err != nil || n < 0 || n > 50 {
		http.Error(w, "agent: want revision and n in [0, 50]", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	rr := a.rev(key)
	rr.scales = append(rr.scales, n)
	live := slices.DeleteFunc(slices.Clone(rr.procs), func(p *replicaProc) bool { return p.gone })
	var stop []*replicaProc
	for i := len(live); i < n; i++ {
		p, err := a.start(key)
		if err != nil {
			a.mu.Unlock()
			http.Error(w, "agent: "+err.Error(), http.StatusInternalServerError)
			return
		}
		rr.procs = append(rr.procs, p)
	}
	if len(live) > n {
		// Newest first: they have the least warm state.
		for _, p := range slices.Backward(live) {
			if len(stop) == len(live)-n {
				break
			}
			p.gone = true
			stop = append(stop, p)
		}
	}
	a.mu.Unlock()
	if len(live) != n {
		a.log.Info("scale", "revision", key, "from", len(live), "to", n)
	}
	for _, p := range stop {
		go a.stop(key, p)
	}
	w.WriteHeader(http.StatusNoContent)
}

// start launches a replica process; it is listed once it reports its
// address. a.mu must be held.
func (a *agent) start(key string) (*replicaProc, error) {
	cmd := exec.Command(a.self, append([]string{"replica", "-revision", key}, a.args...)...)
	cmd.Env = os.Environ()
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &replicaProc{cmd: cmd, stdin: stdin}
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		var hs map[string]string
		if err == nil {
			err = json.Unmarshal([]byte(line), &hs)
		}
		a.mu.Lock()
		if err != nil || hs["serve"] == "" {
			a.mu.Unlock()
			a.log.Warn("replica did not start", "revision", key, "error", err)
			a.mu.Lock()
			p.gone = true
			a.mu.Unlock()
			return
		}
		p.addr = hs["serve"]
		a.mu.Unlock()
		_, _ = io.Copy(io.Discard, out)
	}()
	return p, nil
}

// stop unlists p at once, gives the gateways time to stop sending to it,
// then drains it with SIGTERM and reaps it.
func (a *agent) stop(key string, p *replicaProc) {
	time.Sleep(time.Second)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
	a.mu.Lock()
	rr := a.rev(key)
	rr.procs = slices.DeleteFunc(rr.procs, func(q *replicaProc) bool { return q == p })
	a.mu.Unlock()
}

func (a *agent) stopAll() {
	a.mu.Lock()
	var all []*replicaProc
	for _, rr := range a.revs {
		all = append(all, rr.procs...)
	}
	a.mu.Unlock()
	for _, p := range all {
		_ = p.stdin.Close()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range all {
		_ = p.cmd.Wait()
	}
}

func (a *agent) ready(key string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []string{}
	for _, p := range a.rev(key).procs {
		if p.addr != "" && !p.gone {
			out = append(out, p.addr)
		}
	}
	slices.Sort(out)
	return out
}

func (a *agent) handleEndpoints(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(readyList{Ready: a.ready(r.URL.Query().Get("revision"))})
}

// handleCount reports the ready replicas and the replicas wanted (started
// and not stopping), for tests and curious humans.
func (a *agent) handleCount(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("revision")
	a.mu.Lock()
	wanted := 0
	for _, p := range a.rev(key).procs {
		if !p.gone {
			wanted++
		}
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"ready":%d,"wanted":%d}`+"\n", len(a.ready(key)), wanted)
}

// handleScales lists every count the autoscalers asked for the revision,
// in order, for tests.
func (a *agent) handleScales(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	scales := append([]int{}, a.rev(r.URL.Query().Get("revision")).scales...)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(scales)
}
