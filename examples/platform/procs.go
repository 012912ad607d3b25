package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
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
	// Program, when set, is the user's program to run behind the queue
	// instead of the built-in App.
	Program *ContainerSpec `json:"program,omitempty"`
	// Grace is how long the program has between SIGTERM and SIGKILL.
	Grace time.Duration `json:"grace"`
	// Service and RevisionName are K_SERVICE (and K_CONFIGURATION) and
	// K_REVISION.
	Service      string `json:"service"`
	RevisionName string `json:"revisionName"`
}

// handshake is the replica's address, sent once it listens and its program
// is ready.
type handshake struct {
	Serve string `json:"serve"` // host:port of the serving handler
	Admin string `json:"admin"` // host:port of the admin handler (/ready, /stats)
	PID   int    `json:"pid"`
}

// tailLines is how many of a replica's last output lines a failure
// message quotes.
const tailLines = 5

// proc is one running replica process.
type proc struct {
	spec      ReplicaSpec
	cmd       *exec.Cmd
	stdin     *os.File // our end of the replica's stdin: closing it tells the replica we are gone
	start     time.Time
	listening chan struct{} // closed on the handshake; hs is set before
	hs        handshake
	exited    chan struct{} // closed when the process has been reaped and its output read
	err       error         // from Wait, valid after exited
	onChange  func()        // called, with no lock held, when readiness or the probe message changes

	mu      sync.Mutex // protects the fields below
	appPID  int        // the program's process (group) id, 0 for a built-in app
	probe   string     // why the program is not ready
	exit    *exitInfo  // why the program stopped
	tail    []string   // the last output lines
	unready bool       // the readiness probe fails after the handshake
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

// start launches a replica. Its events (stdout) and output (stderr, each
// line to logLine) are read until it exits; listening closes on its
// handshake.
func (s *spawner) start(spec ReplicaSpec, logLine func(string), onChange func()) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("platform: finding own executable: %w", err)
	}
	js, _ := json.Marshal(spec)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), replicaEnv+"="+string(js))
	// Three guards against orphans: the replica gets SIGHUP if this thread
	// (so the platform) dies, and kills its program's process group; it
	// does the same when its stdin (a pipe we hold) reaches EOF; and a
	// program whose replica is killed gets SIGKILL, and the platform kills
	// its group (see pool).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGHUP}
	// Our own pipes rather than cmd's: Wait must not wait for the output of
	// a program's stray child holding the replica's stderr.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	done := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, done: done}
	err = <-done
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("platform: starting replica %s: %w", spec.Name, err)
	}
	p := &proc{spec: spec, cmd: cmd, stdin: inW, start: time.Now(), listening: make(chan struct{}), exited: make(chan struct{}), onChange: onChange}

	var readers sync.WaitGroup
	readers.Go(func() { p.readEvents(outR, logLine) })
	readers.Go(func() { readLines(errR, func(line string) { p.addLine(line, logLine) }) })
	go func() {
		p.err = cmd.Wait()
		// The replica is gone: so is its program's group, even when the
		// replica was killed before it could kill it.
		if pid := p.appPIDNow(); pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		inW.Close()
		// Read what is left of the output, but not forever: a stray
		// process outside the group may hold the pipe.
		readDone := make(chan struct{})
		go func() { readers.Wait(); close(readDone) }()
		select {
		case <-readDone:
		case <-time.After(2 * time.Second):
		}
		outR.Close()
		errR.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) readEvents(r *os.File, logLine func(string)) {
	readLines(r, func(line string) {
		var ev replicaEvent
		if json.Unmarshal([]byte(line), &ev) != nil {
			p.addLine(line, logLine)
			return
		}
		changed := false
		p.mu.Lock()
		if ev.AppPID != 0 {
			p.appPID = ev.AppPID
		}
		if ev.Probe != "" && ev.Probe != p.probe {
			p.probe, changed = ev.Probe, true
		}
		if ev.Ready != nil && p.unready == *ev.Ready {
			p.unready, changed = !*ev.Ready, true
			if *ev.Ready {
				p.probe = ""
			}
		}
		if ev.Exit != nil {
			p.exit = ev.Exit
		}
		p.mu.Unlock()
		if ev.Serve != "" && !p.isListening() {
			p.hs = handshake{Serve: ev.Serve, Admin: ev.Admin, PID: ev.PID}
			close(p.listening)
			return
		}
		if changed && p.onChange != nil {
			p.onChange()
		}
	})
}

func (p *proc) addLine(line string, logLine func(string)) {
	p.mu.Lock()
	p.tail = append(p.tail, line)
	if len(p.tail) > tailLines {
		p.tail = p.tail[len(p.tail)-tailLines:]
	}
	p.mu.Unlock()
	logLine(line)
}

func (p *proc) appPIDNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.appPID
}

// isListening reports whether the handshake came.
func (p *proc) isListening() bool {
	select {
	case <-p.listening:
		return true
	default:
		return false
	}
}

// serving reports whether the replica should get requests: it listens and
// its readiness probe passes.
func (p *proc) serving() bool {
	if !p.isListening() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.unready
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
	<-p.exited
}
