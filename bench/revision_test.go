package bench

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"
	knhash "knative.dev/pkg/hash"

	"github.com/servingkit/servingkit/revision"
)

// Activator subsetting: choose 10 of 100 activator addresses for one
// revision, the job Knative's SKS reconciler does with hash.ChooseSubset on
// every public-endpoints update.

func activatorIPs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d", i/200, i%200+1)
	}
	return out
}

func BenchmarkChooseSubset(b *testing.B) {
	const target = "default/hello-00001"
	for _, size := range []struct{ from, n int }{{10, 2}, {100, 10}} {
		ips := activatorIPs(size.from)
		set := sets.New(ips...)
		name := fmt.Sprintf("%dof%d", size.n, size.from)
		b.Run("servingkit/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = revision.ChooseSubset(ips, size.n, target)
			}
		})
		b.Run("knative/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = knhash.ChooseSubset(set, size.n, target)
			}
		})
	}
}
