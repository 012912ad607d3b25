package autoscaler

import (
	"math"
	"time"
)

// delayBucket is the width of one slot of the scale-down delay window: the
// tick interval, as in Knative (max.NewTimeWindow(delay, tickInterval)).
const delayBucket = 2 * time.Second

// delayWindow keeps the maximum of the values recorded over the last
// ScaleDownDelay: Knative's aggregation/max.TimeWindow. Entries are held in
// a ring in ascending slot order with descending values ("descending
// maxima"), so the front is always the current maximum and a record costs
// amortized O(1).
type delayWindow struct {
	entries       []delayEntry
	first, length int
}

type delayEntry struct {
	value int32
	slot  int64 // Unix seconds / 2
}

func newDelayWindow(delay time.Duration) *delayWindow {
	return &delayWindow{entries: make([]delayEntry, delaySlots(delay))}
}

func delaySlots(delay time.Duration) int {
	return int(math.Ceil(float64(delay) / float64(delayBucket)))
}

func (m *delayWindow) at(i int) *delayEntry { return &m.entries[i%len(m.entries)] }

// record adds v at now's slot.
func (m *delayWindow) record(now time.Time, v int32) {
	m.recordSlot(now.Unix()/int64(delayBucket/time.Second), v)
}

func (m *delayWindow) recordSlot(slot int64, v int32) {
	// Values not above v can never be the maximum again: v is newer.
	for m.length > 0 && v >= m.at(m.first+m.length-1).value {
		m.length--
	}
	// Drop entries that have slid out of the window (oldest are first).
	for m.length > 0 && slot-m.entries[m.first].slot >= int64(len(m.entries)) {
		m.length--
		m.first++
		if m.first == len(m.entries) {
			m.first = 0
		}
	}
	// Two records in one slot keep the larger.
	if m.length > 0 {
		if last := m.at(m.first + m.length - 1); last.slot == slot {
			v = max(v, last.value)
			m.length--
		}
	}
	*m.at(m.first + m.length) = delayEntry{value: v, slot: slot}
	m.length++
}

// current is the maximum over the window; record must have been called.
func (m *delayWindow) current() int32 { return m.entries[m.first].value }

// resized returns a window for a new delay holding the entries that still
// fit, oldest first, so a pending scale-down keeps its place.
func (m *delayWindow) resized(delay time.Duration) *delayWindow {
	n := newDelayWindow(delay)
	for i := 0; i < m.length; i++ {
		e := m.at(m.first + i)
		n.recordSlot(e.slot, e.value)
	}
	return n
}
