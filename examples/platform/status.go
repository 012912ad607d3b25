package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/servingkit/servingkit/revision"
)

// Status is the platform's state, served as JSON at /status.
type Status struct {
	Time      time.Time        `json:"time"`
	Gateway   string           `json:"gateway"`
	Services  []ServiceStatus  `json:"services"`
	Revisions []RevisionStatus `json:"revisions"`
}

// ServiceStatus is one Knative Service's route.
type ServiceStatus struct {
	Name    string            `json:"name"`
	URL     string            `json:"url"`
	Traffic []TrafficShare    `json:"traffic"`
	Tags    map[string]string `json:"tags,omitempty"` // tag → URL
	Problem string            `json:"problem,omitempty"`
	// Visibility is "cluster-local" for a service served only on the
	// internal listener (its URLs are the internal listener's then).
	Visibility string `json:"visibility,omitempty"`
}

// TrafficShare is one revision's share of a route.
type TrafficShare struct {
	Revision string `json:"revision"`
	Percent  int    `json:"percent"`
	Tag      string `json:"tag,omitempty"`
}

// RevisionStatus is one revision's live state.
type RevisionStatus struct {
	Key         string          `json:"key"`
	Service     string          `json:"service"`
	Ready       bool            `json:"ready"`
	Active      string          `json:"active"`
	Mode        string          `json:"mode"`
	Desired     int             `json:"desired"`
	ReadyCount  int             `json:"readyReplicas"`
	Starting    int             `json:"startingReplicas"`
	Draining    int             `json:"drainingReplicas"`
	Panicking   bool            `json:"panicking"`
	Concurrency float64         `json:"observedConcurrency"`
	Waiting     int             `json:"activatorWaiting"`
	Requests    int64           `json:"requests"`
	Errors      int64           `json:"errors"`
	Replicas    []ReplicaStatus `json:"replicas"`
	// State is "Ready", "Failed" (Ready is False: see Conditions) or
	// "NotReady" (not ready yet: deploying).
	State      string            `json:"state"`
	Conditions []ConditionStatus `json:"conditions"`
}

// ConditionStatus is one of a revision's conditions, as Knative shows it.
type ConditionStatus struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// ReplicaStatus is one replica: its process and, for a user's program,
// the program's.
type ReplicaStatus struct {
	Name string `json:"name"`
	// State is Starting, Ready, NotReady (its readiness probe fails),
	// CrashLoopBackOff (waiting RetryIn to restart) or Draining.
	State  string `json:"state"`
	PID    int    `json:"pid,omitempty"`    // the replica (queue) process
	AppPID int    `json:"appPid,omitempty"` // the program, for a user's program
	Serve  string `json:"serve,omitempty"`
	// Metrics is the URL of the replica's queue metrics (Prometheus).
	Metrics  string `json:"metrics,omitempty"`
	Restarts int    `json:"restarts"`
	RetryIn  string `json:"retryIn,omitempty"`
	// LastFailure is why the last process ended, until one is ready again.
	LastFailure string `json:"lastFailure,omitempty"`
	// Probe is why the program is not ready.
	Probe string `json:"probe,omitempty"`
}

// Status returns a snapshot of the platform.
func (p *Platform) Status() Status {
	st := Status{Time: time.Now(), Gateway: p.gatewayAddr}
	p.mu.Lock()
	for _, key := range slices.Sorted(maps.Keys(p.services)) {
		s := p.services[key]
		ss := ServiceStatus{Name: key, URL: p.serviceURL(s, ""), Problem: s.problem}
		if s.clusterLocal {
			ss.Visibility = VisibilityClusterLocal
		}
		if s.table != nil {
			for _, sh := range s.table.Default {
				ss.Traffic = append(ss.Traffic, TrafficShare{Revision: sh.Revision, Percent: sh.Percent})
			}
			for _, tag := range slices.Sorted(maps.Keys(s.table.Tags)) {
				if ss.Tags == nil {
					ss.Tags = map[string]string{}
				}
				ss.Tags[tag] = p.serviceURL(s, tag)
				for _, sh := range s.table.Tags[tag] {
					ss.Traffic = append(ss.Traffic, TrafficShare{Revision: sh.Revision, Percent: sh.Percent, Tag: tag})
				}
			}
		}
		st.Services = append(st.Services, ss)
	}
	revs := make([]*rev, 0, len(p.revisions))
	for _, key := range slices.Sorted(maps.Keys(p.revisions)) {
		revs = append(revs, p.revisions[key])
	}
	p.mu.Unlock()

	for _, r := range revs {
		state := r.rec.State()
		rs := RevisionStatus{
			Key: r.key, Service: r.service,
			Ready:    state.Status.IsReady(),
			Active:   fmt.Sprintf("%s %s", state.Status.Active.Status, state.Status.Active.Reason),
			Mode:     state.Endpoints.Mode.String(),
			Desired:  -1,
			Waiting:  p.act.Waiting(r.key),
			Requests: r.requests.Load(),
			Errors:   r.errors.Load(),
		}
		rs.ReadyCount, rs.Starting, rs.Draining = r.pool.counts()
		if d := r.decision.Load(); d != nil {
			rs.Desired, rs.Panicking, rs.Concurrency = d.Desired, d.Panicking, d.StableLoad
		}
		rs.Replicas = r.pool.replicaStatus(st.Time)
		switch state.Status.Ready.Status {
		case revision.True:
			rs.State = "Ready"
		case revision.False:
			rs.State = "Failed"
		default:
			rs.State = "NotReady"
		}
		for _, c := range []revision.Condition{state.Status.Ready, state.Status.ResourcesAvailable, state.Status.ContainerHealthy, state.Status.Active} {
			rs.Conditions = append(rs.Conditions, ConditionStatus{Type: string(c.Type), Status: c.Status.String(), Reason: c.Reason, Message: c.Message})
		}
		st.Revisions = append(st.Revisions, rs)
	}
	return st
}

// url is how a user reaches a service (or one of its tags) on the gateway.
func (p *Platform) url(name, ns, tag string) string {
	host := p.router.Host(name, ns, tag)
	_, port, _ := strings.Cut(p.gatewayAddr, ":")
	return "http://" + host + ":" + port
}

// serviceURL is url, or for a cluster-local service the internal
// listener's URL ("" without an internal listener).
func (p *Platform) serviceURL(s *service, tag string) string {
	if !s.clusterLocal {
		return p.url(s.name, s.ns, tag)
	}
	if p.internalAddr == "" {
		return ""
	}
	_, port, _ := strings.Cut(p.internalAddr, ":")
	return "http://" + p.inner.Host(s.name, s.ns, tag) + ":" + port
}

// PrintTable writes the live status table: one line per revision. prev,
// if not nil, is the previous snapshot, for requests per second.
func PrintTable(w io.Writer, st, prev Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "REVISION\tSTATE\tMODE\tDESIRED\tREADY\tRESTARTS\tPANIC\tCONCURRENCY\tWAITING\tREQ/S\tERRORS\tACTIVE\t\n")
	before := map[string]RevisionStatus{}
	for _, r := range prev.Revisions {
		before[r.Key] = r
	}
	for _, r := range st.Revisions {
		rps := 0.0
		if b, ok := before[r.Key]; ok {
			if dt := st.Time.Sub(prev.Time).Seconds(); dt > 0 {
				rps = float64(r.Requests-b.Requests) / dt
			}
		}
		panic := ""
		if r.Panicking {
			panic = "yes"
		}
		ready := fmt.Sprint(r.ReadyCount)
		if r.Starting > 0 || r.Draining > 0 {
			ready = fmt.Sprintf("%d (+%d/-%d)", r.ReadyCount, r.Starting, r.Draining)
		}
		desired := fmt.Sprint(r.Desired)
		if r.Desired < 0 {
			desired = "-"
		}
		restarts := 0
		for _, rep := range r.Replicas {
			restarts += rep.Restarts
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%.1f\t%d\t%.0f\t%d\t%s\t\n",
			r.Key, r.State, r.Mode, desired, ready, restarts, panic, r.Concurrency, r.Waiting, rps, r.Errors, r.Active)
	}
	_ = tw.Flush()
	for _, r := range st.Revisions {
		if r.State == "Failed" && len(r.Conditions) > 0 {
			fmt.Fprintf(w, "%s: %s: %s\n", r.Key, r.Conditions[0].Reason, r.Conditions[0].Message)
		}
	}
}

func (p *Platform) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(p.Status())
	})
	mux.HandleFunc("GET /{$}", p.serveDashboard)
	mux.HandleFunc("GET /events", p.serveEvents)
	mux.Handle("GET /metrics", p.metrics.handler())
	mux.HandleFunc("GET /logs", p.serveLogs)
	mux.HandleFunc("DELETE /services/{namespace}/{name}", func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("namespace"), r.PathValue("name")
		if err := p.Delete(ns, name); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"deleted": ns + "/" + name})
	})
	mux.HandleFunc("POST /apply", func(w http.ResponseWriter, r *http.Request) {
		// A slow body cannot hold the connection: 30 s to send 1 MiB.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(30 * time.Second))
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxManifestBytes))
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("control: the manifest is larger than the limit of %d bytes (1 MiB); nothing was applied", MaxManifestBytes), http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		svc, err := ParseService(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		warnings, err := p.Apply(svc)
		if rc := (*RouteConflictError)(nil); errors.As(err, &rc) {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if warnings == nil {
			warnings = []string{}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"applied": svc.Metadata.Namespace + "/" + svc.Metadata.Name, "warnings": warnings})
	})
	return mux
}
