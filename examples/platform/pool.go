package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/servingkit/servingkit/revision"
)

// pool is the process scaler backend for one revision, and its supervisor,
// as a ReplicaSet and the kubelet would be: it keeps as many replicas as
// the autoscaler last asked for, each in a slot that restarts its process
// when it exits or fails its liveness or startup probe — at once the first time, then
// with Kubernetes' CrashLoopBackOff (Options.RestartBackOff doubling up to
// Options.MaxRestartBackOff; a process that ran 10 minutes resets it) —
// and it reports why replicas fail as the revision's conditions.
type pool struct {
	p   *Platform
	rev *rev

	// publish serializes changed: each call reads the replicas and hands
	// them on as one step, so a call that read an older set cannot hand it
	// on after a newer one (which would route again to a replica removed
	// and draining).
	publish sync.Mutex

	mu       sync.Mutex     // protects the fields below and every slot's fields
	slots    []*slot        // live slots, oldest first
	draining map[*slot]bool // removed by a scale-down, stopping
	seq      int            // for replica names
	want     int            // the count last asked for
	closed   bool           // stopAll ran: start nothing more
	running  sync.WaitGroup // one per slot goroutine
}

// slot is one replica: a process, restarted as needed.
type slot struct {
	name   string
	ctx    context.Context // ends when the slot is removed
	cancel context.CancelFunc

	proc     *proc     // the current process; nil while backing off
	started  time.Time // when proc started
	restarts int       // processes started after the first
	crashes  int       // crashes in a row, for the back-off
	fail     *exitInfo // the last crash, until a process is ready again
	failTail []string  // the output before the last crash
	retryAt  time.Time // in back-off: when the next process starts
	stuck    bool      // proc did not become ready within the progress deadline
}

// The restart back-off resets after a process ran this long (Kubernetes').
const backOffReset = 10 * time.Minute

func newPool(p *Platform, r *rev) *pool {
	return &pool{p: p, rev: r, draining: map[*slot]bool{}}
}

// scale brings the number of replicas to n. It does not wait: new slots
// start their processes, removed ones drain, in the background.
func (pl *pool) scale(_ context.Context, n int) error {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil
	}
	pl.want = n
	var victims []*slot
	switch cur := len(pl.slots); {
	case n > cur:
		for range n - cur {
			pl.seq++
			s := &slot{name: fmt.Sprintf("%s-%d", pl.rev.name, pl.seq)}
			s.ctx, s.cancel = context.WithCancel(context.Background())
			pl.slots = append(pl.slots, s)
			pl.running.Add(1)
			go pl.supervise(s)
		}
	case n < cur:
		victims = pl.pickVictimsLocked(cur - n)
	}
	pl.mu.Unlock()
	pl.removed(victims)
	return nil
}

// pickVictimsLocked removes n slots: those not serving first (backing off,
// starting), then the least busy (by requests in flight through the Serve
// path), newest first among equals so long-lived replicas stay. pl.mu must
// be held.
func (pl *pool) pickVictimsLocked(n int) []*slot {
	order := slices.Clone(pl.slots)
	slices.Reverse(order)
	rank := func(s *slot) int64 {
		if s.proc == nil || !s.proc.serving() {
			return -1
		}
		return pl.rev.serve.InFlight(s.proc.hs.Serve)
	}
	slices.SortStableFunc(order, func(a, b *slot) int { return int(rank(a) - rank(b)) })
	victims := order[:n]
	pl.slots = slices.DeleteFunc(pl.slots, func(s *slot) bool { return slices.Contains(victims, s) })
	for _, v := range victims {
		pl.draining[v] = true
	}
	return victims
}

// removed takes slots out of service: the Serve path, the activator and
// the reconciler stop sending them requests first, then each drains.
func (pl *pool) removed(victims []*slot) {
	if len(victims) == 0 {
		return
	}
	pl.changed()
	for _, v := range victims {
		v.cancel()
	}
}

// changed tells everyone who routes to the revision which replicas serve
// now, and the reconciler what fails.
func (pl *pool) changed() {
	pl.publish.Lock()
	defer pl.publish.Unlock()
	pl.p.replicasChanged(pl.rev)
	pl.publishFailures()
}

// supervise runs a slot until it is removed: start a process, wait until
// it is ready, serve until it exits, back off, start again.
func (pl *pool) supervise(s *slot) {
	defer pl.running.Done()
	defer func() {
		pl.mu.Lock()
		delete(pl.draining, s)
		pl.mu.Unlock()
	}()
	for s.ctx.Err() == nil {
		pr, err := pl.p.startReplica(s.ctx, pl.rev.replicaSpec(s.name, pl.p.opts), pl.logLine(s.name), pl.changed)
		if s.ctx.Err() != nil {
			if pr != nil {
				_ = pr.stop(time.Second)
			}
			return
		}
		if err != nil {
			pl.crashed(s, nil, &exitInfo{Reason: "StartError", Message: err.Error()})
		} else if !pl.run(s, pr) {
			return
		}
		pl.mu.Lock()
		delay := pl.backOffLocked(s)
		s.retryAt = time.Now().Add(delay)
		pl.mu.Unlock()
		pl.changed()
		if delay > 0 {
			pl.p.log.Warn("replica back-off", "replica", s.name, "delay", delay, "restarts", s.restarts)
		}
		if !sleepCtx(s.ctx, delay) {
			return
		}
		pl.mu.Lock()
		s.restarts++
		s.retryAt = time.Time{}
		pl.mu.Unlock()
		pl.changed() // no longer backing off
	}
}

// run watches one process of the slot. It returns false when the slot was
// removed (the process drained and stopped), true when the process ended
// on its own and should be restarted.
func (pl *pool) run(s *slot, pr *proc) bool {
	pl.mu.Lock()
	s.proc, s.started, s.stuck = pr, pr.start, false
	pl.mu.Unlock()
	deadline := time.NewTimer(pl.rev.progress)
	defer deadline.Stop()
	for waiting := true; waiting; {
		select {
		case <-pr.listening:
			waiting = false
		case <-deadline.C:
			pl.mu.Lock()
			s.stuck = true
			pl.mu.Unlock()
			pl.changed()
		case <-pr.exited:
			pl.crashed(s, pr, nil)
			return true
		case <-s.ctx.Done():
			_ = pr.stop(time.Second)
			return false
		}
	}
	pl.mu.Lock()
	s.stuck, s.fail, s.failTail = false, nil, nil
	pl.mu.Unlock()
	pl.changed()
	select {
	case <-pr.exited:
		pl.crashed(s, pr, nil)
		return true
	case <-s.ctx.Done():
		// Removed: no longer routed (see removed). A request the Serve
		// path or the activator sent just before may still be on its way:
		// wait until none is, then let it drain.
		if !awaitUnrouted(pl.rev.spec.Timeout+10*time.Second, func() int64 { return pl.rev.eps.InFlight(pr.hs.Serve) }) {
			pl.p.log.Warn("replica stop: requests still routed to it", "replica", s.name, "inFlight", pl.rev.eps.InFlight(pr.hs.Serve))
		}
		grace := pl.rev.spec.Timeout + pl.p.opts.DrainQuietPeriod + pl.rev.spec.Grace + 10*time.Second
		if err := pr.stop(grace); err != nil {
			pl.p.log.Warn("replica stop", "replica", s.name, "error", err)
		}
		return false
	}
}

// awaitUnrouted waits until inFlight (the requests the Serve path and the
// activator have on their way to or in a removed replica, see
// gateway.Endpoints.InFlight) is 0, and reports false if it is not within
// limit. Once 0 it stays 0: a removed replica gets no new request.
func awaitUnrouted(limit time.Duration, inFlight func() int64) bool {
	const poll = 5 * time.Millisecond
	deadline := time.Now().Add(limit)
	for inFlight() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(poll)
	}
	return true
}

// crashed records why a slot's process ended (pr's own report, or why it
// could not start).
func (pl *pool) crashed(s *slot, pr *proc, why *exitInfo) {
	var tail []string
	if pr != nil {
		pr.mu.Lock()
		why, tail = pr.exit, slices.Clone(pr.tail)
		pr.mu.Unlock()
		if why == nil {
			why = &exitInfo{Reason: "ReplicaExited", Message: fmt.Sprintf("replica process ended: %v", pr.err)}
			if pr.err == nil {
				why.Message = "replica process ended"
			}
		}
	}
	pl.mu.Lock()
	if pr != nil && time.Since(pr.start) >= backOffReset {
		s.crashes = 0
	}
	s.crashes++
	s.proc, s.fail, s.failTail, s.stuck = nil, why, tail, false
	pl.mu.Unlock()
	pl.p.log.Warn("replica failed", "replica", s.name, "reason", why.Reason, "message", why.Message)
}

// backOffLocked is the wait before the slot's next process: none after
// the first crash, then RestartBackOff doubling up to MaxRestartBackOff.
func (pl *pool) backOffLocked(s *slot) time.Duration {
	if s.crashes <= 1 {
		return 0
	}
	d := pl.p.opts.RestartBackOff
	for i := 2; i < s.crashes && d < pl.p.opts.MaxRestartBackOff; i++ {
		d *= 2
	}
	return min(d, pl.p.opts.MaxRestartBackOff)
}

// publishFailures tells the reconciler why replicas fail, as Knative's
// conditions say it: the last crash on ContainerHealthy (ExitCode<N>,
// StartError, StartupProbeFailed, LivenessProbeFailed), and on ResourcesAvailable a crash loop
// (CrashLoopBackOff) or a replica that did not become ready within the
// progress deadline (ProgressDeadlineExceeded). Each message ends with the
// last lines of the program's output.
func (pl *pool) publishFailures() {
	fs := pl.failures(time.Now())
	if _, err := pl.rev.rec.SetFailures(time.Now(), fs...); err != nil {
		pl.p.log.Error("revision failures", "revision", pl.rev.key, "error", err)
	}
	pl.rev.checkFailed()
}

func (pl *pool) failures(now time.Time) []revision.Failure {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var health, resources *revision.Failure
	for _, s := range pl.slots {
		if s.fail != nil && health == nil {
			health = &revision.Failure{Condition: revision.ContainerHealthy, Reason: s.fail.Reason,
				Message: "Container failed with: " + s.fail.Message + lastOutput(s.failTail)}
		}
		if resources != nil {
			continue
		}
		switch {
		case s.fail != nil && s.proc == nil && s.retryAt.After(now):
			resources = &revision.Failure{Condition: revision.ResourcesAvailable, Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %v restarting failed replica %s (%d restarts): %s%s",
					roundBackOff(s.retryAt.Sub(now)), s.name, s.restarts, s.fail.Message, lastOutput(s.failTail))}
		case s.stuck && s.proc != nil:
			s.proc.mu.Lock()
			why, tail := s.proc.probe, slices.Clone(s.proc.tail)
			s.proc.mu.Unlock()
			if why == "" {
				why = "no readiness check passed"
			}
			resources = &revision.Failure{Condition: revision.ResourcesAvailable, Reason: revision.ReasonProgressDeadlineExceeded,
				Message: fmt.Sprintf("replica %s did not become ready within the progress deadline (%v): %s%s",
					s.name, pl.rev.progress, why, lastOutput(tail))}
		}
	}
	var fs []revision.Failure
	for _, f := range []*revision.Failure{resources, health} {
		if f != nil {
			fs = append(fs, *f)
		}
	}
	return fs
}

// roundBackOff rounds what is left of a back-off for messages: to the
// second, or to 100 ms under a second (never "0s" while one remains).
func roundBackOff(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return max(d.Round(100*time.Millisecond), 100*time.Millisecond)
}

func lastOutput(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "; last output: " + strings.Join(lines, " | ")
}

// stopAll drains every replica and waits for them (platform shutdown,
// service deletion).
func (pl *pool) stopAll() {
	pl.mu.Lock()
	pl.closed = true
	all := pl.slots
	pl.slots = nil
	for _, v := range all {
		pl.draining[v] = true
	}
	pl.mu.Unlock()
	pl.removed(all)
	pl.running.Wait()
}

// readyReplicas returns the replicas that serve.
func (pl *pool) readyReplicas() []*proc {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var out []*proc
	for _, s := range pl.slots {
		if s.proc != nil && s.proc.serving() {
			out = append(out, s.proc)
		}
	}
	return out
}

// starting reports whether a replica is on its way to serving: a process
// that has not yet passed its readiness check nor missed the progress
// deadline, or a slot about to start one with no back-off to wait (after
// its first crash). A replica that passed its readiness check and then
// failed it is not on its way.
func (pl *pool) starting(now time.Time) bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, s := range pl.slots {
		switch {
		case s.proc != nil:
			if !s.stuck && !s.proc.isListening() {
				return true
			}
		case !s.retryAt.After(now):
			return true
		}
	}
	return false
}

func (pl *pool) counts() (ready, starting, draining int) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, s := range pl.slots {
		if s.proc != nil && s.proc.serving() {
			ready++
		} else {
			starting++
		}
	}
	return ready, starting, len(pl.draining)
}

// replicaStatus describes every replica, draining ones last.
func (pl *pool) replicaStatus(now time.Time) []ReplicaStatus {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var out []ReplicaStatus
	describe := func(s *slot, draining bool) ReplicaStatus {
		rs := ReplicaStatus{Name: s.name, Restarts: s.restarts}
		switch {
		case draining:
			rs.State = "Draining"
		case s.proc == nil && s.fail != nil:
			rs.State = "CrashLoopBackOff"
			if s.retryAt.After(now) {
				rs.RetryIn = s.retryAt.Sub(now).Round(100 * time.Millisecond).String()
			}
		case s.proc == nil:
			rs.State = "Starting"
		case s.proc.serving():
			rs.State = "Ready"
		case s.proc.isListening():
			rs.State = "NotReady"
		default:
			rs.State = "Starting"
		}
		if s.fail != nil {
			rs.LastFailure = s.fail.Reason + ": " + s.fail.Message
		}
		if pr := s.proc; pr != nil {
			rs.PID = pr.cmd.Process.Pid
			pr.mu.Lock()
			rs.AppPID, rs.Probe = pr.appPID, pr.probe
			pr.mu.Unlock()
			if pr.isListening() {
				rs.Serve = pr.hs.Serve
				rs.Metrics = "http://" + pr.hs.Admin + "/metrics"
			}
		}
		return rs
	}
	for _, s := range pl.slots {
		out = append(out, describe(s, false))
	}
	for s := range pl.draining {
		out = append(out, describe(s, true))
	}
	return out
}
