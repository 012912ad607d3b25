package revision

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Template is what a revision is made from: the host's own description of
// how to run its code (an image, a handler name, a command, a VM spec…).
// The library never looks inside; it only asks whether two templates would
// make the same revision. Spec is a ready-made Template for hosts that have
// none of their own.
//
// A template type may also implement Validate() error, which Apply calls
// (an error is returned wrapped in ErrInvalidTemplate), RevisionName()
// string, which names the revision instead of the generated
// "<configuration>-NNNNN", and Clone() T, which Apply calls to keep a copy
// of its own when it creates a revision: a template holding maps or slices
// needs it, or a caller that goes on changing them would change the
// "immutable" revision (and a changed template would compare equal to it).
//
// A template is generic rather than a fixed struct because hosts differ
// (Kubernetes pod specs, Nomad jobs, processes, in-process handlers): each
// keeps its own type, gets it back typed from Revision.Template, and
// decides equality — a comparable struct can simply return t == o.
type Template[T any] interface {
	// Equal reports whether t and o would make the same revision.
	Equal(o T) bool
}

// Revision is one immutable revision of a configuration.
type Revision[T any] struct {
	// Name is the revision's name, unique within its configuration.
	Name string
	// Key is the plain string key the other packages know the revision by:
	// "<namespace>/<name>", or the name alone without a namespace.
	Key string
	// Configuration names the configuration the revision belongs to.
	Configuration string
	// Generation numbers the revision within its configuration, from 1,
	// increasing with every revision created.
	Generation int64
	// Template is what the revision was made from. Treat it as read-only:
	// revisions are immutable.
	Template T
	// Created is when Apply created the revision.
	Created time.Time
}

// ConfigurationOptions are a configuration's optional settings.
type ConfigurationOptions struct {
	// Namespace, when set, prefixes revision keys: "<namespace>/<name>",
	// Knative's key format. It must be a DNS-1123 label. Empty means keys
	// are plain names.
	Namespace string
	// Retention says when unrouted revisions are retired by Collect. The
	// zero value is Knative's defaults.
	Retention RetentionPolicy
}

// Configuration is a stream of immutable revisions made from templates, as
// in Knative: applying a template creates a new revision only when it
// differs from the latest one; the history is kept, so any older revision
// can be routed to again (rollback is a routing decision, not a new
// revision); Collect retires revisions no route needs any more.
//
// Safe for simultaneous use. It calls no user code except the template's
// Equal, Validate and RevisionName, under its lock, so those must not call
// back into the configuration.
type Configuration[T Template[T]] struct {
	name      string
	namespace string
	retention RetentionPolicy // defaults filled

	mu         sync.Mutex // protects the fields below
	generation int64      // the highest generation used
	history    []*entry[T]
	byName     map[string]*entry[T]
	latest     *entry[T]
}

type entry[T any] struct {
	rev        Revision[T]
	routed     bool      // referenced by a route at the last Collect
	lastActive time.Time // when it was last seen routed; its creation time if never
}

// NewConfiguration returns an empty configuration named name, which must be
// a DNS-1035 label of at most MaxConfigurationNameLength characters.
func NewConfiguration[T Template[T]](name string, opts ConfigurationOptions) (*Configuration[T], error) {
	var errs []error
	if err := validateLabel("configuration name", name, true, MaxConfigurationNameLength); err != nil {
		errs = append(errs, err)
	}
	if opts.Namespace != "" {
		if err := validateLabel("namespace", opts.Namespace, false, MaxNameLength); err != nil {
			errs = append(errs, err)
		}
	}
	if err := opts.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Configuration[T]{
		name:      name,
		namespace: opts.Namespace,
		retention: opts.Retention.withDefaults(),
		byName:    make(map[string]*entry[T]),
	}, nil
}

// Name returns the configuration's name.
func (c *Configuration[T]) Name() string { return c.name }

// Apply makes tmpl the configuration's template at now. It returns the
// revision that now serves as latest and whether Apply created it:
//
//   - tmpl equal to the latest revision's template: the latest, not created.
//   - tmpl names a revision (RevisionName) that exists with an equal
//     template: that revision becomes the latest again, not created.
//   - tmpl names a revision that exists with a different template:
//     ErrNameConflict.
//   - otherwise a new revision with the next generation, named by tmpl or
//     "<configuration>-NNNNN" (skipping any number a named revision took).
//
// A template whose Validate fails, or whose name is not a DNS-1035 label
// prefixed by "<configuration>-", is an error and changes nothing.
func (c *Configuration[T]) Apply(now time.Time, tmpl T) (rev Revision[T], created bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()

	var given string
	if n, ok := any(tmpl).(interface{ RevisionName() string }); ok {
		given = n.RevisionName()
	}
	var errs []error
	if given != "" {
		errs = append(errs, c.validateRevisionName(given))
	}
	if v, ok := any(tmpl).(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%w for configuration %q: %w", ErrInvalidTemplate, c.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Revision[T]{}, false, err
	}

	if c.latest != nil && c.latest.rev.Template.Equal(tmpl) {
		return c.latest.rev, false, nil
	}
	if given != "" {
		if e, ok := c.byName[given]; ok {
			if !e.rev.Template.Equal(tmpl) {
				return Revision[T]{}, false, fmt.Errorf("%w: revision %q of configuration %q exists (generation %d) with another template",
					ErrNameConflict, given, c.name, e.rev.Generation)
			}
			c.latest = e
			return e.rev, false, nil
		}
	}

	gen := c.generation + 1
	name := given
	if name == "" {
		for {
			name = GeneratedName(c.name, gen)
			if _, taken := c.byName[name]; !taken {
				break
			}
			gen++
		}
		if len(name) > MaxNameLength {
			return Revision[T]{}, false, fmt.Errorf("%w: generated revision name %q is %d characters, more than %d",
				ErrInvalidName, name, len(name), MaxNameLength)
		}
	}
	if cl, ok := any(tmpl).(interface{ Clone() T }); ok {
		tmpl = cl.Clone()
	}
	c.generation = gen
	e := &entry[T]{
		rev: Revision[T]{
			Name:          name,
			Key:           c.key(name),
			Configuration: c.name,
			Generation:    gen,
			Template:      tmpl,
			Created:       now,
		},
		lastActive: now,
	}
	c.history = append(c.history, e)
	c.byName[name] = e
	c.latest = e
	return e.rev, true, nil
}

// Latest returns the latest revision, and false before the first Apply.
func (c *Configuration[T]) Latest() (Revision[T], bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.latest == nil {
		return Revision[T]{}, false
	}
	return c.latest.rev, true
}

// Revision returns the revision named name, and false when there is none
// (never created, or retired).
func (c *Configuration[T]) Revision(name string) (Revision[T], bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byName[name]
	if !ok {
		return Revision[T]{}, false
	}
	return e.rev, true
}

// History returns the revisions not yet retired, oldest first.
func (c *Configuration[T]) History() []Revision[T] {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Revision[T], len(c.history))
	for i, e := range c.history {
		out[i] = e.rev
	}
	return out
}

// Collect records which revisions routes reference now (referenced is asked
// for each revision's name; a revision referenced earlier and not now
// counts as last active at now) and retires, by the retention policy, the
// revisions that are neither referenced nor the latest. It returns the
// retired revisions, oldest first, for the host to tear down; they leave
// the history. A host that wants a revision kept (Knative's "preserved"
// annotation) reports it as referenced. Call it when routes change and
// periodically; referenced is called under the configuration's lock.
func (c *Configuration[T]) Collect(now time.Time, referenced func(name string) bool) []Revision[T] {
	c.mu.Lock()
	defer c.mu.Unlock()

	var idle []*entry[T]
	for _, e := range c.history {
		routed := referenced(e.rev.Name)
		if e.routed && !routed {
			e.lastActive = now
		}
		e.routed = routed
		if !routed && e != c.latest {
			idle = append(idle, e)
		}
	}
	slices.SortStableFunc(idle, func(a, b *entry[T]) int {
		if c := a.lastActive.Compare(b.lastActive); c != 0 {
			return c
		}
		return cmp.Compare(a.rev.Generation, b.rev.Generation)
	})
	cands := make([]candidate, len(idle))
	for i, e := range idle {
		cands[i] = candidate{created: e.rev.Created, lastActive: e.lastActive}
	}
	picked := c.retention.retire(now, len(c.history), cands)
	if len(picked) == 0 {
		return nil
	}
	gone := make(map[*entry[T]]bool, len(picked))
	for _, i := range picked {
		gone[idle[i]] = true
	}
	var out []Revision[T]
	c.history = slices.DeleteFunc(c.history, func(e *entry[T]) bool {
		if gone[e] {
			out = append(out, e.rev)
			delete(c.byName, e.rev.Name)
			return true
		}
		return false
	})
	return out
}

func (c *Configuration[T]) key(name string) string {
	if c.namespace == "" {
		return name
	}
	return c.namespace + "/" + name
}

// validateRevisionName checks a template-given name: a DNS-1035 label that
// starts with "<configuration>-", as Knative requires.
func (c *Configuration[T]) validateRevisionName(name string) error {
	if err := validateLabel("revision name", name, true, MaxNameLength); err != nil {
		return err
	}
	if prefix := c.name + "-"; !strings.HasPrefix(name, prefix) {
		return fmt.Errorf("%w: revision name %q must have the prefix %q (its configuration's name and '-')",
			ErrInvalidName, name, prefix)
	}
	return nil
}
