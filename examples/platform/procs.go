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

// spareDelay is how long after a replica listens the next spare starts.
const spareDelay = 250 * time.Millisecond

// specOnStdin, as the value of replicaEnv, tells a replica to read its
// ReplicaSpec from the first line of its stdin: a spare replica is started
// before anyone knows what it will run.
const specOnStdin = "-"

// spawner starts replica processes from one OS thread that never exits, so
// that Pdeathsig (which Linux ties to the thread that forked the child)
// fires only when the whole platform dies.
//
// It keeps one spare replica process started ahead, waiting for its spec on
// stdin: a cold start hands the spare its spec instead of paying for exec
// and this binary's start-up (tens of milliseconds on a loaded machine, the
// largest share of the platform's part of a cold start), and a new spare
// starts in the background.
type spawner struct {
	reqs chan spawnReq

	mu      sync.Mutex // protects the fields below
	spare   *child     // started, waiting for a spec; nil if none
	filling bool       // a goroutine is starting the next spare
	closed  bool       // close ran: no more spares
	spares  sync.WaitGroup
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// child is a started replica process and our ends of its pipes.
type child struct {
	cmd         *exec.Cmd
	stdin       *os.File // spec line, then held open: EOF tells the replica we are gone
	out, errOut *os.File
	waited      chan struct{} // closed when Wait returned; err is set before
	err         error
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

// spawn starts a replica process that reads its spec from stdin.
func (s *spawner) spawn() (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("platform: finding own executable: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), replicaEnv+"="+specOnStdin)
	// Three guards against orphans: the replica gets SIGHUP if this thread
	// (so the platform) dies, and kills its program's process group; it
	// does the same when its stdin (a pipe we hold) reaches EOF; and a
	// program whose replica is killed gets SIGKILL, and the platform kills
	// its group (see pool).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGHUP}
	// Our own pipes rather than cmd's: Wait must not wait for the output of
	// a program's stray child holding the replica's stderr.
	var fds [6]*os.File // inR, inW, outR, outW, errR, errW
	for i := 0; i < len(fds); i += 2 {
		if fds[i], fds[i+1], err = os.Pipe(); err != nil {
			for _, f := range fds[:i] {
				f.Close()
			}
			return nil, err
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = fds[0], fds[3], fds[5]
	done := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, done: done}
	err = <-done
	fds[0].Close()
	fds[3].Close()
	fds[5].Close()
	if err != nil {
		fds[1].Close()
		fds[2].Close()
		fds[4].Close()
		return nil, err
	}
	c := &child{cmd: cmd, stdin: fds[1], out: fds[2], errOut: fds[4], waited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.waited)
	}()
	return c, nil
}

// discard ends a child that will not be used: EOF on its stdin makes it
// exit; it is killed if it has not after a second.
func (c *child) discard() {
	c.stdin.Close()
	select {
	case <-c.waited:
	case <-time.After(time.Second):
		_ = c.cmd.Process.Kill()
		<-c.waited
	}
	c.out.Close()
	c.errOut.Close()
}

// take returns the spare, if one is running.
func (s *spawner) take() *child {
	s.mu.Lock()
	c := s.spare
	s.spare = nil
	s.mu.Unlock()
	if c != nil {
		select {
		case <-c.waited: // died while waiting (killed by someone)
			go c.discard()
			return nil
		default:
		}
	}
	return c
}

// fill starts a spare.
func (s *spawner) fill() {
	c, err := s.spawn()
	s.mu.Lock()
	s.filling = false
	if err != nil || s.closed || s.spare != nil {
		s.mu.Unlock()
		if c != nil {
			c.discard()
		}
		return
	}
	s.spare = c
	s.mu.Unlock()
}

// refill starts a spare in the background, unless one is running or
// starting.
func (s *spawner) refill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && !s.filling && s.spare == nil {
		s.filling = true
		s.spares.Go(s.fill)
	}
}

// close ends the spare and starts no more.
func (s *spawner) close() {
	s.mu.Lock()
	s.closed = true
	c := s.spare
	s.spare = nil
	s.mu.Unlock()
	s.spares.Wait()
	if c != nil {
		c.discard()
	}
}

// start launches a replica: it gives the spare, or else a new process, its
// spec. Its events (stdout) and output (stderr, each line to logLine) are
// read until it exits; listening closes on its handshake.
func (s *spawner) start(spec ReplicaSpec, logLine func(string), onChange func()) (*proc, error) {
	js, _ := json.Marshal(spec)
	js = append(js, '\n')
	c := s.take()
	if c != nil {
		if _, err := c.stdin.Write(js); err != nil { // the spare died
			go c.discard()
			c = nil
		}
	}
	if c == nil {
		var err error
		if c, err = s.spawn(); err != nil {
			return nil, fmt.Errorf("platform: starting replica %s: %w", spec.Name, err)
		}
		if _, err := c.stdin.Write(js); err != nil {
			go c.discard()
			return nil, fmt.Errorf("platform: starting replica %s: sending its spec: %w", spec.Name, err)
		}
	}
	p := &proc{spec: spec, cmd: c.cmd, stdin: c.stdin, start: time.Now(), listening: make(chan struct{}), exited: make(chan struct{}), onChange: onChange}
	// The next spare starts a little after this replica listens (or
	// ended, or took long): starting it at once would take CPU from the
	// program's start-up and the first requests' forwarding, which the
	// waiting requests are waiting for.
	go func() {
		t := time.NewTimer(startTurn)
		defer t.Stop()
		select {
		case <-p.listening:
			t.Reset(spareDelay)
			<-t.C
		case <-p.exited:
		case <-t.C:
		}
		s.refill()
	}()

	var readers sync.WaitGroup
	readers.Go(func() { p.readEvents(c.out, logLine) })
	readers.Go(func() { readLines(c.errOut, func(line string) { p.addLine(line, logLine) }) })
	go func() {
		<-c.waited
		p.err = c.err
		// The replica is gone: so is its program's group, even when the
		// replica was killed before it could kill it.
		if pid := p.appPIDNow(); pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		c.stdin.Close()
		// Read what is left of the output, but not forever: a stray
		// process outside the group may hold the pipe.
		readDone := make(chan struct{})
		go func() { readers.Wait(); close(readDone) }()
		select {
		case <-readDone:
		case <-time.After(2 * time.Second):
		}
		c.out.Close()
		c.errOut.Close()
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
		}
		if (ev.Serve != "" || (ev.Ready != nil && *ev.Ready)) && p.probe != "" {
			p.probe, changed = "", true // ready: no reason to show for not being ready
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
