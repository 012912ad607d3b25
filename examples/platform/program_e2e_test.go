package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// programManifest is a Service that runs this test binary as a user's
// program in the given mode (see runTestProgram); extra goes under the
// container (indented 10 spaces), annotations under the template's.
func programManifest(t *testing.T, name, mode, annotations, extra string) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	if annotations == "" {
		annotations = `autoscaling.knative.dev/min-scale: "1"`
	}
	return fmt.Sprintf(`
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: %s, namespace: default}
spec:
  template:
    metadata:
      annotations:
        %s
    spec:
      containers:
        - command: [%q]
          args: ["-test.run=^$"]
          env:
            - {name: %s, value: %s}
            - {name: TARGET, value: programs}
%s`, name, annotations, exe, testProgramEnv, mode, extra)
}

// withEnv adds an environment variable to a programManifest.
func withEnv(manifest, name, value string) string {
	const anchor = "            - {name: TARGET, value: programs}"
	return strings.Replace(manifest, anchor, anchor+fmt.Sprintf("\n            - {name: %s, value: %q}", name, value), 1)
}

// startProgramPlatform is startPlatform with short back-offs and deadlines.
func startProgramPlatform(t *testing.T, o Options) *testPlatform {
	t.Helper()
	if o.RestartBackOff == 0 {
		o.RestartBackOff = 300 * time.Millisecond
	}
	if o.MaxRestartBackOff == 0 {
		o.MaxRestartBackOff = time.Second
	}
	if o.ProgressDeadline == 0 {
		o.ProgressDeadline = 20 * time.Second
	}
	return startPlatformWith(t, o)
}

func TestE2EProgramServedWithPORT(t *testing.T) {
	t.Parallel()
	tp := startProgramPlatform(t, Options{})
	// workingDir is the program's working directory, and a relative
	// command with a slash is found from it, as in Kubernetes.
	dir := t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	require.NoError(t, os.Mkdir(dir+"/bin", 0o700))
	require.NoError(t, os.Symlink(exe, dir+"/bin/prog"))
	m := strings.Replace(programManifest(t, "prog", "serve", "", ""), fmt.Sprintf("command: [%q]", exe), fmt.Sprintf("command: [bin/prog]\n          workingDir: %q", dir), 1)
	m = strings.Replace(m, `args: ["-test.run=^$"]`, `args: ["-test.run=^$", "$(TARGET)/$(K_REVISION)/$$/$(NOPE)/$(PORT)"]`, 1)
	m = withEnv(m, "GREETING", "hi $(TARGET) on $(PORT), $$(TARGET)")
	tp.deploy(m, "default/prog-00001", "default/prog")
	code, body, err := tp.get("prog", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "revision=prog-00001 service=prog configuration=prog target=programs")
	assert.Contains(t, body, "host=prog.default.localhost ", "the program sees the client's Host")
	assert.Contains(t, body, "xff=127.0.0.1, 127.0.0.1", "X-Forwarded-For starts with the client")
	assert.Contains(t, body, `forwarded=for=127.0.0.1;host="prog.default.localhost";proto=http`)
	assert.Contains(t, body, `stdin=""`, "the program's stdin is empty")
	assert.Contains(t, body, "proto=HTTP/1.1")
	assert.Regexp(t, `args=\["-test.run=\^\$" "programs/prog-00001/\$/\$\(NOPE\)/\d+"\]`, body, "$(VAR) in args is expanded as in Kubernetes")
	assert.Regexp(t, `greeting="hi programs on \d+, \$\(TARGET\)"`, body, "$(VAR) in env values too")
	assert.Contains(t, body, `env=["GREETING" "HOME" "HOSTNAME" "K_CONFIGURATION" "K_REVISION" "K_SERVICE" "PATH" "PORT" "`+testProgramEnv+`" "TARGET"]`,
		"a container's environment, nothing of the platform's")
	assert.Contains(t, body, `hostname="prog-00001-1"`, "HOSTNAME is the replica's name, as a pod's")
	assert.Contains(t, body, `path="`+defaultPath+`"`)
	assert.Contains(t, body, fmt.Sprintf("cwd=%q", dir), "workingDir is the program's working directory")

	r, _ := tp.revision("default/prog-00001")
	require.Len(t, r.Replicas, 1)
	rep := r.Replicas[0]
	assert.Equal(t, "Ready", rep.State)
	assert.Positive(t, rep.AppPID)
	assert.NotEqual(t, rep.PID, rep.AppPID, "the program runs behind its replica's queue")
	assert.True(t, alive(rep.AppPID))
	assert.Contains(t, body, "port=", "PORT is set")
	assert.NotContains(t, body, "port=8080", "PORT is a free port the platform picked, not the container port")

	// The program's output reaches the revision's log, prefixed.
	tp.waitFor("the request in the log", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + tp.ControlAddr() + "/logs?revision=default/prog-00001")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), "[default/prog-00001 prog-00001-1] request GET /")
	})
}

// A program that needs 1.5 s before it can serve answers 500 until then;
// its readiness probe keeps every request waiting in the activator until
// it passes, so none fails.
func TestE2EReadinessProbeHoldsTrafficUntilReady(t *testing.T) {
	t.Parallel()
	tp := startProgramPlatform(t, Options{})
	m := programManifest(t, "slow", "slow", `autoscaling.knative.dev/initial-scale: "0"`, `
          readinessProbe:
            httpGet: {path: /healthz}
`)
	m = withEnv(m, "SLOW_MS", "1500")
	tp.deploy(m, "default/slow-00001", "default/slow")

	const n = 20
	var wg sync.WaitGroup
	codes := make([]int, n)
	bodies := make([]string, n)
	for i := range n {
		wg.Go(func() { codes[i], bodies[i], _ = tp.get("slow", "") })
		time.Sleep(50 * time.Millisecond) // spread over the start-up
	}
	wg.Wait()
	for i := range n {
		assert.Equal(t, http.StatusOK, codes[i], "request %d: %s", i, bodies[i])
	}
}

// A program that exits at once is restarted at once, then with a growing
// back-off; /status says why (exit code, the program's last output) and
// counts the restarts, and a request gets a 503 saying the same.
func TestE2ECrashingProgramRestartedWithBackOff(t *testing.T) {
	t.Parallel()
	tp := startProgramPlatform(t, Options{RestartBackOff: 200 * time.Millisecond, MaxRestartBackOff: 400 * time.Millisecond})
	key := "default/crash-00001"
	tp.apply(programManifest(t, "crash", "crash", "", ""))
	tp.waitFor("three restarts", 45*time.Second, func() bool {
		r, _ := tp.revision(key)
		return len(r.Replicas) == 1 && r.Replicas[0].Restarts >= 3
	})
	r, _ := tp.revision(key)
	assert.Equal(t, "Failed", r.State)
	rep := r.Replicas[0]
	assert.Contains(t, rep.LastFailure, "ExitCode3: program exited with code 3")
	health := condition(t, r, "ContainerHealthy")
	assert.Equal(t, "False", health.Status)
	assert.Equal(t, "ExitCode3", health.Reason)
	assert.Contains(t, health.Message, "Container failed with: program exited with code 3; last output: boom: the program failed on purpose")
	ready := condition(t, r, "Ready")
	assert.Equal(t, "False", ready.Status)

	code, body, err := tp.get("crash", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "revision default/crash-00001 cannot serve")
	assert.Contains(t, body, "boom: the program failed on purpose")

	// The back-off grows: it is in CrashLoopBackOff between starts.
	tp.waitFor("a CrashLoopBackOff condition", 30*time.Second, func() bool {
		r, _ := tp.revision(key)
		c := condition(t, r, "ResourcesAvailable")
		return c.Reason == "CrashLoopBackOff" && strings.Contains(c.Message, "exited with code 3")
	})
}

func condition(t *testing.T, r RevisionStatus, typ string) ConditionStatus {
	t.Helper()
	for _, c := range r.Conditions {
		if c.Type == typ {
			return c
		}
	}
	t.Fatalf("revision %s has no condition %s: %+v", r.Key, typ, r.Conditions)
	return ConditionStatus{}
}

// SIGKILL of the only replica of a min-scale 1 service — its queue, or its
// program — gets a new one: the requests sent meanwhile wait for it (the
// first crash is restarted at once, so none gets the revision's failure;
// the second backs off), and the program's own child dies with the
// replica.
func TestE2EKilledReplicaIsReplaced(t *testing.T) {
	t.Parallel()
	tp := startProgramPlatform(t, Options{})
	key := "default/keep-00001"
	pidFile := t.TempDir() + "/child.pid"
	tp.deploy(withEnv(programManifest(t, "keep", "fork", "", ""), "PID_FILE", pidFile), key, "default/keep")
	for round, which := range []string{"queue", "program"} {
		r, _ := tp.revision(key)
		require.Len(t, r.Replicas, 1)
		pid := r.Replicas[0].PID
		if which == "program" {
			pid = r.Replicas[0].AppPID
		}
		b, err := os.ReadFile(pidFile)
		require.NoError(t, err)
		child, err := strconv.Atoi(string(b))
		require.NoError(t, err)
		require.True(t, alive(child), "the program's child runs")

		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		killed := time.Now()
		// Requests sent while the replica is replaced. A request can fail
		// with a 502 only if it raced the kill (it reached the dying
		// replica); none gets the revision's failure (503) after the
		// first crash, which is restarted at once: they wait for the new
		// replica. The second crash backs off (300 ms here), and requests
		// meanwhile get a 503 that says why.
		stop := make(chan struct{})
		var unavailable, other []string
		sent := 0
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := tp.get("keep", "")
				sent++
				switch {
				case err == nil && code == http.StatusServiceUnavailable:
					unavailable = append(unavailable, body)
				case err != nil || code != http.StatusOK:
					other = append(other, fmt.Sprintf("%d %v %s", code, err, body))
				}
			}
		})
		tp.waitFor("a replacement serving", 15*time.Second, func() bool {
			r, _ := tp.revision(key)
			return len(r.Replicas) == 1 && r.Replicas[0].Restarts == round+1 && r.Replicas[0].State == "Ready"
		})
		close(stop)
		wg.Wait()
		t.Logf("killed the %s: serving again after %v; %d requests meanwhile, %d answered 503, %d failed otherwise: %q",
			which, time.Since(killed).Round(time.Millisecond), sent, len(unavailable), len(other), other)
		for _, o := range other {
			assert.True(t, strings.HasPrefix(o, "502 <nil> "), "a request failed other than by reaching the killed %s: %s", which, o)
		}
		if round == 0 {
			assert.Empty(t, unavailable, "after a first crash, requests wait for the replacement")
		}
		for _, body := range unavailable {
			assert.Contains(t, body, "cannot serve: CrashLoopBackOff: back-off ")
			assert.Contains(t, body, "program killed by signal killed")
		}
		code, body, err := tp.get("keep", "")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code, body)
		tp.waitFor("the killed process gone", 30*time.Second, func() bool { return !alive(pid) || isZombieOrGone(pid) })
		tp.waitFor("the program's child gone with its replica", 30*time.Second, func() bool { return !alive(child) || isZombieOrGone(child) })
	}
}

// Programs that cannot serve fail their revision with a condition naming
// the cause, requests waiting for them get a 503 with that cause, and a
// service beside them is unaffected.
func TestE2EBadProgramsFailTheirRevision(t *testing.T) {
	t.Parallel()
	// Only the programs that never become ready need the progress deadline,
	// and theirs (20 s) leaves room for starting the replica and the
	// program on a loaded machine: the failure names the probe's error
	// only once a probe ran. The others fail by their own cause, whatever
	// the deadline; the platform's (60 s) is there so that a slow start of
	// their replicas (seconds each for this -race binary on a loaded
	// 2-core machine, several starting at once) is never mistaken for a
	// program that does not get ready (it was 8 s, and under load the
	// revision of a program that exits at once sometimes failed with
	// ProgressDeadlineExceeded before its replica had even run it; with
	// four copies of the suite at once, no replica had reported a first
	// probe within 8 s).
	tp := startProgramPlatform(t, Options{ProgressDeadline: time.Minute, RestartBackOff: time.Second, MaxRestartBackOff: 2 * time.Second})
	const deadline = `autoscaling.knative.dev/min-scale: "1"
        serving.knative.dev/progress-deadline: "20s"`
	tp.deploy(programManifest(t, "fine", "serve", "", ""), "default/fine-00001", "default/fine")

	dir := t.TempDir()
	notExec := dir + "/not-executable"
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644))
	exe, err := os.Executable()
	require.NoError(t, err)
	cases := []struct {
		name, manifest string
		reason, cause  string
	}{
		{"missing", strings.Replace(programManifest(t, "missing", "serve", "", ""), fmt.Sprintf("%q", exe), `"/no/such/program"`, 1),
			"StartError", "no such file or directory"},
		{"noexec", strings.Replace(programManifest(t, "noexec", "serve", "", ""), fmt.Sprintf("%q", exe), fmt.Sprintf("%q", notExec), 1),
			"StartError", "permission denied"},
		{"exits", programManifest(t, "exits", "crash", "", ""), "", "exited with code 3"},
		{"never", programManifest(t, "never", "never", deadline, ""), "ProgressDeadlineExceeded", "connection refused"},
		{"wrongport", programManifest(t, "wrongport", "serve", deadline, `
          readinessProbe:
            tcpSocket: {port: 9}
`), "ProgressDeadlineExceeded", "tcpSocket 127.0.0.1:9"},
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		tp.apply(c.manifest)
		wg.Go(func() {
			// Sent at once: it waits (or is answered) until the revision fails.
			code, body, err := tp.get(c.name, "")
			assert.NoError(t, err, c.name)
			assert.Equal(t, http.StatusServiceUnavailable, code, "%s: %s", c.name, body)
			assert.Contains(t, body, "cannot serve", c.name)
			assert.Contains(t, body, c.cause, c.name)
		})
	}
	wg.Wait()
	for _, c := range cases {
		r, ok := tp.revision("default/" + c.name + "-00001")
		require.True(t, ok)
		assert.Equal(t, "Failed", r.State, c.name)
		ready := condition(t, r, "Ready")
		assert.Equal(t, "False", ready.Status, c.name)
		assert.Contains(t, ready.Message, c.cause, c.name)
		if c.reason != "" {
			found := false
			for _, cond := range r.Conditions {
				found = found || (cond.Status == "False" && cond.Reason == c.reason && strings.Contains(cond.Message, c.cause))
			}
			assert.True(t, found, "%s: no condition %s naming %q: %+v", c.name, c.reason, c.cause, r.Conditions)
		}
	}
	code, body, err := tp.get("fine", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, body)
	r, _ := tp.revision("default/fine-00001")
	assert.Equal(t, 0, r.Replicas[0].Restarts, "the healthy service was not disturbed")
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Deleting a service through the control API removes its route at once;
// its replica finishes the request it holds (the queue drains first), then
// the program gets SIGTERM, and SIGKILL after terminationGracePeriodSeconds
// since this one ignores SIGTERM.
func TestE2EDeleteServiceDrainsThenTermThenKill(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	tp := startProgramPlatform(t, Options{ReplicaLog: logs})
	key := "default/gone-00001"
	m := withEnv(programManifest(t, "gone", "serve", "", ""), "IGNORE_TERM", "1")
	m = strings.Replace(m, "    spec:\n      containers:", "    spec:\n      terminationGracePeriodSeconds: 1\n      containers:", 1)
	tp.deploy(m, key, "default/gone")
	r, _ := tp.revision(key)
	require.Len(t, r.Replicas, 1)
	appPID := r.Replicas[0].AppPID

	slow := make(chan string, 1)
	go func() {
		code, body, err := tp.get("gone", "?sleep=1000")
		slow <- fmt.Sprint(code, " ", err, " ", body)
	}()
	tp.waitFor("the slow request in flight", 15*time.Second, func() bool {
		r, _ := tp.revision(key)
		return r.Requests >= 1
	})
	time.Sleep(100 * time.Millisecond) // let it reach the program

	// Deleting needs the control token, like every state change.
	req, _ := http.NewRequest(http.MethodDelete, "http://"+tp.ControlAddr()+"/services/default/gone", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	_, ok := tp.revision(key)
	require.True(t, ok, "nothing deleted without the token")

	req.Header.Set("Authorization", "Bearer "+tp.ControlToken())
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))

	code, _, err := tp.get("gone", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, code, "the route is gone at once")
	_, ok = tp.revision(key)
	assert.False(t, ok, "the revision is gone from /status")

	assert.True(t, strings.HasPrefix(<-slow, "200 <nil> revision=gone-00001"), "the request in flight finished")
	tp.waitFor("the program killed", 30*time.Second, func() bool { return !alive(appPID) || isZombieOrGone(appPID) })
	out := logs.String()
	served := strings.Index(out, "[default/gone-00001 gone-00001-1] request GET /")
	termed := strings.Index(out, "[default/gone-00001 gone-00001-1] got SIGTERM")
	require.GreaterOrEqual(t, served, 0, out)
	require.GreaterOrEqual(t, termed, 0, "the program got SIGTERM before SIGKILL: %s", out)
	assert.Less(t, served, termed, "SIGTERM came after the queue drained")

	// Deleting it again is a 404.
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// ports[0].name h2c: the program gets cleartext HTTP/2, even from an
// HTTP/1.1 client.
func TestE2EPortNameH2CSelectsHTTP2(t *testing.T) {
	t.Parallel()
	tp := startProgramPlatform(t, Options{})
	tp.deploy(programManifest(t, "grpcish", "h2c", "", `
          ports: [{name: h2c, containerPort: 8080}]
`), "default/grpcish-00001", "default/grpcish")
	code, body, err := tp.get("grpcish", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "proto=HTTP/2.0")
}

// An exec readiness probe holds the replica out of service until it
// passes — and, as in Knative, where the queue checks the port of a
// program with an exec probe, until the program listens; /status says why
// meanwhile.
func TestE2EExecReadinessProbe(t *testing.T) {
	t.Parallel()
	tp := startProgramPlatform(t, Options{})
	flag := t.TempDir() + "/ready"
	key := "default/gated-00001"
	tp.apply(withEnv(programManifest(t, "gated", "serve", "", `
          readinessProbe:
            exec: {command: [sh, -c, "test -f $READY_FILE"]}
            periodSeconds: 1
`), "READY_FILE", flag))
	tp.waitFor("the probe's failure in /status", 30*time.Second, func() bool {
		r, _ := tp.revision(key)
		return len(r.Replicas) == 1 && strings.Contains(r.Replicas[0].Probe, "exec") && r.State == "NotReady"
	})
	require.NoError(t, os.WriteFile(flag, nil, 0o600))
	tp.waitReady(key)
	code, body, err := tp.get("gated", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, body)
	r, _ := tp.revision(key)
	require.Len(t, r.Replicas, 1)
	assert.Equal(t, "Ready", r.Replicas[0].State)
	assert.Empty(t, r.Replicas[0].Probe, "a ready replica shows no reason for not being ready")
}

// An exec probe's command dies with its replica, even one killed with
// SIGKILL, as a probe in a container dies with the container.
func TestE2EExecProbeDiesWithItsReplica(t *testing.T) {
	t.Parallel()
	tp := startProgramPlatform(t, Options{})
	pidFile := t.TempDir() + "/probe.pid"
	key := "default/probed-00001"
	tp.apply(withEnv(programManifest(t, "probed", "serve", "", `
          readinessProbe:
            exec: {command: [sh, -c, "echo $$ > $PROBE_PID; exec sleep 600"]}
            timeoutSeconds: 900
`), "PROBE_PID", pidFile))
	var probe int
	tp.waitFor("the probe running", 30*time.Second, func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil || len(b) == 0 {
			return false
		}
		probe, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && alive(probe)
	})
	r, _ := tp.revision(key)
	require.Len(t, r.Replicas, 1)
	require.NoError(t, syscall.Kill(r.Replicas[0].PID, syscall.SIGKILL))
	tp.waitFor("the probe's command gone with its replica", 30*time.Second, func() bool { return !alive(probe) || isZombieOrGone(probe) })
}

// A program that fails its liveness probe is killed and restarted, and
// the reason is LivenessProbeFailed.
func TestE2ELivenessProbeFailureRestarts(t *testing.T) {
	t.Parallel()
	tp := startProgramPlatform(t, Options{})
	key := "default/sick-00001"
	tp.apply(programManifest(t, "sick", "serve", "", `
          livenessProbe:
            tcpSocket: {port: 9}
            periodSeconds: 1
            failureThreshold: 1
`))
	tp.waitFor("a restart for liveness", 45*time.Second, func() bool {
		r, _ := tp.revision(key)
		return len(r.Replicas) == 1 && r.Replicas[0].Restarts >= 1 &&
			strings.Contains(r.Replicas[0].LastFailure, "LivenessProbeFailed: liveness probe failed 1 times in a row: tcpSocket 127.0.0.1:9")
	})
}

// A startup probe holds the readiness and liveness probes back while a
// slow program starts: with room for its start it becomes ready with no
// restart; with too little (failureThreshold × periodSeconds) it is
// restarted, and the reason is StartupProbeFailed.
func TestE2EStartupProbe(t *testing.T) {
	t.Parallel()
	tp := startProgramPlatform(t, Options{})
	probe := func(failures int) string {
		return fmt.Sprintf(`
          startupProbe:
            httpGet: {path: /healthz}
            periodSeconds: 1
            timeoutSeconds: 10
            failureThreshold: %d
          livenessProbe:
            httpGet: {path: /healthz}
            periodSeconds: 1
            timeoutSeconds: 10
            failureThreshold: 1
`, failures)
	}
	// The liveness probe alone would kill it at its first 503: it starts
	// only after the startup probe passed. (Timeouts are long so that a
	// slow answer on a loaded machine is not a failure.)
	tp.deploy(withEnv(programManifest(t, "patient", "slow", "", probe(30)), "SLOW_MS", "2500"), "default/patient-00001", "default/patient")
	code, body, err := tp.get("patient", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, body)
	r, _ := tp.revision("default/patient-00001")
	require.Len(t, r.Replicas, 1)
	assert.Zero(t, r.Replicas[0].Restarts, "no restart: %s", r.Replicas[0].LastFailure)

	key := "default/hasty-00001"
	tp.apply(withEnv(programManifest(t, "hasty", "slow", "", probe(2)), "SLOW_MS", "600000"))
	tp.waitFor("a restart for the startup probe", 45*time.Second, func() bool {
		r, _ := tp.revision(key)
		return len(r.Replicas) == 1 && r.Replicas[0].Restarts >= 1 &&
			strings.Contains(r.Replicas[0].LastFailure, "StartupProbeFailed: startup probe failed 2 times in a row: httpGet http://127.0.0.1:")
	})
}

// The report: with min- and max-scale 3, two replicas of a built-in
// app killed with SIGKILL are replaced, and the revision is back to three.
func TestE2EKilledDemoReplicasReplaced(t *testing.T) {
	t.Parallel()
	tp := startProgramPlatform(t, Options{})
	key := "default/three-00001"
	m := strings.Replace(fmt.Sprintf(helloAtZero, "three"), `autoscaling.knative.dev/initial-scale: "0"`,
		"autoscaling.knative.dev/min-scale: \"3\"\n        autoscaling.knative.dev/max-scale: \"3\"", 1)
	m = strings.Replace(m, "name: hello,", "name: three,", 1)
	tp.deploy(m, key, "default/three")
	tp.waitFor("three ready", 60*time.Second, func() bool { r, _ := tp.revision(key); return r.ReadyCount == 3 })
	r, _ := tp.revision(key)
	killed := []int{r.Replicas[0].PID, r.Replicas[1].PID}
	for _, pid := range killed {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	tp.waitFor("three ready again, two restarted", 30*time.Second, func() bool {
		r, _ := tp.revision(key)
		restarts := 0
		for _, rep := range r.Replicas {
			restarts += rep.Restarts
		}
		return r.ReadyCount == 3 && restarts == 2
	})
	code, body, err := tp.get("three", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "Hello three!\n", body)
}
