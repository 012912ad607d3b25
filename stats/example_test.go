package stats_test

import (
	"fmt"
	"time"

	"github.com/servingkit/servingkit/stats"
)

func ExampleRecorder() {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := stats.NewRecorder(t0)

	rec.In(t0, false)                          // a direct request for the whole second
	rec.In(t0.Add(500*time.Millisecond), true) // one from the activator for half of it
	rec.Out(t0.Add(time.Second), true)

	st := rec.Report(t0.Add(time.Second)).Stat(time.Second)
	fmt.Printf("concurrency %.2f (proxied %.2f), %.0f rps (proxied %.0f)\n",
		st.Concurrency, st.ProxiedConcurrency, st.RPS, st.ProxiedRPS)
	// Output: concurrency 1.50 (proxied 0.50), 2 rps (proxied 1)
}

func ExampleDecode() {
	batch := []stats.Message{{Revision: "default/hello-00001", Stat: stats.Stat{Source: "pod-1", Concurrency: 4}}}
	wire := stats.AppendEncode(nil, batch)
	back, err := stats.Decode(wire)
	fmt.Println(back[0].Revision, back[0].Stat.Concurrency, err)

	_, err = stats.Decode(wire[:len(wire)-1])
	fmt.Println(err)
	// Output:
	// default/hello-00001 4 <nil>
	// stats: message 0: time: truncated
}
