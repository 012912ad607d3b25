// Package waitlist is the FIFO of waiting requests that the queue's Breaker
// and the activator's throttler share: an intrusive doubly linked list, so
// that a waiter that gives up (its context ended, its deadline passed) leaves
// from the middle in O(1), and whose length can be read without the lock
// that guards the list.
package waitlist

import "sync/atomic"

// Node is one waiter. Value carries what the waiter is handed (a channel,
// say). A Node is in at most one list at a time.
type Node[T any] struct {
	next, prev *Node[T]
	linked     bool
	Value      T
}

// Linked reports whether n is in a list. It is guarded by the list's lock.
func (n *Node[T]) Linked() bool { return n.linked }

// List is a FIFO of nodes. Every method but Len must be called with the
// owner's lock held; Len may be read at any time. The zero value is an
// empty list.
type List[T any] struct {
	head, tail *Node[T]
	n          atomic.Int64
}

// PushBack appends n, which must not be in a list.
func (l *List[T]) PushBack(n *Node[T]) {
	n.prev, n.next, n.linked = l.tail, nil, true
	if l.tail == nil {
		l.head = n
	} else {
		l.tail.next = n
	}
	l.tail = n
	l.n.Add(1)
}

// Front returns the oldest node, or nil.
func (l *List[T]) Front() *Node[T] { return l.head }

// Remove unlinks n, which must be in l, and returns the new length.
func (l *List[T]) Remove(n *Node[T]) int64 {
	if n.prev == nil {
		l.head = n.next
	} else {
		n.prev.next = n.next
	}
	if n.next == nil {
		l.tail = n.prev
	} else {
		n.next.prev = n.prev
	}
	n.prev, n.next, n.linked = nil, nil, false
	return l.n.Add(-1)
}

// PopFront unlinks and returns the oldest node, or nil.
func (l *List[T]) PopFront() *Node[T] {
	n := l.head
	if n != nil {
		l.Remove(n)
	}
	return n
}

// Len returns the number of nodes. It is safe to call without the lock.
func (l *List[T]) Len() int64 { return l.n.Load() }
