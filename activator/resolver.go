package activator

import (
	"fmt"
	"net/http"
)

// RevisionHeader names the revision a request is for. The revision's front
// door sets it on requests it hands to the activator, and the default
// Resolver reads it. The activator removes it from forwarded requests.
const RevisionHeader = "Knative-Serving-Revision"

// Resolver tells which revision a request is for. Revision returns the
// host's key for it, or an error (for example one wrapping ErrNoRevision)
// that the Handler answers with 404. It is called on the request's
// goroutine and must be safe for simultaneous use.
type Resolver interface {
	Revision(r *http.Request) (string, error)
}

// ResolverFunc adapts a function to a Resolver.
type ResolverFunc func(r *http.Request) (string, error)

// Revision calls f(r).
func (f ResolverFunc) Revision(r *http.Request) (string, error) { return f(r) }

// HeaderResolver is a Resolver that reads the revision from the header it
// names; the empty string means RevisionHeader. It does not allocate.
type HeaderResolver string

// Revision returns the header's value, or an error wrapping ErrNoRevision if
// it is empty.
func (h HeaderResolver) Revision(r *http.Request) (string, error) {
	name := string(h)
	if name == "" {
		name = RevisionHeader
	}
	if v := r.Header.Get(name); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("%w: header %s is empty", ErrNoRevision, name)
}
