package queue

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
)

// timedShard is one of a timed Handler's shards: its exchanges' deadlines
// and the slab their appRequests come from. An exchange belongs to one
// shard for life, given round robin when it is made; the exchanges are
// pooled per P (sync.Pool), so requests on different Ps mostly touch
// different shards, and the shards' locks and slab counters are not shared
// between cores. There are GOMAXPROCS shards, at most maxTimedShards.
type timedShard struct {
	deadlines deadlines
	slab      atomic.Pointer[appSlab]
	_         [64]byte // keeps neighbouring shards' hot words apart
}

const maxTimedShards = 16

// deadlines is the one timer of a timed Handler's shard: a min-heap of its
// timed requests by when each must next be looked at, and a timer set no
// later than the earliest of them.
//
// A request is in the heap from its arrival until its ServeHTTP goroutine
// takes it out when the application returns, or until the timer's function
// takes it out to look at it (see exchange.expire): then it answers a
// timeout that has passed, or puts the request back for its next deadline.
// The timer is only a hint: it may fire early (the request it was set for
// has left), and then it is set for what is now first. Requests far shorter
// than their timeout, the common case, cost a push and a removal under mu;
// the timer is reset only when a request becomes the first to look at.
//
// The timer's function runs on a goroutine of its own at each firing (as
// time.AfterFunc's and clock.Mock's do), and answers a timeout there,
// writing to the client's connection: it does so outside mu, so that a
// client slow to read delays no other request's timeout, nor any request's
// arrival. Requests due at the same firing are looked at on a goroutine
// each but the first, for the same reason.
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

// fire is the timer's function: it takes every request whose time has come
// out of the heap, sets the timer for the first one left, and looks at each
// (exchange.expire) once mu is released. A request in the heap has not
// ended (its ServeHTTP takes it out first), so its reference count is not
// zero; the reference taken here keeps its exchange from the pool until
// expire is done with it.
func (d *deadlines) fire() {
	now := d.h.now()
	var first *exchange
	d.mu.Lock()
	d.at = time.Time{}
	for len(d.heap) > 0 && !d.heap[0].checkAt.After(now) {
		ex := d.heap[0]
		d.removeAt(0)
		ex.refs.Add(1)
		if first == nil {
			first = ex
		} else {
			go ex.expire()
		}
	}
	if len(d.heap) > 0 {
		d.armLocked(now, d.heap[0].checkAt)
	}
	d.mu.Unlock()
	if first != nil {
		first.expire()
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
