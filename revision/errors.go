package revision

import "errors"

var (
	// ErrInvalidName is returned (wrapped, with the field, the value and the
	// rule) when a configuration, namespace or revision name is not a valid
	// DNS-1035 label or lacks the configuration's prefix.
	ErrInvalidName = errors.New("revision: invalid name")
	// ErrInvalidTemplate is returned (wrapped, with every problem joined)
	// when a template's Validate method rejects it.
	ErrInvalidTemplate = errors.New("revision: invalid template")
	// ErrNameConflict is returned by Apply when the template names a
	// revision that already exists with a different template: revisions are
	// immutable, so the name cannot be reused.
	ErrNameConflict = errors.New("revision: name already used by a different template")
	// ErrInvalidFailure is returned (wrapped) when a Failure has an unknown
	// condition or an empty reason.
	ErrInvalidFailure = errors.New("revision: invalid failure")
	// ErrInvalidObservation is returned (wrapped) by Lifecycle.Observe for a
	// negative ready-replica count.
	ErrInvalidObservation = errors.New("revision: invalid observation")
)
