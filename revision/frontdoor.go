package revision

import (
	"errors"
	"net/http"
	"sync/atomic"
)

// RevisionHeader carries the revision's key on the copies of requests the
// front door hands to an activator that is not a RevisionServer; the
// activator's default resolver reads it. Same name as Knative's.
const RevisionHeader = "Knative-Serving-Revision"

// RevisionServer is an activator handler that takes the revision's key
// directly, so that the front door need not mark the request:
// activator.Handler has it (ServeRevision).
type RevisionServer interface {
	ServeRevision(w http.ResponseWriter, r *http.Request, revision string)
}

// FrontDoor is the http.Handler a router hands a revision's requests to. In
// Proxy mode it calls the activator handler — with the revision's key
// through ServeRevision if the handler is a RevisionServer, or else on a
// copy of the request with RevisionHeader set to the key — and in Serve
// mode the serve handler, which reaches the replicas. The caller's request
// and its header map are never changed.
//
// SetMode switches atomically: each request reads the mode once, with one
// atomic load and no lock, and goes entirely to one handler, so requests in
// flight finish where they started and none is dropped by a switch. The
// request path does not allocate, except in Proxy mode to an activator
// that is not a RevisionServer (the request's copy and its header map).
// Safe for simultaneous use.
type FrontDoor struct {
	key    string
	header []string       // {key}, for a plain handler's copy of the request
	direct RevisionServer // the activator, if it takes the key

	proxy, serve route
	cur          atomic.Pointer[route]
}

type route struct {
	mode Mode
	h    http.Handler
}

// NewFrontDoor returns the front door of the revision named key, starting in
// Proxy mode (a new revision's mode in Knative). activator and serve must
// not be nil.
func NewFrontDoor(key string, activator, serve http.Handler) (*FrontDoor, error) {
	var errs []error
	if key == "" {
		errs = append(errs, errors.New("revision: NewFrontDoor: key is empty, must name the revision"))
	}
	if activator == nil {
		errs = append(errs, errors.New("revision: NewFrontDoor: activator handler is nil"))
	}
	if serve == nil {
		errs = append(errs, errors.New("revision: NewFrontDoor: serve handler is nil"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	f := &FrontDoor{
		key:    key,
		header: []string{key},
		proxy:  route{mode: Proxy, h: activator},
		serve:  route{mode: Serve, h: serve},
	}
	f.direct, _ = activator.(RevisionServer)
	f.cur.Store(&f.proxy)
	return f, nil
}

// SetMode makes requests that arrive from now on go to the activator (Proxy)
// or the replicas (Serve). Requests already in flight are not affected.
func (f *FrontDoor) SetMode(m Mode) {
	if m == Serve {
		f.cur.Store(&f.serve)
		return
	}
	f.cur.Store(&f.proxy)
}

// Mode returns the current mode.
func (f *FrontDoor) Mode() Mode { return f.cur.Load().mode }

// Key returns the revision's key.
func (f *FrontDoor) Key() string { return f.key }

// ServeHTTP sends r where the current mode says.
func (f *FrontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := f.cur.Load()
	if rt.mode == Proxy {
		if f.direct != nil {
			f.direct.ServeRevision(w, r, f.key)
			return
		}
		r2 := r.WithContext(r.Context())
		r2.Header = r.Header.Clone()
		if r2.Header == nil {
			r2.Header = make(http.Header, 1)
		}
		// cap 1: a handler's Add copies rather than writes into it.
		r2.Header[RevisionHeader] = f.header
		r = r2
	}
	rt.h.ServeHTTP(w, r)
}
