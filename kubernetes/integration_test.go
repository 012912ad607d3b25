package kubernetes_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	skk8s "github.com/servingkit/servingkit/kubernetes"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A request at zero through the gateway scales the Deployment up through
// its scale subresource, waits in the activator until the (played) kubelet
// has a pod ready and its EndpointSlice written, and is answered by that
// pod; with no more traffic the autoscaler takes the Deployment back to
// zero.
func TestScaleFromZeroAndBack(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t, "zero")
	createApp(t, ns, "hello", nil)
	k := startKubelet(t, ns, "hello", 0)
	sk := startServingkit(t, ns, "sk-zero", "lease-zero")
	sk.waitRouted(t, ns, "hello")
	if n := replicas(t, ns, "hello"); n != 0 {
		t.Fatalf("replicas before any request = %d, want 0", n)
	}

	start := time.Now()
	code, body, err := sk.get(ns, "hello", "/")
	if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "hello from hello-pod-") {
		t.Fatalf("first request at zero: %d %q %v", code, body, err)
	}
	t.Logf("cold start through the gateway: %v", time.Since(start).Round(time.Millisecond))
	if n := replicas(t, ns, "hello"); n < 1 {
		t.Fatalf("replicas after the first request = %d, want ≥ 1", n)
	}
	if k.Started() < 1 {
		t.Fatalf("kubelet started %d pods, want ≥ 1", k.Started())
	}
	// Idle: stable window 6 s, then the grace period; the pod goes.
	eventually(t, 60*time.Second, "scale back to zero", func() bool { return replicas(t, ns, "hello") == 0 })
	eventually(t, 30*time.Second, "the kubelet stops the pod", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return len(k.pods) == 0
	})
	// And up again.
	code, body, err = sk.get(ns, "hello", "/")
	if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "hello from hello-pod-") {
		t.Fatalf("request after scaling to zero: %d %q %v", code, body, err)
	}
}

// A burst of concurrent requests at zero is held by the activator and
// every one of them is answered by a pod.
func TestBurstAtZero(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t, "burst")
	createApp(t, ns, "hello", map[string]string{"servingkit.dev/container-concurrency": "5"})
	startKubelet(t, ns, "hello", 5)
	sk := startServingkit(t, ns, "sk-burst", "lease-burst")
	sk.waitRouted(t, ns, "hello")

	const n = 60
	var wg sync.WaitGroup
	var ok atomic.Int64
	errs := make(chan string, n)
	for range n {
		wg.Go(func() {
			code, body, err := sk.get(ns, "hello", "/?sleep=100ms")
			if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "hello from ") {
				errs <- fmt.Sprintf("%d %q %v", code, body, err)
				return
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("request in the burst: %s", e)
	}
	if ok.Load() != n {
		t.Fatalf("%d of %d requests answered", ok.Load(), n)
	}
	t.Logf("burst of %d at zero: all answered; replicas now %d", n, replicas(t, ns, "hello"))
}

// Two servingkit processes share the autoscaler's bucket Lease. Load goes
// through the one that does not hold it (its activator's pokes and stats
// are forwarded to the holder, which scales). The holder is killed
// (SIGKILL: no release); the other takes the bucket once the Lease expires
// and scales from then on. No request is lost.
func TestLeaseFailoverUnderLoad(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t, "failover")
	createApp(t, ns, "hello", map[string]string{"servingkit.dev/container-concurrency": "4"})
	startKubelet(t, ns, "hello", 4)
	a := startServingkit(t, ns, "sk-a", "lease-failover")
	eventually(t, 20*time.Second, "sk-a holds the lease", func() bool { return holder(t, "lease-failover") == "sk-a" })
	b := startServingkit(t, ns, "sk-b", "lease-failover")
	a.waitRouted(t, ns, "hello")
	b.waitRouted(t, ns, "hello")

	ctx, cancel := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var fails sync.Map
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				code, body, err := b.get(ns, "hello", "/?sleep=50ms")
				sent.Add(1)
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					fails.Store(fmt.Sprintf("%d %q %v", code, body, err), true)
				}
			}
		})
	}
	eventually(t, 30*time.Second, "scaled up under load through the non-holder", func() bool { return replicas(t, ns, "hello") >= 1 })
	time.Sleep(2 * time.Second)
	a.stop(syscall.SIGKILL)
	killed := time.Now()
	eventually(t, 20*time.Second, "sk-b takes the lease", func() bool { return holder(t, "lease-failover") == "sk-b" })
	t.Logf("fail-over: sk-b holds the lease %v after sk-a was killed", time.Since(killed).Round(10*time.Millisecond))
	time.Sleep(3 * time.Second) // load on the new holder
	cancel()
	wg.Wait()
	fails.Range(func(k, _ any) bool { t.Errorf("failed request: %v", k); return true })
	if failed.Load() != 0 || sent.Load() < 50 {
		t.Fatalf("%d of %d requests failed (want 0 of at least 50)", failed.Load(), sent.Load())
	}
	t.Logf("%d requests through the fail-over, none lost", sent.Load())
	// The new holder autoscales: idle, it takes the Deployment to zero.
	eventually(t, 60*time.Second, "sk-b scales to zero after the load", func() bool { return replicas(t, ns, "hello") == 0 })
}

// holder returns the name of the servingkit process whose autoscaler owns
// the (one) bucket of Leases with prefix.
func holder(t testing.TB, prefix string) string {
	l, err := admin.CoordinationV1().Leases("servingkit").Get(context.Background(), prefix+"-autoscaler-bucket-00-of-01", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	name, _, _ := strings.Cut(*l.Spec.HolderIdentity, "@")
	return name
}

// A Service with bad annotations gets a Warning Event and a log line that
// name each annotation and its allowed range; the other Service keeps
// working.
func TestBadAnnotationsEvent(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t, "badann")
	createApp(t, ns, "good", nil)
	startKubelet(t, ns, "good", 0)
	createApp(t, ns, "bad", map[string]string{
		"autoscaling.knative.dev/min-scale":    "-1",
		"servingkit.dev/container-concurrency": "5000",
	})
	sk := startServingkit(t, ns, "sk-badann", "lease-badann")
	sk.waitRouted(t, ns, "good")

	ev := waitEvent(t, ns, "bad")
	if ev.Type != corev1.EventTypeWarning || ev.Reason != skk8s.ReasonInvalidAnnotation {
		t.Errorf("event type %q reason %q, want Warning %s", ev.Type, ev.Reason, skk8s.ReasonInvalidAnnotation)
	}
	for _, want := range []string{
		`autoscaling.knative.dev/min-scale = "-1"`, "[0, 2147483647]",
		`servingkit.dev/container-concurrency = "5000"`, "[0, 1000]",
	} {
		if !strings.Contains(ev.Message, want) {
			t.Errorf("event message %q does not contain %q", ev.Message, want)
		}
	}
	if _, ok := lineContaining(sk.log.String(), "invalid servingkit annotations", "autoscaling.knative.dev/min-scale", "[0, 1000]"); !ok {
		t.Errorf("no log line naming the annotations and ranges:\n%s", sk.log.String())
	}
	code, body, err := sk.get(ns, "good", "/")
	if err != nil || code != http.StatusOK {
		t.Fatalf("the good Service: %d %q %v", code, body, err)
	}
	if code, _, _ := sk.get(ns, "bad", "/"); code != http.StatusNotFound {
		t.Errorf("the bad Service answered %d, want 404 (never served)", code)
	}
}
