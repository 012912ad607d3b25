package activator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/servingkit/servingkit/queue"
)

const (
	// DefaultProbeTimeout bounds one readiness probe: Knative's activator
	// probe timeout (300 ms).
	DefaultProbeTimeout = 300 * time.Millisecond
	// DefaultProbeInterval is the wait after a replica's first failed probe.
	DefaultProbeInterval = 50 * time.Millisecond
	// DefaultProbeMaxInterval caps the doubling wait between probes.
	DefaultProbeMaxInterval = time.Second

	// ProbeUserAgent is the User-Agent of HTTPProber's requests, Knative's,
	// so that a Knative queue-proxy treats them as health checks.
	ProbeUserAgent = "Knative-Activator-Probe"
	// DefaultProbePath is the path HTTPProber requests when its Path is
	// empty, Knative's.
	DefaultProbePath = "/healthz"
)

// Prober checks whether a replica is ready to take requests. Probe returns
// nil when it is. It is called from the throttler's probe goroutines, one
// per replica being probed, with a context that ends after the probe
// timeout.
type Prober interface {
	Probe(ctx context.Context, addr string) error
}

// ProberFunc adapts a function to a Prober.
type ProberFunc func(ctx context.Context, addr string) error

// Probe calls f(ctx, addr).
func (f ProberFunc) Probe(ctx context.Context, addr string) error { return f(ctx, addr) }

// HTTPProber probes a replica's serving port the way Knative's activator
// does: GET http://addr/healthz with the header K-Network-Probe: queue,
// which the replica's queue answers itself with 200 and the body "queue"
// when the replica is ready. Anything else — another status or body, or no
// answer — means not ready.
type HTTPProber struct {
	// Transport sends the probes. Nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Path is the request path. Empty means DefaultProbePath.
	Path string
}

// Probe sends one probe to addr.
func (p *HTTPProber) Probe(ctx context.Context, addr string) error {
	path := p.Path
	if path == "" {
		path = DefaultProbePath
	}
	url := "http://" + addr + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("activator: probe %s: %w", url, err)
	}
	req.Header.Set(queue.ProbeHeader, queue.ProbeHeaderValue)
	req.Header.Set("User-Agent", ProbeUserAgent)
	rt := p.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("activator: probe %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return fmt.Errorf("activator: probe %s: reading body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("activator: probe %s: status %d, want 200", url, resp.StatusCode)
	}
	if got := bytes.TrimSpace(body); string(got) != queue.ProbeHeaderValue {
		return fmt.Errorf("activator: probe %s: body %q, want %q", url, got, queue.ProbeHeaderValue)
	}
	return nil
}

// startProbe starts probing r if the throttler has a Prober, and reports
// whether it did. rv.mu must be held.
func (t *Throttler) startProbe(rv *revision, r *replica) bool {
	if t.opts.Prober == nil {
		return false
	}
	t.startProbeWith(rv, r, t.opts.Prober)
	return true
}

// startProbeWith starts probing r with p; r takes requests once a probe
// passes. rv.mu must be held.
func (t *Throttler) startProbeWith(rv *revision, r *replica, p Prober) {
	t.probeMu.Lock()
	defer t.probeMu.Unlock()
	if t.closed {
		// Closed: the replica stays unused rather than unchecked.
		return
	}
	ctx, cancel := context.WithCancel(t.probeCtx)
	r.cancelProbe = cancel
	t.probes.Add(1)
	go t.probeLoop(ctx, rv, r, p)
}

// dialProber passes a replica that accepts a TCP connection: the check
// that lets a replica whose connection failed back in when the Throttler
// has no Prober.
type dialProber struct{}

func (dialProber) Probe(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// probeLoop probes r until it passes, backing off between failures, or
// until ctx ends (r unlisted, or the throttler closed).
func (t *Throttler) probeLoop(ctx context.Context, rv *revision, r *replica, p Prober) {
	defer t.probes.Done()
	delay := t.opts.ProbeInterval
	for attempt := 1; ; attempt++ {
		pctx, cancel := t.clock.WithTimeout(ctx, t.opts.ProbeTimeout)
		err := p.Probe(pctx, r.addr)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			rv.markReady(r)
			return
		}
		t.log.Debug("activator: replica not ready", "revision", rv.name, "replica", r.addr, "attempt", attempt, "retry_in", delay, "error", err)
		tm := t.clock.Timer(delay)
		select {
		case <-ctx.Done():
			tm.Stop()
			return
		case <-tm.C:
		}
		delay = min(2*delay, t.opts.ProbeMaxInterval)
	}
}
