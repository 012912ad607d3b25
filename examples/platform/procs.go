package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// replicaEnv carries a ReplicaSpec (JSON) to a re-executed copy of this
// binary and makes it run as a replica instead of the platform.
const replicaEnv = "SERVINGKIT_PLATFORM_REPLICA"

// ReplicaSpec is what a replica process needs to know.
type ReplicaSpec struct {
	Name                 string            `json:"name"`
	Revision             string            `json:"revision"`
	App                  App               `json:"app"`
	Env                  map[string]string `json:"env"`
	ContainerConcurrency int               `json:"containerConcurrency"`
	Timeout              time.Duration     `json:"timeout"`
	StartupDelay         time.Duration     `json:"startupDelay"`
	DrainQuietPeriod     time.Duration     `json:"drainQuietPeriod"`
}

// handshake is the one JSON line a replica prints on stdout once it listens.
type handshake struct {
	Serve string `json:"serve"` // host:port of the serving handler
	Admin string `json:"admin"` // host:port of the admin handler (/ready, /stats)
	PID   int    `json:"pid"`
}

// proc is one running replica process.
type proc struct {
	spec   ReplicaSpec
	cmd    *exec.Cmd
	stdin  io.WriteCloser // closing it tells the replica its parent is gone
	hs     handshake
	start  time.Time     // when the process was started
	exited chan struct{} // closed when the process has been reaped
	err    error         // exit status, valid after exited
}

// spawner starts replica processes from one OS thread that never exits, so
// that Pdeathsig (which Linux ties to the thread that forked the child)
// fires only when the whole platform dies.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	go func() {
		runtime.LockOSThread() // never unlocked: this thread lives as long as the process
		for r := range s.reqs {
			r.done <- r.cmd.Start()
		}
	}()
	return s
}

// start launches a replica and waits for its handshake (or ctx).
func (s *spawner) start(ctx context.Context, spec ReplicaSpec, logw io.Writer) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("platform: finding own executable: %w", err)
	}
	js, _ := json.Marshal(spec)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), replicaEnv+"="+string(js))
	cmd.Stderr = logw
	// Three guards against orphans: the child dies with SIGKILL if this
	// thread (so the platform) dies; it exits when its stdin (a pipe we
	// hold) reaches EOF; and it is in our process group for Ctrl-C.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, done: done}
	if err := <-done; err != nil {
		return nil, fmt.Errorf("platform: starting replica %s: %w", spec.Name, err)
	}
	p := &proc{spec: spec, cmd: cmd, stdin: stdin, start: time.Now(), exited: make(chan struct{})}

	line := make(chan handshake, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				first = false
				var hs handshake
				if json.Unmarshal(sc.Bytes(), &hs) == nil && hs.Serve != "" {
					line <- hs
					continue
				}
			}
			fmt.Fprintf(logw, "[%s] %s\n", spec.Name, sc.Text())
		}
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case hs := <-line:
		p.hs = hs
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("platform: replica %s exited before it listened: %v", spec.Name, p.err)
	case <-ctx.Done():
		p.kill()
		return nil, fmt.Errorf("platform: replica %s did not start: %w", spec.Name, ctx.Err())
	}
}

// stop sends SIGTERM, lets the replica drain, and kills it if it has not
// exited by the deadline.
func (p *proc) stop(grace time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.kill()
		return fmt.Errorf("platform: replica %s did not drain within %v; killed", p.spec.Name, grace)
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		return p.err
	}
	return nil
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.stdin.Close()
	<-p.exited
}
