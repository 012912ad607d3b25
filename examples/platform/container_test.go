package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
`))
	require.NoError(t, err)
	assert.Empty(t, svc.Warnings())
	c, err := resolveContainer(svc.Spec.Template.Spec.Containers[0], "c")
	require.NoError(t, err)
	assert.Equal(t, &ContainerSpec{
		Command: []string{"/bin/app", "--serve"}, Args: []string{"--verbose"}, WorkingDir: "/",
		Port: 9000, H2C: true,
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

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"PORT": "8080", "A": "x$(PORT)"}
	for in, want := range map[string]string{
		"--port=$(PORT)":  "--port=8080",
		"$(A)":            "x$(PORT)", // no recursion
		"$$(PORT)":        "$(PORT)",
		"$(NOPE)-$(PORT)": "$(NOPE)-8080",
		"$PORT":           "$PORT",
		"a$":              "a$",
		"$(PORT":          "$(PORT",
		"no vars":         "no vars",
	} {
		assert.Equal(t, want, expandVars(in, vars), in)
	}
}
