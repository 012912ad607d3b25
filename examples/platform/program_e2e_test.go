package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
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
	tp.deploy(programManifest(t, "prog", "serve", "", ""), "default/prog-00001", "default/prog")
	code, body, err := tp.get("prog", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "revision=prog-00001 service=prog configuration=prog target=programs")
	assert.Contains(t, body, "host=prog.default.localhost ", "the program sees the client's Host")
	assert.Contains(t, body, "xff=127.0.0.1, 127.0.0.1", "X-Forwarded-For starts with the client")
	assert.Contains(t, body, `forwarded=for=127.0.0.1;host="prog.default.localhost";proto=http`)
	assert.Contains(t, body, `stdin=""`, "the program's stdin is empty")
	assert.Contains(t, body, "proto=HTTP/1.1")

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
	tp.waitFor("the request in the log", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + tp.ControlAddr() + "/logs?revision=default/prog-00001")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), "[default/prog-00001 prog-00001-1] request GET /")
	})
}
