package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const programHead = "kind: Service\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      containers:\n        - "

// An invalid container is refused when the manifest is read, with an
// error naming the field.
func TestContainerSpecErrors(t *testing.T) {
	tests := []struct{ name, container, want string }{
		{"unknown image without command", `{image: nginx}`,
			`spec.template.spec.containers[0].command: required: image "nginx" is not a built-in demo app`},
		{"args without command", `{image: helloworld-go, args: [x]}`,
			`spec.template.spec.containers[0].command: required when args`},
		{"empty command", `{command: [""]}`, `spec.template.spec.containers[0].command[0]: must not be empty`},
		{"reserved PORT", `{command: [x], env: [{name: A, value: b}, {name: PORT, value: "1"}]}`,
			`spec.template.spec.containers[0].env[1].name: "PORT" is a reserved environment variable`},
		{"reserved K_SERVICE", `{command: [x], env: [{name: K_SERVICE, value: b}]}`,
			`spec.template.spec.containers[0].env[0].name: "K_SERVICE" is a reserved environment variable`},
		{"empty env name", `{command: [x], env: [{value: b}]}`, `env[0].name: must not be empty`},
		{"two ports", `{command: [x], ports: [{containerPort: 1}, {containerPort: 2}]}`,
			`spec.template.spec.containers[0].ports: has 2 ports; a container exposes at most one`},
		{"port range", `{command: [x], ports: [{containerPort: 70000}]}`, `ports[0].containerPort: 70000 must be in [1, 65535]`},
		{"reserved port", `{command: [x], ports: [{containerPort: 8012}]}`, `ports[0].containerPort: 8012 is reserved for the queue`},
		{"port name", `{command: [x], ports: [{name: grpc, containerPort: 8080}]}`,
			`ports[0].name: "grpc" must be "h2c", "http1" or empty`},
		{"udp", `{command: [x], ports: [{containerPort: 8080, protocol: UDP}]}`, `ports[0].protocol: "UDP" must be TCP`},
		{"queue-proxy name", `{name: queue-proxy, command: [x]}`, `spec.template.spec.containers[0].name: "queue-proxy" is reserved`},
		{"missing workingDir", `{command: [x], workingDir: /no/such/dir}`, `spec.template.spec.containers[0].workingDir: "/no/such/dir"`},
		{"probe without handler", `{command: [x], readinessProbe: {periodSeconds: 1}}`,
			`spec.template.spec.containers[0].readinessProbe: must have exactly one of httpGet, tcpSocket and exec, has 0`},
		{"probe with two handlers", `{command: [x], livenessProbe: {tcpSocket: {}, exec: {command: [/bin/true]}}}`,
			`livenessProbe: must have exactly one of httpGet, tcpSocket and exec, has 2`},
		{"probe path", `{command: [x], readinessProbe: {httpGet: {path: healthz}}}`, `readinessProbe.httpGet.path: "healthz" must start with /`},
		{"probe https", `{command: [x], readinessProbe: {httpGet: {scheme: HTTPS}}}`, `readinessProbe.httpGet.scheme: "HTTPS": only HTTP is supported`},
		{"probe port name", `{command: [x], readinessProbe: {tcpSocket: {port: web}}}`, `readinessProbe.tcpSocket.port: "web" names no port of the container`},
		{"probe port range", `{command: [x], readinessProbe: {tcpSocket: {port: 0x10000}}}`, `readinessProbe.tcpSocket.port: 65536 must be in [1, 65535]`},
		{"probe period", `{command: [x], readinessProbe: {tcpSocket: {}, periodSeconds: -1}}`, `readinessProbe.periodSeconds: -1 must be in [0, 3600]`},
		{"probe threshold", `{command: [x], readinessProbe: {tcpSocket: {}, failureThreshold: 5000}}`, `readinessProbe.failureThreshold: 5000 must be in [1, 1000]`},
		{"liveness success threshold", `{command: [x], livenessProbe: {tcpSocket: {}, successThreshold: 2}}`,
			`livenessProbe.successThreshold: 2 must be 1 for a liveness probe`},
		{"exec without command", `{command: [x], livenessProbe: {exec: {}}}`, `livenessProbe.exec.command: must name a command`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseService([]byte(programHead + tt.container))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := ParseService([]byte("kind: Service\nmetadata: {name: a}\nspec: {template: {spec: {terminationGracePeriodSeconds: -1, containers: [{image: hello}]}}}"))
	assert.ErrorContains(t, err, "spec.template.spec.terminationGracePeriodSeconds = -1, must be in [0, 3600]")
}

// Every problem is reported at once.
func TestContainerSpecErrorsJoined(t *testing.T) {
	_, err := ParseService([]byte(programHead + `{command: [x], env: [{name: PORT}], ports: [{name: bad}], readinessProbe: {}}`))
	require.Error(t, err)
	for _, want := range []string{"env[0].name", "ports[0].name", "readinessProbe"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = ParseService([]byte(programHead + `{command: [x], startupProbe: {tcpSocket: {port: 8080}, successThreshold: 2}}`))
	assert.ErrorContains(t, err, "startupProbe.successThreshold: 2 must be 1 for a startup probe")
	_, err = ParseService([]byte(programHead + `{image: helloworld-go, startupProbe: {tcpSocket: {port: 8080}}}`))
	assert.ErrorContains(t, err, "command: required when args, workingDir or probes are set")
	for _, want := range []string{} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestContainerSpecResolved(t *testing.T) {
	svc, err := ParseService([]byte(programHead + `
          command: [/bin/app, --serve]
          args: [--verbose]
          workingDir: /
          ports: [{name: h2c, containerPort: 9000}]
          readinessProbe:
            httpGet: {path: /ready, port: h2c, httpHeaders: [{name: X-Probe, value: "1"}]}
          livenessProbe:
            tcpSocket: {port: 9000}
            initialDelaySeconds: 5
            periodSeconds: 2
            timeoutSeconds: 3
            failureThreshold: 4
          startupProbe:
            httpGet: {path: /started, port: 9000}
            periodSeconds: 1
            failureThreshold: 30
          env:
            - {name: A, value: "1"}
            - {name: B, value: $(A)}
`))
	require.NoError(t, err)
	assert.Empty(t, svc.Warnings())
	c, err := resolveContainer(svc.Spec.Template.Spec.Containers[0], "c")
	require.NoError(t, err)
	assert.Equal(t, &ContainerSpec{
		Command: []string{"/bin/app", "--serve"}, Args: []string{"--verbose"}, WorkingDir: "/",
		Env:  []EnvVar{{"A", "1"}, {"B", "$(A)"}},
		Port: 9000, H2C: true,
		Startup: &ProbeSpec{Kind: "http", Path: "/started", Period: time.Second, Timeout: time.Second,
			SuccessThreshold: 1, FailureThreshold: 30},
		Readiness: &ProbeSpec{Kind: "http", Path: "/ready", Headers: [][]string{{"X-Probe", "1"}},
			Period: 10 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3, Aggressive: true},
		Liveness: &ProbeSpec{Kind: "tcp", InitialDelay: 5 * time.Second, Period: 2 * time.Second, Timeout: 3 * time.Second,
			SuccessThreshold: 1, FailureThreshold: 4},
	}, c, "Kubernetes' defaults fill what is unset; a probe on the container's port (by number or name) checks $PORT")

	// A built-in sample image without command runs the built-in app.
	c, err = resolveContainer(Container{Image: "ghcr.io/knative/helloworld-go"}, "c")
	require.NoError(t, err)
	assert.Nil(t, c)
}

// An invalid manifest changes nothing, even one that bypasses ParseService.
func TestApplyInvalidContainerCreatesNothing(t *testing.T) {
	t.Parallel()
	p, err := NewPlatform(Options{Addr: "127.0.0.1:0", ControlAddr: "127.0.0.1:0", Autoscaler: fastConfig})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Stop(context.Background())) }()
	svc := &Service{Kind: "Service", Metadata: ObjectMeta{Name: "a", Namespace: "default"}}
	svc.Spec.Template.Spec.Containers = []Container{{Command: []string{"/bin/true"}, Env: []EnvVar{{Name: "K_REVISION", Value: "x"}}}}
	_, err = p.Apply(svc)
	assert.ErrorContains(t, err, `spec.template.spec.containers[0].env[0].name: "K_REVISION" is a reserved environment variable`)
	st := p.Status()
	assert.Empty(t, st.Services)
	assert.Empty(t, st.Revisions)
}

func TestProbeDefaultsAndBackOff(t *testing.T) {
	p := &pool{p: &Platform{opts: Options{RestartBackOff: 10 * time.Second, MaxRestartBackOff: 5 * time.Minute}}}
	var got []time.Duration
	for crashes := 1; crashes <= 8; crashes++ {
		got = append(got, p.backOffLocked(&slot{crashes: crashes}))
	}
	// Kubernetes' CrashLoopBackOff: at once, then 10 s doubling to 5 min.
	assert.Equal(t, []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 300 * time.Second, 300 * time.Second}, got)
}

// The back-off starts over after a process that ran 10 minutes.
func TestBackOffResetsAfterTenMinutes(t *testing.T) {
	pl := &pool{p: &Platform{log: slog.New(slog.DiscardHandler)}}
	s := &slot{name: "r-1", crashes: 5}
	pl.crashed(s, &proc{start: time.Now().Add(-9 * time.Minute), exit: &exitInfo{Reason: "ExitCode1"}}, nil)
	assert.Equal(t, 6, s.crashes, "9 minutes: still crashing")
	pl.crashed(s, &proc{start: time.Now().Add(-11 * time.Minute), exit: &exitInfo{Reason: "ExitCode1"}}, nil)
	assert.Equal(t, 1, s.crashes, "11 minutes: the next restart is at once again")
	assert.Equal(t, "ExitCode1", s.fail.Reason)
}

func TestLogRing(t *testing.T) {
	l := newLogRing(3)
	assert.Empty(t, l.last(10))
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		l.add(s)
	}
	assert.Equal(t, []string{"c", "d", "e"}, l.last(10))
	assert.Equal(t, []string{"d", "e"}, l.last(2))
}

// serving.knative.dev/progress-deadline sets a revision's deadline; a bad
// value is refused naming the annotation.
func TestProgressDeadlineAnnotation(t *testing.T) {
	p := &Platform{opts: Options{ProgressDeadline: 600 * time.Second}}
	d, err := p.progressDeadline(nil)
	require.NoError(t, err)
	assert.Equal(t, 600*time.Second, d)
	d, err = p.progressDeadline(map[string]string{progressDeadlineAnnotation: "45s"})
	require.NoError(t, err)
	assert.Equal(t, 45*time.Second, d)
	for _, bad := range []string{"0s", "-1s", "soon", "25h"} {
		_, err = p.progressDeadline(map[string]string{progressDeadlineAnnotation: bad})
		assert.ErrorContains(t, err, `spec.template.metadata.annotations[serving.knative.dev/progress-deadline] = "`+bad+`"`)
	}
}

// A line longer than maxLogLine is cut and marked; the lines after it
// still come.
func TestReadLinesCutsLongLines(t *testing.T) {
	long := strings.Repeat("x", 40<<10)
	var got []string
	readLines(strings.NewReader("first\r\n"+long+"\nnext\nlast without newline"), func(l string) { got = append(got, l) })
	require.Len(t, got, 4)
	assert.Equal(t, "first", got[0])
	assert.Equal(t, strings.Repeat("x", maxLogLine)+" [line cut at 16 KiB]", got[1])
	assert.Equal(t, []string{"next", "last without newline"}, got[2:])
}

func TestLogsEndpointErrors(t *testing.T) {
	p, err := NewPlatform(Options{Addr: "127.0.0.1:0", ControlAddr: "127.0.0.1:0", ControlToken: "t"})
	require.NoError(t, err)
	for _, tt := range []struct {
		query string
		code  int
		body  string
	}{
		{"", http.StatusBadRequest, "/logs needs ?revision=namespace/name"},
		{"?revision=default/nope", http.StatusNotFound, `revision "default/nope" not found`},
		{"?revision=default/nope&lines=0", http.StatusBadRequest, `lines="0", want an integer in [1, 1000]`},
		{"?revision=default/nope&lines=x", http.StatusBadRequest, `lines="x"`},
	} {
		rec := httptest.NewRecorder()
		p.serveLogs(rec, httptest.NewRequest(http.MethodGet, "/logs"+tt.query, nil))
		assert.Equal(t, tt.code, rec.Code, tt.query)
		assert.Contains(t, rec.Body.String(), tt.body, tt.query)
	}
}

// $(VAR) expansion follows Kubernetes' rules (the cases of its own
// expansion tests): a known name is replaced, $$ is a literal $ (so
// $$(VAR) is a literal $(VAR)), anything else stays as written.
func TestExpandVars(t *testing.T) {
	vars := map[string]string{"PORT": "8080", "A": "x$(PORT)", "EMPTY": ""}
	for _, tt := range []struct{ name, in, want string }{
		{"reference", "--port=$(PORT)", "--port=8080"},
		{"twice", "$(PORT)-$(PORT)", "8080-8080"},
		{"value not expanded again", "$(A)", "x$(PORT)"},
		{"empty value", "[$(EMPTY)]", "[]"},
		{"escaped reference", "$$(PORT)", "$(PORT)"},
		{"escape then reference", "$$$(PORT)", "$8080"},
		{"two escapes", "$$$$(PORT)", "$$(PORT)"},
		{"escaped then reference", "$$(PORT)_$(PORT)", "$(PORT)_8080"},
		{"unknown stays", "$(NOPE)-$(PORT)", "$(NOPE)-8080"},
		{"empty name stays", "$()", "$()"},
		{"no parentheses", "$PORT", "$PORT"},
		{"escaped no parentheses", "$$PORT", "$PORT"},
		{"lone dollar", "a$", "a$"},
		{"double dollar", "$$", "$"},
		{"triple dollar", "$$$", "$$"},
		{"unclosed", "$(PORT", "$(PORT"},
		{"unclosed after reference", "$(PORT)$(", "8080$("},
		{"dollar after reference", "$(PORT)$", "8080$"},
		{"none", "no vars", "no vars"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, expandVars(tt.in, vars))
		})
	}
}

// A program gets what Kubernetes gives a container, not the platform's
// environment: a default PATH, HOME, HOSTNAME, the manifest's env with its
// references expanded in order, and the runtime contract.
func TestProgramEnv(t *testing.T) {
	t.Setenv("SECRET_OF_THE_PLATFORM", "leak")
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	base := ReplicaSpec{Name: "hello-00001-3", Service: "hello", RevisionName: "hello-00001"}
	contract := []string{"PORT=9000", "K_SERVICE=hello", "K_CONFIGURATION=hello", "K_REVISION=hello-00001"}
	for _, tt := range []struct {
		name string
		env  []EnvVar
		want []string
		vars map[string]string // checked entries of vars
	}{
		{name: "no env",
			want: []string{"PATH=" + defaultPath, "HOME=" + home, "HOSTNAME=hello-00001-3"}},
		{name: "earlier variables and the contract",
			env: []EnvVar{{"A", "a"}, {"B", "$(A)-$(PORT)-$(K_REVISION)"}},
			want: []string{"PATH=" + defaultPath, "HOME=" + home, "HOSTNAME=hello-00001-3",
				"A=a", "B=a-9000-hello-00001"},
			vars: map[string]string{"A": "a", "B": "a-9000-hello-00001", "PORT": "9000"}},
		{name: "a later variable is not known yet",
			env:  []EnvVar{{"B", "$(A)"}, {"A", "a"}},
			want: []string{"PATH=" + defaultPath, "HOME=" + home, "HOSTNAME=hello-00001-3", "B=$(A)", "A=a"}},
		{name: "escape and unknown",
			env:  []EnvVar{{"A", "$$(PORT) $(NOPE) $(HOME)"}},
			want: []string{"PATH=" + defaultPath, "HOME=" + home, "HOSTNAME=hello-00001-3", "A=$(PORT) $(NOPE) $(HOME)"}},
		{name: "the manifest sets PATH and HOME",
			env:  []EnvVar{{"PATH", "/opt/bin"}, {"HOME", "/srv"}},
			want: []string{"HOSTNAME=hello-00001-3", "PATH=/opt/bin", "HOME=/srv"},
			vars: map[string]string{"PATH": "/opt/bin"}},
		{name: "a name twice: the last value, in its first place",
			env:  []EnvVar{{"A", "1"}, {"B", "$(A)"}, {"A", "2"}, {"C", "$(A)"}},
			want: []string{"PATH=" + defaultPath, "HOME=" + home, "HOSTNAME=hello-00001-3", "A=2", "B=1", "C=2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := base
			spec.Program = &ContainerSpec{Command: []string{"x"}, Env: tt.env}
			env, vars := programEnv(spec, 9000)
			assert.Equal(t, append(tt.want, contract...), env)
			for k, v := range tt.vars {
				assert.Equal(t, v, vars[k], k)
			}
			_, leaked := vars["SECRET_OF_THE_PLATFORM"]
			assert.False(t, leaked)
			for _, kv := range env {
				assert.NotContains(t, kv, "SECRET_OF_THE_PLATFORM")
				assert.NotContains(t, kv, replicaEnv)
			}
		})
	}
}

// The command is looked up in the program's PATH, not the platform's.
func TestLookPathIn(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prog"), []byte("#!/bin/sh\n"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "plain"), []byte("x"), 0o644))
	got, err := lookPathIn("prog", "/nope:"+dir, "")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "prog"), got)
	got, err = lookPathIn("prog", "bin", filepath.Dir(dir)+"/")
	assert.Error(t, err, "not in bin")
	assert.Empty(t, got)
	got, err = lookPathIn("prog", filepath.Base(dir), filepath.Dir(dir))
	require.NoError(t, err, "a relative PATH entry is relative to the working directory")
	assert.Equal(t, filepath.Join(dir, "prog"), got)
	_, err = lookPathIn("plain", dir, "")
	assert.ErrorContains(t, err, `"plain": executable file not found in $PATH (`+dir+`)`)
	got, err = lookPathIn("./anything", "", "")
	require.NoError(t, err, "a name with a slash is not looked up")
	assert.Equal(t, "./anything", got)
}
