package kubernetes

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/autoscaler"
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
	if v, ok := annotations[HostsAnnotation]; ok {
		for h := range strings.SplitSeq(v, ",") {
			h = strings.TrimSpace(h)
			if h == "" {
				continue
			}
			if len(validation.IsDNS1123Subdomain(h)) > 0 {
				bad(HostsAnnotation, v, fmt.Sprintf("comma-separated lower-case DNS names (%q is not one)", h))
				break
			}
			s.Hosts = append(s.Hosts, h)
		}
	}
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
