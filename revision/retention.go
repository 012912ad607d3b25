package revision

import (
	"errors"
	"fmt"
	"time"
)

// Disabled turns off a RetentionPolicy field: the time checks, the minimum
// or the maximum (Knative's "disabled", -1).
const Disabled = -1

// Knative's revision garbage-collection defaults (config-gc), used for
// RetentionPolicy's zero fields.
const (
	DefaultRetainSinceCreate     = 48 * time.Hour
	DefaultRetainSinceLastActive = 15 * time.Hour
	DefaultMinNonActive          = 20
	DefaultMaxNonActive          = 1000
)

// RetentionPolicy says when a configuration's revisions that no route
// references ("non-active") are retired, with Knative's garbage-collection
// rules: the oldest non-active revisions go first (by when they were last
// routed, else created); one is stale once it is both older than
// RetainSinceCreate and unrouted for RetainSinceLastActive, and stale ones
// go as long as MinNonActive remain; then, past MaxNonActive, the oldest go
// whatever their age. The latest revision and referenced revisions are never
// retired. The zero value is Knative's defaults.
type RetentionPolicy struct {
	// RetainSinceCreate keeps a revision this long after its creation.
	// Zero means DefaultRetainSinceCreate (48 h); Disabled turns the check
	// off; otherwise it must be positive.
	RetainSinceCreate time.Duration
	// RetainSinceLastActive keeps a revision this long after a route last
	// referenced it. Zero means DefaultRetainSinceLastActive (15 h);
	// Disabled turns the check off; otherwise it must be positive. With
	// both time checks off, no revision is stale and only MaxNonActive
	// retires.
	RetainSinceLastActive time.Duration
	// MinNonActive is how many non-active revisions are always kept. Zero
	// means DefaultMinNonActive (20); Disabled means none; otherwise it
	// must be positive and at most MaxNonActive.
	MinNonActive int
	// MaxNonActive is how many non-active revisions may be kept at most.
	// Zero means DefaultMaxNonActive (1000); Disabled means no limit;
	// otherwise it must be positive.
	MaxNonActive int
}

// Validate reports every problem with p, joined, each naming the field, the
// value and the allowed range.
func (p RetentionPolicy) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
		def  time.Duration
	}{
		{"RetainSinceCreate", p.RetainSinceCreate, DefaultRetainSinceCreate},
		{"RetainSinceLastActive", p.RetainSinceLastActive, DefaultRetainSinceLastActive},
	} {
		if d.v < 0 && d.v != Disabled {
			errs = append(errs, fmt.Errorf("revision: RetentionPolicy.%s = %v, must be >= 0 (0 means %v) or Disabled (-1)",
				d.name, d.v, d.def))
		}
	}
	if p.MinNonActive < 0 && p.MinNonActive != Disabled {
		errs = append(errs, fmt.Errorf("revision: RetentionPolicy.MinNonActive = %d, must be >= 0 (0 means %d) or Disabled (-1)",
			p.MinNonActive, DefaultMinNonActive))
	}
	if p.MaxNonActive < 0 && p.MaxNonActive != Disabled {
		errs = append(errs, fmt.Errorf("revision: RetentionPolicy.MaxNonActive = %d, must be >= 0 (0 means %d) or Disabled (-1)",
			p.MaxNonActive, DefaultMaxNonActive))
	}
	if len(errs) == 0 {
		d := p.withDefaults()
		if d.MaxNonActive != Disabled && d.MinNonActive > d.MaxNonActive {
			errs = append(errs, fmt.Errorf("revision: RetentionPolicy.MinNonActive = %d must be <= RetentionPolicy.MaxNonActive = %d (zero fields count as their defaults)",
				d.MinNonActive, d.MaxNonActive))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields; MinNonActive Disabled becomes 0.
func (p RetentionPolicy) withDefaults() RetentionPolicy {
	if p.RetainSinceCreate == 0 {
		p.RetainSinceCreate = DefaultRetainSinceCreate
	}
	if p.RetainSinceLastActive == 0 {
		p.RetainSinceLastActive = DefaultRetainSinceLastActive
	}
	switch p.MinNonActive {
	case 0:
		p.MinNonActive = DefaultMinNonActive
	case Disabled:
		p.MinNonActive = 0
	}
	if p.MaxNonActive == 0 {
		p.MaxNonActive = DefaultMaxNonActive
	}
	return p
}

// candidate is a non-active revision as the policy sees it.
type candidate struct {
	created, lastActive time.Time
}

// stale reports whether c may be retired at now for its age (Knative's
// isRevisionStale). p has its defaults filled.
func (p RetentionPolicy) stale(now time.Time, c candidate) bool {
	create, active := p.RetainSinceCreate, p.RetainSinceLastActive
	if create == Disabled && active == Disabled {
		return false
	}
	if create != Disabled && now.Sub(c.created) < create {
		return false
	}
	if active != Disabled && now.Sub(c.lastActive) < active {
		return false
	}
	return true
}

// retire picks which of the non-active revisions nonActive (oldest last
// activity first) to retire at now, out of total revisions; it returns
// their indexes in nonActive (Knative's collect). p has its defaults filled.
func (p RetentionPolicy) retire(now time.Time, total int, nonActive []candidate) []int {
	min, max := p.MinNonActive, p.MaxNonActive
	if max == Disabled && p.RetainSinceCreate == Disabled && p.RetainSinceLastActive == Disabled {
		return nil
	}
	if total <= min || len(nonActive) <= min {
		return nil
	}
	var out []int
	gone := make([]bool, len(nonActive))
	mayRetire := len(nonActive) - min
	for i, c := range nonActive {
		if !p.stale(now, c) {
			continue
		}
		out = append(out, i)
		gone[i] = true
		if len(out) >= mayRetire {
			return out
		}
	}
	kept := len(nonActive) - len(out)
	if max == Disabled || kept <= max {
		return out
	}
	extra := kept - max
	for i := range nonActive {
		if extra == 0 {
			break
		}
		if !gone[i] {
			out = append(out, i)
			extra--
		}
	}
	return out
}
