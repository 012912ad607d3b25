package traffic

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Rollout is the state of the gradual rollouts of one route, Knative's
// traffic.Rollout: for each latest-revision target with more than 0% (per
// tag, since a tag has its own split), which revisions share its percent
// while traffic moves to the newest, and when the next step is due.
//
// It is a plain value that the host stores between calls to
// RolloutConfig.Plan, the way Knative stores it as JSON in an annotation on
// the ingress. Its JSON is Knative's (times in Unix nanoseconds), so a state
// written by either can be read by the other; ParseRollout validates it on
// load.
type Rollout struct {
	// Configurations, sorted by tag and, within a tag, by configuration.
	Configurations []ConfigRollout `json:"configurations,omitempty"`
}

// ConfigRollout is the rollout of one configuration within one split.
type ConfigRollout struct {
	// ConfigurationName is the configuration whose latest ready revision
	// the target follows.
	ConfigurationName string `json:"configurationName"`
	// Tag is the split: "" for the default split, or the target's tag.
	Tag string `json:"tag,omitempty"`
	// Percent is the target's share of the split, which the revisions
	// below divide among themselves. In [0, 100].
	Percent int `json:"percent"`
	// Revisions share Percent, oldest first; the last is the newest, which
	// gains a step at a time. One revision means no rollout is under way.
	Revisions []RevisionRollout `json:"revisions,omitempty"`
	// StepParams time the steps of a rollout under way.
	StepParams StepParams `json:"stepParams"`
}

// RevisionRollout is one revision's part of a configuration's percent.
type RevisionRollout struct {
	// RevisionName is the revision's key.
	RevisionName string `json:"revisionName"`
	// Percent of the split (not of the configuration's share). In [0, 100].
	Percent int `json:"percent"`
}

// StepParams say when and how far a rollout steps, Knative's
// RolloutParams. A rollout that has started but whose first 1% is not yet
// live has only StartTime; ObserveReady sets the rest.
type StepParams struct {
	// StartTime is when the newest revision got its first 1%.
	StartTime time.Time
	// NextStepTime is when the next step is due.
	NextStepTime time.Time
	// StepDuration is the time between steps.
	StepDuration time.Duration
	// StepSize is how many percent each step moves to the newest revision.
	StepSize int
}

type stepParamsJSON struct {
	StartTime    int64 `json:"starttime,omitempty"`
	NextStepTime int64 `json:"nextStepTime,omitempty"`
	StepDuration int64 `json:"stepDuration,omitempty"`
	StepSize     int   `json:"stepSize,omitempty"`
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// MarshalJSON writes Knative's form: Unix nanoseconds, zero values left out.
func (p StepParams) MarshalJSON() ([]byte, error) {
	return json.Marshal(stepParamsJSON{unixNano(p.StartTime), unixNano(p.NextStepTime), int64(p.StepDuration), p.StepSize})
}

// UnmarshalJSON reads Knative's form.
func (p *StepParams) UnmarshalJSON(data []byte) error {
	var j stepParamsJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*p = StepParams{fromUnixNano(j.StartTime), fromUnixNano(j.NextStepTime), time.Duration(j.StepDuration), j.StepSize}
	return nil
}

// started reports whether a rollout was stamped with a start time, as
// Knative's StartTime > 0.
func (p StepParams) started() bool { return !p.StartTime.IsZero() && p.StartTime.UnixNano() > 0 }

// NewRollout is the steady state of a resolved table, Knative's
// BuildRollout: each latest share above 0% (the table's shares are already
// merged per revision) with its revision holding all of it. Plan steps
// from the previous state towards it.
func NewRollout(t *Table) *Rollout {
	r := &Rollout{}
	add := func(tag string, shares []Share) {
		for _, sh := range shares {
			if !sh.Latest || sh.Percent == 0 {
				continue
			}
			r.Configurations = append(r.Configurations, ConfigRollout{
				ConfigurationName: sh.Configuration,
				Tag:               tag,
				Percent:           sh.Percent,
				Revisions:         []RevisionRollout{{RevisionName: sh.Revision, Percent: sh.Percent}},
			})
		}
	}
	add("", t.Default)
	for tag, shares := range t.Tags {
		add(tag, shares)
	}
	r.sort()
	return r
}

func (r *Rollout) sort() {
	slices.SortFunc(r.Configurations, func(a, b ConfigRollout) int {
		return cmp.Or(cmp.Compare(a.Tag, b.Tag), cmp.Compare(a.ConfigurationName, b.ConfigurationName))
	})
}

// Done reports whether no rollout is under way: every configuration has at
// most one revision.
func (r *Rollout) Done() bool {
	for _, c := range r.Configurations {
		if len(c.Revisions) > 1 {
			return false
		}
	}
	return true
}

// ObserveReady is called when the traffic of a just-started rollout (the
// newest revision at 1%) is live: for each rollout that has a StartTime but
// no step yet, it computes the steps (Knative's computeProperties), taking
// the time the first 1% took as the shortest step:
//
//	minStep  = max(1 s, ceil(now − StartTime))
//	left     = max(1 s, duration − minStep)
//	steps    = min(max(1, left / minStep), Percent − 1)
//	StepSize = round((Percent − 1) / steps);  StepDuration = left / steps
//
// and the first step is due at now + StepDuration. Rollouts that already
// have steps are left alone, so calling it again does nothing. duration is
// the rollout duration (RolloutConfig.Duration). It modifies r in place.
func (r *Rollout) ObserveReady(now time.Time, duration time.Duration) {
	for i := range r.Configurations {
		c := &r.Configurations[i]
		// Knative would divide by zero for a 1% configuration; it never
		// starts a rollout for one, and neither does this.
		if c.StepParams.StepDuration != 0 || !c.StepParams.started() || c.Percent <= 1 {
			continue
		}
		// Floating point as Knative computes it, so that the steps agree.
		minStep := math.Max(1, math.Ceil(now.Sub(c.StepParams.StartTime).Seconds()))
		left := math.Max(1, duration.Seconds()-minStep)
		steps := math.Max(1, left/minStep)
		rem := float64(c.Percent - 1)
		if rem < steps {
			steps = rem
		}
		c.StepParams.StepSize = int(math.Round(rem / steps))
		c.StepParams.StepDuration = time.Duration(left / steps * float64(time.Second))
		c.StepParams.NextStepTime = now.Add(c.StepParams.StepDuration)
	}
}

// Validate reports every inconsistency as a *FieldError wrapping
// ErrInvalidRollout. Knative discards a state with a percent above 100, a
// step size outside [0, percent] or revision percents that do not add up
// to the configuration's; this also rejects negative percents and
// durations, invalid names and a configuration listed twice for one tag.
func (r *Rollout) Validate() error {
	var errs []error
	add := func(path string, value any, rule string) {
		errs = append(errs, &FieldError{Path: path, Value: value, Rule: rule, kind: ErrInvalidRollout})
	}
	for i, c := range r.Configurations {
		// Paths are built only for problems: Plan validates every state.
		at := func(field string) string { return fmt.Sprintf("configurations[%d]%s", i, field) }
		if !validKey(c.ConfigurationName) {
			add(at(".configurationName"), c.ConfigurationName, keyRule)
		}
		if c.Tag != "" && !isDNS1035Label(c.Tag) {
			add(at(".tag"), c.Tag, dns1035Rule)
		}
		for j, d := range r.Configurations[:i] {
			if d.Tag == c.Tag && d.ConfigurationName == c.ConfigurationName {
				add(at(""), c.ConfigurationName, fmt.Sprintf("tag %q and configuration listed twice, first at configurations[%d]", c.Tag, j))
				break
			}
		}
		if c.Percent < 0 || c.Percent > 100 {
			add(at(".percent"), c.Percent, fmt.Sprintf("expected 0 <= %d <= 100", c.Percent))
		}
		if s := c.StepParams.StepSize; s < 0 || s > c.Percent {
			add(at(".stepParams.stepSize"), s, fmt.Sprintf("expected 0 <= %d <= percent %d", s, c.Percent))
		}
		if d := c.StepParams.StepDuration; d < 0 {
			add(at(".stepParams.stepDuration"), d, "must not be negative")
		}
		sum := 0
		for j, rv := range c.Revisions {
			if !validKey(rv.RevisionName) {
				add(at(fmt.Sprintf(".revisions[%d].revisionName", j)), rv.RevisionName, keyRule)
			}
			if rv.Percent < 0 || rv.Percent > 100 {
				add(at(fmt.Sprintf(".revisions[%d].percent", j)), rv.Percent, fmt.Sprintf("expected 0 <= %d <= 100", rv.Percent))
			}
			sum += rv.Percent
		}
		if sum != c.Percent {
			add(at(".revisions"), sum, fmt.Sprintf("revision percents sum to %d, want the configuration's %d", sum, c.Percent))
		}
	}
	return errors.Join(errs...)
}

// ParseRollout decodes a state written by MarshalJSON (or by Knative, from
// its rollout annotation) and validates it. On an error the host should
// pass a nil state to Plan, which starts over from the current traffic, as
// Knative does with a state it cannot read.
func ParseRollout(data []byte) (*Rollout, error) {
	r := &Rollout{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, fmt.Errorf("traffic: decoding rollout: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rollout) clone() *Rollout {
	out := &Rollout{Configurations: slices.Clone(r.Configurations)}
	for i := range out.Configurations {
		out.Configurations[i].Revisions = slices.Clone(out.Configurations[i].Revisions)
	}
	return out
}

// find returns the rollout of configuration in the split tag, or nil.
func (r *Rollout) find(tag, configuration string) *ConfigRollout {
	for i := range r.Configurations {
		if c := &r.Configurations[i]; c.Tag == tag && c.ConfigurationName == configuration {
			return c
		}
	}
	return nil
}

// step merges the previous state into cur, the steady state of the current
// traffic (Knative's Rollout.Step). It returns the new state and the
// earliest time a step is due (zero if none). prev is not modified; the
// result may share slices with cur, which the caller must not reuse.
func (cur *Rollout) step(prev *Rollout, now time.Time, b *Budget) (*Rollout, time.Time) {
	if prev == nil || len(prev.Configurations) == 0 {
		return cur, time.Time{}
	}
	prev = prev.clone()
	out := &Rollout{}
	var next time.Time
	for _, c := range cur.Configurations {
		p := prev.find(c.Tag, c.ConfigurationName)
		switch {
		case p == nil:
			// A configuration (or tag) that is new to the route: nothing to
			// roll from, so it gets its share at once. (Knative v0.42.2
			// keeps only the first configuration of a tag that is new to
			// the state and adds the others a reconcile later; all are kept
			// here.)
			if c.Percent != 0 {
				out.Configurations = append(out.Configurations, c)
			}
		case c.Percent > 1:
			sc := stepConfig(c, p, now, b)
			out.Configurations = append(out.Configurations, sc)
			if t := sc.StepParams.NextStepTime; !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		case c.Percent == 1:
			// The common A/B case of a 1% target: no rollout.
			out.Configurations = append(out.Configurations, c)
		}
	}
	out.sort()
	return out, next
}

// stepConfig merges one configuration's previous rollout p (owned, may be
// modified) into its goal (Knative's stepConfig).
func stepConfig(goal ConfigRollout, p *ConfigRollout, now time.Time, b *Budget) ConfigRollout {
	ret := ConfigRollout{
		ConfigurationName: goal.ConfigurationName,
		Tag:               goal.Tag,
		Percent:           goal.Percent,
		Revisions:         goal.Revisions,
	}
	if len(p.Revisions) > 0 {
		adjustPercentage(goal.Percent, p)
	}
	// Knative v0.42.2 compares with the revision at the old length here and
	// panics (index out of range) when a lower percent has just dropped the
	// oldest revision; adjusting never drops the newest, so compare with it.
	if len(p.Revisions) == 0 || goal.Revisions[0].RevisionName == p.Revisions[len(p.Revisions)-1].RevisionName {
		// No new revision: continue the rollout under way, if any.
		if len(p.Revisions) > 1 {
			ret.Revisions = p.Revisions
			ret.StepParams = p.StepParams
			// Before ObserveReady there is no step size: wait.
			if ret.StepParams.StepSize > 0 {
				stepRevisions(&ret, now, b)
			}
		}
		return ret
	}
	// A new revision: start a rollout with 1% from the newest previous
	// revision that has any, drop revisions at 0%, and time the steps once
	// the 1% is live (ObserveReady).
	ret.StepParams = StepParams{StartTime: now}
	for i := len(p.Revisions) - 1; i >= 0; i-- {
		if p.Revisions[i].Percent > 0 {
			p.Revisions[i].Percent--
			break
		}
	}
	revs := make([]RevisionRollout, 0, len(p.Revisions)+1)
	for _, rv := range p.Revisions {
		if rv.Percent > 0 {
			revs = append(revs, rv)
		}
	}
	ret.Revisions = append(revs, RevisionRollout{RevisionName: goal.Revisions[0].RevisionName, Percent: 1})
	return ret
}

// adjustPercentage fits a rollout to a new percent for its configuration
// (Knative's adjustPercentage): an increase goes to the newest revision, a
// decrease is taken from the oldest revisions first, dropping those that
// reach 0%, and 0% ends the rollout.
func adjustPercentage(goal int, c *ConfigRollout) {
	diff := goal - c.Percent
	switch {
	case goal == 0:
		c.Revisions = nil
	case diff > 0:
		c.Revisions[len(c.Revisions)-1].Percent += diff
	case diff < 0:
		diff = -diff
		i := 0
		for diff > 0 && i < len(c.Revisions) {
			if c.Revisions[i].Percent > diff {
				c.Revisions[i].Percent -= diff
				break
			}
			diff -= c.Revisions[i].Percent
			i++
		}
		c.Revisions = c.Revisions[i:]
	}
}

// stepRevisions moves one step (StepParams.StepSize, or less under a
// Budget) to the newest revision if it is due (Knative's stepRevisions):
// the step is taken from the newest old revisions first, those that reach
// 0% are dropped, and the newest gets the step, capped at the
// configuration's percent. When only the newest is left the rollout is
// done and its step parameters are cleared.
func stepRevisions(c *ConfigRollout, now time.Time, b *Budget) {
	n := len(c.Revisions)
	if now.Before(c.StepParams.NextStepTime) || n < 2 {
		return
	}
	size := c.StepParams.StepSize
	if b != nil {
		size = b.allowedStep(c, size)
		if size == 0 {
			// The newest revision cannot take more yet: try again a step
			// later (or sooner, when the host plans on a capacity change).
			c.StepParams.NextStepTime = now.Add(c.StepParams.StepDuration)
			return
		}
	}
	remaining := size
	write := n - 1 // where the newest revision ends up
	for read := n - 2; remaining > 0 && read >= 0; read-- {
		if c.Revisions[read].Percent > remaining {
			c.Revisions[read].Percent -= remaining
			break
		}
		remaining -= c.Revisions[read].Percent
		write--
	}
	c.Revisions[write] = c.Revisions[n-1]
	c.Revisions[write].Percent = min(c.Revisions[write].Percent+size, c.Percent)
	c.Revisions = c.Revisions[:write+1]
	if len(c.Revisions) > 1 {
		c.StepParams.NextStepTime = now.Add(c.StepParams.StepDuration)
	} else {
		c.StepParams = StepParams{}
	}
}

// applyRollout returns t with each latest share that is being rolled out
// replaced by the revisions of its rollout (Knative's makeBaseIngressPath),
// merged per revision.
func applyRollout(t *Table, r *Rollout) *Table {
	expand := func(tag string, shares []Share) []Share {
		out := make([]Share, 0, len(shares)+1)
		for _, sh := range shares {
			c := (*ConfigRollout)(nil)
			if sh.Latest && sh.Percent > 0 {
				c = r.find(tag, sh.Configuration)
			}
			if c == nil || len(c.Revisions) < 2 {
				out = append(out, sh)
				continue
			}
			for i, rv := range c.Revisions {
				out = append(out, Share{Revision: rv.RevisionName, Percent: rv.Percent,
					Configuration: sh.Configuration, Latest: i == len(c.Revisions)-1})
			}
		}
		return mergeShares(out)
	}
	out := &Table{Default: expand("", t.Default)}
	if len(t.Tags) > 0 {
		out.Tags = make(map[string][]Share, len(t.Tags))
		for tag, shares := range t.Tags {
			out.Tags[tag] = expand(tag, shares)
		}
	}
	return out
}
