package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The shipped program manifests serve their programs: the Go one, built
// once as the manifest's comment says, and the Python one.
func TestE2EShippedPrograms(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the go command builds the Go example")
	bin := filepath.Join(t.TempDir(), "greeter")
	build := exec.Command(goTool, "build", "-o", bin, "./programs/greeter")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	tp := startProgramPlatform(t, Options{})
	data, err := builtin.ReadFile("manifests/greeter.yaml")
	require.NoError(t, err)
	// The manifest names bin/greeter under the repository root; this test
	// runs in examples/platform with the binary elsewhere.
	tp.deploy(strings.Replace(string(data), "command: [bin/greeter]", "command: ["+bin+"]", 1), "default/greeter-00001", "default/greeter")
	code, body, err := tp.get("greeter", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "Hello from greeter-00001!\n", body)

	if _, err := exec.LookPath("python3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is needed for the Python example (CI=true): install python3")
		}
		t.Skip("python3 is not installed: skipping the Python example (install python3 to run it)")
	}
	data, err = builtin.ReadFile("manifests/greeter-python.yaml")
	require.NoError(t, err)
	script, err := filepath.Abs("programs/greeter.py")
	require.NoError(t, err)
	tp.deploy(strings.Replace(string(data), "args: [examples/platform/programs/greeter.py]", "args: ["+script+"]", 1),
		"default/greeter-python-00001", "default/greeter-python")
	code, body, err = tp.get("greeter-python", "")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "Hello from greeter-python-00001 (python)!\n", body)
}
