package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// pool is the process scaler backend for one revision: it starts replica
// processes on scale-up and drains them on scale-down.
type pool struct {
	p   *Platform
	rev *rev

	mu       sync.Mutex     // protects the fields below
	ready    []*proc        // serving, oldest first
	starting int            // being started
	draining map[*proc]bool // sent SIGTERM, not yet exited
	seq      int            // for replica names
	lastErr  error          // the last start failure, for status
	drains   sync.WaitGroup // one per draining replica
	want     int            // the count last asked for
	closed   bool           // stopAll ran: start nothing more
}

func newPool(p *Platform, r *rev) *pool {
	return &pool{p: p, rev: r, draining: map[*proc]bool{}}
}

// scale brings the number of ready and starting replicas to n. Starting is
// synchronous (the autoscaler's worker waits for the replicas to listen, so
// a failure is retried on its next tick); draining is not.
func (pl *pool) scale(ctx context.Context, n int) error {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil
	}
	pl.want = n
	cur := len(pl.ready) + pl.starting
	switch {
	case n > cur:
		add := n - cur
		pl.starting += add
		names := make([]string, add)
		for i := range names {
			pl.seq++
			names[i] = fmt.Sprintf("%s-%d", pl.rev.name, pl.seq)
		}
		pl.mu.Unlock()
		return pl.start(ctx, names)
	case n < cur:
		pl.mu.Unlock()
		pl.trim()
		return nil
	}
	pl.mu.Unlock()
	return nil
}

// trim drains ready replicas beyond the count last asked for. Replicas
// still starting count toward it; when they are up, trim runs again, so a
// scale-down that arrives during a start is not lost (the autoscaler calls
// Scale only when its count changes).
func (pl *pool) trim() {
	pl.mu.Lock()
	extra := min(len(pl.ready)+pl.starting-pl.want, len(pl.ready))
	if pl.closed || extra <= 0 {
		pl.mu.Unlock()
		return
	}
	victims := pl.pickVictims(extra)
	pl.mu.Unlock()
	pl.p.replicasChanged(pl.rev)
	for _, v := range victims {
		go pl.drain(v)
	}
}

func (pl *pool) start(ctx context.Context, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var g errgroup.Group
	for _, name := range names {
		g.Go(func() error {
			pr, err := pl.p.startReplica(ctx, pl.rev.replicaSpec(name, pl.p.opts))
			pl.mu.Lock()
			pl.starting--
			if err != nil {
				pl.lastErr = err
				pl.mu.Unlock()
				return err
			}
			if pl.closed {
				// The platform stopped while this replica started.
				pl.mu.Unlock()
				_ = pr.stop(time.Second)
				return nil
			}
			pl.ready = append(pl.ready, pr)
			pl.mu.Unlock()
			go pl.watch(pr)
			return nil
		})
	}
	err := g.Wait()
	pl.p.replicasChanged(pl.rev)
	pl.trim()
	return err
}

// pickVictims removes n replicas from the ready set, the least busy first
// (by requests in flight through the Serve path), newest first among equals
// so long-lived replicas stay. pl.mu must be held.
func (pl *pool) pickVictims(n int) []*proc {
	order := slices.Clone(pl.ready)
	slices.Reverse(order)
	slices.SortStableFunc(order, func(a, b *proc) int {
		return int(pl.rev.serve.InFlight(a.hs.Serve) - pl.rev.serve.InFlight(b.hs.Serve))
	})
	victims := order[:n]
	pl.ready = slices.DeleteFunc(pl.ready, func(p *proc) bool { return slices.Contains(victims, p) })
	for _, v := range victims {
		pl.draining[v] = true
		pl.drains.Add(1)
	}
	return victims
}

// drain stops a replica that no longer receives new requests: SIGTERM makes
// its queue finish what it accepted.
func (pl *pool) drain(pr *proc) {
	grace := pl.rev.spec.Timeout + pl.p.opts.DrainQuietPeriod + 10*time.Second
	if err := pr.stop(grace); err != nil {
		pl.p.log.Warn("replica stop", "replica", pr.spec.Name, "error", err)
	}
	pl.mu.Lock()
	delete(pl.draining, pr)
	pl.mu.Unlock()
	pl.drains.Done()
}

// watch notices a replica that exits on its own (a crash) and drops it.
func (pl *pool) watch(pr *proc) {
	<-pr.exited
	pl.mu.Lock()
	i := slices.Index(pl.ready, pr)
	if i >= 0 {
		pl.ready = slices.Delete(pl.ready, i, i+1)
		pl.lastErr = fmt.Errorf("replica %s exited: %v", pr.spec.Name, pr.err)
	}
	pl.mu.Unlock()
	if i >= 0 {
		pl.p.log.Warn("replica exited unexpectedly", "replica", pr.spec.Name, "error", pr.err)
		pl.p.replicasChanged(pl.rev)
	}
}

// stopAll drains every replica and waits for them (platform shutdown).
func (pl *pool) stopAll() {
	pl.mu.Lock()
	pl.closed = true
	all := slices.Clone(pl.ready)
	pl.ready = nil
	for _, v := range all {
		pl.draining[v] = true
		pl.drains.Add(1)
	}
	pl.mu.Unlock()
	pl.p.replicasChanged(pl.rev)
	for _, v := range all {
		go pl.drain(v)
	}
	pl.drains.Wait()
}

// readyReplicas returns the ready replicas.
func (pl *pool) readyReplicas() []*proc {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return slices.Clone(pl.ready)
}

func (pl *pool) counts() (ready, starting, draining int) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return len(pl.ready), pl.starting, len(pl.draining)
}
