package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
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

// ObjectMeta holds a name, a namespace, labels and annotations.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels"`
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
	StartupProbe   *Probe          `json:"startupProbe"`
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

// Limits on a manifest, so that reading one costs little whatever it holds.
const (
	// MaxManifestBytes is the largest manifest the platform reads; the
	// control endpoint refuses a larger body with 413.
	MaxManifestBytes = 1 << 20
	// MaxManifestDepth bounds the nesting of mappings and lists. A Knative
	// Service is at most about ten levels deep.
	MaxManifestDepth = 32
)

// VisibilityLabel set to VisibilityClusterLocal on a Service keeps it off
// the public gateway: only the internal listener serves it (Knative's
// networking.knative.dev/visibility).
const (
	VisibilityLabel        = "networking.knative.dev/visibility"
	VisibilityClusterLocal = "cluster-local"
)

// supported lists the manifest paths the platform reads, split on dots;
// "*" matches any map key, "[]" any list element. Keys with dots of their
// own (labels) are in supportedKeys.
var supported = []string{
	"apiVersion", "kind",
	"metadata.name", "metadata.namespace",
	"metadata.annotations.*",
	"metadata.labels",
	"spec.template.metadata.name",
	"spec.template.metadata.annotations.*",
	"spec.template.spec.containerConcurrency",
	"spec.template.spec.timeoutSeconds",
	"spec.template.spec.terminationGracePeriodSeconds",
	"spec.template.spec.containers[].name",
	"spec.template.spec.containers[].image",
	"spec.template.spec.containers[].env[].name",
	"spec.template.spec.containers[].env[].value",
	"spec.traffic[].revisionName", "spec.traffic[].latestRevision",
	"spec.traffic[].percent", "spec.traffic[].tag",
}

// supportedKeys lists map keys that contain dots, by the path of their map.
var supportedKeys = map[string][]string{
	"metadata.labels": {VisibilityLabel},
}

// schema is supported as a tree, so that checking a manifest against it is
// one pass over the manifest's nodes.
var schema = buildSchema()

type field struct {
	children map[string]*field // by key, "*" (any key) and "[]" (a list's elements)
}

func (f *field) child(key string) *field {
	if f == nil {
		return nil
	}
	if c := f.children[key]; c != nil || key == "[]" {
		return c
	}
	return f.children["*"]
}

// foldMatch returns the field of f whose name equals key in another case,
// or "".
func (f *field) foldMatch(key string) string {
	for name := range f.children {
		if name != "*" && name != "[]" && strings.EqualFold(name, key) {
			return name
		}
	}
	return ""
}

func (f *field) add(key string) *field {
	if f.children == nil {
		f.children = map[string]*field{}
	}
	c := f.children[key]
	if c == nil {
		c = &field{}
		f.children[key] = c
	}
	return c
}

func buildSchema() *field {
	root := &field{}
	walk := func(path string) *field {
		f := root
		for _, seg := range strings.Split(path, ".") {
			if name, list := strings.CutSuffix(seg, "[]"); list {
				f = f.add(name).add("[]")
			} else {
				f = f.add(seg)
			}
		}
		return f
	}
	for _, p := range slices.Concat(supported, containerPaths) {
		walk(p)
	}
	for p, keys := range supportedKeys {
		f := walk(p)
		for _, k := range keys {
			f.add(k)
		}
	}
	return root
}

// ParseService reads one Service manifest (YAML or JSON). Structural
// problems (bad YAML, more than one document, a duplicate key or keys that
// would be one once decoded (nonStringKey, a field name in another case), nesting
// deeper than MaxManifestDepth, more than MaxManifestBytes, a wrong kind, a
// field of the wrong type, a missing name or container) are errors; fields
// and labels the platform does not support are warnings.
func ParseService(data []byte) (*Service, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("manifest: %d bytes, more than the limit of %d bytes (1 MiB)", len(data), MaxManifestBytes)
	}
	root, err := singleDocument(data)
	if err != nil {
		return nil, err
	}
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("manifest: want a YAML mapping (a Knative Service), got something else")
	}
	c := checker{}
	c.walk(root, schema, 1)
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	var s Service
	if err := sigsyaml.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	s.warnings = c.warnings
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
	if v, ok := s.Metadata.Labels[VisibilityLabel]; ok && v != VisibilityClusterLocal {
		errs = append(errs, fmt.Errorf("manifest: metadata.labels[%s] = %q, want %q or no label", VisibilityLabel, v, VisibilityClusterLocal))
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

// singleDocument returns the one document of a manifest. Empty documents
// (a leading or trailing "---") are skipped; a second document with content
// is refused, naming it, because applying only the first would silently
// drop the rest and applying several could apply part of the file.
func singleDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root *yaml.Node
	for i := 1; ; i++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("manifest: not valid YAML: %w", err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		n := doc.Content[0]
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			continue // an empty document
		}
		if root != nil {
			return nil, fmt.Errorf("manifest: document %d (line %d) is a second document; the platform applies one Service per manifest, so apply each document on its own", i, n.Line)
		}
		root = n
	}
	if root == nil {
		return nil, errors.New("manifest: empty; want a YAML mapping (a Knative Service)")
	}
	return root, nil
}

// checker walks a manifest once: it refuses duplicate keys and deep
// nesting anywhere, and lists the fields outside the schema. The path of a
// node is kept as a stack of segments and joined only for a warning, so
// the walk costs time in proportion to the manifest's size.
type checker struct {
	path     []string
	warnings []string
	errs     []error
}

func (c *checker) walk(n *yaml.Node, f *field, depth int) {
	if depth > MaxManifestDepth {
		c.errs = append(c.errs, fmt.Errorf("manifest: line %d: %s is nested deeper than %d levels", n.Line, c.pathString(), MaxManifestDepth))
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				c.errs = append(c.errs, fmt.Errorf("manifest: line %d: a key under %s is not a string", k.Line, c.pathString()))
				continue
			}
			if k.Tag == "!!merge" {
				c.errs = append(c.errs, fmt.Errorf("manifest: line %d: merge keys (<<) are not supported", k.Line))
				continue
			}
			if kind := nonStringKey(k); kind != "" {
				c.errs = append(c.errs, fmt.Errorf("manifest: line %d: key %s under %s is read by YAML as %s, not a string; quote it", k.Line, k.Value, c.pathOr("the top level"), kind))
				continue
			}
			if first, dup := seen[k.Value]; dup {
				c.errs = append(c.errs, fmt.Errorf("manifest: line %d: duplicate key %q under %s (first at line %d)", k.Line, k.Value, c.pathOr("the top level"), first))
				continue
			}
			seen[k.Value] = k.Line
			c.path = append(c.path, k.Value)
			child := f.child(k.Value)
			if f != nil && child == nil {
				if want := f.foldMatch(k.Value); want != "" {
					// The decoder matches field names in any case.
					c.errs = append(c.errs, fmt.Errorf("manifest: line %d: %s: field names are case-sensitive; did you mean %q?", k.Line, c.pathString(), want))
				} else {
					c.warnings = append(c.warnings, c.pathString()+" is not supported by the platform and is ignored")
				}
			}
			c.walk(v, child, depth+1)
			c.path = c.path[:len(c.path)-1]
		}
	case yaml.SequenceNode:
		elem := f.child("[]")
		for i, v := range n.Content {
			c.path = append(c.path, "["+strconv.Itoa(i)+"]")
			c.walk(v, elem, depth+1)
			c.path = c.path[:len(c.path)-1]
		}
	}
}

// The manifest is checked as YAML 1.2 (go.yaml.in/yaml/v3) and decoded as
// YAML 1.1 (sigs.k8s.io/yaml, like kubectl), which turns every key into a
// JSON string: 16 and 0x10 both become "16", yes and true both "true". So
// two keys that differ here can be one key there, the last winning. Only
// keys both read as the same string are accepted.

// yaml11Bools are the plain scalars that YAML 1.1 reads as booleans and
// YAML 1.2 as strings.
var yaml11Bools = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true,
	"n": true, "N": true, "no": true, "No": true, "NO": true,
	"on": true, "On": true, "ON": true, "off": true, "Off": true, "OFF": true,
}

// nonStringKey says what a mapping key is read as if not a string: "a
// number", "a boolean"…; "" for a string.
func nonStringKey(k *yaml.Node) string {
	plain := k.Style == 0 // not quoted, no tag
	switch {
	case plain && yaml11Bools[k.Value]:
		return "a boolean (YAML 1.1)"
	case k.Tag == "!!str", plain && k.Tag == "!!timestamp": // YAML 1.1 keeps a timestamp key as written
		return ""
	case k.Tag == "!!int", k.Tag == "!!float":
		return "a number"
	case k.Tag == "!!bool":
		return "a boolean"
	case k.Tag == "!!null":
		return "null"
	}
	return k.Tag
}

func (c *checker) pathOr(top string) string {
	if len(c.path) == 0 {
		return top
	}
	return c.pathString()
}

// pathString renders the current path: keys joined by dots, list indexes
// in brackets, keys with dots or slashes (labels, annotations) in brackets.
func (c *checker) pathString() string {
	var b strings.Builder
	for i, seg := range c.path {
		switch {
		case strings.HasPrefix(seg, "["):
			b.WriteString(seg)
		case strings.ContainsAny(seg, "./[]"):
			b.WriteString("[" + seg + "]")
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(seg)
		}
	}
	return b.String()
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
