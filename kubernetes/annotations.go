package kubernetes

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/traffic"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Annotations on a Service that servingkit reads. A Service is served by
// servingkit exactly when it has TargetAnnotation; the autoscaling.knative.dev/*
// keys (autoscaler.AnnotationPrefix) keep Knative's meaning, defaults and
// ranges.
const (
	// TargetAnnotation names the workload to scale, as
	// "<resource>.<group>/<name>" in the Service's namespace:
	// "deployments.apps/hello", "statefulsets.apps/db". The resource must
	// have a scale subresource. Required.
	TargetAnnotation = "servingkit.dev/target"
	// HostsAnnotation lists more hosts (comma-separated, lower-case DNS
	// names) routed to the Service, besides
	// "<name>.<namespace>.<domain>" (the --domain flag).
	HostsAnnotation = "servingkit.dev/hosts"
	// PortAnnotation names the EndpointSlice port of the queue's serving
	// port. Default "http".
	PortAnnotation = "servingkit.dev/port"
	// AdminPortAnnotation names the EndpointSlice port of the queue's
	// admin port (GET /stats is scraped there). Default "queue-admin".
	AdminPortAnnotation = "servingkit.dev/admin-port"
	// ContainerConcurrencyAnnotation is Knative's containerConcurrency: how
	// many requests one replica serves at once; 0 means unlimited. Integer
	// in [0, 1000]. Default 0. It must match the queue's
	// --container-concurrency.
	ContainerConcurrencyAnnotation = "servingkit.dev/container-concurrency"
	// TimeoutSecondsAnnotation is Knative's timeoutSeconds: a request's
	// total time through the activator. Integer in [1, 3600]. Default 300.
	TimeoutSecondsAnnotation = "servingkit.dev/timeout-seconds"
	// TrafficAnnotation splits the Service's hosts across other served
	// Services of its namespace, each its own workload: comma-separated
	// "<service>=<percent>" entries, each optionally followed by
	// "@<tag>", e.g. "hello-blue=90,hello-green=10@canary". The percents
	// sum to 100; a tag gives the entry's Service its own host,
	// "<tag>-<name>.<namespace>.<domain>" (a tagged entry may have 0%).
	// A Service with this annotation needs no TargetAnnotation: it is then
	// a route only. With one, its own name may be an entry too.
	TrafficAnnotation = "servingkit.dev/traffic"
	// ServingModeAnnotation is written by servingkit, not by users: the
	// replica whose autoscaler owns the Service publishes the mode its
	// decisions want ("Proxy": the activator in the path; "Serve": straight
	// to the pods), patched only when it changes, and every replica's
	// front door follows it. Do not set it in your manifests.
	ServingModeAnnotation = "servingkit.dev/serving-mode"
)

// Defaults and bounds of the servingkit.dev annotations.
const (
	DefaultPort             = "http"
	DefaultAdminPort        = "queue-admin"
	DefaultTimeout          = 300 * time.Second
	MaxTimeout              = 3600 * time.Second
	MaxContainerConcurrency = 1000
)

// Target is a workload with a scale subresource.
type Target struct {
	Namespace string
	Resource  schema.GroupResource
	Name      string
}

func (t Target) String() string {
	return t.Namespace + "/" + t.Resource.String() + "/" + t.Name
}

// ServiceSpec is a Service's resolved, validated servingkit configuration.
type ServiceSpec struct {
	// Key is "<namespace>/<name>", the revision key the core packages use.
	Key                  string
	Namespace, Name      string
	Target               Target
	Hosts                []string
	Port, AdminPort      string
	ContainerConcurrency int
	Timeout              time.Duration
	// Autoscaling is the autoscaler's spec from the autoscaling.knative.dev
	// annotations and the cluster config.
	Autoscaling autoscaler.Spec
}

// Activator returns the activator's configuration for the Service.
func (s ServiceSpec) Activator() activator.RevisionConfig {
	return activator.RevisionConfig{ContainerConcurrency: s.ContainerConcurrency, Timeout: s.Timeout}
}

// AnnotationError is one bad annotation: its key, its value and what is
// allowed.
type AnnotationError struct {
	Annotation, Value, Want string
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("annotation %s = %q: want %s", e.Annotation, e.Value, e.Want)
}

// ParseService resolves a Service's annotations with the cluster's
// autoscaler config. The error joins every problem; each is an
// *AnnotationError, or an autoscaler.FieldError naming an
// autoscaling.knative.dev annotation.
func ParseService(namespace, name string, annotations map[string]string, cfg autoscaler.Config) (ServiceSpec, error) {
	s := ServiceSpec{
		Key: namespace + "/" + name, Namespace: namespace, Name: name,
		Port: DefaultPort, AdminPort: DefaultAdminPort, Timeout: DefaultTimeout,
	}
	var errs []error
	bad := func(key, v, want string) { errs = append(errs, &AnnotationError{key, v, want}) }

	if v, ok := annotations[TargetAnnotation]; !ok {
		bad(TargetAnnotation, "", `"<resource>.<group>/<name>", e.g. "deployments.apps/hello"`)
	} else if t, ok := parseTarget(namespace, v); !ok {
		bad(TargetAnnotation, v, `"<resource>.<group>/<name>", e.g. "deployments.apps/hello"`)
	} else {
		s.Target = t
	}
	hosts, err := parseHosts(annotations)
	if err != nil {
		errs = append(errs, err)
	}
	s.Hosts = hosts
	for _, p := range []struct {
		key string
		dst *string
	}{{PortAnnotation, &s.Port}, {AdminPortAnnotation, &s.AdminPort}} {
		if v, ok := annotations[p.key]; ok {
			if len(validation.IsValidPortName(v)) > 0 {
				bad(p.key, v, "a port name (IANA_SVC_NAME: 1-15 lower-case letters, digits and '-')")
				continue
			}
			*p.dst = v
		}
	}
	if v, ok := annotations[ContainerConcurrencyAnnotation]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxContainerConcurrency {
			bad(ContainerConcurrencyAnnotation, v, fmt.Sprintf("an integer in [0, %d] (0 means unlimited)", MaxContainerConcurrency))
		} else {
			s.ContainerConcurrency = n
		}
	}
	if v, ok := annotations[TimeoutSecondsAnnotation]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || time.Duration(n)*time.Second > MaxTimeout {
			bad(TimeoutSecondsAnnotation, v, fmt.Sprintf("an integer in [1, %d] seconds", int(MaxTimeout/time.Second)))
		} else {
			s.Timeout = time.Duration(n) * time.Second
		}
	}
	as, err := cfg.RevisionSpec(annotations, s.ContainerConcurrency)
	if err != nil {
		errs = append(errs, err)
	}
	s.Autoscaling = as
	if err := errors.Join(errs...); err != nil {
		return ServiceSpec{}, fmt.Errorf("kubernetes: Service %s/%s: %w", namespace, name, err)
	}
	return s, nil
}

// parseTarget reads "<resource>.<group>/<name>" (or "<resource>/<name>" for
// the core group).
func parseTarget(namespace, v string) (Target, bool) {
	res, name, ok := strings.Cut(v, "/")
	if !ok || len(validation.IsDNS1123Subdomain(name)) > 0 || res == "" {
		return Target{}, false
	}
	gr := schema.ParseGroupResource(res)
	if len(validation.IsDNS1123Label(gr.Resource)) > 0 || (gr.Group != "" && len(validation.IsDNS1123Subdomain(gr.Group)) > 0) {
		return Target{}, false
	}
	return Target{Namespace: namespace, Resource: gr, Name: name}, true
}

// parseHosts reads HostsAnnotation.
func parseHosts(annotations map[string]string) ([]string, error) {
	v, ok := annotations[HostsAnnotation]
	if !ok {
		return nil, nil
	}
	var hosts []string
	for h := range strings.SplitSeq(v, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if len(validation.IsDNS1123Subdomain(h)) > 0 {
			return nil, &AnnotationError{HostsAnnotation, v, fmt.Sprintf("comma-separated lower-case DNS names (%q is not one)", h)}
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// TrafficSpec is a Service's resolved TrafficAnnotation: its hosts' traffic
// split across other Services (each a revision of the core's traffic
// package, keyed "<namespace>/<name>").
type TrafficSpec struct {
	// Key is the route Service's "<namespace>/<name>".
	Key             string
	Namespace, Name string
	// Hosts are the HostsAnnotation's hosts, served the default split too.
	Hosts []string
	// Value is the annotation as written, for events.
	Value string
	// Table is the split: Default by percent, Tags one Service each.
	Table *traffic.Table
}

// Targets returns the keys of the Services the split sends to, sorted.
func (t TrafficSpec) Targets() []string {
	seen := map[string]bool{}
	for _, sh := range t.Table.Default {
		seen[sh.Revision] = true
	}
	for _, g := range t.Table.Tags {
		for _, sh := range g {
			seen[sh.Revision] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

const trafficWant = `comma-separated "<service>=<percent>" entries, each optionally followed by "@<tag>" (e.g. "blue=90,green=10@canary"), percents summing to 100`

// ParseTraffic resolves a Service's TrafficAnnotation (and
// HostsAnnotation). Every problem is an *AnnotationError naming the
// annotation, its value and what is allowed: a malformed entry, a Service
// name that is not a DNS-1123 label, a percent outside [0, 100], percents
// not summing to 100, a bad or repeated tag, a Service named twice. Whether
// each target is served is checked by the Server, which knows the Services.
func ParseTraffic(namespace, name string, annotations map[string]string) (TrafficSpec, error) {
	v, ok := annotations[TrafficAnnotation]
	if !ok {
		return TrafficSpec{}, fmt.Errorf("kubernetes: Service %s/%s: %w", namespace, name,
			&AnnotationError{TrafficAnnotation, "", trafficWant})
	}
	t := TrafficSpec{Key: namespace + "/" + name, Namespace: namespace, Name: name, Value: v}
	var errs []error
	bad := func(want string) { errs = append(errs, &AnnotationError{TrafficAnnotation, v, want}) }
	var spec traffic.Spec
	seen := map[string]bool{}
	for entry := range strings.SplitSeq(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		svc, rest, ok := strings.Cut(entry, "=")
		svc = strings.TrimSpace(svc)
		pct, tag, _ := strings.Cut(rest, "@")
		n, err := strconv.Atoi(strings.TrimSpace(pct))
		switch {
		case !ok:
			bad(fmt.Sprintf("%s (entry %q has no \"=\")", trafficWant, entry))
			continue
		case len(validation.IsDNS1123Label(svc)) > 0:
			bad(fmt.Sprintf("%s (%q is not a Service name)", trafficWant, svc))
			continue
		case err != nil || n < 0 || n > 100:
			bad(fmt.Sprintf("%s (entry %q: percent must be an integer in [0, 100])", trafficWant, entry))
			continue
		case seen[svc]:
			bad(fmt.Sprintf("%s (Service %q named twice)", trafficWant, svc))
			continue
		}
		seen[svc] = true
		spec.Traffic = append(spec.Traffic, traffic.Target{
			RevisionName: namespace + "/" + svc, Percent: n, Tag: strings.TrimSpace(tag),
		})
	}
	if len(errs) == 0 {
		if len(spec.Traffic) == 0 {
			bad(trafficWant + " (no entry)")
		} else if tbl, err := traffic.Resolve(spec, nil); err != nil {
			// The core's rules: the sum of the percents, tags as DNS-1035
			// labels, unique.
			var rules []string
			for _, e := range unjoin(err) {
				var fe *traffic.FieldError
				if errors.As(e, &fe) {
					rules = append(rules, fmt.Sprintf("%s = %v: %s", fe.Path, fe.Value, fe.Rule))
				} else {
					rules = append(rules, e.Error())
				}
			}
			bad(fmt.Sprintf("%s (%s)", trafficWant, strings.Join(rules, "; ")))
		} else {
			t.Table = tbl
		}
	}
	hosts, err := parseHosts(annotations)
	if err != nil {
		errs = append(errs, err)
	}
	t.Hosts = hosts
	if err := errors.Join(errs...); err != nil {
		return TrafficSpec{}, fmt.Errorf("kubernetes: Service %s/%s: %w", namespace, name, err)
	}
	return t, nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
