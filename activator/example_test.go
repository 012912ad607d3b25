package activator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/queue"
	"github.com/servingkit/servingkit/stats"
)

// A revision scaled to zero: the first request pokes the autoscaler and
// waits; when the host reports a replica, it goes out at once.
func ExampleHandler() {
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello (proxied: %s)", r.Header.Get(queue.ProxyHeader))
	}))
	defer replica.Close()

	h, err := activator.New(activator.Options{
		Name: "activator-0",
		Poker: activator.PokerFunc(func(rev string, s stats.Stat) {
			fmt.Printf("poke %s: concurrency %v, rps %v\n", rev, s.Concurrency, s.RPS)
		}),
	})
	if err != nil {
		panic(err)
	}
	if err := h.SetRevision("default/hello-00001", activator.RevisionConfig{ContainerConcurrency: 10}); err != nil {
		panic(err)
	}

	req := httptest.NewRequest(http.MethodGet, "http://hello.example.com/", nil)
	req.Header.Set(activator.RevisionHeader, "default/hello-00001")
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(rec, req)
	}()
	for h.Waiting("default/hello-00001") == 0 {
		runtime.Gosched()
	}
	fmt.Println("waiting:", h.Waiting("default/hello-00001"))

	// The autoscaler scaled up and the replica is ready.
	if err := h.SetReplicas("default/hello-00001", []string{replica.Listener.Addr().String()}); err != nil {
		panic(err)
	}
	<-done
	fmt.Println(rec.Code, rec.Body.String())
	_ = h.Shutdown(context.Background())
	// Output:
	// poke default/hello-00001: concurrency 1, rps 1
	// waiting: 1
	// 200 hello (proxied: activator)
}

// The Throttler alone, for a host with its own proxy.
func ExampleThrottler() {
	t, err := activator.NewThrottler(activator.ThrottlerOptions{})
	if err != nil {
		panic(err)
	}
	_ = t.SetRevision("rev", activator.RevisionConfig{ContainerConcurrency: 1})
	_ = t.SetReplicas("rev", []string{"10.0.0.1:8012", "10.0.0.2:8012"})

	a, _ := t.Acquire(context.Background(), "rev")
	b, _ := t.Acquire(context.Background(), "rev")
	fmt.Println(a.Addr(), b.Addr(), a.Waited())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = t.Acquire(ctx, "rev") // both replicas are busy
	var we *activator.WaitError
	fmt.Println(errors.As(err, &we), errors.Is(err, context.DeadlineExceeded), we.Revision, we.Cold)

	a.Release()
	b.Release()
	// Output:
	// 10.0.0.1:8012 10.0.0.2:8012 0s
	// true true rev false
}

func ExampleThrottler_Status() {
	t, _ := activator.NewThrottler(activator.ThrottlerOptions{Subset: activator.Subset{Index: 0, Count: 2}})
	_ = t.SetRevision("rev", activator.RevisionConfig{ContainerConcurrency: 10})
	_ = t.SetReplicas("rev", []string{"10.0.0.3:8012", "10.0.0.1:8012", "10.0.0.2:8012"})
	st, _ := t.Status("rev")
	fmt.Println(st.Listed, st.Ready, st.Assigned, st.Capacity, st.Config.Policy)
	// Output:
	// 3 3 [10.0.0.1:8012 10.0.0.3:8012] 20 round-robin
}

// Three activators share 20 replicas: 7, 7 and 6.
func ExampleSubset() {
	for i := range 3 {
		s := activator.Subset{Index: i, Count: 3}
		fmt.Println(s.Share(20), activator.Capacity(10, 20, s))
	}
	// Output:
	// [0 1 2 3 4 5 18] 70
	// [6 7 8 9 10 11 19] 70
	// [12 13 14 15 16 17] 60
}

func ExampleCapacity() {
	fmt.Println(activator.Capacity(10, 3, activator.Subset{}))
	fmt.Println(activator.Capacity(0, 3, activator.Subset{}) == activator.Unlimited)
	fmt.Println(activator.Capacity(10, 0, activator.Subset{}))
	// Output:
	// 30
	// true
	// 0
}

func ExamplePolicy() {
	for _, cc := range []int{0, 2, 10} {
		fmt.Println(cc, activator.DefaultPolicy(cc))
	}
	p, err := activator.ParsePolicy("random")
	fmt.Println(p, err)
	// Output:
	// 0 power-of-two
	// 2 first-available
	// 10 round-robin
	// random <nil>
}

func ExampleRevisionConfig_Validate() {
	err := activator.RevisionConfig{ContainerConcurrency: -1, MaxWait: -time.Second}.Validate()
	fmt.Println(err)
	// Output:
	// activator: RevisionConfig.ContainerConcurrency = -1, must be in [0, 2147483647] (0 means unlimited)
	// activator: RevisionConfig.MaxWait = -1s, must be >= 0 (0 means no limit)
}

func ExampleHeaderResolver() {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	_, err := activator.HeaderResolver("").Revision(r)
	fmt.Println(err)
	r.Header.Set(activator.RevisionHeader, "default/hello-00001")
	rev, _ := activator.HeaderResolver("").Revision(r)
	fmt.Println(rev)
	// Output:
	// activator: no revision in the request: header Knative-Serving-Revision is empty
	// default/hello-00001
}

func ExampleResolverFunc() {
	byHost := activator.ResolverFunc(func(r *http.Request) (string, error) { return r.Host, nil })
	rev, _ := byHost.Revision(httptest.NewRequest(http.MethodGet, "http://hello.example.com/", nil))
	fmt.Println(rev)
	// Output: hello.example.com
}

func ExampleHTTPProber() {
	var ready atomic.Bool
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(queue.ProbeHeader) != queue.ProbeHeaderValue || !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, queue.ProbeHeaderValue)
	}))
	defer replica.Close()
	p := &activator.HTTPProber{}
	fmt.Println(p.Probe(context.Background(), replica.Listener.Addr().String()) != nil)
	ready.Store(true)
	fmt.Println(p.Probe(context.Background(), replica.Listener.Addr().String()))
	// Output:
	// true
	// <nil>
}

func ExampleProberFunc() {
	t, _ := activator.NewThrottler(activator.ThrottlerOptions{
		Prober: activator.ProberFunc(func(ctx context.Context, addr string) error {
			if addr == "10.0.0.2:8012" {
				return errors.New("not listening")
			}
			return nil
		}),
	})
	defer t.Close()
	_ = t.SetRevision("rev", activator.RevisionConfig{})
	_ = t.SetReplicas("rev", []string{"10.0.0.1:8012", "10.0.0.2:8012"})
	for st, _ := t.Status("rev"); st.Ready == 0; st, _ = t.Status("rev") {
		runtime.Gosched()
	}
	st, _ := t.Status("rev")
	fmt.Println(st.Listed, st.Ready, st.Assigned)
	// Output: 2 1 [10.0.0.1:8012]
}

// Cold-start visibility: a hook for metrics and a response header.
func ExampleColdStart() {
	h, _ := activator.New(activator.Options{
		WaitHeader: "X-Activator-Wait",
		OnColdStart: func(c activator.ColdStart) {
			fmt.Println(c.Revision, c.Outcome, c.Cold)
		},
	})
	_ = h.SetRevision("rev", activator.RevisionConfig{MaxWait: time.Millisecond})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set(activator.RevisionHeader, "rev")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req) // no replica shows up in time
	fmt.Println(rec.Code, rec.Header().Get("X-Activator-Wait") != "")
	// Output:
	// rev max-wait true
	// 503 true
}

func ExampleOutcome() {
	fmt.Println(activator.OutcomeServed, activator.OutcomeQueueFull, activator.OutcomeTimeout)
	// Output: served queue-full timeout
}

func ExampleWaitError() {
	err := &activator.WaitError{Revision: "rev", Waited: 1500 * time.Millisecond, Err: activator.ErrMaxWait}
	fmt.Println(err)
	fmt.Println(errors.Is(err, activator.ErrMaxWait))
	// Output:
	// activator: revision "rev": waited 1.5s for capacity without getting a replica (max wait reached)
	// true
}

// The stats the Handler reports each period, wired to any stats.Sink.
func ExampleHandler_Stats() {
	h, _ := activator.New(activator.Options{Name: "activator-0"})
	_ = h.SetRevision("rev", activator.RevisionConfig{MaxWait: time.Millisecond})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set(activator.RevisionHeader, "rev")
	h.ServeHTTP(httptest.NewRecorder(), req)
	h.ServeHTTP(httptest.NewRecorder(), req)
	for _, m := range h.Stats(time.Now(), time.Second) {
		fmt.Println(m.Revision, m.Stat.Source, m.Stat.RPS)
	}
	// Output: rev activator-0 1
}
