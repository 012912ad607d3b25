// Package collect gathers values reported from several goroutines, for
// tests of the packages' observer hooks.
package collect

import "sync"

// Log appends every value given to Add; its zero value is ready and it is
// safe for simultaneous use.
type Log[T any] struct {
	mu  sync.Mutex // protects got
	got []T
}

// Add records v.
func (l *Log[T]) Add(v T) {
	l.mu.Lock()
	l.got = append(l.got, v)
	l.mu.Unlock()
}

// All returns a copy of what was recorded, in order.
func (l *Log[T]) All() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.got...)
}
