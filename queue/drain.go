package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrHijackedClosed is returned (wrapped) by Drain when hijacked connections
// were still open HijackedDrainTimeout after the quiet period ended, or were
// hijacked after that. Drain closed them; every other request had finished.
var ErrHijackedClosed = errors.New("queue: hijacked connections closed at the drain deadline")

// Drain shuts the handler down without dropping a request. At once,
// CheckReady (and so every readiness probe) starts failing with
// ErrDraining. The handler keeps serving whatever still arrives, and Drain
// waits until QuietPeriod has passed with no new request (each non-probe
// request restarts it; MaxQuietPeriod caps the whole phase). Then it waits
// until every accepted request has finished, and every hijacked connection
// has closed — those for at most HijackedDrainTimeout, after which they are
// closed and Drain returns an error wrapping ErrHijackedClosed.
//
// The first call starts the drain on a goroutine of its own; every call
// waits for the same drain and returns its result, or ctx.Err() if ctx ends
// first (the drain goes on). A request that streams (server-sent events, a
// gRPC stream) is waited for until it ends: bound it with TotalTimeout or
// with ctx.
//
// After Drain returns, shut the server down (http.Server.Shutdown); a
// request that arrives in between is still served.
func (h *Handler) Drain(ctx context.Context) error {
	h.drainOnce.Do(h.startDrain)
	select {
	case <-h.drained:
		return h.drainErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Draining reports whether Drain has been called.
func (h *Handler) Draining() bool { return h.draining.Load() }

func (h *Handler) startDrain() {
	h.drainWake = make(chan struct{}, 1)
	h.drained = make(chan struct{})
	start := h.clock.Now()
	h.lastRequest.Store(int64(start.Sub(h.epoch)))
	h.draining.Store(true)
	go h.runDrain(start)
}

// noteRequest moves the end of the quiet period to now + QuietPeriod.
func (h *Handler) noteRequest(now time.Time) {
	t := int64(now.Sub(h.epoch))
	for {
		old := h.lastRequest.Load()
		if t <= old || h.lastRequest.CompareAndSwap(old, t) {
			return
		}
	}
}

func (h *Handler) runDrain(start time.Time) {
	h.logger.Info("queue: draining", "quietPeriod", h.quiet, "maxQuietPeriod", h.maxQuiet)
	// Requests note their arrival without waking us; we sleep until the
	// quiet period would end and look again.
	limit := start.Add(h.maxQuiet)
	for {
		// Two Adds: their sum as a Duration could overflow for a quiet
		// period meant as "forever".
		end := h.epoch.Add(time.Duration(h.lastRequest.Load())).Add(h.quiet)
		if end.After(limit) {
			end = limit
		}
		now := h.clock.Now()
		if !now.Before(end) {
			break
		}
		h.clock.Sleep(end.Sub(now))
	}
	h.logger.Info("queue: quiet period over, waiting for requests in flight", "active", h.active.Load(), "hijacked", h.hijacked.Load())

	timer := h.clock.Timer(h.hijackedDrainTime)
	defer timer.Stop()
	capC := timer.C
	capped := false
	closed := 0
	for h.active.Load() != 0 || h.hijacked.Load() != 0 {
		select {
		case <-h.drainWake:
		case <-capC:
			capped, capC = true, nil
		}
		if capped {
			// Past the cap, a connection is closed as soon as it is seen:
			// also one hijacked by a request that was still waiting or
			// running when the cap passed. Closing it ends its request once
			// its handler has returned; we wait for that.
			if n := h.closeHijacked(); n > 0 {
				closed += n
				h.logger.Warn("queue: closed hijacked connections at the drain deadline", "connections", n, "hijackedDrainTimeout", h.hijackedDrainTime)
			}
		}
	}
	if closed > 0 {
		h.drainErr = fmt.Errorf("%w: %d still open after HijackedDrainTimeout (%v)", ErrHijackedClosed, closed, h.hijackedDrainTime)
	}
	h.logger.Info("queue: drained")
	close(h.drained)
}
