package queue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/internal/waitlist"
)

// MaxCapacity is the largest concurrency a Breaker can hold, Knative's
// MaxBreakerCapacity. A breaker at this capacity is in effect unlimited.
const MaxCapacity = math.MaxInt32

// ErrQueueFull is returned by Breaker.Acquire (and Do) when every slot is in
// use and QueueDepth requests are already waiting. It is returned at once.
var ErrQueueFull = errors.New("queue: pending request queue full")

// ErrQueueTimeout is returned by Breaker.Acquire (and Do) when a request
// waited MaxWait without getting a slot. Use errors.As with *WaitError to
// learn how long it waited.
var ErrQueueTimeout = errors.New("queue: request waited too long in the queue")

// WaitError is the error returned when a request gave up waiting for a
// slot. It wraps ErrQueueTimeout (MaxWait passed) or the context's error.
type WaitError struct {
	Waited time.Duration // how long the request waited
	Err    error         // ErrQueueTimeout, context.Canceled or context.DeadlineExceeded
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("%v after waiting %v for a slot", e.Err, e.Waited.Round(time.Millisecond))
}

func (e *WaitError) Unwrap() error { return e.Err }

// BreakerParams configure a Breaker. The zero value is not useful: set
// MaxConcurrency at least.
type BreakerParams struct {
	// QueueDepth is how many requests may wait for a slot at once. Zero
	// means none may wait: a request that finds every slot busy gets
	// ErrQueueFull. Range [0, MaxCapacity]. Knative's queue-proxy uses
	// 10 × container concurrency.
	QueueDepth int
	// MaxConcurrency is the largest capacity the breaker may be set to, in
	// requests. Range [0, MaxCapacity].
	MaxConcurrency int
	// InitialCapacity is the number of requests allowed in flight at first.
	// Range [0, MaxConcurrency].
	InitialCapacity int
	// MaxWait bounds how long a request may wait in the queue before it is
	// rejected with ErrQueueTimeout. Zero means no bound but the request's
	// context (Knative's behaviour). Must not be negative.
	MaxWait time.Duration
	// Clock measures MaxWait and the wait reported in WaitError. Nil means
	// the real clock.
	Clock clock.Clock
}

// Validate reports every out-of-range field, naming the field, its value and
// the allowed range.
func (p BreakerParams) Validate() error {
	var errs []error
	if p.QueueDepth < 0 || p.QueueDepth > MaxCapacity {
		errs = append(errs, fmt.Errorf("queue: BreakerParams.QueueDepth = %d, must be in [0, %d]", p.QueueDepth, MaxCapacity))
	}
	if p.MaxConcurrency < 0 || p.MaxConcurrency > MaxCapacity {
		errs = append(errs, fmt.Errorf("queue: BreakerParams.MaxConcurrency = %d, must be in [0, %d]", p.MaxConcurrency, MaxCapacity))
	}
	if p.InitialCapacity < 0 || p.InitialCapacity > p.MaxConcurrency {
		errs = append(errs, fmt.Errorf("queue: BreakerParams.InitialCapacity = %d, must be in [0, MaxConcurrency=%d]", p.InitialCapacity, p.MaxConcurrency))
	}
	if p.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("queue: BreakerParams.MaxWait = %v, must be >= 0 (0 means no limit)", p.MaxWait))
	}
	return errors.Join(errs...)
}

// The breaker's state word packs the capacity, the number of slots in use
// and a flag saying that requests are waiting:
//
//	bit 63      waiting flag
//	bits 62–32  capacity (31 bits)
//	bits 30–0   in use (31 bits)
const (
	waitingFlag = uint64(1) << 63
	capShift    = 32
	fieldMask   = uint64(math.MaxInt32)
)

func unpack(s uint64) (capacity, inUse uint64, waiting bool) {
	return (s >> capShift) & fieldMask, s & fieldMask, s&waitingFlag != 0
}

// Breaker lets at most a given number of requests run at once and holds a
// bounded queue of requests waiting for a slot. The capacity can change while
// requests run; a decrease does not pre-empt requests already running.
//
// Waiting requests get slots in arrival order (FIFO), and a request that
// arrives while others wait queues behind them rather than barging in.
//
// The fast path — a slot is free and nobody waits — is one compare-and-swap
// to acquire and one to release, with no lock and no allocation. Only
// waiting takes the mutex: the waiting flag in the state word makes every
// acquire and release that could race with a waiter take the slow path,
// where a released slot is handed straight to the oldest waiter.
//
// A Breaker is safe for simultaneous use.
type Breaker struct {
	state atomic.Uint64

	maxConcurrency uint64
	queueDepth     int
	maxWait        time.Duration
	clock          clock.Clock

	mu      sync.Mutex // protects waiters; changes of waitingFlag happen under it
	waiters waitlist.List[chan struct{}]
}

// A waiter is a waitlist node whose value is a channel: a slot is handed
// over by sending on it (buffered, so the sender never blocks) after
// unlinking the waiter, both under mu.
type waiter = waitlist.Node[chan struct{}]

// NewBreaker returns a Breaker, or an error naming each invalid parameter.
func NewBreaker(p BreakerParams) (*Breaker, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := &Breaker{
		maxConcurrency: uint64(p.MaxConcurrency),
		queueDepth:     p.QueueDepth,
		maxWait:        p.MaxWait,
		clock:          p.Clock,
	}
	if b.clock == nil {
		b.clock = clock.New()
	}
	b.state.Store(uint64(p.InitialCapacity) << capShift)
	return b, nil
}

// TryAcquire takes a slot if one is free and nobody is waiting, without
// blocking. On success the caller must call Release once.
func (b *Breaker) TryAcquire() bool {
	for {
		s := b.state.Load()
		capacity, inUse, waiting := unpack(s)
		if waiting || inUse >= capacity {
			return false
		}
		if b.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// Acquire takes a slot, waiting in line if none is free. It returns
// ErrQueueFull at once if QueueDepth requests already wait; a *WaitError
// wrapping ErrQueueTimeout if MaxWait passes first; or a *WaitError wrapping
// ctx.Err() if ctx ends first. On an error the breaker is left unchanged. On
// success the caller must call Release once.
func (b *Breaker) Acquire(ctx context.Context) error {
	if b.TryAcquire() {
		return nil
	}
	return b.acquireSlow(ctx)
}

func (b *Breaker) acquireSlow(ctx context.Context) error {
	b.mu.Lock()
	for {
		s := b.state.Load()
		capacity, inUse, waiting := unpack(s)
		if !waiting && inUse < capacity {
			// A slot freed up while we took the lock, and nobody is ahead.
			if b.state.CompareAndSwap(s, s+1) {
				b.mu.Unlock()
				return nil
			}
			continue
		}
		if b.waiters.Len() >= int64(b.queueDepth) {
			b.mu.Unlock()
			return ErrQueueFull
		}
		// Raise the flag before queueing, so that every release from now on
		// takes the slow path and sees us. If the CAS loses to a release,
		// look again: the slot it freed may be ours.
		if waiting || b.state.CompareAndSwap(s, s|waitingFlag) {
			break
		}
	}
	// Waiters are not pooled: a channel made inside a testing/synctest
	// bubble must not be reused outside it, and waiting is the slow path.
	w := &waiter{Value: make(chan struct{}, 1)}
	b.waiters.PushBack(w)
	b.mu.Unlock()

	start := b.clock.Now()
	var timeout <-chan time.Time
	if b.maxWait > 0 {
		t := b.clock.Timer(b.maxWait)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-w.Value:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = ErrQueueTimeout
	}

	b.mu.Lock()
	if w.Linked() {
		b.unlink(w)
		b.mu.Unlock()
	} else {
		// The slot was handed to us as we gave up: pass it on.
		b.mu.Unlock()
		<-w.Value
		b.Release()
	}
	return &WaitError{Waited: b.clock.Since(start), Err: err}
}

// Release returns a slot taken by Acquire or TryAcquire. If requests wait
// and the capacity allows, the slot goes straight to the oldest one.
// Calling Release without a matching acquire panics.
func (b *Breaker) Release() {
	for {
		s := b.state.Load()
		_, inUse, waiting := unpack(s)
		if inUse == 0 {
			panic("queue: Breaker.Release called without a matching Acquire")
		}
		if waiting {
			b.releaseSlow()
			return
		}
		if b.state.CompareAndSwap(s, s-1) {
			return
		}
	}
}

func (b *Breaker) releaseSlow() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		s := b.state.Load()
		capacity, inUse, _ := unpack(s)
		if b.waiters.Len() > 0 && inUse <= capacity {
			// Hand the slot over: in use stays the same.
			b.handOff()
			return
		}
		// Capacity shrank below what runs (or the last waiter just left):
		// give the slot back.
		if b.state.CompareAndSwap(s, s-1) {
			return
		}
	}
}

// handOff gives a held slot to the oldest waiter. b.mu must be held and the
// list must not be empty.
func (b *Breaker) handOff() {
	w := b.waiters.Front()
	b.unlink(w)
	w.Value <- struct{}{}
}

// unlink removes w from the list and clears the waiting flag if the list is
// now empty. b.mu must be held.
func (b *Breaker) unlink(w *waiter) {
	if b.waiters.Remove(w) == 0 {
		for {
			s := b.state.Load()
			if b.state.CompareAndSwap(s, s&^waitingFlag) {
				break
			}
		}
	}
}

// Do runs fn once a slot is free, then releases the slot. It returns the
// error of Acquire without running fn.
func (b *Breaker) Do(ctx context.Context, fn func()) error {
	if err := b.Acquire(ctx); err != nil {
		return err
	}
	defer b.Release()
	fn()
	return nil
}

// UpdateConcurrency sets the capacity to n. An increase hands the new slots
// to waiting requests at once, oldest first; a decrease lets requests
// already running finish. It returns an error, and changes nothing, if n is
// outside [0, MaxConcurrency].
func (b *Breaker) UpdateConcurrency(n int) error {
	if n < 0 || uint64(n) > b.maxConcurrency {
		return fmt.Errorf("queue: UpdateConcurrency(%d): must be in [0, MaxConcurrency=%d]", n, b.maxConcurrency)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		s := b.state.Load()
		next := s&^(fieldMask<<capShift) | uint64(n)<<capShift
		if b.state.CompareAndSwap(s, next) {
			break
		}
	}
	// Fill the new room from the queue. The flag is set whenever the list is
	// non-empty, so no fast-path acquire can take these slots first.
	for b.waiters.Len() > 0 {
		s := b.state.Load()
		capacity, inUse, _ := unpack(s)
		if inUse >= capacity {
			break
		}
		if b.state.CompareAndSwap(s, s+1) {
			b.handOff()
		}
	}
	return nil
}

// Capacity returns the current capacity.
func (b *Breaker) Capacity() int {
	c, _, _ := unpack(b.state.Load())
	return int(c)
}

// InFlight returns the number of slots in use (requests running).
func (b *Breaker) InFlight() int {
	_, in, _ := unpack(b.state.Load())
	return int(in)
}

// Waiting returns the number of requests waiting for a slot.
func (b *Breaker) Waiting() int { return int(b.waiters.Len()) }

// Pending returns the requests running plus those waiting, Knative's
// InFlight (its queue-depth gauge).
func (b *Breaker) Pending() int { return b.InFlight() + b.Waiting() }
