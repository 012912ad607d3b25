package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	bounds := []float64{10, 100, 1000, inf}
	tests := []struct {
		name string
		q    float64
		cum  []uint64
		want float64
	}{
		{"no observations", 0.5, []uint64{0, 0, 0, 0}, -1},
		{"middle of the first bucket", 0.5, []uint64{10, 10, 10, 10}, 5},
		{"interpolated in the second", 0.5, []uint64{0, 10, 10, 10}, 55},
		{"p99 in the third", 0.99, []uint64{50, 90, 100, 100}, 100 + 900*0.9},
		{"+Inf bucket gives the highest finite bound", 0.99, []uint64{0, 0, 0, 5}, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.InDelta(t, tc.want, quantile(tc.q, bounds, tc.cum), 1e-9)
		})
	}
}

const helloService = `
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: dash, namespace: default}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/max-scale: "4"
    spec:
      containerConcurrency: 5
      containers:
        - image: ghcr.io/knative/autoscale-go
          env: [{name: SLEEP_MS, value: "50"}]
`

// burst sends n requests, c at a time, to the dash service and returns
// how many got 200.
func (tp *testPlatform) burst(n, c int, query string) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	sem := make(chan struct{}, c)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if code, _, err := tp.get("dash", query); err == nil && code == http.StatusOK {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok
}

// TestDashboardEventsAndMetrics reads the event stream and /metrics as a
// client would, around a burst of requests.
func TestDashboardEventsAndMetrics(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t)
	tp.deploy(helloService, "default/dash-00001", "default/dash")
	base := "http://" + tp.ControlAddr()

	events := tp.events()
	first := <-events
	require.Len(t, first.Services, 1)
	assert.Equal(t, "default/dash", first.Services[0].Name)
	assert.Equal(t, []TrafficShare{{Revision: "default/dash-00001", Percent: 100}}, first.Services[0].Traffic)
	require.Len(t, first.Revisions, 1)
	assert.Equal(t, "default/dash-00001", first.Revisions[0].Key)
	assert.Equal(t, 0.7*5, first.Revisions[0].Target, "CC 5 at 70% utilization")

	done := make(chan int)
	go func() { done <- tp.burst(300, 20, "") }()
	var maxRPS, maxP99 float64
	deadline := time.After(60 * time.Second)
	for maxRPS == 0 || maxP99 <= 0 {
		select {
		case s, ok := <-events:
			require.True(t, ok, "the stream ended")
			maxRPS, maxP99 = max(maxRPS, s.Revisions[0].RPS), max(maxP99, s.Revisions[0].P99)
		case <-deadline:
			t.Fatalf("no requests per second and p99 in the events after a minute: rps %v, p99 %v", maxRPS, maxP99)
		}
	}
	assert.Equal(t, 300, <-done)
	assert.GreaterOrEqual(t, maxP99, 25.0, "the app sleeps 50 ms; the p99 estimate is in the 25-50 ms bucket or above")
	t.Logf("events: max %.0f req/s, p99 %.0f ms", maxRPS, maxP99)

	body := getBody(t, base+"/metrics", "")
	assert.Contains(t, body, `servingkit_router_request_count{configuration_name="dash",namespace_name="default",response_code="200",response_code_class="2xx",revision_name="dash-00001",service_name="dash"} 300`)
	assert.Contains(t, body, `activator_request_count{configuration_name="dash",namespace_name="default",response_code="200",response_code_class="2xx",revision_name="dash-00001",service_name="dash"}`)
	assert.Contains(t, body, `autoscaler_target_concurrency_per_pod{configuration_name="dash",namespace_name="default",revision_name="dash-00001",service_name="dash"} 3.5`)

	// Each replica serves its queue's metrics.
	r, ok := tp.revision("default/dash-00001")
	require.True(t, ok)
	scraped, counted := 0, 0
	for _, rep := range r.Replicas {
		if rep.Metrics == "" {
			continue
		}
		body := getBody(t, rep.Metrics, "")
		assert.Contains(t, body, `servingkit_breaker_in_flight{configuration_name="",namespace_name="default",pod_name="`+rep.Name+`",revision_name="dash-00001",service_name=""}`)
		if strings.Contains(body, `revision_request_count{configuration_name="",namespace_name="default",pod_name="`+rep.Name+`",response_code="200",response_code_class="2xx",revision_name="dash-00001",service_name=""}`) {
			counted++
		}
		scraped++
	}
	assert.NotZero(t, scraped, "replicas with metrics")
	assert.NotZero(t, counted, "replicas that counted requests")

	html := getBody(t, base+"/", "text/html,application/xhtml+xml")
	assert.Contains(t, html, `new EventSource("/events")`)
	assert.NotContains(t, html, "http://", "the page loads nothing from elsewhere")
	assert.Contains(t, getBody(t, base+"/", ""), "REVISION", "curl gets the table")
}

// events opens the dashboard's event stream, as the page does, and returns
// its snapshots; the stream is closed when the test ends.
func (tp *testPlatform) events() <-chan dashSnapshot {
	t := tp.t
	t.Helper()
	resp, err := http.Get("http://" + tp.ControlAddr() + "/events")
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	events := make(chan dashSnapshot, 100)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var s dashSnapshot
				if json.Unmarshal([]byte(data), &s) == nil {
					events <- s
				}
			}
		}
	}()
	return events
}

// rolloutService is a service that rolls a new revision out gradually,
// over 8 seconds; %s is the greeting, which makes a new revision.
const rolloutService = `
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: roll
  namespace: default
  annotations: {serving.knative.dev/rollout-duration: "8s"}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go
          env: [{name: TARGET, value: "%s"}]
`

// TestDashboardRolloutProgress applies a new revision of a service with a
// gradual rollout and follows it in the event stream, as the page does:
// while it is under way the service's rollout shows the new revision's
// share of its configuration's traffic, growing step by step, and when
// the next step is due; once done, the rollout leaves the list and the
// split is all on the new revision.
func TestDashboardRolloutProgress(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t)
	tp.deploy(fmt.Sprintf(rolloutService, "one"), "default/roll-00001", "default/roll")
	events := tp.events()
	tp.apply(fmt.Sprintf(rolloutService, "two"))

	var steps []int // the new revision's percents shown, each once
	nextShown := false
	deadline := time.After(2 * time.Minute)
	for {
		var s dashSnapshot
		select {
		case snap, ok := <-events:
			require.True(t, ok, "the stream ended")
			s = snap
		case <-deadline:
			t.Fatalf("the rollout did not finish in the dashboard within 2 minutes; steps shown: %v", steps)
		}
		require.Len(t, s.Services, 1)
		svc := s.Services[0]
		if len(svc.Rollouts) == 0 {
			if len(steps) == 0 {
				continue // not started yet: the new revision is not ready
			}
			assert.Equal(t, []TrafficShare{{Revision: "default/roll-00002", Percent: 100}}, svc.Traffic, "the rollout is done")
			break
		}
		require.Len(t, svc.Rollouts, 1)
		ro := svc.Rollouts[0]
		assert.Equal(t, "default/roll-00002", ro.Revision)
		assert.Equal(t, 100, ro.Of, "the configuration has all of the service's traffic")
		assert.True(t, ro.Percent >= 1 && ro.Percent < 100, "a rollout under way has 1-99%%: %+v", ro)
		// The split and the rollout are read a moment apart, and a step
		// may fall between: the split is the two revisions, all of it.
		require.Len(t, svc.Traffic, 2, "the split during the rollout")
		assert.Equal(t, "default/roll-00001", svc.Traffic[0].Revision)
		assert.Equal(t, "default/roll-00002", svc.Traffic[1].Revision)
		assert.Equal(t, 100, svc.Traffic[0].Percent+svc.Traffic[1].Percent)
		if ro.NextStep > s.Time {
			nextShown = true
		}
		if len(steps) == 0 || steps[len(steps)-1] != ro.Percent {
			if len(steps) > 0 {
				assert.Greater(t, ro.Percent, steps[len(steps)-1], "the share only grows")
			}
			steps = append(steps, ro.Percent)
		}
	}
	assert.GreaterOrEqual(t, len(steps), 2, "the dashboard showed the rollout's steps: %v", steps)
	assert.True(t, nextShown, "the dashboard showed when the next step was due")
	t.Logf("steps shown: %v%%", steps)
}

// TestDashboardShowsRequestsWaitingInTheActivator sends requests to a
// revision at zero whose program needs 4 s before its readiness probe
// passes: the activator holds them all that time, and the event stream
// shows them waiting, then none once they are answered.
func TestDashboardShowsRequestsWaitingInTheActivator(t *testing.T) {
	t.Parallel()
	tp := startProgramPlatform(t, Options{})
	m := programManifest(t, "slow", "slow", `autoscaling.knative.dev/initial-scale: "0"`, `
          readinessProbe:
            httpGet: {path: /healthz}
`)
	tp.deploy(withEnv(m, "SLOW_MS", "4000"), "default/slow-00001", "default/slow")
	events := tp.events()
	waiting := func(s dashSnapshot) int {
		require.Len(t, s.Revisions, 1)
		return s.Revisions[0].Waiting
	}
	require.Zero(t, waiting(<-events), "nothing waits before the requests")

	const n = 5
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() { codes[i], _, _ = tp.get("slow", "") })
	}
	deadline := time.After(time.Minute)
	var shown []int
	for len(shown) == 0 || shown[len(shown)-1] != 0 {
		select {
		case s, ok := <-events:
			require.True(t, ok, "the stream ended")
			if w := waiting(s); len(shown) > 0 || w > 0 {
				shown = append(shown, w)
			}
		case <-deadline:
			t.Fatalf("the events did not show the requests waiting and then answered within a minute: %v", shown)
		}
	}
	wg.Wait()
	for i, code := range codes {
		assert.Equal(t, http.StatusOK, code, "request %d", i)
	}
	assert.Contains(t, shown, n, "all %d requests shown waiting at once: %v", n, shown)
	t.Logf("waiting in the activator, one event a second: %v", shown)
}

func getBody(t *testing.T, url, accept string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestDashboardStreamsAreBounded(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t)
	var bodies []io.Closer
	defer func() {
		for _, b := range bodies {
			b.Close()
		}
	}()
	for range maxDashboards {
		resp, err := http.Get("http://" + tp.ControlAddr() + "/events")
		require.NoError(t, err)
		bodies = append(bodies, resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_, err = bufio.NewReader(resp.Body).ReadString('\n') // the stream is open
		require.NoError(t, err)
	}
	resp, err := http.Get("http://" + tp.ControlAddr() + "/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, fmt.Sprintf("control: %d dashboards are open already, the most at once; close one\n", maxDashboards), string(b))
}

// chromium finds a Chromium or Chrome to run headless.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts headless Chromium for a test, or skips the test (fails it
// under CI=true) when there is none.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromium()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("headless Chromium not found, and CI requires the browser tests: .ci/run installs Debian's chromium package")
		}
		t.Skip("headless Chromium not found (install Debian's chromium package, as .ci/run does): skipping the browser test")
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1100),
	)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// screenshot saves the page to $SERVINGKIT_SCREENSHOT_DIR (or the
// temporary directory) as name.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	dir := os.Getenv("SERVINGKIT_SCREENSHOT_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	out := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(out, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
}

// TestDashboardInBrowser loads the dashboard in headless Chromium, sends a
// burst, and checks through the DOM that the plots and numbers moved. It
// saves a screenshot, servingkit-dashboard.png, to
// $SERVINGKIT_SCREENSHOT_DIR or the temporary directory. Then it rolls a
// new revision out gradually and watches the rollout's progress bar.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	t.Parallel()
	tp := startPlatform(t)
	tp.deploy(helloService, "default/dash-00001", "default/dash")

	type view struct {
		Events                     int
		Cards                      int
		RPS, P99, Desired, Ready   string
		RPSPlot, LatencyPlot, Load int // samples drawn above zero
		ReplicaPoints              int
		SplitPercent, ServiceCards int
	}
	const read = `(() => {
		const card = document.querySelector('.revision[data-revision="default/dash-00001"]');
		const f = n => card ? card.querySelector('[data-field="' + n + '"]').textContent : "";
		const p = (n, a) => card ? Number(card.querySelector('[data-plot="' + n + '"]').dataset[a] || 0) : 0;
		const seg = document.querySelector('.service .split div');
		return {Events: Number(document.body.dataset.events || 0), Cards: document.querySelectorAll('.revision').length,
			RPS: f("rps"), P99: f("p99"), Desired: f("desired"), Ready: f("replicas"),
			RPSPlot: p("rps", "nonzero"), LatencyPlot: p("latency", "nonzero"), Load: p("load", "nonzero"),
			ReplicaPoints: p("replicas", "points"),
			SplitPercent: seg ? Number(seg.dataset.percent) : 0, ServiceCards: document.querySelectorAll('.service').length};
	})()`
	var v view
	var sawRPS, sawP99 string // the numbers shown while requests flowed
	poll := func(what string, cond func() bool) {
		t.Helper()
		for {
			var err error
			v, err = chromedp.Run(ctx, chromedp.Evaluate[view](read))
			require.NoError(t, err, "reading the DOM while waiting for %s", what)
			if v.RPS != "0.0" && v.RPS != "–" {
				sawRPS = v.RPS
			}
			if v.P99 != "–" {
				sawP99 = v.P99
			}
			if cond() {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("waiting for %s: %v; the page shows %+v", what, ctx.Err(), v)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	_, err := chromedp.Run(ctx, chromedp.Navigate("http://"+tp.ControlAddr()+"/"))
	require.NoError(t, err)
	poll("the first events", func() bool { return v.Events >= 2 && v.Cards == 1 })
	before := v
	assert.Equal(t, 1, before.ServiceCards)
	assert.Equal(t, 100, before.SplitPercent, "the split bar shows the whole route on the revision")
	assert.Zero(t, before.RPSPlot, "no requests yet")
	assert.Zero(t, before.LatencyPlot, "no requests yet")
	assert.Zero(t, before.Load, "no load yet")

	done := make(chan int)
	go func() { done <- tp.burst(600, 30, "") }()
	poll("the burst in the plots and numbers", func() bool {
		return v.RPSPlot > 0 && v.LatencyPlot > 0 && v.Load > 0 && sawRPS != "" && sawP99 != ""
	})
	assert.Equal(t, 600, <-done)
	n := v.Events
	poll("a few more events, for the screenshot", func() bool { return v.Events >= n+4 })
	after := v
	assert.Greater(t, after.Events, before.Events)
	assert.Greater(t, after.ReplicaPoints, before.ReplicaPoints, "the replica plot grew")
	assert.NotEqual(t, before.Desired, after.Desired, "the desired count moved")
	t.Logf("shown during the burst: %s req/s, p99 %s ms", sawRPS, sawP99)
	t.Logf("before the burst: %+v", before)
	t.Logf("after the burst: %+v", after)

	screenshot(t, ctx, "servingkit-dashboard.png")

	// A new revision rolled out gradually: the service's card shows the
	// rollout's progress bar while it is under way.
	tp.apply(strings.NewReplacer(
		"metadata: {name: dash, namespace: default}", `metadata: {name: dash, namespace: default, annotations: {serving.knative.dev/rollout-duration: "8s"}}`,
		`value: "50"`, `value: "40"`).Replace(helloService))
	const progress = `(() => {
		const bar = document.querySelector('.service .progress[data-rollout="default/dash-00002"]');
		return bar ? Number(bar.dataset.progress) : -1;
	})()`
	var shown []int
	for {
		pct, err := chromedp.Run(ctx, chromedp.Evaluate[int](progress))
		require.NoError(t, err, "reading the rollout's progress bar")
		if pct >= 0 && (len(shown) == 0 || shown[len(shown)-1] != pct) {
			shown = append(shown, pct)
		}
		if pct < 0 && len(shown) > 0 {
			break // the rollout is done: its bar is gone
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for the rollout's progress bar to show and go: %v; shown %v", ctx.Err(), shown)
		case <-time.After(200 * time.Millisecond):
		}
	}
	assert.GreaterOrEqual(t, len(shown), 2, "the progress bar moved: %v", shown)
	assert.True(t, slices.IsSorted(shown), "the progress only grows: %v", shown)
	t.Logf("rollout progress shown: %v%%", shown)
}

// TestDashboardDuringTour runs the guided tour (the platform binary with
// -tour) and watches it in the dashboard: both revisions appear with their
// plots, the 80/20 split is drawn, and the panic of the burst shows, as
// text and shaded in the replica plot, and in the tour's printed table.
func TestDashboardDuringTour(t *testing.T) {
	ctx := browser(t)
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), platformMainEnv+"=-tour -addr 127.0.0.1:0 -control 127.0.0.1:0 -internal 127.0.0.1:0 -token-file "+filepath.Join(t.TempDir(), "token"))
	stderr, out := &syncBuffer{}, &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	dashboard := make(chan string, 1)
	go func() {
		defer close(exited)
		re := regexp.MustCompile(`watch it live at (http://\S+/) in a browser`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(out, sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				dashboard <- m[1]
			}
		}
		_ = cmd.Wait()
	}()
	// tourOutput is the end of what the tour said, for a failure message.
	tourOutput := func() string {
		tail := func(s string) string { return s[max(0, len(s)-4000):] }
		return fmt.Sprintf("the tour's output (end):\n%s\nits stderr (end):\n%s", tail(out.String()), tail(stderr.String()))
	}
	var url string
	select {
	case url = <-dashboard:
	case <-time.After(time.Minute):
		t.Fatalf("the tour did not print its dashboard address within a minute; %s", tourOutput())
	}
	_, err = chromedp.Run(ctx, chromedp.Navigate(url))
	require.NoError(t, err)

	type tourView struct {
		Cards    []string
		Splits   []int
		Panic    bool
		RPSPlots []int
		Shaded   []int // panic samples shaded in each replica plot
	}
	const read = `(() => ({
		Cards: [...document.querySelectorAll('.revision')].map(c => c.dataset.revision),
		Splits: [...document.querySelectorAll('.service .split div')].map(d => Number(d.dataset.percent)),
		Panic: [...document.querySelectorAll('[data-field="panicking"]')].some(e => e.textContent === "PANIC"),
		RPSPlots: [...document.querySelectorAll('[data-plot="rps"]')].map(c => Number(c.dataset.nonzero || 0)),
		Shaded: [...document.querySelectorAll('[data-plot="replicas"]')].map(c => Number(c.dataset.shaded || 0)),
	}))()`
	var v tourView
	sawPanic, sawShade := false, false
	for {
		v, err = chromedp.Run(ctx, chromedp.Evaluate[tourView](read))
		require.NoError(t, err)
		sawPanic = sawPanic || v.Panic
		sawShade = sawShade || slices.ContainsFunc(v.Shaded, func(n int) bool { return n > 0 })
		if len(v.Cards) == 2 && slices.Contains(v.Splits, 80) && slices.Contains(v.Splits, 20) && sawPanic && sawShade &&
			len(v.RPSPlots) == 2 && v.RPSPlots[0] > 0 && v.RPSPlots[1] > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the dashboard never showed both revisions with traffic, the 80/20 split and a panic, shaded: %+v, panic seen %v, shaded %v; %s", v, sawPanic, sawShade, tourOutput())
		case <-exited:
			t.Fatalf("the tour ended before the dashboard showed both revisions with traffic, the 80/20 split and a panic, shaded: %+v, panic seen %v, shaded %v; %s", v, sawPanic, sawShade, tourOutput())
		case <-time.After(250 * time.Millisecond):
		}
	}
	assert.Equal(t, []string{"default/tour-00001", "default/tour-00002"}, v.Cards)
	// The tour's own live table, which a user without a browser reads,
	// showed the panic during the burst too (PANIC "yes" between the
	// burst's heading and the next; a panic of v1 later, under the split's
	// load, does not count).
	text := out.String()
	_, burst, _ := strings.Cut(text, "== 2. A burst")
	burst, _, _ = strings.Cut(burst, "== 3.")
	assert.Regexp(t, `(?m)^\s*default/tour-00001\s.*\syes\s`, burst, "the tour's table did not show PANIC during the burst; %s", tourOutput())
	screenshot(t, ctx, "servingkit-dashboard-tour.png")
}
