package traffic

import (
	"errors"
	"fmt"
)

// ErrInvalidSpec is wrapped by every *FieldError that Spec.Validate (and
// ParseSpec, Resolve) report, so errors.Is(err, ErrInvalidSpec) tells a bad
// spec apart from a target that cannot be resolved yet.
var ErrInvalidSpec = errors.New("traffic: invalid spec")

// ErrNoReadyRevision is wrapped by the *TargetError that Resolve returns when
// a target follows the latest ready revision of a configuration that has
// none. Knative reports it as `Configuration "x" not ready`; a route keeps
// its previous traffic until the configuration has a ready revision.
var ErrNoReadyRevision = errors.New("traffic: configuration has no ready revision")

// ErrInvalidRollout is wrapped by every *FieldError that Rollout.Validate
// and ParseRollout report. Knative discards such a state and starts over
// from the current traffic; Plan does the same when given a nil state.
var ErrInvalidRollout = errors.New("traffic: invalid rollout state")

// FieldError is one problem with one field: where it is, what it holds and
// the rule it breaks. Validation joins every FieldError it finds with
// errors.Join, so a caller sees all problems at once.
type FieldError struct {
	// Path names the field the way a JSON path would, e.g.
	// "traffic[1].tag" or "configurations[0].revisions[2].percent".
	Path string
	// Value is the offending value (a string, int or bool), or nil when the
	// problem is a missing value.
	Value any
	// Rule says what the value must be, in Knative's words where Knative
	// has words for it, e.g. "expected 0 <= 101 <= 100".
	Rule string

	kind error // ErrInvalidSpec or ErrInvalidRollout
}

func (e *FieldError) Error() string {
	switch v := e.Value.(type) {
	case nil:
		return fmt.Sprintf("traffic: %s: %s", e.Path, e.Rule)
	case string:
		return fmt.Sprintf("traffic: %s = %q: %s", e.Path, v, e.Rule)
	default:
		return fmt.Sprintf("traffic: %s = %v: %s", e.Path, v, e.Rule)
	}
}

// Unwrap returns ErrInvalidSpec or ErrInvalidRollout, whichever kind of
// input the field belongs to.
func (e *FieldError) Unwrap() error { return e.kind }

// TargetError says that a valid traffic target cannot be resolved to a
// revision now. It wraps ErrNoReadyRevision.
type TargetError struct {
	// Path is the target's place in the spec, e.g. "traffic[0]".
	Path string
	// Configuration is the configuration whose latest ready revision the
	// target follows.
	Configuration string
}

func (e *TargetError) Error() string {
	return fmt.Sprintf("traffic: %s: configuration %q has no ready revision", e.Path, e.Configuration)
}

// Unwrap returns ErrNoReadyRevision.
func (e *TargetError) Unwrap() error { return ErrNoReadyRevision }
