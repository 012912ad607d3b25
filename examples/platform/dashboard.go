package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The dashboard is one HTML page (dashboard.html, embedded: it works
// without internet) served at GET / to browsers. The page opens GET
// /events, a stream of server-sent events: every DashboardPeriod one
// dashSnapshot as JSON, from which it draws its plots.

//go:embed dashboard.html
var dashboardHTML []byte

// DashboardPeriod is the time between two dashboard snapshots.
const DashboardPeriod = time.Second

// maxDashboards bounds the event streams open at once: each holds a
// goroutine and a connection for as long as its page is open.
const maxDashboards = 8

// dashSnapshot is one event of the dashboard's stream.
type dashSnapshot struct {
	Time      int64          `json:"time"` // Unix milliseconds
	Services  []dashService  `json:"services"`
	Revisions []dashRevision `json:"revisions"`
}

type dashService struct {
	Name     string         `json:"name"`
	URL      string         `json:"url"`
	Traffic  []TrafficShare `json:"traffic"`
	Rollouts []dashRollout  `json:"rollouts"` // under way
	Problem  string         `json:"problem,omitempty"`
}

// dashRollout is a gradual rollout under way: the newest revision has
// Percent of the Of percent its configuration gets in the split.
type dashRollout struct {
	Tag      string `json:"tag,omitempty"`
	Revision string `json:"revision"`
	Percent  int    `json:"percent"`
	Of       int    `json:"of"`
	NextStep int64  `json:"nextStep,omitempty"` // Unix milliseconds
}

type dashRevision struct {
	Key       string  `json:"key"`
	Service   string  `json:"service"`
	Mode      string  `json:"mode"`
	Ready     bool    `json:"ready"`
	Desired   int     `json:"desired"` // -1 while unknown
	Replicas  int     `json:"replicas"`
	Panicking bool    `json:"panicking"`
	Stable    float64 `json:"stable"`
	Panic     float64 `json:"panic"`
	Target    float64 `json:"target"` // per replica
	Metric    string  `json:"metric"`
	Waiting   int     `json:"waiting"`
	RPS       float64 `json:"rps"`
	P50       float64 `json:"p50"` // milliseconds; -1 without requests in the period
	P99       float64 `json:"p99"`
}

// latencyTracker turns the router's cumulative latency histograms into
// per-period requests per second and quantiles.
type latencyTracker struct {
	at   time.Time
	prev map[string]revHistogram
}

type revHistogram struct {
	count  uint64
	bounds []float64 // upper bounds, +Inf last
	cum    []uint64  // cumulative counts per bound
}

// routerHistograms sums the router's latency histogram over response codes,
// by revision key.
func (p *Platform) routerHistograms() map[string]revHistogram {
	fams, err := p.metrics.reg.Gather()
	if err != nil {
		p.log.Warn("dashboard: gather", "error", err)
	}
	out := map[string]revHistogram{}
	for _, f := range fams {
		if f.GetName() != "servingkit_router_request_latencies" {
			continue
		}
		for _, m := range f.GetMetric() {
			var ns, rev string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "namespace_name":
					ns = l.GetValue()
				case "revision_name":
					rev = l.GetValue()
				}
			}
			if rev == "" {
				continue // no route matched
			}
			key := ns + "/" + rev
			h := m.GetHistogram()
			agg := out[key]
			if agg.bounds == nil {
				for _, b := range h.GetBucket() {
					agg.bounds = append(agg.bounds, b.GetUpperBound())
				}
				agg.bounds = append(agg.bounds, math.Inf(1))
				agg.cum = make([]uint64, len(agg.bounds))
			}
			addBuckets(&agg, h)
			out[key] = agg
		}
	}
	return out
}

func addBuckets(agg *revHistogram, h *dto.Histogram) {
	for i, b := range h.GetBucket() {
		if i < len(agg.cum)-1 {
			agg.cum[i] += b.GetCumulativeCount()
		}
	}
	agg.cum[len(agg.cum)-1] += h.GetSampleCount()
	agg.count += h.GetSampleCount()
}

// step returns, per revision key, the requests per second and the p50 and
// p99 latency (ms, -1 without requests) since the last step.
func (t *latencyTracker) step(now time.Time, cur map[string]revHistogram) map[string][3]float64 {
	out := map[string][3]float64{}
	dt := now.Sub(t.at).Seconds()
	for key, h := range cur {
		prev, ok := t.prev[key]
		if !ok || t.at.IsZero() || dt <= 0 || len(prev.cum) != len(h.cum) {
			out[key] = [3]float64{0, -1, -1}
			continue
		}
		delta := make([]uint64, len(h.cum))
		for i := range h.cum {
			delta[i] = h.cum[i] - prev.cum[i]
		}
		n := h.count - prev.count
		out[key] = [3]float64{float64(n) / dt, quantile(0.5, h.bounds, delta), quantile(0.99, h.bounds, delta)}
	}
	t.at, t.prev = now, cur
	return out
}

// quantile estimates the q-quantile from cumulative bucket counts, as
// Prometheus' histogram_quantile does: linear within the bucket, the
// highest finite bound for the +Inf bucket; -1 without observations.
func quantile(q float64, bounds []float64, cum []uint64) float64 {
	total := cum[len(cum)-1]
	if total == 0 {
		return -1
	}
	rank := q * float64(total)
	for i, c := range cum {
		if float64(c) < rank {
			continue
		}
		if math.IsInf(bounds[i], 1) {
			if i == 0 {
				return 0
			}
			return bounds[i-1]
		}
		lower, below := 0.0, uint64(0)
		if i > 0 {
			lower, below = bounds[i-1], cum[i-1]
		}
		inBucket := c - below
		if inBucket == 0 {
			return bounds[i]
		}
		return lower + (bounds[i]-lower)*(rank-float64(below))/float64(inBucket)
	}
	return bounds[len(bounds)-2]
}

// dashboard builds one snapshot.
func (p *Platform) dashboard(now time.Time, lat *latencyTracker) dashSnapshot {
	st := p.Status()
	rollouts := p.rollouts()
	snap := dashSnapshot{Time: now.UnixMilli(), Services: []dashService{}, Revisions: []dashRevision{}}
	for _, s := range st.Services {
		ds := dashService{Name: s.Name, URL: s.URL, Traffic: s.Traffic, Rollouts: rollouts[s.Name], Problem: s.Problem}
		if ds.Traffic == nil {
			ds.Traffic = []TrafficShare{}
		}
		if ds.Rollouts == nil {
			ds.Rollouts = []dashRollout{}
		}
		snap.Services = append(snap.Services, ds)
	}
	rates := lat.step(now, p.routerHistograms())
	for _, rs := range st.Revisions {
		dr := dashRevision{
			Key: rs.Key, Service: rs.Service, Mode: rs.Mode, Ready: rs.Ready,
			Desired: rs.Desired, Replicas: rs.ReadyCount, Panicking: rs.Panicking,
			Waiting: rs.Waiting, Metric: "concurrency", P50: -1, P99: -1,
		}
		if r := p.rev(rs.Key); r != nil {
			if d := r.decision.Load(); d != nil {
				dr.Stable, dr.Panic, dr.Target, dr.Metric = d.StableLoad, d.PanicLoad, d.Target, d.Metric.String()
			} else {
				dr.Target = r.aspec.TargetValue
			}
		}
		if v, ok := rates[rs.Key]; ok {
			dr.RPS, dr.P50, dr.P99 = v[0], v[1], v[2]
		}
		snap.Revisions = append(snap.Revisions, dr)
	}
	return snap
}

// rollouts returns the gradual rollouts under way, by service key.
func (p *Platform) rollouts() map[string][]dashRollout {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]dashRollout{}
	for key, s := range p.services {
		if s.state == nil {
			continue
		}
		for _, c := range s.state.Configurations {
			if len(c.Revisions) < 2 {
				continue
			}
			newest := c.Revisions[len(c.Revisions)-1]
			ro := dashRollout{Tag: c.Tag, Revision: newest.RevisionName, Percent: newest.Percent, Of: c.Percent}
			if !c.StepParams.NextStepTime.IsZero() {
				ro.NextStep = c.StepParams.NextStepTime.UnixMilli()
			}
			out[key] = append(out[key], ro)
		}
		slices.SortFunc(out[key], func(a, b dashRollout) int { return strings.Compare(a.Tag, b.Tag) })
	}
	return out
}

// serveDashboard answers GET /: the page for a browser, the status table
// for anything that does not ask for HTML (curl).
func (p *Platform) serveDashboard(w http.ResponseWriter, r *http.Request) {
	if !acceptsHTML(r) {
		PrintTable(w, p.Status(), Status{})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The page loads nothing from elsewhere, and no other site may frame it.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(dashboardHTML)
}

func acceptsHTML(r *http.Request) bool {
	return slices.ContainsFunc(r.Header.Values("Accept"), func(v string) bool { return strings.Contains(v, "text/html") })
}

// serveEvents streams dashboard snapshots until the client goes away or the
// platform stops.
func (p *Platform) serveEvents(w http.ResponseWriter, r *http.Request) {
	select {
	case p.dashSlots <- struct{}{}:
		defer func() { <-p.dashSlots }()
	default:
		http.Error(w, fmt.Sprintf("control: %d dashboards are open already, the most at once; close one", maxDashboards), http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	// The control server's read timeout would end the stream; a stream
	// reads nothing more, and the slots bound how many may stay open.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()

	var lat latencyTracker
	tick := time.NewTicker(DashboardPeriod)
	defer tick.Stop()
	for {
		b, err := json.Marshal(p.dashboard(time.Now(), &lat))
		if err != nil {
			p.log.Error("dashboard: encode", "error", err)
			return
		}
		// A client that stops reading is dropped instead of holding the
		// goroutine on a full connection.
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
