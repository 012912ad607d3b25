package queue

import (
	"sync"
	"time"

	"github.com/benbjohnson/clock"
)

// deadlines is the one timer of a Handler with timeouts: a min-heap of its
// timed requests by when each must next be looked at, and a timer set no
// later than the earliest of them.
//
// A request is in the heap from its arrival until its ServeHTTP goroutine
// takes it out (the application returned, a timeout answered, or the
// connection was hijacked), and only the heap signals a request's wake-up,
// under mu, after taking it out: so no firing reaches a request that has
// left, nor the exchange's next request. The timer is only a hint: it may
// fire early (the request it was set for has left), and then it is set for
// what is now first. Requests far shorter than their timeout, the common
// case, cost a push and a removal under mu; the timer is reset only when a
// request becomes the first to look at.
type deadlines struct {
	h *Handler

	mu   sync.Mutex
	heap []*exchange // by checkAt; each knows its index (heapIndex-1)
	at   time.Time   // when the timer fires; zero: stopped
	t    *time.Timer
	c    *clock.Timer
}

// init makes the timer, stopped, with the Handler: a timer made in a
// testing/synctest bubble belongs to it, and a clock.Mock's must exist
// before a test advances the clock.
func (d *deadlines) init(h *Handler) {
	d.h = h
	if h.real {
		d.t = time.AfterFunc(time.Hour, d.fire)
		d.t.Stop()
	} else {
		d.c = h.clock.AfterFunc(time.Hour, d.fire)
		d.c.Stop()
	}
}

// set puts ex in the heap (or moves it) to be looked at at, after now.
func (d *deadlines) set(ex *exchange, now, at time.Time) {
	d.mu.Lock()
	ex.checkAt = at
	if ex.heapIndex == 0 {
		d.heap = append(d.heap, ex)
		ex.heapIndex = len(d.heap)
		d.up(len(d.heap) - 1)
	} else {
		d.fix(ex.heapIndex - 1)
	}
	if d.at.IsZero() || at.Before(d.at) {
		d.armLocked(now, at)
	}
	d.mu.Unlock()
}

// remove takes ex out of the heap, if it is in. The timer is left as it is:
// a firing that finds nothing to do sets it for what is first.
func (d *deadlines) remove(ex *exchange) {
	d.mu.Lock()
	if i := ex.heapIndex - 1; i >= 0 {
		d.removeAt(i)
	}
	d.mu.Unlock()
}

// fire is the timer's function: it wakes every request whose time has come,
// taking it out of the heap, and sets the timer for the first one left.
func (d *deadlines) fire() {
	now := d.h.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at = time.Time{}
	for len(d.heap) > 0 && !d.heap[0].checkAt.After(now) {
		ex := d.heap[0]
		d.removeAt(0)
		ex.wake.signal()
	}
	if len(d.heap) > 0 {
		d.armLocked(now, d.heap[0].checkAt)
	}
}

func (d *deadlines) armLocked(now, at time.Time) {
	d.at = at
	wait := max(at.Sub(now), 0)
	if d.t != nil {
		d.t.Reset(wait)
	} else {
		d.c.Reset(wait)
	}
}

// The heap, by hand rather than container/heap: its interface calls and
// boxing would cost the hot path.

func (d *deadlines) removeAt(i int) {
	last := len(d.heap) - 1
	ex := d.heap[i]
	if i != last {
		d.swap(i, last)
	}
	d.heap[last] = nil
	d.heap = d.heap[:last]
	ex.heapIndex = 0
	if i != last {
		d.fix(i)
	}
}

func (d *deadlines) fix(i int) {
	if !d.down(i) {
		d.up(i)
	}
}

func (d *deadlines) less(i, j int) bool { return d.heap[i].checkAt.Before(d.heap[j].checkAt) }

func (d *deadlines) swap(i, j int) {
	d.heap[i], d.heap[j] = d.heap[j], d.heap[i]
	d.heap[i].heapIndex = i + 1
	d.heap[j].heapIndex = j + 1
}

func (d *deadlines) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !d.less(j, i) {
			break
		}
		d.swap(i, j)
		j = i
	}
}

// down reports whether the element at i moved.
func (d *deadlines) down(i0 int) bool {
	i, n := i0, len(d.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && d.less(r, l) {
			j = r
		}
		if !d.less(j, i) {
			break
		}
		d.swap(i, j)
		i = j
	}
	return i > i0
}
