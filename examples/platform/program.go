package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
// stdin), the program exited, or its startup or liveness probe failed. If the replica
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
	// Reason is "ExitCode<N>", "StartError", "StartupProbeFailed" or
	// "LivenessProbeFailed".
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
// forked. env is its whole environment, vars what $(VAR) in its command
// and args may refer to (see programEnv).
func startProgram(spec ReplicaSpec, env []string, vars map[string]string) (*program, error) {
	c := spec.Program
	argv := make([]string, 0, len(c.Command)+len(c.Args))
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		argv = append(argv, expandVars(a, vars))
	}
	path, err := lookPathIn(argv[0], envValue(env, "PATH"), c.WorkingDir)
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Path: path, Args: argv}
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

// defaultPath is a program's PATH when its env sets none: the one
// container images commonly set (Docker's default).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// programEnv is a program's environment: what Kubernetes gives a container
// and nothing of the platform's own. First PATH (defaultPath, as an image
// would set it), HOME (the home directory of the user the platform runs
// as, since the program runs as that user; "/" if it has none) and
// HOSTNAME (the replica's name, as a pod's hostname is its name); then the
// manifest's env in order, each value with its $(VAR) references expanded
// against the runtime contract and the variables before it (expandVars);
// then Knative's runtime contract: PORT, K_SERVICE, K_CONFIGURATION and
// K_REVISION. The manifest's env replaces PATH, HOME or HOSTNAME, and a
// name listed twice takes its last value, as in Kubernetes.
//
// It also returns the variables $(VAR) in command and args refer to: the
// manifest's env (expanded) and the runtime contract, as in Kubernetes
// (PATH, HOME and HOSTNAME are not among them unless env sets them).
func programEnv(spec ReplicaSpec, port int) (env []string, vars map[string]string) {
	contract := [][2]string{
		{"PORT", strconv.Itoa(port)},
		{"K_SERVICE", spec.Service},
		{"K_CONFIGURATION", spec.Service},
		{"K_REVISION", spec.RevisionName},
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/"
	}
	base := [][2]string{{"PATH", defaultPath}, {"HOME", home}, {"HOSTNAME", spec.Name}}

	vars = make(map[string]string, len(contract)+len(spec.Program.Env))
	for _, kv := range contract {
		vars[kv[0]] = kv[1]
	}
	var names []string // the manifest's, in order of first definition
	for _, e := range spec.Program.Env {
		if !slices.Contains(names, e.Name) {
			names = append(names, e.Name)
		}
		vars[e.Name] = expandVars(e.Value, vars)
	}
	for _, kv := range base {
		if _, set := vars[kv[0]]; !set {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	for _, n := range names {
		env = append(env, n+"="+vars[n])
	}
	for _, kv := range contract {
		vars[kv[0]] = kv[1] // the manifest cannot set them (refused at apply)
		env = append(env, kv[0]+"="+kv[1])
	}
	return env, vars
}

// envValue returns the value of the variable name in env ("NAME=value"
// entries; the last one counts, as for exec).
func envValue(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, _ := strings.Cut(kv, "="); k == name {
			v = val
		}
	}
	return v
}

// lookPathIn finds the program name as a container runtime would: a name
// with a slash as it is (relative to dir), any other in the directories of
// path, the program's own PATH, not the platform's.
func lookPathIn(name, path, dir string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil // exec reports a missing or non-executable file
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH (%s)", name, path)
}

// portHold keeps a loopback port for a program until it starts: a socket
// bound to it that never listens, so that connections to it are refused
// and no other socket can bind it (it does not set SO_REUSEADDR).
type portHold struct{ port, fd int }

// holdPort holds a free loopback port for a program, below the kernel's
// ephemeral range. The program binds it later, so the port must not be
// one the kernel may hand to any socket bound to port 0 meanwhile (every
// replica's queue, in this platform or another, binds one so): a program
// that lost its port to such a listener would look ready to its TCP check
// and its requests would reach that listener. Below the range, only
// another program's port can collide, the choice is random over thousands
// of ports, and the port stays held until just before the program starts
// (release). A spare replica holds one while it waits for its spec.
func holdPort() (portHold, error) {
	lo, hi := programPortRange()
	var err error
	for range 100 {
		port := lo + rand.IntN(hi-lo)
		var fd int
		if fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0); err != nil {
			break
		}
		if err = syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err == nil {
			return portHold{port: port, fd: fd}, nil
		}
		syscall.Close(fd)
	}
	return portHold{}, fmt.Errorf("no free port in [%d, %d): %w", lo, hi, err)
}

// release lets the port go, for the program to bind it, and returns it.
func (h portHold) release() int {
	syscall.Close(h.fd)
	return h.port
}

// programPortRange is programPorts, read once.
var programPortRange = sync.OnceValues(programPorts)

// programPorts is the range holdPort picks from: [10000, the first
// ephemeral port), or [10000, 32768) if the range cannot be read (Linux's
// default starts there).
func programPorts() (lo, hi int) {
	lo, hi = 10000, 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	if f := strings.Fields(string(b)); len(f) == 2 {
		if first, err := strconv.Atoi(f[0]); err == nil && first > lo+1000 {
			hi = first
		}
	}
	return lo, hi
}

// runProgramReplica is the main of a replica that runs a user program on
// the port held (or on one it holds now, if held is zero).
func runProgramReplica(spec ReplicaSpec, log *slog.Logger, sigs replicaSignals, held portHold) int {
	var ev emitter
	term, hup := sigs.term, sigs.hup
	parentGone := make(chan struct{})
	go func() {
		_, _ = os.Stdin.Read(make([]byte, 1)) // EOF (or anything) when the platform is gone
		close(parentGone)
	}()

	if held.port == 0 {
		var err error
		if held, err = holdPort(); err != nil {
			ev.emit(replicaEvent{Exit: &exitInfo{Reason: "StartError", Message: "no free port: " + err.Error()}})
			return 3
		}
	}
	port := held.release()
	env, vars := programEnv(spec, port)
	prog, err := startProgram(spec, env, vars)
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
	target := "127.0.0.1:" + strconv.Itoa(port)
	first := &firstConn{addr: target}
	rp := newProber(spec.Program.Readiness, port, env, spec.Program.WorkingDir)
	rp.alsoTCP = rp.spec.Kind == "exec"
	rp.watchPort()
	// The readiness check's connection can carry the first request,
	// unless it is to another port or has carried HTTP/1.1 to a program
	// that is sent HTTP/2 (h2c starts on a fresh connection).
	if rp.addr == target && (rp.spec.Kind == "tcp" || !spec.Program.H2C) {
		rp.keep = first.put
	}
	var sp, lp *prober
	if spec.Program.Startup != nil {
		sp = newProber(spec.Program.Startup, port, env, spec.Program.WorkingDir)
	}
	if spec.Program.Liveness != nil {
		lp = newProber(spec.Program.Liveness, port, env, spec.Program.WorkingDir)
	}
	dead := make(chan exitInfo, 1)
	go runProbes(ctx, sp, rp, lp, func(r probeResult) {
		ready.Store(r.ok)
		handshake := false
		if r.ok {
			once.Do(func() { close(readyCh); handshake = true })
		}
		if handshake {
			return // the handshake says it
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
	}, func(why exitInfo) { dead <- why })

	// wait returns what ends the wait: readyCh (nil after the handshake),
	// SIGTERM, or the end of the replica — the program exited or failed its
	// startup or liveness probe (reported), or the platform is gone. The deferred
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
		case why := <-dead:
			prog.stop(spec.Grace)
			ev.emit(replicaEvent{Exit: &why})
			return ended, 1
		case <-hup:
			return ended, 0
		case <-parentGone:
			return ended, 0
		}
	}
	// The queue starts while the program does, so that the handshake
	// follows the program's readiness at once (the queue answers 503 until
	// then; nobody knows its address before the handshake anyway).
	h, servers, code := startQueue(ctx, spec, log, func(c queue.Config) (*queue.Handler, error) {
		c.Readiness = queue.CheckerFunc(func(context.Context) error {
			if !ready.Load() {
				return errNotReady
			}
			return nil
		})
		return queue.NewSidecar(queue.SidecarConfig{
			Config:    c,
			Target:    target,
			Transport: programTransport(spec.Program.H2C, spec.ContainerConcurrency, first),
			Client:    programClient(spec.Program.H2C, spec.ContainerConcurrency, first),
		})
	})
	if h == nil {
		return code
	}
	defer servers.shutdown()

	switch what, code := wait(readyCh); what {
	case terminated:
		prog.stop(spec.Grace)
		return 0
	case ended:
		return code
	}

	ev.emit(replicaEvent{Serve: servers.serveAddr, Admin: servers.adminAddr, PID: os.Getpid(), AppPID: prog.pid})
	// The first request comes soon in a cold start: have a connection
	// to the program ready for it, unless the readiness check left one.
	go first.fill(ctx, programDialer)

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

// programDialer connects a replica's queue to its program.
var programDialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}

// programClient forwards a replica's HTTP/1 requests to a program that
// does not speak h2c on the handler's goroutine (proxy.Client), its first
// connection first's if one is kept; nil for an h2c program (its Transport
// sends every request as HTTP/2).
func programClient(h2c bool, cc int, first *firstConn) *proxy.Client {
	if h2c {
		return nil
	}
	idle := cc
	if idle == 0 {
		idle = 1000
	}
	return &proxy.Client{MaxIdleConnsPerHost: idle, DialContext: first.dialContext(programDialer.DialContext)}
}

// programTransport sends requests to the program over cleartext HTTP/2
// when its port is named h2c, and over HTTP/1.1 otherwise, as Knative
// does; with proxy.NewTransport's settings otherwise (keep-alive, no
// compression). Its first connection is first's, if one is kept.
func programTransport(h2c bool, cc int, first *firstConn) http.RoundTripper {
	idle := cc
	if idle == 0 {
		idle = 1000
	}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           first.dialContext(programDialer.DialContext),
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
	if h2c {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	return t
}
