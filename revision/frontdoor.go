package revision

import (
	"errors"
	"net/http"
	"sync/atomic"
)

// RevisionHeader carries the revision's key on requests the front door hands
// to the activator, whose default resolver reads it. Same name as Knative's.
const RevisionHeader = "Knative-Serving-Revision"

// FrontDoor is the http.Handler a router hands a revision's requests to. In
// Proxy mode it sets RevisionHeader to the revision's key and calls the
// activator handler; in Serve mode it calls the serve handler, which reaches
// the replicas.
//
// SetMode switches atomically: each request reads the mode once, with one
// atomic load and no lock, and goes entirely to one handler, so requests in
// flight finish where they started and none is dropped by a switch. The
// request path does not allocate (the header value is a shared, read-only,
// one-element slice; cap 1 makes a later Add copy it rather than write into
// it). Safe for simultaneous use.
type FrontDoor struct {
	key    string
	header []string // {key}, shared by every proxied request

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
		if r.Header == nil {
			r.Header = make(http.Header, 1)
		}
		r.Header[RevisionHeader] = f.header
	}
	rt.h.ServeHTTP(w, r)
}
