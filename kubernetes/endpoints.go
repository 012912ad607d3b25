package kubernetes

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// Endpoint is one ready pod of a Service, from its EndpointSlices.
type Endpoint struct {
	// Address is the pod's IP (or, in an FQDN slice, host name).
	Address string
	// Pod names the pod (the endpoint's targetRef), "" if not given.
	Pod string
	// Ports are the slice's named ports.
	Ports map[string]int32
}

// HostPort returns "address:port" for the named port, false without it.
func (e Endpoint) HostPort(name string) (string, bool) {
	p, ok := e.Ports[name]
	if !ok {
		return "", false
	}
	return net.JoinHostPort(e.Address, strconv.Itoa(int(p))), true
}

// EndpointsWatcher follows the EndpointSlices of every Service (those with
// the kubernetes.io/service-name label) with a client-go shared informer,
// and calls OnChange with a Service's ready endpoints whenever one of its
// slices changes. Ready means the endpoint's ready condition is true or
// unset, as kube-proxy reads it; terminating endpoints are not ready.
type EndpointsWatcher struct {
	factory informers.SharedInformerFactory
	lister  discoverylisters.EndpointSliceLister
	synced  cache.InformerSynced
}

// NewEndpointsWatcher watches namespace ("" means all). onChange is called
// from the informer's delivery goroutine, one call at a time, with the
// Service and its ready endpoints sorted by address and port (an empty
// slice when it has none left); it must not block for long.
func NewEndpointsWatcher(client kubernetes.Interface, namespace string, onChange func(svc types.NamespacedName, eps []Endpoint)) (*EndpointsWatcher, error) {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = discoveryv1.LabelServiceName }))
	inf := f.Discovery().V1().EndpointSlices()
	w := &EndpointsWatcher{factory: f, lister: inf.Lister(), synced: inf.Informer().HasSynced}
	changed := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		es, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return
		}
		svc := types.NamespacedName{Namespace: es.Namespace, Name: es.Labels[discoveryv1.LabelServiceName]}
		onChange(svc, w.Ready(svc))
	}
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    changed,
		UpdateFunc: func(_, obj any) { changed(obj) },
		DeleteFunc: changed,
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: endpointslice handler: %w", err)
	}
	return w, nil
}

// Start starts the informer; it stops when ctx ends. WaitForSync waits for
// its first list.
func (w *EndpointsWatcher) Start(ctx context.Context) { w.factory.Start(ctx.Done()) }

// WaitForSync blocks until the informer has listed every slice, or ctx ends.
func (w *EndpointsWatcher) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), w.synced)
}

// Shutdown waits for the informer's goroutines after Start's ctx ended.
func (w *EndpointsWatcher) Shutdown() { w.factory.Shutdown() }

// Ready returns the ready endpoints of svc from the informer's cache.
func (w *EndpointsWatcher) Ready(svc types.NamespacedName) []Endpoint {
	list, err := w.lister.EndpointSlices(svc.Namespace).List(
		labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name}))
	if err != nil {
		return nil
	}
	return readyEndpoints(list)
}

// readyEndpoints merges slices into ready endpoints, each address and port
// set once, sorted.
func readyEndpoints(ess []*discoveryv1.EndpointSlice) []Endpoint {
	out := []Endpoint{}
	seen := map[string]bool{}
	for _, es := range ess {
		ports := map[string]int32{}
		for _, p := range es.Ports {
			if p.Port != nil && p.Name != nil {
				ports[*p.Name] = *p.Port
			}
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if ep.Conditions.Terminating != nil && *ep.Conditions.Terminating {
				continue
			}
			pod := ""
			if ep.TargetRef != nil {
				pod = ep.TargetRef.Name
			}
			for _, a := range ep.Addresses {
				e := Endpoint{Address: a, Pod: pod, Ports: ports}
				id := a + "|" + fmt.Sprint(sortedPorts(ports))
				if seen[id] {
					continue
				}
				seen[id] = true
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		if a.Address != b.Address {
			if a.Address < b.Address {
				return -1
			}
			return 1
		}
		pa, pb := fmt.Sprint(sortedPorts(a.Ports)), fmt.Sprint(sortedPorts(b.Ports))
		switch {
		case pa < pb:
			return -1
		case pa > pb:
			return 1
		}
		return 0
	})
	return out
}

func sortedPorts(m map[string]int32) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+strconv.Itoa(int(v)))
	}
	slices.Sort(out)
	return out
}
