package traffic

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// LatestReady tells Resolve which revision of a configuration is the latest
// ready one. It is the host's plug point: a map, a cache of its revision
// store, or a LatestReadyFunc.
type LatestReady interface {
	// LatestReadyRevision returns the latest ready revision of
	// configuration, and false if the configuration has none (or is
	// unknown).
	LatestReadyRevision(configuration string) (revision string, ok bool)
}

// LatestReadyFunc adapts a function to LatestReady.
type LatestReadyFunc func(configuration string) (revision string, ok bool)

// LatestReadyRevision calls f(configuration).
func (f LatestReadyFunc) LatestReadyRevision(configuration string) (string, bool) {
	return f(configuration)
}

// LatestReadyMap is a LatestReady from configuration to revision. A missing
// or empty entry means the configuration has no ready revision.
type LatestReadyMap map[string]string

// LatestReadyRevision looks configuration up in m.
func (m LatestReadyMap) LatestReadyRevision(configuration string) (string, bool) {
	r := m[configuration]
	return r, r != ""
}

// Share is one revision's part of a route's (or a tag's) requests.
type Share struct {
	// Revision is the revision's key.
	Revision string `json:"revision"`
	// Percent of the requests, in [0, 100].
	Percent int `json:"percent"`
	// Configuration is the configuration that Revision is the latest ready
	// revision of, when the share came from a latest-revision target; only
	// such shares take part in a gradual rollout.
	Configuration string `json:"configuration,omitempty"`
	// Latest is true when the share follows Configuration's latest ready
	// revision.
	Latest bool `json:"latest,omitempty"`
}

// Table is a route's traffic resolved to revisions: the default split and
// one split per tag (Knative's traffic.Config.Targets). Within a split each
// revision appears once, in order of first appearance in the spec, and the
// percents sum to 100. A Table is a plain value; the router turns it into
// pickers.
type Table struct {
	// Default is the split for requests that name no tag.
	Default []Share `json:"default"`
	// Tags maps each tag to its split. A tag's split has one revision at
	// 100%, except during a gradual rollout of a latest-revision target.
	Tags map[string][]Share `json:"tags,omitempty"`
}

// Resolve turns a spec into a Table, Knative's BuildTrafficConfiguration:
// each target becomes its revision (latest targets through latest), every
// target joins the default split, tagged targets also get their own split,
// percents of the same revision within a split are added up, and a split
// that holds a single revision gets 100%.
//
// The spec gets SetDefaults and Validate first (on a copy); an invalid spec
// returns its *FieldErrors. A latest target whose configuration has no
// ready revision gives a *TargetError; all of them are joined and no Table
// is returned, so the host keeps routing by its previous Table, as Knative
// keeps its previous ingress. Call Resolve again whenever a configuration
// in s.Configurations() gets a new latest ready revision.
func Resolve(s Spec, latest LatestReady) (*Table, error) {
	s.SetDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var errs []error
	groups := map[string][]Share{}
	for i, t := range s.Traffic {
		sh := Share{Revision: t.RevisionName, Percent: t.Percent}
		if t.latest() {
			cfg := t.ConfigurationName
			if cfg == "" {
				cfg = s.DefaultConfiguration
			}
			rev, ok := "", false
			if latest != nil {
				rev, ok = latest.LatestReadyRevision(cfg)
			}
			if !ok || rev == "" {
				errs = append(errs, &TargetError{Path: fmt.Sprintf("traffic[%d]", i), Configuration: cfg})
				continue
			}
			sh.Revision, sh.Configuration, sh.Latest = rev, cfg, true
		}
		groups[""] = append(groups[""], sh)
		if t.Tag != "" {
			groups[t.Tag] = append(groups[t.Tag], sh)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	tbl := &Table{Default: consolidate(groups[""])}
	delete(groups, "")
	if len(groups) > 0 {
		tbl.Tags = make(map[string][]Share, len(groups))
		for tag, g := range groups {
			tbl.Tags[tag] = consolidate(g)
		}
	}
	return tbl, nil
}

// consolidate adds up the percents of each revision, keeping the first
// share's other fields (as Knative does), and gives a lone revision 100%.
func consolidate(shares []Share) []Share {
	out := mergeShares(shares)
	if len(out) == 1 {
		out[0].Percent = 100
	}
	return out
}

// mergeShares adds up the percents of shares that name the same revision,
// in order of first appearance, into a new slice.
func mergeShares(shares []Share) []Share {
	out := make([]Share, 0, len(shares))
next:
	for _, sh := range shares {
		for i := range out {
			if out[i].Revision == sh.Revision {
				out[i].Percent += sh.Percent
				continue next
			}
		}
		out = append(out, sh)
	}
	return out
}

// Group returns the split for tag, or the default split for tag "".
func (t *Table) Group(tag string) []Share {
	if tag == "" {
		return t.Default
	}
	return t.Tags[tag]
}

// Validate checks that every split is usable by a router: percents in
// [0, 100] summing to 100, revision keys valid. A Table from Resolve (or
// Plan) always passes; this is for tables a host builds by hand.
func (t *Table) Validate() error {
	var errs []error
	check := func(path string, g []Share) {
		sum := 0
		for i, sh := range g {
			p := fmt.Sprintf("%s[%d]", path, i)
			if !validKey(sh.Revision) {
				errs = append(errs, &FieldError{Path: p + ".revision", Value: sh.Revision, Rule: keyRule, kind: ErrInvalidSpec})
			}
			if sh.Percent < 0 || sh.Percent > 100 {
				errs = append(errs, &FieldError{Path: p + ".percent", Value: sh.Percent, Rule: fmt.Sprintf("expected 0 <= %d <= 100", sh.Percent), kind: ErrInvalidSpec})
			}
			sum += sh.Percent
		}
		if sum != 100 {
			errs = append(errs, &FieldError{Path: path, Value: sum, Rule: fmt.Sprintf("percents sum to %d, want 100", sum), kind: ErrInvalidSpec})
		}
	}
	check("default", t.Default)
	for _, tag := range slices.Sorted(maps.Keys(t.Tags)) {
		if !isDNS1035Label(tag) {
			errs = append(errs, &FieldError{Path: "tags", Value: tag, Rule: dns1035Rule, kind: ErrInvalidSpec})
		}
		check(fmt.Sprintf("tags[%s]", tag), t.Tags[tag])
	}
	return errors.Join(errs...)
}

// String formats the table as "default: a 90%, b 10%; tag canary: b 100%",
// tags sorted.
func (t *Table) String() string {
	var b strings.Builder
	b.WriteString("default: ")
	writeShares(&b, t.Default)
	for _, tag := range slices.Sorted(maps.Keys(t.Tags)) {
		fmt.Fprintf(&b, "; tag %s: ", tag)
		writeShares(&b, t.Tags[tag])
	}
	return b.String()
}

func writeShares(b *strings.Builder, g []Share) {
	for i, sh := range g {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%s %d%%", sh.Revision, sh.Percent)
	}
}
