package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Service is the subset of a Knative serving.knative.dev/v1 Service that the
// platform understands. Everything else in a manifest is reported as a
// warning and ignored.
type Service struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   ObjectMeta  `json:"metadata"`
	Spec       ServiceSpec `json:"spec"`
	warnings   []string    // unsupported fields, filled by ParseService
}

// ObjectMeta holds a name, a namespace and annotations.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Annotations map[string]string `json:"annotations"`
}

// ServiceSpec is the revision template plus the traffic block.
type ServiceSpec struct {
	Template RevisionTemplate `json:"template"`
	Traffic  []TrafficTarget  `json:"traffic"`
}

// RevisionTemplate is spec.template.
type RevisionTemplate struct {
	Metadata ObjectMeta   `json:"metadata"`
	Spec     RevisionSpec `json:"spec"`
}

// RevisionSpec is spec.template.spec.
type RevisionSpec struct {
	ContainerConcurrency          *int64      `json:"containerConcurrency"`
	TimeoutSeconds                *int64      `json:"timeoutSeconds"`
	TerminationGracePeriodSeconds *int64      `json:"terminationGracePeriodSeconds"`
	Containers                    []Container `json:"containers"`
}

// Container is one entry of spec.template.spec.containers: a built-in
// demo app chosen by image, or a program of the user's (command, args…);
// see container.go.
type Container struct {
	Name           string          `json:"name"`
	Image          string          `json:"image"`
	Command        []string        `json:"command"`
	Args           []string        `json:"args"`
	WorkingDir     string          `json:"workingDir"`
	Env            []EnvVar        `json:"env"`
	Ports          []ContainerPort `json:"ports"`
	ReadinessProbe *Probe          `json:"readinessProbe"`
	LivenessProbe  *Probe          `json:"livenessProbe"`
}

// EnvVar is a literal environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TrafficTarget is one entry of spec.traffic.
type TrafficTarget struct {
	RevisionName   string `json:"revisionName"`
	LatestRevision *bool  `json:"latestRevision"`
	Percent        *int64 `json:"percent"`
	Tag            string `json:"tag"`
}

// supported lists the manifest paths the platform reads; "*" matches any map
// key, "[]" any list element.
var supported = map[string]bool{
	"apiVersion": true, "kind": true,
	"metadata": true, "metadata.name": true, "metadata.namespace": true,
	"metadata.annotations": true, "metadata.annotations.*": true,
	"metadata.labels": true, "metadata.labels.*": true,
	"spec": true, "spec.template": true,
	"spec.template.metadata": true, "spec.template.metadata.name": true,
	"spec.template.metadata.annotations": true, "spec.template.metadata.annotations.*": true,
	"spec.template.metadata.labels": true, "spec.template.metadata.labels.*": true,
	"spec.template.spec":                               true,
	"spec.template.spec.containerConcurrency":          true,
	"spec.template.spec.timeoutSeconds":                true,
	"spec.template.spec.containers":                    true,
	"spec.template.spec.containers[]":                  true,
	"spec.template.spec.containers[].name":             true,
	"spec.template.spec.containers[].image":            true,
	"spec.template.spec.containers[].env":              true,
	"spec.template.spec.containers[].env[]":            true,
	"spec.template.spec.containers[].env[].name":       true,
	"spec.template.spec.containers[].env[].value":      true,
	"spec.template.spec.terminationGracePeriodSeconds": true,
	"spec.traffic": true, "spec.traffic[]": true,
	"spec.traffic[].revisionName": true, "spec.traffic[].latestRevision": true,
	"spec.traffic[].percent": true, "spec.traffic[].tag": true,
}

// ParseService reads one Service manifest. Structural problems (bad YAML, a
// wrong kind, a field of the wrong type, a missing name or container) are
// errors; fields the platform does not support are warnings.
func ParseService(data []byte) (*Service, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("manifest: not valid YAML: %w", err)
	}
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if _, ok := generic.(map[string]any); !ok {
		return nil, errors.New("manifest: want a YAML mapping (a Knative Service), got something else")
	}
	var s Service
	if err := json.Unmarshal(js, &s); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	walkUnsupported(generic, "", "", &s.warnings)
	sort.Strings(s.warnings)

	var errs []error
	if s.Kind != "Service" {
		errs = append(errs, fmt.Errorf("manifest: kind = %q, want \"Service\"", s.Kind))
	}
	if s.APIVersion != "" && s.APIVersion != "serving.knative.dev/v1" {
		s.warnings = append(s.warnings, fmt.Sprintf("apiVersion %q is not serving.knative.dev/v1; reading it as v1", s.APIVersion))
	}
	if s.Metadata.Name == "" {
		errs = append(errs, errors.New("manifest: metadata.name is required"))
	}
	if s.Metadata.Namespace == "" {
		s.Metadata.Namespace = "default"
	}
	switch n := len(s.Spec.Template.Spec.Containers); {
	case n == 0:
		errs = append(errs, errors.New("manifest: spec.template.spec.containers needs one container"))
	case n > 1:
		errs = append(errs, fmt.Errorf("manifest: spec.template.spec.containers has %d containers; the platform runs exactly one (no sidecars)", n))
	}
	if cc := s.Spec.Template.Spec.ContainerConcurrency; cc != nil && (*cc < 0 || *cc > 1000) {
		errs = append(errs, fmt.Errorf("manifest: spec.template.spec.containerConcurrency = %d, must be in [0, 1000]", *cc))
	}
	if ts := s.Spec.Template.Spec.TimeoutSeconds; ts != nil && (*ts <= 0 || *ts > 3600) {
		errs = append(errs, fmt.Errorf("manifest: spec.template.spec.timeoutSeconds = %d, must be in [1, 3600]", *ts))
	}
	if ts := s.Spec.Template.Spec.TerminationGracePeriodSeconds; ts != nil && (*ts < 0 || *ts > 3600) {
		errs = append(errs, fmt.Errorf("manifest: spec.template.spec.terminationGracePeriodSeconds = %d, must be in [0, 3600]", *ts))
	}
	if len(s.Spec.Template.Spec.Containers) == 1 {
		if _, err := resolveContainer(s.Spec.Template.Spec.Containers[0], "spec.template.spec.containers[0]"); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &s, nil
}

// ReadService reads and parses a manifest file.
func ReadService(path string) (*Service, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseService(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Warnings lists the fields of the manifest that the platform ignores.
func (s *Service) Warnings() []string { return s.warnings }

func walkUnsupported(v any, path, pattern string, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			p, pat := join(path, k), join(pattern, k)
			if !supported[pat] {
				if star := join(pattern, "*"); supported[star] {
					pat = star
				} else {
					*out = append(*out, fmt.Sprintf("%s is not supported by the platform and is ignored", p))
					continue
				}
			}
			walkUnsupported(child, p, pat, out)
		}
	case []any:
		for i, child := range v {
			walkUnsupported(child, fmt.Sprintf("%s[%d]", path, i), pattern+"[]", out)
		}
	}
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// App names a built-in demo application.
type App string

// The demo applications a container image can select.
const (
	AppHello     App = "hello"     // answers "Hello $TARGET!"
	AppAutoscale App = "autoscale" // sleeps and/or burns CPU per request
)

// AppForImage maps a container image to a built-in demo app: an image whose
// name contains "helloworld" or "hello" runs the hello app (Knative's
// helloworld-go sample), one that contains "autoscale" runs the autoscale
// app (Knative's autoscale-go sample).
func AppForImage(image string) (App, error) {
	name := image
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	switch {
	case strings.Contains(name, "autoscale"):
		return AppAutoscale, nil
	case strings.Contains(name, "hello"):
		return AppHello, nil
	}
	return "", fmt.Errorf("manifest: image %q selects no built-in app; use an image named like helloworld-go (hello app) or autoscale-go (autoscale app)", image)
}
