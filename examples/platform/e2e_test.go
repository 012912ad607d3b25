package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The end-to-end tests run the whole platform with real replica processes
// (this test binary, re-executed in replica mode) and real HTTP on
// loopback. Windows are short (6 s stable window, 1 s grace) so that the
// suite takes well under a minute. They wait for conditions with
// deadlines; they never assert how long something took.

const platformMainEnv = "SERVINGKIT_PLATFORM_TEST_MAIN"

func TestMain(m *testing.M) {
	if spec := os.Getenv(replicaEnv); spec != "" {
		os.Exit(runReplica(spec))
	}
	if mode := os.Getenv(testProgramEnv); mode != "" {
		os.Exit(runTestProgram(mode))
	}
	if args := os.Getenv(platformMainEnv); args != "" {
		os.Exit(run(strings.Fields(args)))
	}
	os.Exit(m.Run())
}

var fastConfig = map[string]string{
	"stable-window":              "6s",
	"scale-to-zero-grace-period": "1s",
	"allow-zero-initial-scale":   "true",
}

type testPlatform struct {
	*Platform
	t      *testing.T
	client *http.Client
	pids   sync.Map // every replica PID seen
}

func startPlatform(t *testing.T) *testPlatform {
	t.Helper()
	return startPlatformWith(t, Options{})
}

// startPlatformWith starts a platform on ephemeral ports with short windows;
// o's other fields are kept.
func startPlatformWith(t *testing.T, o Options) *testPlatform {
	t.Helper()
	o.Addr, o.ControlAddr, o.InternalAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	o.ControlTokenFile = filepath.Join(t.TempDir(), "token")
	o.Autoscaler = fastConfig
	o.DrainQuietPeriod = 300 * time.Millisecond
	p, err := NewPlatform(o)
	require.NoError(t, err)
	require.NoError(t, p.Start())
	tp := &testPlatform{Platform: p, t: t, client: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 500},
	}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tp.notePIDs()
		require.NoError(t, p.Stop(ctx))
		// Nothing left behind after a clean stop.
		tp.pids.Range(func(k, _ any) bool {
			// A zombie counts as gone: a program orphaned by a killed
			// replica is reparented to an init that may not reap it.
			assert.False(t, alive(k.(int)) && !isZombieOrGone(k.(int)), "replica pid %d still running after Stop", k)
			return true
		})
	})
	return tp
}

func (tp *testPlatform) notePIDs() {
	for _, r := range tp.Status().Revisions {
		for _, rep := range r.Replicas {
			for _, pid := range []int{rep.PID, rep.AppPID} {
				if pid > 0 {
					tp.pids.Store(pid, true)
				}
			}
		}
	}
}

func (tp *testPlatform) apply(manifest string) {
	tp.t.Helper()
	svc, err := ParseService([]byte(manifest))
	require.NoError(tp.t, err)
	_, err = tp.Apply(svc)
	require.NoError(tp.t, err)
}

// get sends a request for service name in namespace default.
func (tp *testPlatform) get(name, query string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+tp.GatewayAddr()+"/"+query, nil)
	req.Host = name + ".default.localhost"
	resp, err := tp.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (tp *testPlatform) revision(key string) (RevisionStatus, bool) {
	tp.notePIDs()
	for _, r := range tp.Status().Revisions {
		if r.Key == key {
			return r, true
		}
	}
	return RevisionStatus{}, false
}

// waitFor polls cond until it holds or the deadline passes.
func (tp *testPlatform) waitFor(what string, timeout time.Duration, cond func() bool) {
	tp.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			st, _ := json.MarshalIndent(tp.Status(), "", "  ")
			tp.t.Fatalf("timed out after %v waiting for %s; status:\n%s", timeout, what, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (tp *testPlatform) waitReady(key string) {
	tp.t.Helper()
	tp.waitFor(key+" Ready", 60*time.Second, func() bool {
		r, ok := tp.revision(key)
		return ok && r.Ready
	})
}

// waitRouted waits until the service (namespace/name) has a route: a
// revision turns Ready a moment before the route to it is installed.
func (tp *testPlatform) waitRouted(service string) {
	tp.t.Helper()
	tp.waitFor(service+" routed", 60*time.Second, func() bool {
		for _, s := range tp.Status().Services {
			if s.Name == service && len(s.Traffic) > 0 {
				return true
			}
		}
		return false
	})
}

// deploy applies a manifest and waits until revision is Ready and service
// is routed, so that a request can reach it.
func (tp *testPlatform) deploy(manifest, revision, service string) {
	tp.t.Helper()
	tp.apply(manifest)
	tp.waitReady(revision)
	tp.waitRouted(service)
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

const helloAtZero = `
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: default}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/initial-scale: "0"
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go
          env: [{name: TARGET, value: "%s"}]
`

func TestE2EFirstRequestFromZero(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t)
	tp.deploy(fmt.Sprintf(helloAtZero, "zero"), "default/hello-00001", "default/hello")
	r, _ := tp.revision("default/hello-00001")
	require.Equal(t, 0, r.ReadyCount, "initial-scale 0 starts with no replica")
	require.Equal(t, "Proxy", r.Mode)

	req, _ := http.NewRequest(http.MethodGet, "http://"+tp.GatewayAddr()+"/", nil)
	req.Host = "hello.default.localhost"
	resp, err := tp.client.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "Hello zero!\n", string(b))
	r, _ = tp.revision("default/hello-00001")
	assert.GreaterOrEqual(t, r.ReadyCount, 1, "the first request started a replica")

	// The cold start's breakdown: scale decision and replica ready (from
	// arrival), queued, forwarded.
	m := regexp.MustCompile(`^scale;dur=([0-9.]+);desc="scale decision", ready;dur=([0-9.]+);desc="replica ready", queued;dur=([0-9.]+);desc="queued", forwarded;dur=([0-9.]+);desc="forwarded"$`).
		FindStringSubmatch(resp.Header.Get("Server-Timing"))
	require.NotNil(t, m, "Server-Timing: %q", resp.Header.Get("Server-Timing"))
	var ms [4]float64
	for i := range ms {
		ms[i], err = strconv.ParseFloat(m[i+1], 64)
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, ms[0], ms[1], "decided before the replica was ready")
	assert.Positive(t, ms[2], "it waited")
}

const autoscaleAtZero = `
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: burst, namespace: default}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/initial-scale: "0"
        autoscaling.knative.dev/max-scale: "6"
    spec:
      containerConcurrency: 10
      containers:
        - image: ghcr.io/knative/autoscale-go
          env: [{name: SLEEP_MS, value: "300"}]
`

func TestE2EBurstFromZeroThenScaleToZero(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t)
	key := "default/burst-00001"
	tp.deploy(autoscaleAtZero, key, "default/burst")

	var maxReady atomic.Int64
	stopWatch := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if r, ok := tp.revision(key); ok && int64(r.ReadyCount) > maxReady.Load() {
				maxReady.Store(int64(r.ReadyCount))
			}
		}
	}()

	// 200 concurrent requests at a revision with no replica and container
	// concurrency 10: all succeed, and the revision scales up.
	const n = 200
	var wg sync.WaitGroup
	codes := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			codes[i], _, errs[i] = tp.get("burst", "?sleep=300")
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "request %d", i)
		require.Equal(t, http.StatusOK, codes[i], "request %d", i)
	}
	tp.waitFor("scale-up beyond one replica", 20*time.Second, func() bool { return maxReady.Load() > 1 })
	close(stopWatch)
	t.Logf("scaled up to %d replicas", maxReady.Load())

	// Idle: back to zero after the stable window and the grace period.
	tp.waitFor("scale to zero", 40*time.Second, func() bool {
		r, _ := tp.revision(key)
		return r.ReadyCount == 0 && r.Starting == 0 && r.Draining == 0
	})
	r, _ := tp.revision(key)
	assert.Equal(t, "Proxy", r.Mode)
	assert.True(t, r.Ready, "a revision at zero stays Ready")
	assert.Zero(t, r.Errors)
}

func TestE2ESplit9010(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t)
	tp.apply(fmt.Sprintf(helloAtZero, "v1"))
	tp.waitReady("default/hello-00001")
	tp.apply(fmt.Sprintf(helloAtZero, "v2") + `
  traffic:
    - revisionName: hello-00001
      percent: 90
    - latestRevision: true
      percent: 10
`)
	tp.waitReady("default/hello-00002")
	tp.waitFor("the 90/10 split routed", 10*time.Second, func() bool {
		st := tp.Status()
		return len(st.Services) == 1 && len(st.Services[0].Traffic) == 2
	})

	const total = 2000
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for range total {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			code, body, err := tp.get("hello", "")
			mu.Lock()
			defer mu.Unlock()
			if err != nil || code != http.StatusOK {
				counts[fmt.Sprintf("error %d %v", code, err)]++
				return
			}
			counts[body]++
		})
	}
	wg.Wait()
	require.Equal(t, total, counts["Hello v1!\n"]+counts["Hello v2!\n"], "every request answered by one of the two: %v", counts)
	// Binomial(2000, 0.1): mean 200, sd 13.4; ±4.5 sd keeps a false
	// failure below 1e-5.
	assert.InDelta(t, 200, counts["Hello v2!\n"], 60, "counts %v", counts)
}

const steady = `
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: steady, namespace: default}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/initial-scale: "4"
        autoscaling.knative.dev/target: "2"
        autoscaling.knative.dev/target-utilization-percentage: "100"
        autoscaling.knative.dev/target-burst-capacity: "0"
    spec:
      containerConcurrency: 4
      containers:
        - image: ghcr.io/knative/autoscale-go
          env: [{name: SLEEP_MS, value: "50"}]
`

// TestE2EScaleDownUnderLoadLosesNothing starts four replicas and keeps a
// light steady load on them: the autoscaler scales down while requests
// flow, and every request succeeds. Four clients are at most 4 requests in
// flight: at target 2 and 100% utilization that is 2 replicas whatever the
// machine's speed (at Knative's default 70% a fast machine keeps 3).
func TestE2EScaleDownUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t)
	key := "default/steady-00001"
	tp.deploy(steady, key, "default/steady")
	tp.waitFor("4 replicas", 20*time.Second, func() bool { r, _ := tp.revision(key); return r.ReadyCount == 4 })

	ctx, cancel := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				code, _, err := tp.get("steady", "")
				if err == nil && code == http.StatusOK {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("code %d err %v", code, err))
			}
		})
	}
	tp.waitFor("scale-down under load", 40*time.Second, func() bool {
		r, _ := tp.revision(key)
		return r.ReadyCount <= 2 && r.Draining == 0
	})
	cancel()
	wg.Wait()
	assert.Zero(t, failed.Load(), "failed requests (first: %v)", firstErr.Load())
	assert.Positive(t, ok.Load())
	t.Logf("%d requests, all succeeded, while scaling 4 → %d", ok.Load(), func() int { r, _ := tp.revision(key); return r.ReadyCount }())
}

func TestE2EApplyNewManifestRollsOut(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t)
	tp.deploy(strings.Replace(fmt.Sprintf(helloAtZero, "one"), `"0"`, `"1"`, 1), "default/hello-00001", "default/hello")
	code, body, err := tp.get("hello", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "Hello one!\n", body)

	tp.apply(strings.Replace(fmt.Sprintf(helloAtZero, "two"), `"0"`, `"1"`, 1))
	tp.waitReady("default/hello-00002")
	tp.waitFor("traffic on the new revision", 10*time.Second, func() bool {
		_, body, err := tp.get("hello", "")
		return err == nil && body == "Hello two!\n"
	})
	st := tp.Status()
	require.Len(t, st.Services, 1)
	assert.Equal(t, []TrafficShare{{Revision: "default/hello-00002", Percent: 100}}, st.Services[0].Traffic)

	// Re-applying the same manifest creates nothing new.
	tp.apply(strings.Replace(fmt.Sprintf(helloAtZero, "two"), `"0"`, `"1"`, 1))
	assert.Len(t, tp.Status().Revisions, 2)
}

// TestE2ENoOrphansAfterKill runs the platform as its own process, lets it
// start replicas — two of a built-in app, and one of a user's program that
// starts a child process of its own — kills it with SIGKILL, and checks
// that every replica, the program and its child are gone.
func TestE2ENoOrphansAfterKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	manifest := dir + "/hello.yaml"
	require.NoError(t, os.WriteFile(manifest, []byte(strings.Replace(fmt.Sprintf(helloAtZero, "kill"), `"0"`, `"2"`, 1)), 0o600))
	pidFile := dir + "/child.pid"
	forker := dir + "/fork.yaml"
	require.NoError(t, os.WriteFile(forker, []byte(withEnv(programManifest(t, "fork", "fork", "", ""), "PID_FILE", pidFile)), 0o600))
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), platformMainEnv+"=-addr 127.0.0.1:0 -control 127.0.0.1:0 -internal 127.0.0.1:0 -token-file "+dir+"/token -quiet -f "+manifest+" -f "+forker)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	statusURL := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`status (http://\S+/status)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				statusURL <- m[1]
			}
		}
	}()
	var url string
	select {
	case url = <-statusURL:
	case <-time.After(60 * time.Second):
		t.Fatal("the platform process did not report its status URL")
	}
	var pids []int
	deadline := time.Now().Add(60 * time.Second)
	for {
		require.False(t, time.Now().After(deadline), "replicas did not start: %v", pids)
		time.Sleep(50 * time.Millisecond)
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		var st Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			continue
		}
		pids = pids[:0]
		ready := 0
		for _, r := range st.Revisions {
			for _, rep := range r.Replicas {
				if rep.State == "Ready" {
					ready++
					pids = append(pids, rep.PID)
					if rep.AppPID > 0 {
						pids = append(pids, rep.AppPID)
					}
				}
			}
		}
		if b, err := os.ReadFile(pidFile); ready == 3 && err == nil && len(b) > 0 {
			child, err := strconv.Atoi(string(b))
			require.NoError(t, err)
			pids = append(pids, child)
			break
		}
	}
	require.Len(t, pids, 5, "two replicas of the app, one of the program, the program and its child")
	for _, pid := range pids {
		require.True(t, alive(pid))
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	deadline = time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) && !isZombieOrGone(pid) {
			require.False(t, time.Now().After(deadline), "process %d outlived the killed platform (all: %v)", pid, pids)
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// isZombieOrGone reports whether pid has exited (a zombie waiting for its
// new parent to reap it counts as exited).
func isZombieOrGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	// Field 3, after the parenthesised command name, is the state.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestE2ESameNameInTwoNamespaces(t *testing.T) {
	t.Parallel()
	tp := startPlatform(t)
	for _, ns := range []string{"team-a", "team-b"} {
		tp.deploy(strings.Replace(fmt.Sprintf(helloAtZero, ns), "namespace: default", "namespace: "+ns, 1), ns+"/hello-00001", ns+"/hello")
	}
	for _, ns := range []string{"team-a", "team-b"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+tp.GatewayAddr()+"/", nil)
		req.Host = "hello." + ns + ".localhost"
		resp, err := tp.client.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "Hello "+ns+"!\n", string(body))
	}
}

func TestApplyRejectsAnUnknownRevisionBeforeCreatingOne(t *testing.T) {
	t.Parallel()
	p, err := NewPlatform(Options{Addr: "127.0.0.1:0", ControlAddr: "127.0.0.1:0", Autoscaler: fastConfig})
	require.NoError(t, err)
	svc, err := ParseService([]byte(fmt.Sprintf(helloAtZero, "x") + `
  traffic:
    - revisionName: hello-00042
      percent: 100
`))
	require.NoError(t, err)
	_, err = p.Apply(svc)
	require.EqualError(t, err, `spec.traffic[0].revisionName: revision "hello-00042" not found in configuration default/hello`)
	assert.Empty(t, p.Status().Revisions, "nothing was created")

	// The manifest may route to the revision it names itself.
	svc, err = ParseService([]byte(strings.Replace(fmt.Sprintf(helloAtZero, "x"), "    metadata:\n", "    metadata:\n      name: hello-first\n", 1) + `
  traffic:
    - revisionName: hello-first
      percent: 100
`))
	require.NoError(t, err)
	_, err = p.Apply(svc)
	require.NoError(t, err)
	require.Len(t, p.Status().Revisions, 1)
	assert.Equal(t, "default/hello-first", p.Status().Revisions[0].Key)
	require.NoError(t, p.Stop(context.Background()))
}
