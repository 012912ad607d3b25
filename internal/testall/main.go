// Command testall runs every test of the repository — the core module,
// and the examples and prometheus modules — with the race detector when
// this machine can build it:
//
//	go test -race ./... ./examples/... ./prometheus/...
//
// The race detector needs cgo and a C compiler. On a machine with only Go
// installed there is none, and `go test -race` fails outright; testall then
// runs the same tests without -race and says so. With
// SERVINGKIT_REQUIRE_RACE=1 (as CI sets) a missing race detector is an
// error instead. Extra arguments go to go test (e.g. -run TestE2E -v).
//
//	go run ./internal/testall
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

func main() {
	args := []string{"test"}
	if ok, why := raceAvailable(); ok {
		args = append(args, "-race")
	} else if os.Getenv("SERVINGKIT_REQUIRE_RACE") == "1" {
		fmt.Fprintf(os.Stderr, "testall: the race detector is required but unavailable: %s\n", why)
		os.Exit(2)
	} else {
		fmt.Fprintf(os.Stderr, "testall: running without -race: %s (install gcc to enable it)\n", why)
	}
	args = append(args, os.Args[1:]...)
	args = append(args, "./...", "./examples/...", "./prometheus/...")
	fmt.Fprintf(os.Stderr, "testall: go %s\n", strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = os.Stdout, os.Stderr, os.Stdin
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "testall:", err)
		os.Exit(1)
	}
}

// raceAvailable reports whether go test -race can build here: cgo must be
// possible, which takes the C compiler go env CC names.
func raceAvailable() (bool, string) {
	out, err := exec.Command("go", "env", "-json", "CGO_ENABLED", "CC").Output()
	if err != nil {
		return false, "go env failed: " + err.Error()
	}
	var env struct{ CGO_ENABLED, CC string }
	if err := json.Unmarshal(out, &env); err != nil {
		return false, "go env: " + err.Error()
	}
	cc := strings.Fields(env.CC) // CC may carry flags, e.g. "gcc -m64"
	if len(cc) == 0 {
		return false, "no C compiler configured (go env CC is empty)"
	}
	if env.CGO_ENABLED != "1" {
		if os.Getenv("CGO_ENABLED") == "0" {
			return false, "CGO_ENABLED=0"
		}
		// Go turns cgo off by default when it finds no C compiler.
		return false, fmt.Sprintf("cgo is off (no C compiler %q found)", cc[0])
	}
	if _, err := exec.LookPath(cc[0]); err != nil {
		return false, fmt.Sprintf("C compiler %q not found", cc[0])
	}
	return true, ""
}
