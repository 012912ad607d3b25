package kubernetes_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servingkit/servingkit/autoscaler"
	skk8s "github.com/servingkit/servingkit/kubernetes"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
)

// The replica that owns a Service's autoscaler publishes the mode its
// decisions want in the Service's servingkit.dev/serving-mode annotation;
// the other replica's front door follows it. After the scale-up a request
// through the non-owner goes straight to a pod: its front door's activator
// counter stays put while its serve counter counts every request. A user's
// server-side apply without the annotation leaves it alone, and an edit
// that removes it is undone by the owner.
func TestOwnerModeReachesEveryReplica(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t, "modes")
	key := ns + "/hello"
	// min-scale 1 keeps one pod; target-burst-capacity 0 lets the activator
	// leave the path as soon as there is a pod (Knative's rule).
	ann := map[string]string{
		"servingkit.dev/container-concurrency":          "10",
		"autoscaling.knative.dev/min-scale":             "1",
		"autoscaling.knative.dev/initial-scale":         "1",
		"autoscaling.knative.dev/target-burst-capacity": "0",
	}
	createApp(t, ns, "hello", ann)
	startKubelet(t, ns, "hello", 10)
	a := startServingkit(t, ns, "sk-a", "lease-modes")
	eventually(t, 20*time.Second, "sk-a holds the lease", func() bool { return holder(t, "lease-modes") == "sk-a" })
	b := startServingkit(t, ns, "sk-b", "lease-modes")
	a.waitRouted(t, ns, "hello")
	b.waitRouted(t, ns, "hello")
	if a.metric(t, "servingkit_autoscaler_owner", key) != 1 || b.metric(t, "servingkit_autoscaler_owner", key) != 0 {
		t.Fatalf("owner metrics: sk-a %d, sk-b %d; want 1 and 0",
			a.metric(t, "servingkit_autoscaler_owner", key), b.metric(t, "servingkit_autoscaler_owner", key))
	}

	eventually(t, 30*time.Second, "scaled up to min-scale 1", func() bool { return replicas(t, ns, "hello") == 1 })
	eventually(t, 30*time.Second, "the owner publishes serving-mode Serve", func() bool { return servingMode(t, ns, "hello") == "Serve" })
	eventually(t, 10*time.Second, "the non-owner's front door in Serve mode", func() bool {
		return b.metric(t, "servingkit_frontdoor_mode", key) == 1
	})
	if _, ok := lineContaining(a.log.String(), "serving mode published", "service="+key, "mode=Serve"); !ok {
		t.Errorf("sk-a (the owner) did not log publishing the mode:\n%s", a.log.String())
	}
	if _, ok := lineContaining(b.log.String(), "serving mode published"); ok {
		t.Errorf("sk-b (not the owner) published a mode:\n%s", b.log.String())
	}

	const n = 20
	act0 := b.metric(t, "servingkit_frontdoor_requests_total", key, `path="activator"`)
	serve0 := b.metric(t, "servingkit_frontdoor_requests_total", key, `path="serve"`)
	for range n {
		code, body, err := b.get(ns, "hello", "/")
		if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "hello from hello-pod-") {
			t.Fatalf("request through the non-owner: %d %q %v", code, body, err)
		}
	}
	act1 := b.metric(t, "servingkit_frontdoor_requests_total", key, `path="activator"`)
	serve1 := b.metric(t, "servingkit_frontdoor_requests_total", key, `path="serve"`)
	if act1 != act0 || serve1-serve0 != n {
		t.Fatalf("through the non-owner: %d requests via the activator and %d straight to a pod, want 0 and %d", act1-act0, serve1-serve0, n)
	}

	// A user's server-side apply of the Service, without the annotation
	// (kubectl apply --server-side): servingkit's field manager owns it, so
	// it stays.
	apply := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"hello","namespace":%q,"annotations":{
		"servingkit.dev/target":"deployments.apps/hello","autoscaling.knative.dev/initial-scale":"1",
		"servingkit.dev/container-concurrency":"10","autoscaling.knative.dev/min-scale":"1",
		"autoscaling.knative.dev/target-burst-capacity":"0","example.com/owner":"team-a"}},
		"spec":{"selector":{"app":"hello"},"ports":[{"name":"http","port":80},{"name":"queue-admin","port":9091}]}}`, ns)
	_, err := admin.CoreV1().Services(ns).Patch(context.Background(), "hello", types.ApplyPatchType, []byte(apply),
		metav1.PatchOptions{FieldManager: "kubectl", Force: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	if m := servingMode(t, ns, "hello"); m != "Serve" {
		t.Fatalf("after a user's server-side apply: serving-mode %q, want Serve kept", m)
	}
	// An edit that removes it: the owner writes it again.
	_, err = admin.CoreV1().Services(ns).Patch(context.Background(), "hello", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"servingkit.dev/serving-mode":null}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the owner restores serving-mode Serve", func() bool { return servingMode(t, ns, "hello") == "Serve" })
}

func servingMode(t testing.TB, ns, name string) string {
	t.Helper()
	svc, err := admin.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc.Annotations[skk8s.ServingModeAnnotation]
}

// A route Service with servingkit.dev/traffic splits its host 50/50
// between two Services, each its own Deployment, and its tag host reaches
// one of them. Bad splits get an Event naming the annotation and its value;
// the good split keeps working.
func TestTrafficSplit(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t, "split")
	for _, name := range []string{"blue", "green"} {
		createApp(t, ns, name, map[string]string{"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/initial-scale": "1"})
		startKubelet(t, ns, name, 0)
	}
	route := func(name, split string) {
		_, err := admin.CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{skk8s.TrafficAnnotation: split}},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	route("web", "blue=50, green=50@canary")
	route("bad-sum", "blue=60,green=30")
	route("bad-target", "blue=50,nosuch=50")
	sk := startServingkit(t, ns, "sk-split", "lease-split")
	sk.waitRouted(t, ns, "blue")
	sk.waitRouted(t, ns, "green")
	eventually(t, 30*time.Second, "blue and green at one pod", func() bool {
		return replicas(t, ns, "blue") == 1 && replicas(t, ns, "green") == 1
	})

	count := func(host string, n int) map[string]int {
		got := map[string]int{}
		for range n {
			code, body, err := sk.getHost(host, "/")
			if err != nil || code != http.StatusOK {
				t.Fatalf("%s: %d %q %v", host, code, body, err)
			}
			w, _, _ := strings.Cut(strings.TrimPrefix(body, "hello from "), "-pod-")
			got[w]++
		}
		return got
	}
	// 200 requests at 50/50: each side gets fewer than 60 with probability
	// below 1e-8.
	got := count("web."+ns+".svc.cluster.local", 200)
	if got["blue"] < 60 || got["green"] < 60 || got["blue"]+got["green"] != 200 {
		t.Errorf("web, split 50/50: %v of 200", got)
	}
	t.Logf("web, split 50/50: %v", got)
	if got := count("canary-web."+ns+".svc.cluster.local", 20); got["green"] != 20 {
		t.Errorf("canary-web (tag canary → green): %v of 20, want all green", got)
	}

	for name, want := range map[string][]string{
		"bad-sum":    {`servingkit.dev/traffic = "blue=60,green=30"`, "sum to 90, want 100"},
		"bad-target": {`servingkit.dev/traffic = "blue=50,nosuch=50"`, "not served: " + ns + "/nosuch"},
	} {
		ev := waitEvent(t, ns, name)
		if ev.Type != corev1.EventTypeWarning || ev.Reason != skk8s.ReasonInvalidAnnotation {
			t.Errorf("%s: event %s %s, want Warning %s", name, ev.Type, ev.Reason, skk8s.ReasonInvalidAnnotation)
		}
		for _, w := range want {
			if !strings.Contains(ev.Message, w) {
				t.Errorf("%s: event message %q does not contain %q", name, ev.Message, w)
			}
		}
		if code, _, _ := sk.getHost(name+"."+ns+".svc.cluster.local", "/"); code != http.StatusNotFound {
			t.Errorf("%s answered %d, want 404 (never a good split)", name, code)
		}
	}
	// And the good split still serves after the bad ones were reported.
	if got := count("web."+ns+".svc.cluster.local", 10); got["blue"]+got["green"] != 10 {
		t.Errorf("web after the bad splits: %v", got)
	}
}

func waitEvent(t testing.TB, ns, name string) corev1.Event {
	t.Helper()
	var ev corev1.Event
	eventually(t, 20*time.Second, "a Warning event on Service "+name, func() bool {
		list, err := admin.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.kind": "Service", "involvedObject.name": name}.String()})
		if err != nil {
			return false
		}
		// The API server's own controllers record events on Services too
		// (ClusterIPNotAllocated from the IP repair loop): look for ours.
		for _, e := range list.Items {
			if e.Source.Component == "servingkit" {
				ev = e
				return true
			}
		}
		return false
	})
	return ev
}

// With --buckets 2 and two servingkit processes, the Services of bucket 0
// are owned by sk-a and those of bucket 1 by sk-b; both scale from zero on
// requests through the other replica (load forwarded to the owner). When
// sk-a is killed, sk-b takes bucket 0 and bucket 1's Lease is untouched
// (same holder, acquire time and transitions), and the adopted Service is
// scaled by sk-b (back to zero once idle).
//
// Which replica wins a free bucket is a race, so the test seeds the two
// Leases as a rollout would leave them: bucket 0 held by sk-a, bucket 1 by
// sk-b (each renews its own Lease on start; the other waits for it).
func TestBucketsOwnedByDifferentReplicas(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t, "buckets")
	const prefix = "lease-buckets"
	names := [2]string{}
	for i := 0; names[0] == "" || names[1] == ""; i++ {
		name := fmt.Sprintf("app-%d", i)
		if b := autoscaler.Bucket(ns+"/"+name, 2); names[b] == "" {
			names[b] = name
		}
	}
	pa, pb := freePort(t), freePort(t)
	now := metav1.NewMicroTime(time.Now())
	for i, h := range []string{holderID("sk-a", pa), holderID("sk-b", pb)} {
		_, err := admin.CoordinationV1().Leases("servingkit").Create(context.Background(), &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + autoscaler.BucketName(i, 2), Namespace: "servingkit"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr(h), LeaseDurationSeconds: ptr(int32(30)),
				AcquireTime: &now, RenewTime: &now},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		createApp(t, ns, name, map[string]string{"servingkit.dev/container-concurrency": "4"})
		startKubelet(t, ns, name, 4)
	}
	a := startServingkitWith(t, ns, "sk-a", prefix, pa, "--buckets", "2")
	b := startServingkitWith(t, ns, "sk-b", prefix, pb, "--buckets", "2")
	for _, sk := range []*servingkit{a, b} {
		for _, name := range names {
			sk.waitRouted(t, ns, name)
		}
	}
	x, y := ns+"/"+names[0], ns+"/"+names[1]
	eventually(t, 20*time.Second, "sk-a owns "+x+" and sk-b owns "+y, func() bool {
		return a.metric(t, "servingkit_autoscaler_owner", x) == 1 && a.metric(t, "servingkit_autoscaler_owner", y) == 0 &&
			b.metric(t, "servingkit_autoscaler_owner", y) == 1 && b.metric(t, "servingkit_autoscaler_owner", x) == 0
	})
	// Each scales from zero on a request through the replica that does not
	// own it.
	for _, c := range []struct {
		via  *servingkit
		name string
	}{{b, names[0]}, {a, names[1]}} {
		code, body, err := c.via.get(ns, c.name, "/")
		if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "hello from "+c.name+"-pod-") {
			t.Fatalf("%s through %s at zero: %d %q %v", c.name, c.via.name, code, body, err)
		}
		if n := replicas(t, ns, c.name); n < 1 {
			t.Fatalf("%s: replicas %d after a request at zero, want ≥ 1", c.name, n)
		}
	}
	before := lease(t, prefix+"-"+autoscaler.BucketName(1, 2))

	a.stop(syscall.SIGKILL)
	killed := time.Now()
	eventually(t, 20*time.Second, "sk-b takes bucket 0", func() bool {
		l := lease(t, prefix+"-"+autoscaler.BucketName(0, 2))
		return l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == holderID("sk-b", pb)
	})
	t.Logf("fail-over of bucket 0: %v after sk-a was killed", time.Since(killed).Round(10*time.Millisecond))
	after := lease(t, prefix+"-"+autoscaler.BucketName(1, 2))
	if *after.Spec.HolderIdentity != *before.Spec.HolderIdentity || !after.Spec.AcquireTime.Equal(before.Spec.AcquireTime) ||
		ptrValue(after.Spec.LeaseTransitions) != ptrValue(before.Spec.LeaseTransitions) {
		t.Errorf("bucket 1's Lease moved: holder %s→%s, acquired %v→%v, transitions %d→%d",
			*before.Spec.HolderIdentity, *after.Spec.HolderIdentity, before.Spec.AcquireTime, after.Spec.AcquireTime,
			ptrValue(before.Spec.LeaseTransitions), ptrValue(after.Spec.LeaseTransitions))
	}
	eventually(t, 10*time.Second, "sk-b owns both", func() bool {
		return b.metric(t, "servingkit_autoscaler_owner", x) == 1 && b.metric(t, "servingkit_autoscaler_owner", y) == 1
	})
	// The adopted Service is scaled by its new owner: idle, to zero.
	eventually(t, 60*time.Second, "sk-b scales both to zero once idle", func() bool {
		return replicas(t, ns, names[0]) == 0 && replicas(t, ns, names[1]) == 0
	})
}

func lease(t testing.TB, name string) *coordinationv1.Lease {
	t.Helper()
	l, err := admin.CoordinationV1().Leases("servingkit").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
