package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/servingkit/servingkit/proxy"
	"github.com/servingkit/servingkit/queue"
)

// A replica that runs a user's program is this binary in replica mode:
// the queue in sidecar mode (breaker, timeouts, stats, drain) in front of
// the program, which it starts, checks with the probes and stops. It talks
// to the platform in JSON lines on stdout (replicaEvent); the program's
// stdout and stderr go to the replica's stderr, which the platform logs.
//
// The program runs in a process group of its own, so that its whole tree
// can be signalled: SIGTERM after the queue drained, SIGKILL after the
// grace period, and SIGKILL when the replica ends for any other reason —
// the platform gone (SIGHUP, the replica's parent-death signal, or EOF on
// stdin), the program exited, or its liveness probe failed. If the replica
// itself is killed, the program gets SIGKILL as its parent-death signal and
// the platform kills the group.

// replicaEvent is one JSON line a replica prints on stdout.
type replicaEvent struct {
	// Serve, Admin and PID are the handshake: the replica listens and its
	// program (if any) passed its readiness check.
	Serve string `json:"serve,omitempty"`
	Admin string `json:"admin,omitempty"`
	PID   int    `json:"pid,omitempty"`
	// AppPID is the program's process id, which is also its process group.
	AppPID int `json:"appPid,omitempty"`
	// Probe is why the program is not ready (its readiness check's last
	// failure).
	Probe string `json:"probe,omitempty"`
	// Ready reports a change of readiness after the handshake.
	Ready *bool `json:"ready,omitempty"`
	// Exit says why the program stopped; the replica exits after it.
	Exit *exitInfo `json:"exit,omitempty"`
}

// exitInfo is why a program stopped, in Knative's terms.
type exitInfo struct {
	// Reason is "ExitCode<N>", "StartError" or "LivenessProbeFailed".
	Reason string `json:"reason"`
	// Message says what happened.
	Message string `json:"message"`
}

// emitter writes events, one JSON line each.
type emitter struct {
	mu sync.Mutex
}

func (e *emitter) emit(ev replicaEvent) {
	b, _ := json.Marshal(ev)
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = os.Stdout.Write(append(b, '\n'))
}

// program is a started user program.
type program struct {
	pid  int
	done chan struct{} // closed once reaped
	err  error         // from Wait, valid after done
}

// startProgram starts the program from a locked OS thread that lives
// until the program is reaped: Linux ties Pdeathsig to the thread that
// forked.
func startProgram(spec ReplicaSpec, env []string) (*program, error) {
	c := spec.Program
	// $(NAME) in command and args names a variable of the manifest's env
	// or of the runtime contract ($(PORT)), as in Kubernetes.
	vars := map[string]string{}
	for k, v := range spec.Env {
		vars[k] = v
	}
	for _, kv := range env[len(env)-len(reservedEnv):] { // programEnv puts the contract's last
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	argv := make([]string, 0, len(c.Command)+len(c.Args))
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		argv = append(argv, expandVars(a, vars))
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, c.WorkingDir
	cmd.Stdin = nil // reads see end of file, as in a container
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr := &program{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine, after the program
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		pr.pid = cmd.Process.Pid
		started <- nil
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return pr, nil
}

// signalGroup signals the program's process group (the program and every
// process it started that did not leave the group).
func (pr *program) signalGroup(sig syscall.Signal) { _ = syscall.Kill(-pr.pid, sig) }

// stop sends SIGTERM to the group and SIGKILL after grace, then kills what
// is left of the group.
func (pr *program) stop(grace time.Duration) {
	pr.signalGroup(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-pr.done:
	case <-t.C:
	}
	pr.signalGroup(syscall.SIGKILL)
	<-pr.done
}

// exitOf describes how the program ended, with Kubernetes' exit codes
// (128 + signal for a program killed by a signal).
func exitOf(err error) exitInfo {
	code, how := 0, "exited with no error"
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code, how = 128+int(ws.Signal()), "killed by signal "+ws.Signal().String()
		} else {
			code, how = ee.ExitCode(), fmt.Sprintf("exited with code %d", ee.ExitCode())
		}
	default:
		code, how = 128, err.Error()
	}
	return exitInfo{Reason: "ExitCode" + strconv.Itoa(code), Message: "program " + how}
}

// programEnv is the program's environment: the platform's own (PATH, HOME
// and the like; a process is not a container image), without the
// platform's internal variables, then the manifest's env, then Knative's
// runtime contract.
func programEnv(spec ReplicaSpec, port int) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != replicaEnv && k != platformInternalEnv {
			env = append(env, kv)
		}
	}
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	return append(env,
		"PORT="+strconv.Itoa(port),
		"K_SERVICE="+spec.Service,
		"K_CONFIGURATION="+spec.Service,
		"K_REVISION="+spec.RevisionName)
}

// platformInternalEnv is not passed on to programs either (tests use it).
const platformInternalEnv = "SERVINGKIT_PLATFORM_TEST_MAIN"

// freePort returns a loopback port nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// runProgramReplica is the main of a replica that runs a user program.
func runProgramReplica(spec ReplicaSpec, log *slog.Logger) int {
	var ev emitter
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	parentGone := make(chan struct{})
	go func() {
		_, _ = os.Stdin.Read(make([]byte, 1)) // EOF (or anything) when the platform is gone
		close(parentGone)
	}()

	port, err := freePort()
	if err != nil {
		ev.emit(replicaEvent{Exit: &exitInfo{Reason: "StartError", Message: "no free port: " + err.Error()}})
		return 3
	}
	env := programEnv(spec, port)
	prog, err := startProgram(spec, env)
	if err != nil {
		ev.emit(replicaEvent{Exit: &exitInfo{Reason: "StartError", Message: err.Error()}})
		return 3
	}
	ev.emit(replicaEvent{AppPID: prog.pid})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer prog.signalGroup(syscall.SIGKILL) // whatever happens, nothing of it stays

	// Readiness: the handshake waits for the first pass; later changes are
	// events.
	var ready atomic.Bool
	readyCh := make(chan struct{})
	var once sync.Once
	rp := newProber(spec.Program.Readiness, port, env, spec.Program.WorkingDir)
	rp.alsoTCP = rp.spec.Kind == "exec"
	go rp.run(ctx, func(r probeResult) {
		ready.Store(r.ok)
		if r.ok {
			once.Do(func() { close(readyCh) })
		}
		select {
		case <-readyCh:
			ok := r.ok
			e := replicaEvent{Ready: &ok}
			if r.err != nil {
				e.Probe = r.err.Error()
			}
			ev.emit(e)
		default:
			ev.emit(replicaEvent{Probe: r.err.Error()})
		}
	})
	dead := make(chan error, 1)
	if lp := spec.Program.Liveness; lp != nil {
		go newProber(lp, port, env, spec.Program.WorkingDir).runLiveness(ctx, func(err error) { dead <- err })
	}

	// wait returns what ends the wait: readyCh (nil after the handshake),
	// SIGTERM, or the end of the replica — the program exited or failed its
	// liveness probe (reported), or the platform is gone. The deferred
	// calls kill the group.
	const (
		becameReady = iota
		terminated
		ended
	)
	wait := func(readyCh <-chan struct{}) (what, code int) {
		select {
		case <-readyCh:
			return becameReady, 0
		case <-term:
			return terminated, 0
		case <-prog.done:
			x := exitOf(prog.err)
			ev.emit(replicaEvent{Exit: &x})
			return ended, 1
		case err := <-dead:
			prog.stop(spec.Grace)
			ev.emit(replicaEvent{Exit: &exitInfo{Reason: "LivenessProbeFailed", Message: err.Error()}})
			return ended, 1
		case <-hup:
			return ended, 0
		case <-parentGone:
			return ended, 0
		}
	}
	switch what, code := wait(readyCh); what {
	case terminated:
		prog.stop(spec.Grace)
		return 0
	case ended:
		return code
	}

	h, servers, code := startQueue(ctx, spec, log, func(c queue.Config) (*queue.Handler, error) {
		c.Readiness = queue.CheckerFunc(func(context.Context) error {
			if !ready.Load() {
				return errNotReady
			}
			return nil
		})
		return queue.NewSidecar(queue.SidecarConfig{
			Config:    c,
			Target:    "127.0.0.1:" + strconv.Itoa(port),
			Transport: programTransport(spec.Program.H2C, spec.ContainerConcurrency),
		})
	})
	if h == nil {
		return code
	}
	defer servers.shutdown()
	ev.emit(replicaEvent{Serve: servers.serveAddr, Admin: servers.adminAddr, PID: os.Getpid(), AppPID: prog.pid})

	what, code := wait(nil)
	if what == ended {
		return code
	}
	// Scale-down: the queue drains first (it keeps serving through the
	// quiet period and finishes what it accepted); only then does the
	// program get SIGTERM, and SIGKILL after the grace period.
	dctx, dcancel := context.WithTimeout(context.Background(), spec.Timeout+spec.DrainQuietPeriod+10*time.Second)
	if err := h.Drain(dctx); err != nil {
		log.Warn("drain", "error", err)
	}
	dcancel()
	prog.stop(spec.Grace)
	return 0
}

// programTransport sends requests to the program over cleartext HTTP/2
// when its port is named h2c, and over HTTP/1.1 otherwise, as Knative
// does.
func programTransport(h2c bool, cc int) http.RoundTripper {
	idle := cc
	if idle == 0 {
		idle = 1000
	}
	if !h2c {
		return proxy.NewTransport(proxy.TransportConfig{MaxIdleConnsPerHost: idle, DisableH2C: true})
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: idle,
		DisableCompression:  true,
		Protocols:           &p,
	}
}
