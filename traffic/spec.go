package traffic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Target is one entry of a route's traffic: a share of the requests, sent
// to a named revision or to whatever revision of a configuration is the
// latest ready one, optionally also reachable by a tag. It has the fields
// and JSON names of Knative's TrafficTarget, so a Knative route's
// spec.traffic decodes into []Target.
type Target struct {
	// Tag, if set, gives the target its own route (host
	// {tag}-{name}.{namespace}.{domain} by default) that always sends 100%
	// of its requests to the target's revision. A DNS-1035 label, unique
	// within the spec.
	Tag string `json:"tag,omitempty"`
	// RevisionName pins the target to one revision (a host-chosen key such
	// as "default/hello-00001"). Exactly one of RevisionName and
	// ConfigurationName is set, unless the spec has a DefaultConfiguration.
	RevisionName string `json:"revisionName,omitempty"`
	// ConfigurationName makes the target follow the latest ready revision of
	// this configuration.
	ConfigurationName string `json:"configurationName,omitempty"`
	// LatestRevision says whether the target follows the latest ready
	// revision. Nil means RevisionName == "" (Knative's default); true
	// forbids RevisionName and false requires it.
	LatestRevision *bool `json:"latestRevision,omitempty"`
	// Percent of the route's requests, in [0, 100]. The percents of a spec
	// sum to 100. A tagged target with 0% receives requests only through
	// its tag.
	Percent int `json:"percent,omitempty"`
	// URL is filled by Knative in a route's status; it must be empty in a
	// spec. It is here so that Knative JSON decodes without loss.
	URL string `json:"url,omitempty"`
}

// latest reports whether the target follows a configuration's latest ready
// revision, applying Knative's default for a nil LatestRevision.
func (t Target) latest() bool {
	if t.LatestRevision != nil {
		return *t.LatestRevision
	}
	return t.RevisionName == ""
}

// Spec is a route's traffic specification, Knative's RouteSpec.
type Spec struct {
	// Traffic lists the targets. Their percents sum to 100.
	Traffic []Target `json:"traffic,omitempty"`
	// DefaultConfiguration is the configuration of a route that belongs to
	// a service (Knative's "default configuration in context"). When set,
	// targets may not name a configuration, a latest target follows this
	// one, and an empty Traffic defaults to 100% latest. Not part of the
	// JSON: it comes from who owns the route.
	DefaultConfiguration string `json:"-"`
}

// SetDefaults applies Knative's defaults (RouteSpec.SetDefaults): an empty
// Traffic with a DefaultConfiguration becomes 100% to its latest ready
// revision, and each target's nil LatestRevision becomes
// RevisionName == "". (A missing percent is already 0.) The targets are
// copied, not modified in place, so a caller's slice is left alone.
func (s *Spec) SetDefaults() {
	if len(s.Traffic) == 0 && s.DefaultConfiguration != "" {
		s.Traffic = []Target{{Percent: 100, LatestRevision: boolPtr(true)}}
		return
	}
	ts := make([]Target, len(s.Traffic))
	for i, t := range s.Traffic {
		if t.LatestRevision == nil {
			t.LatestRevision = boolPtr(t.RevisionName == "")
		}
		ts[i] = t
	}
	s.Traffic = ts
}

func boolPtr(b bool) *bool { return &b }

// Validate reports every problem with the spec as a *FieldError (joined
// with errors.Join; each wraps ErrInvalidSpec), following Knative's rules
// (validateTrafficList, TrafficTarget.Validate):
//   - the percents sum to 100 (an empty list sums to 0);
//   - each percent is in [0, 100];
//   - tags are DNS-1035 labels and unique;
//   - exactly one of revisionName and configurationName is set, or only
//     revisionName (or neither) when DefaultConfiguration is set;
//   - latestRevision true forbids revisionName, false requires it;
//   - url is empty.
//
// Revision and configuration names are the host's keys, so where Knative
// requires Kubernetes names this only requires 1–253 visible ASCII
// characters. Validate checks the spec as it is; ParseSpec and Resolve
// apply SetDefaults first, as Knative's webhook does.
func (s Spec) Validate() error {
	var errs []error
	add := func(path string, value any, rule string) {
		errs = append(errs, &FieldError{Path: path, Value: value, Rule: rule, kind: ErrInvalidSpec})
	}
	if s.DefaultConfiguration != "" && !validKey(s.DefaultConfiguration) {
		add("defaultConfiguration", s.DefaultConfiguration, keyRule)
	}
	tags := make(map[string]int, len(s.Traffic))
	sum := 0
	for i, t := range s.Traffic {
		at := func(field string) string { return fmt.Sprintf("traffic[%d].%s", i, field) }
		sum += t.Percent
		if t.LatestRevision != nil && *t.LatestRevision == (t.RevisionName != "") {
			add(at("latestRevision"), *t.LatestRevision,
				fmt.Sprintf("may not set revisionName %q when latestRevision is %t", t.RevisionName, *t.LatestRevision))
		}
		switch {
		case s.DefaultConfiguration != "" && t.ConfigurationName != "":
			add(at("configurationName"), t.ConfigurationName,
				fmt.Sprintf("must not be set: the route follows its default configuration %q", s.DefaultConfiguration))
		case t.RevisionName != "" && t.ConfigurationName != "":
			add(at("configurationName"), t.ConfigurationName,
				fmt.Sprintf("expected exactly one of revisionName and configurationName, got both (revisionName %q)", t.RevisionName))
		case t.RevisionName != "":
			if !validKey(t.RevisionName) {
				add(at("revisionName"), t.RevisionName, keyRule)
			}
		case t.ConfigurationName != "":
			if !validKey(t.ConfigurationName) {
				add(at("configurationName"), t.ConfigurationName, keyRule)
			}
		case s.DefaultConfiguration != "":
		default:
			add(at("revisionName"), nil, "expected exactly one of revisionName and configurationName, got neither")
		}
		if t.Percent < 0 || t.Percent > 100 {
			add(at("percent"), t.Percent, fmt.Sprintf("expected 0 <= %d <= 100", t.Percent))
		}
		if t.URL != "" {
			add(at("url"), t.URL, "must not be set in a spec")
		}
		if t.Tag == "" {
			continue
		}
		if !isDNS1035Label(t.Tag) {
			add(at("tag"), t.Tag, dns1035Rule)
		}
		if j, dup := tags[t.Tag]; dup {
			add(at("tag"), t.Tag, fmt.Sprintf("must be unique, already used by traffic[%d].tag", j))
		} else {
			tags[t.Tag] = i
		}
	}
	if sum != 100 {
		add("traffic", sum, fmt.Sprintf("Traffic targets sum to %d, want 100", sum))
	}
	return errors.Join(errs...)
}

// Configurations lists, without duplicates and in order of first use, the
// configurations whose latest ready revision the spec follows. The host
// re-resolves the route when any of them gets a new latest ready revision.
func (s Spec) Configurations() []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range s.Traffic {
		if !t.latest() {
			continue
		}
		c := t.ConfigurationName
		if c == "" {
			c = s.DefaultConfiguration
		}
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// ParseSpec decodes a Knative RouteSpec in JSON ({"traffic": [...]}),
// applies SetDefaults and Validate, and returns the defaulted spec. Unknown
// fields are errors, so a typo does not silently drop a setting.
// defaultConfiguration is the Spec.DefaultConfiguration ("" for a route
// that no service owns).
func ParseSpec(data []byte, defaultConfiguration string) (Spec, error) {
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Spec{}, fmt.Errorf("traffic: decoding spec: %w", err)
	}
	if dec.More() {
		return Spec{}, errors.New("traffic: decoding spec: data after the JSON object")
	}
	s.DefaultConfiguration = defaultConfiguration
	s.SetDefaults()
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

const keyRule = "must be 1 to 253 visible ASCII characters"

// validKey accepts a host-chosen revision or configuration key: no spaces
// or control characters, so it can travel in a header unchanged.
func validKey(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

const dns1035Rule = "not a DNS 1035 label: must consist of lower case alphanumeric characters or '-', " +
	"start with an alphabetic character, end with an alphanumeric character, and be at most 63 characters"

func isDNS1035Label(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' || c == '-':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return s[len(s)-1] != '-'
}

// isDNS1123Label is the rule for names and namespaces used in hosts.
func isDNS1123Label(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return s[0] != '-' && s[len(s)-1] != '-'
}
