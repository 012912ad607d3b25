//go:build unix

package kubernetes_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spawns carries start requests to the one thread that starts children.
var spawns = make(chan func())

func init() {
	// Linux sends a child's parent-death signal when the thread that forked
	// it exits, not the process; Go may end idle threads, so every child is
	// started from this goroutine, locked to its thread, which never
	// returns.
	go func() {
		runtime.LockOSThread()
		for f := range spawns {
			f()
		}
	}()
}

// startProc starts cmd in a process group of its own, killed with the test
// binary (childAttr), and kills the whole group in t's cleanup.
func startProc(t testing.TB, cmd *exec.Cmd) error {
	cmd.SysProcAttr = childAttr()
	done := make(chan error, 1)
	spawns <- func() { done <- cmd.Start() }
	if err := <-done; err != nil {
		return err
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	return nil
}

// A child started through startProc dies when the test binary that started
// it is killed with SIGKILL (no cleanup runs): the test re-runs this binary
// as a helper that starts a long sleep and waits, kills the helper, and
// sees the sleep die.
func TestChildDiesWithTestBinary(t *testing.T) {
	if os.Getenv("SERVINGKIT_SPAWN_HELPER") == "1" {
		cmd := exec.Command("sleep", "300")
		if err := startProc(t, cmd); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("child", cmd.Process.Pid)
		time.Sleep(time.Hour) // until killed
		return
	}
	if !pdeathsig {
		t.Skip("no parent-death signal on " + runtime.GOOS)
	}
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("no sleep binary")
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithTestBinary$", "-test.v")
	helper.Env = append(os.Environ(), "SERVINGKIT_SPAWN_HELPER=1", "KUBEBUILDER_ASSETS=/nonexistent", "CI=")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = helper.Process.Kill(); _ = helper.Wait() }()
	child := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "child "); ok {
			child, _ = strconv.Atoi(rest)
			break
		}
	}
	if child <= 0 {
		t.Fatalf("the helper did not report its child: %v", sc.Err())
	}
	if !alive(child) {
		t.Fatalf("child %d is not running before the helper is killed", child)
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("child %d still running 10 s after the test binary that started it was killed", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
