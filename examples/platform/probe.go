package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// prober runs one probe of a program as the kubelet would: an HTTP GET
// that passes on a status in [200, 400), a TCP connect, or a command that
// exits 0; each attempt bounded by the probe's timeout.
type prober struct {
	spec   ProbeSpec
	addr   string   // host:port the probe checks
	env    []string // the program's environment, for exec probes
	dir    string   // the program's working directory, for exec probes
	client *http.Client
	// alsoTCP makes an exec probe pass only when the program also accepts
	// connections on its port: Knative's queue checks the port of a
	// program whose readiness probe is exec.
	alsoTCP bool
	// attempt, if set, replaces check (tests script the results).
	attempt func(context.Context) error
	// watch, if set, waits until the probed port accepts a connection
	// and returns it (watchPort), calling refused with the first refusal.
	// An aggressive HTTP or TCP readiness probe waits with it for its
	// first attempt, which it makes on that connection (see run).
	watch func(ctx context.Context, refused func(error)) (net.Conn, error)
	// keep, if set, takes the watch's connection once its attempt passed
	// and left it open and idle; nil closes it.
	keep func(net.Conn)
}

// newProber returns the prober of spec for a program listening on port.
// A nil spec is the platform's default readiness check: a TCP connect to
// the port.
func newProber(spec *ProbeSpec, port int, env []string, dir string) *prober {
	s := ProbeSpec{Kind: "tcp", Period: 10 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3, Aggressive: true}
	if spec != nil {
		s = *spec
	}
	if s.Port != 0 {
		port = s.Port
	}
	p := &prober{spec: s, addr: net.JoinHostPort(cmpOr(s.Host, "127.0.0.1"), strconv.Itoa(port)), env: env, dir: dir}
	if s.Kind == "http" {
		p.client = &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
			// A redirect is an answer, as for the kubelet.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return p
}

// watchPort makes p watch its port between its first attempts (see
// prober.watch), when it probes an IP address.
func (p *prober) watchPort() {
	ap, err := netip.ParseAddrPort(p.addr)
	if err != nil {
		return
	}
	p.watch = func(ctx context.Context, refused func(error)) (net.Conn, error) {
		return watchPort(ctx, ap, p.spec.Timeout, refused)
	}
}

// describe names the probe for messages.
func (p *prober) describe() string {
	switch p.spec.Kind {
	case "http":
		return "httpGet http://" + p.addr + p.spec.Path
	case "tcp":
		return "tcpSocket " + p.addr
	}
	return fmt.Sprintf("exec %q", p.spec.Command)
}

func (p *prober) try(ctx context.Context) error {
	if p.attempt != nil {
		return p.attempt(ctx)
	}
	return p.check(ctx)
}

// tryOn makes an attempt on c, the watch's connection: a TCP attempt
// passes (the connection is made), an HTTP attempt sends its request on
// c. It hands c to keep if c is left open and idle (a TCP attempt, or an
// HTTP answer that kept the connection alive), and closes it otherwise.
func (p *prober) tryOn(ctx context.Context, c net.Conn) error {
	idle, err := true, error(nil)
	if p.spec.Kind == "http" {
		idle, err = p.checkHTTPOn(ctx, c)
	}
	if idle && p.keep != nil {
		p.keep(c)
	} else {
		c.Close()
	}
	return err
}

// httpRequest is the HTTP probe's request.
func (p *prober) httpRequest(ctx context.Context) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+p.spec.Path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "kube-probe/1.31")
	for _, h := range p.spec.Headers {
		if strings.EqualFold(h[0], "Host") {
			req.Host = h[1]
		} else {
			req.Header.Add(h[0], h[1])
		}
	}
	return req, nil
}

// httpStatus is the HTTP probe's verdict on a response status: it passes
// on [200, 400) (a redirect is an answer, as for the kubelet).
func httpStatus(code int) error {
	if code < 200 || code >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", code)
	}
	return nil
}

// probeBodyLimit is how much of an HTTP probe's answer is read (the
// kubelet reads 10 KiB of it); a longer one closes the connection.
const probeBodyLimit = 10 << 10

// checkHTTPOn makes an HTTP attempt on c, with the request check would
// send but without "Connection: close", and reports whether c is left
// idle and open for another request: the answer was read to its end,
// nothing followed it, and neither side asked to close.
func (p *prober) checkHTTPOn(ctx context.Context, c net.Conn) (idle bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.spec.Timeout)
	defer cancel()
	req, err := p.httpRequest(ctx)
	if err != nil {
		return false, err
	}
	deadline, _ := ctx.Deadline()
	if err := c.SetDeadline(deadline); err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) }) // ctx ended early
	defer stop()
	if err := req.Write(c); err != nil {
		return false, err
	}
	br := bufio.NewReader(c)
	var resp *http.Response
	for {
		if resp, err = http.ReadResponse(br, req); err != nil {
			return false, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// An informational answer (103 Early Hints) comes before the answer.
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, probeBodyLimit+1))
	resp.Body.Close()
	if err != nil {
		return false, err // as the kubelet: an answer cut off fails
	}
	idle = n <= probeBodyLimit && !resp.Close && br.Buffered() == 0 &&
		resp.StatusCode != http.StatusSwitchingProtocols && ctx.Err() == nil
	if idle {
		idle = c.SetDeadline(time.Time{}) == nil
	}
	return idle, httpStatus(resp.StatusCode)
}

// check makes one attempt: nil when the program passes.
func (p *prober) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.spec.Timeout)
	defer cancel()
	switch p.spec.Kind {
	case "http":
		req, err := p.httpRequest(ctx)
		if err != nil {
			return err
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return httpStatus(resp.StatusCode)
	case "tcp":
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	if p.alsoTCP {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return fmt.Errorf("the program does not listen: %w", err)
		}
		c.Close()
	}
	// As in a container: the command is found in the program's PATH (not
	// the platform's), runs in its environment and working directory, and
	// dies with the replica (SIGKILL as its parent-death signal), even one
	// killed with SIGKILL.
	path, err := lookPathIn(p.spec.Command[0], envValue(p.env, "PATH"), p.dir)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, p.spec.Command[1:]...)
	cmd.Args[0] = p.spec.Command[0]
	cmd.Env, cmd.Dir = p.env, p.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limitedBuffer{b: &out, max: 1024}, &limitedBuffer{b: &out, max: 1024}
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("command timed out after %v", p.spec.Timeout)
	}
	if err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("%v: %s", err, msg)
		}
		return err
	}
	return nil
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// probeResult is what a probe loop reports on a change.
type probeResult struct {
	ok  bool
	err error // the last failure, when !ok
}

// run probes until ctx ends, with Kubernetes' semantics: the first attempt
// after InitialDelay, then one every Period (faster until the first
// success for an aggressive readiness probe: see startupGap); the result
// turns ok after SuccessThreshold passes in a row and not ok after
// FailureThreshold failures in a row. It calls report on every change of
// the result, and with each new failure message while not ok (so the
// platform can say why a program is not ready). The result starts not ok.
//
// An aggressive HTTP or TCP probe with a watch makes its first attempt
// only once the port accepts a connection, at once and on that
// connection (reporting the first refusal while it waits): while the
// program starts, a refused connect every few hundred microseconds
// notices it listening sooner and costs less than HTTP attempts a tenth
// of the elapsed time apart (at 20 ms, 2 ms apart). If the watch fails,
// or the attempt on its connection fails (an HTTP probe that is
// answered 503 while the program warms up), attempts follow the usual
// schedule.
func (p *prober) run(ctx context.Context, report func(probeResult)) {
	if !sleepCtx(ctx, p.spec.InitialDelay) {
		return
	}
	start := time.Now()
	ok, everOK := false, false
	successes, failures := 0, 0
	lastMsg := ""
	var watched net.Conn // the watch's connection: the first attempt's
	if p.watch != nil && p.spec.Aggressive && p.spec.Kind != "exec" {
		c, _ := p.watch(ctx, func(err error) {
			err = fmt.Errorf("%s: %w", p.describe(), err)
			lastMsg = err.Error()
			report(probeResult{err: err})
		})
		if ctx.Err() != nil {
			if c != nil {
				c.Close()
			}
			return
		}
		watched = c // nil when the watch failed: attempts as scheduled
	}
	for {
		var err error
		if watched != nil {
			err = p.tryOn(ctx, watched)
			watched = nil
		} else {
			err = p.try(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			successes, failures = successes+1, 0
			if !ok && successes >= p.spec.SuccessThreshold {
				ok, everOK, lastMsg = true, true, ""
				report(probeResult{ok: true})
			}
		} else {
			successes, failures = 0, failures+1
			err = fmt.Errorf("%s: %w", p.describe(), err)
			switch {
			case ok && failures >= p.spec.FailureThreshold:
				ok, lastMsg = false, err.Error()
				report(probeResult{err: err})
			case !ok && err.Error() != lastMsg:
				lastMsg = err.Error()
				report(probeResult{err: err})
			}
		}
		period := p.spec.Period
		if p.spec.Aggressive && !everOK {
			period = aggressivePeriod
			if p.spec.Kind != "exec" {
				period = startupGap(time.Since(start))
			}
		}
		if !sleepCtx(ctx, period) {
			return
		}
	}
}

// aggressivePeriod is the gap between attempts of an aggressive readiness
// probe before its first success: Knative's queue-proxy probes every 50 ms.
// Exec probes keep it (each attempt runs a command); HTTP and TCP probes
// start faster (startupGap).
const aggressivePeriod = 50 * time.Millisecond

// startupGap is the gap after an aggressive HTTP or TCP readiness attempt
// that failed elapsed after the first (without a watch, or after the
// attempt on the watch's connection failed): a tenth of elapsed, between
// 1 ms and aggressivePeriod. A program is then noticed at most ~10 % (and at least
// 1 ms) after it starts answering, where a fixed 50 ms period costs 25 ms
// on average; a refused connection costs tens of microseconds, so the
// early attempts are cheap (10 in the first 10 ms, 46 in the first
// 300 ms, then 20 a second: TestProberNoticesStartSoon).
func startupGap(elapsed time.Duration) time.Duration {
	return min(max(elapsed/10, time.Millisecond), aggressivePeriod)
}

// runLiveness probes until ctx ends and calls dead once, after
// FailureThreshold failures in a row, with the last failure.
func (p *prober) runLiveness(ctx context.Context, dead func(error)) {
	if !sleepCtx(ctx, p.spec.InitialDelay) {
		return
	}
	failures := 0
	for {
		err := p.try(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
		} else if failures++; failures >= p.spec.FailureThreshold {
			dead(fmt.Errorf("liveness probe failed %d times in a row: %s: %w", failures, p.describe(), err))
			return
		}
		if !sleepCtx(ctx, p.spec.Period) {
			return
		}
	}
}

// runStartup probes until the first success and returns nil, or returns
// the last failure once FailureThreshold attempts in a row failed (the
// kubelet then restarts the container): the first attempt after
// InitialDelay, then one every Period, so a program has about
// InitialDelay + FailureThreshold × Period to start. It calls report with
// each new failure message. It returns ctx.Err() if ctx ends first.
func (p *prober) runStartup(ctx context.Context, report func(error)) error {
	if !sleepCtx(ctx, p.spec.InitialDelay) {
		return ctx.Err()
	}
	failures, lastMsg := 0, ""
	for {
		err := p.try(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			return nil
		}
		if failures++; failures >= p.spec.FailureThreshold {
			return fmt.Errorf("startup probe failed %d times in a row: %s: %w", failures, p.describe(), err)
		}
		err = fmt.Errorf("startup probe %s: %w", p.describe(), err)
		if err.Error() != lastMsg {
			lastMsg = err.Error()
			report(err)
		}
		if !sleepCtx(ctx, p.spec.Period) {
			return ctx.Err()
		}
	}
}

// runProbes runs a program's probes as the kubelet does: the startup
// probe (if any) first, and the readiness and liveness probes (if any)
// only once it passed. ready gets the readiness results (see run), and the
// startup probe's failures while it has not passed (the program is not
// ready then); dead is called once, when the startup or the liveness probe
// failed for good and the program must be restarted.
func runProbes(ctx context.Context, startup, readiness, liveness *prober, ready func(probeResult), dead func(exitInfo)) {
	if startup != nil {
		err := startup.runStartup(ctx, func(err error) { ready(probeResult{err: err}) })
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			dead(exitInfo{Reason: "StartupProbeFailed", Message: err.Error()})
			return
		}
	}
	if liveness != nil {
		go liveness.runLiveness(ctx, func(err error) {
			dead(exitInfo{Reason: "LivenessProbeFailed", Message: err.Error()})
		})
	}
	readiness.run(ctx, ready)
}

// sleepCtx sleeps d, and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var errNotReady = errors.New("program not ready")
