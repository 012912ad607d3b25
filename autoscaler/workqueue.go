package autoscaler

import (
	"context"
	"sync"
)

// workQueue is a FIFO of revisions with work pending (a Scale call, a
// scrape), served by a pool of goroutines. A revision is in it at most once:
// its owner keeps a flag (entry.queued, entry.scraping) and pushes only when
// the flag was clear.
type workQueue struct {
	mu      sync.Mutex // protects items, head, pending, idle
	items   []*entry
	head    int
	pending int           // pushed and not yet done
	idle    chan struct{} // closed when pending drops to 0; nil if nobody waits
	wake    chan struct{} // one token: "there may be items"
}

func newWorkQueue() *workQueue { return &workQueue{wake: make(chan struct{}, 1)} }

func (q *workQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push adds new work for e.
func (q *workQueue) push(e *entry) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.pending++
	q.mu.Unlock()
	q.signal()
}

// requeue puts e back at the end without counting new work: it is still
// pending from its earlier push.
func (q *workQueue) requeue(e *entry) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	q.signal()
}

// pop waits for the next item; ok is false when ctx is done, even if items
// are left (they would only be handed a cancelled ctx).
func (q *workQueue) pop(ctx context.Context) (e *entry, ok bool) {
	for {
		if ctx.Err() != nil {
			return nil, false
		}
		q.mu.Lock()
		if q.head < len(q.items) {
			e = q.items[q.head]
			q.items[q.head] = nil
			q.head++
			more := q.head < len(q.items)
			if !more {
				q.items, q.head = q.items[:0], 0
			} else if q.head > 1024 && q.head > len(q.items)/2 {
				n := copy(q.items, q.items[q.head:])
				clear(q.items[n:])
				q.items, q.head = q.items[:n], 0
			}
			q.mu.Unlock()
			if more {
				q.signal() // another worker may take the next one
			}
			return e, true
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// done finishes one pushed item.
func (q *workQueue) done() {
	q.mu.Lock()
	q.pending--
	if q.pending == 0 && q.idle != nil {
		close(q.idle)
		q.idle = nil
	}
	q.mu.Unlock()
}

// wait blocks until no work is pending or ctx is done.
func (q *workQueue) wait(ctx context.Context) error {
	q.mu.Lock()
	if q.pending == 0 {
		q.mu.Unlock()
		return nil
	}
	if q.idle == nil {
		q.idle = make(chan struct{})
	}
	idle := q.idle
	q.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
