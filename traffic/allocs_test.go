package traffic

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSplitPickAllocs pins "picks are O(1) and allocation-free": random,
// sticky and by index.
func TestSplitPickAllocs(t *testing.T) {
	s, err := NewSplit([]Share{sh("a", 90), sh("b", 10)})
	require.NoError(t, err)
	const key = "4f1c2a9e8b7d6c5f4f1c2a9e8b7d6c5f"
	var got string
	assert.Zero(t, testing.AllocsPerRun(1000, func() { got = s.Random() }), "Random")
	assert.Zero(t, testing.AllocsPerRun(1000, func() { got = s.Sticky(key) }), "Sticky")
	assert.Zero(t, testing.AllocsPerRun(1000, func() { got = s.Revision(s.Index(Hash(key))) }), "Index")
	assert.NotEmpty(t, got)
}

// TestHashAllocs pins "Hash does not allocate".
func TestHashAllocs(t *testing.T) {
	var h uint64
	assert.Zero(t, testing.AllocsPerRun(1000, func() { h += Hash("4f1c2a9e8b7d6c5f4f1c2a9e8b7d6c5f") }))
	assert.NotZero(t, h)
}
