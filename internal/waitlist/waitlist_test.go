package waitlist

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func values(l *List[int]) []int {
	var out []int
	for n := l.Front(); n != nil; n = n.next {
		out = append(out, n.Value)
	}
	return out
}

func TestFIFOAndRemoveFromTheMiddle(t *testing.T) {
	var l List[int]
	nodes := make([]*Node[int], 5)
	for i := range nodes {
		nodes[i] = &Node[int]{Value: i}
		l.PushBack(nodes[i])
	}
	assert.Equal(t, []int{0, 1, 2, 3, 4}, values(&l))
	assert.Equal(t, int64(4), l.Remove(nodes[2]))
	assert.False(t, nodes[2].Linked())
	assert.Equal(t, []int{0, 1, 3, 4}, values(&l))
	l.Remove(nodes[4]) // the tail
	l.Remove(nodes[0]) // the head
	assert.Equal(t, []int{1, 3}, values(&l))
	assert.Equal(t, 1, l.PopFront().Value)
	assert.Equal(t, 3, l.PopFront().Value)
	assert.Nil(t, l.PopFront())
	assert.Zero(t, l.Len())
	l.PushBack(nodes[2]) // a node can be reused once out
	assert.Equal(t, []int{2}, values(&l))
}

// TestAgainstASlice checks random pushes, pops and removals against a
// plain slice.
func TestAgainstASlice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var l List[int]
	var ref []int
	in := map[int]*Node[int]{}
	for i := range 10000 {
		switch op := r.IntN(3); {
		case op == 0 || len(ref) == 0:
			n := &Node[int]{Value: i}
			in[i] = n
			l.PushBack(n)
			ref = append(ref, i)
		case op == 1:
			n := l.PopFront()
			require.Equal(t, ref[0], n.Value)
			delete(in, ref[0])
			ref = ref[1:]
		default:
			v := ref[r.IntN(len(ref))]
			l.Remove(in[v])
			delete(in, v)
			ref = slices.DeleteFunc(ref, func(x int) bool { return x == v })
		}
		require.Equal(t, int64(len(ref)), l.Len())
	}
	got := values(&l)
	require.Len(t, got, len(ref))
	for i := range ref {
		assert.Equal(t, ref[i], got[i])
	}
}
