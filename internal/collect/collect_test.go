package collect

import (
	"sync"
	"testing"
)

func TestLogKeepsEveryValue(t *testing.T) {
	var l Log[int]
	if got := l.All(); len(got) != 0 {
		t.Fatalf("zero Log has %v", got)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				l.Add(i*100 + j)
			}
		}()
	}
	wg.Wait()
	got := l.All()
	if len(got) != 800 {
		t.Fatalf("recorded %d values, want 800", len(got))
	}
	seen := make(map[int]bool, len(got))
	for _, v := range got {
		seen[v] = true
	}
	if len(seen) != 800 {
		t.Fatalf("%d distinct values, want 800", len(seen))
	}
	got[0] = -1
	if l.All()[0] == -1 {
		t.Fatal("All returned the Log's own slice")
	}
}
