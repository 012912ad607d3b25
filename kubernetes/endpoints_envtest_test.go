package kubernetes_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/servingkit/servingkit/activator"
	skk8s "github.com/servingkit/servingkit/kubernetes"
	"github.com/servingkit/servingkit/revision"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// endpointsToActivator wires an EndpointsWatcher to an activator, as Server
// does, and signals each change the activator has taken.
type endpointsToActivator struct {
	act     *activator.Handler
	changed chan []string
	cancel  context.CancelFunc
}

func newEndpointsToActivator(t testing.TB, ns, svc string) *endpointsToActivator {
	t.Helper()
	act, err := activator.New(activator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := ns + "/" + svc
	if err := act.SetRevision(key, activator.RevisionConfig{}); err != nil {
		t.Fatal(err)
	}
	e := &endpointsToActivator{act: act, changed: make(chan []string, 100)}
	w, err := skk8s.NewEndpointsWatcher(admin, ns, func(s types.NamespacedName, eps []skk8s.Endpoint) {
		if s.String() != key {
			return
		}
		var addrs []string
		for _, ep := range eps {
			if a, ok := ep.HostPort("http"); ok {
				addrs = append(addrs, a)
			}
		}
		if err := act.SetReplicas(key, addrs); err != nil {
			t.Errorf("SetReplicas: %v", err)
		}
		e.changed <- addrs
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	w.Start(ctx)
	if !w.WaitForSync(ctx) {
		t.Fatal("endpointslice informer did not sync")
	}
	t.Cleanup(func() { cancel(); w.Shutdown() })
	return e
}

func slice(ns, svc, name string, port int, ready bool) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeFQDN,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"localhost"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(ready)},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(port)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
}

// An EndpointSlice written to the API server reaches the activator: a
// request held at zero is answered by the new endpoint; a not-ready
// endpoint and a deleted slice take it out again.
func TestEndpointSliceReachesActivator(t *testing.T) {
	needEnv(t)
	ns := newNamespace(t, "eps")
	e := newEndpointsToActivator(t, ns, "web")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "from the pod") }))
	defer backend.Close()
	port := backend.Listener.Addr().(*net.TCPAddr).Port

	// A request waits in the activator: the Service has no endpoint yet.
	type result struct {
		code int
		body string
	}
	done := make(chan result, 1)
	go func() {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(revision.RevisionHeader, ns+"/web")
		rec := httptest.NewRecorder()
		e.act.ServeHTTP(rec, req)
		done <- result{rec.Code, rec.Body.String()}
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("request answered before any endpoint: %d %q", r.code, r.body)
	default:
	}
	ctx := context.Background()
	if _, err := admin.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(ns, "web", "web-1", port, true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code != http.StatusOK || r.body != "from the pod" {
			t.Fatalf("held request: %d %q", r.code, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held request not answered 10 s after the EndpointSlice was written")
	}
	want := []string{net.JoinHostPort("localhost", strconv.Itoa(port))}
	waitAddrs(t, e, want)

	// Not ready: out.
	if _, err := admin.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice(ns, "web", "web-1", port, false), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAddrs(t, e, nil)
	// Ready again, then the slice deleted: out.
	if _, err := admin.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice(ns, "web", "web-1", port, true), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAddrs(t, e, want)
	if err := admin.DiscoveryV1().EndpointSlices(ns).Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAddrs(t, e, nil)
}

func waitAddrs(t testing.TB, e *endpointsToActivator, want []string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-e.changed:
			if slices.Equal(got, want) {
				return
			}
		case <-deadline:
			t.Fatalf("activator never got endpoints %v", want)
		}
	}
}

// BenchmarkEndpointSliceToActivator measures how long an EndpointSlice
// update written to the API server takes to reach the activator (the
// update's round trip, etcd, the watch, the informer, and SetReplicas):
// one op is one update and its arrival.
func BenchmarkEndpointSliceToActivator(b *testing.B) {
	needEnv(b)
	ns := newNamespace(b, fmt.Sprintf("epsbench-%d", time.Now().UnixNano()%100000))
	e := newEndpointsToActivator(b, ns, "web")
	ctx := context.Background()
	if _, err := admin.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(ns, "web", "web-1", 10000, true), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	waitAddrs(b, e, []string{"localhost:10000"})
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		port := 10001 + i%1000
		if _, err := admin.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice(ns, "web", "web-1", port, true), metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		waitAddrs(b, e, []string{"localhost:" + strconv.Itoa(port)})
	}
}
