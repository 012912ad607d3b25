package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
)

// A Checker reports whether an application can serve: nil when it can.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckerFunc adapts a function to a Checker.
type CheckerFunc func(ctx context.Context) error

// Check calls f(ctx).
func (f CheckerFunc) Check(ctx context.Context) error { return f(ctx) }

// Defaults of AppProbeConfig: Knative's "aggressive" readiness probe, used
// when a revision sets no probe period.
const (
	DefaultProbePeriod  = 50 * time.Millisecond
	DefaultProbeTimeout = 100 * time.Millisecond
	DefaultProbeMaxWait = 10 * time.Second
)

// AppProbeConfig configures an AppProbe. Only Address is required.
type AppProbeConfig struct {
	// Address of the application, host:port.
	Address string
	// Path, if set, makes each attempt an HTTP GET of http://Address+Path
	// that passes on a status in [200, 400), as a kubelet HTTP probe does.
	// Empty means a TCP connect. Must start with "/" when set.
	Path string
	// Period between attempts. Zero means DefaultProbePeriod (50 ms). Must
	// be >= 0.
	Period time.Duration
	// Timeout of one attempt. Zero means DefaultProbeTimeout (100 ms). Must
	// be >= 0.
	Timeout time.Duration
	// MaxWait bounds one Check: attempts stop when it has passed with no
	// success. Zero means DefaultProbeMaxWait (10 s). Must be >= 0.
	MaxWait time.Duration
	// Dial opens TCP connections, for both kinds of probe. Nil means a
	// net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Transport sends HTTP probes. Nil means a transport without
	// keep-alive that dials with Dial.
	Transport http.RoundTripper
	// Clock paces the attempts and bounds them. Nil means the real clock.
	Clock clock.Clock
}

// Validate reports every invalid field, naming the field, its value and the
// allowed range.
func (c AppProbeConfig) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("queue: AppProbeConfig.Address = %q, must be host:port: %v", c.Address, err))
	}
	if c.Path != "" && c.Path[0] != '/' {
		errs = append(errs, fmt.Errorf("queue: AppProbeConfig.Path = %q, must be empty (TCP probe) or start with \"/\"", c.Path))
	}
	for _, d := range []struct {
		name string
		v, z time.Duration
	}{{"Period", c.Period, DefaultProbePeriod}, {"Timeout", c.Timeout, DefaultProbeTimeout}, {"MaxWait", c.MaxWait, DefaultProbeMaxWait}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("queue: AppProbeConfig.%s = %v, must be >= 0 (0 means %v)", d.name, d.v, d.z))
		}
	}
	return errors.Join(errs...)
}

// AppProbe checks that an application on another port accepts connections
// (or answers an HTTP GET). One Check polls — an attempt every Period, each
// bounded by Timeout — until the first success or until MaxWait has
// passed, so a sidecar reports ready within about 50 ms of the application
// coming up. Concurrent Checks share one poll. It is Knative's aggressive
// readiness probe.
//
// An AppProbe is safe for simultaneous use.
type AppProbe struct {
	c      AppProbeConfig
	url    string
	client *http.Client

	mu      sync.Mutex // protects current
	current *probeRun  // the poll in progress, if any
}

type probeRun struct {
	done chan struct{}
	err  error // set before done is closed
}

// NewAppProbe returns an AppProbe, or an error naming each invalid field.
func NewAppProbe(c AppProbeConfig) (*AppProbe, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Period == 0 {
		c.Period = DefaultProbePeriod
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultProbeTimeout
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultProbeMaxWait
	}
	if c.Clock == nil {
		c.Clock = clock.New()
	}
	if c.Dial == nil {
		c.Dial = (&net.Dialer{}).DialContext
	}
	p := &AppProbe{c: c}
	if c.Path != "" {
		p.url = "http://" + c.Address + c.Path
		t := c.Transport
		if t == nil {
			t = &http.Transport{DialContext: c.Dial, DisableKeepAlives: true, Proxy: nil}
		}
		p.client = &http.Client{
			Transport: t,
			// A redirect is an answer: the application is up.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return p, nil
}

// Check polls the application until it answers, and returns nil, or the
// last attempt's error once MaxWait has passed, or ctx.Err() if ctx ends
// first (the shared poll goes on for the other callers).
func (p *AppProbe) Check(ctx context.Context) error {
	p.mu.Lock()
	run := p.current
	if run == nil {
		run = &probeRun{done: make(chan struct{})}
		p.current = run
		go p.poll(run)
	}
	p.mu.Unlock()
	select {
	case <-run.done:
		return run.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *AppProbe) poll(run *probeRun) {
	start := p.c.Clock.Now()
	attempts := 0
	var err error
	for {
		attempts++
		if err = p.attempt(); err == nil {
			break
		}
		waited := p.c.Clock.Since(start)
		if waited+p.c.Period > p.c.MaxWait {
			err = fmt.Errorf("queue: application at %s not ready after %v (%d attempts): %w", p.c.Address, p.c.MaxWait, attempts, err)
			break
		}
		p.c.Clock.Sleep(p.c.Period)
	}
	p.mu.Lock()
	p.current = nil
	p.mu.Unlock()
	run.err = err
	close(run.done)
}

// attempt probes once, within Timeout.
func (p *AppProbe) attempt() error {
	ctx, cancel := p.c.Clock.WithTimeout(context.Background(), p.c.Timeout)
	defer cancel()
	if p.client == nil {
		conn, err := p.c.Dial(ctx, "tcp", p.c.Address)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "servingkit-queue-probe")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("queue: probe GET %s: status %d", p.url, resp.StatusCode)
	}
	return nil
}
