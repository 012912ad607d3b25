package traffic

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 11: a service named candidate-hello collides with the tag host of
// hello's candidate tag. Update was all-or-nothing, so from then on every
// update failed and an unrelated new service in another namespace was
// never routed. Now only the conflicting route is refused, with
// ReasonDomainTaken, and every other route is installed.
func TestRouterUpdateRefusesOnlyTheConflictingRoute(t *testing.T) {
	doors, _ := doorsFor("hello-1", "hello-2", "cand-1", "other-1", "shop-1")
	hello := Route{Name: "hello", Namespace: "default", Table: table(t,
		Target{RevisionName: "hello-1", Percent: 100}, Target{RevisionName: "hello-2", Tag: "candidate"})}
	r := newRouter(t, RouterConfig{}, doors, hello)
	require.Equal(t, "hello-2", do(r, "candidate-hello.default.svc.cluster.local", "/").Body.String())

	candidate := Route{Name: "candidate-hello", Namespace: "default", Table: table(t, Target{RevisionName: "cand-1", Percent: 100})}
	other := Route{Name: "other", Namespace: "team-b", Table: table(t, Target{RevisionName: "other-1", Percent: 100})}
	err := r.Update([]Route{candidate, hello, other}, doors)
	var ue *UpdateError
	require.ErrorAs(t, err, &ue)
	require.Len(t, ue.Routes, 1)
	assert.Equal(t, &RouteError{Index: 0, Route: "default/candidate-hello", Reason: ReasonDomainTaken, Problems: []string{
		`host "candidate-hello.default.svc.cluster.local" with path prefix "" is also claimed by default/hello`,
	}}, ue.Routes[0], "the route that held the host keeps it, though given later")
	var re *RouteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "other-1", do(r, "other.team-b.svc.cluster.local", "/").Body.String(), "an unrelated route is installed")
	assert.Equal(t, "hello-1", do(r, "hello.default.svc.cluster.local", "/").Body.String())
	assert.Equal(t, "hello-2", do(r, "candidate-hello.default.svc.cluster.local", "/").Body.String())

	// The next update, with yet another new route, works for it too.
	shop := Route{Name: "shop", Namespace: "team-b", Table: table(t, Target{RevisionName: "shop-1", Percent: 100})}
	err = r.Update([]Route{candidate, hello, other, shop}, doors)
	require.ErrorAs(t, err, &ue)
	require.Len(t, ue.Routes, 1)
	assert.Equal(t, "shop-1", do(r, "shop.team-b.svc.cluster.local", "/").Body.String())

	// Once hello drops its tag, candidate-hello gets the host.
	helloNoTag := Route{Name: "hello", Namespace: "default", Table: table(t, Target{RevisionName: "hello-1", Percent: 100})}
	require.NoError(t, r.Update([]Route{candidate, helloNoTag, other, shop}, doors))
	assert.Equal(t, "cand-1", do(r, "candidate-hello.default.svc.cluster.local", "/").Body.String())

	// Now hello adds the tag back: hello is refused, and its previous
	// version keeps serving; candidate-hello keeps its host.
	err = r.Update([]Route{hello, candidate, other, shop}, doors)
	require.ErrorAs(t, err, &ue)
	require.Len(t, ue.Routes, 1)
	assert.Equal(t, 0, ue.Routes[0].Index)
	assert.Equal(t, ReasonDomainTaken, ue.Routes[0].Reason)
	assert.Equal(t, "cand-1", do(r, "candidate-hello.default.svc.cluster.local", "/").Body.String())
	assert.Equal(t, "hello-1", do(r, "hello.default.svc.cluster.local", "/").Body.String(), "hello's previous version serves")

	// An invalid new version of an installed route: the old one serves;
	// an invalid new route is not served; the rest are installed.
	bad := helloNoTag
	bad.Table = &Table{Default: []Share{{Revision: "hello-2", Percent: 50}}}
	err = r.Update([]Route{bad, candidate, {Name: "Nope", Namespace: "x", Table: other.Table}, other}, doors)
	require.ErrorAs(t, err, &ue)
	require.Len(t, ue.Routes, 2)
	assert.Equal(t, ReasonInvalid, ue.Routes[0].Reason)
	assert.Equal(t, ReasonInvalid, ue.Routes[1].Reason)
	assert.Equal(t, "hello-1", do(r, "hello.default.svc.cluster.local", "/").Body.String())
	assert.Equal(t, "cand-1", do(r, "candidate-hello.default.svc.cluster.local", "/").Body.String())
	assert.Equal(t, 404, do(r, "shop.team-b.svc.cluster.local", "/").Code, "a route left out is removed")
	assert.False(t, errors.Is(err, ErrInvalidSpec))
}

// Two new routes claiming one host: the first in order gets it.
func TestRouterUpdateFirstNewClaimWins(t *testing.T) {
	doors, _ := doorsFor("a", "b")
	r := newRouter(t, RouterConfig{}, doors)
	a := Route{Hosts: []string{"shop.example.com"}, PathPrefix: "/api", Table: table(t, Target{RevisionName: "a", Percent: 100})}
	b := Route{Name: "b", Namespace: "x", Hosts: []string{"shop.example.com"}, PathPrefix: "/api/", Table: table(t, Target{RevisionName: "b", Percent: 100})}
	err := r.Update([]Route{a, b}, doors)
	assert.EqualError(t, err, `traffic: routes[1] (x/b): host "shop.example.com" with path prefix "/api" is also claimed by shop.example.com`)
	assert.Equal(t, "a", do(r, "shop.example.com", "/api/x").Body.String())
	assert.Equal(t, 404, do(r, "b.x.svc.cluster.local", "/api/x").Code, "a refused new route is not served on any of its hosts")
}

// Issue 11: path routing decoded %2F, so
// /default/hello%2f..%2f..%2facme%2fgreeter reached acme/greeter.
func TestRouterEncodedSlashIsNotASeparator(t *testing.T) {
	doors, ds := doorsFor("hello", "greeter")
	r := newRouter(t, RouterConfig{}, doors,
		Route{Hosts: []string{"127.0.0.1"}, PathPrefix: "/default/hello", Table: table(t, Target{RevisionName: "hello", Percent: 100})},
		Route{Hosts: []string{"127.0.0.1"}, PathPrefix: "/acme/greeter", Table: table(t, Target{RevisionName: "greeter", Percent: 100})})
	for _, p := range []string{
		"/default/hello%2f..%2f..%2facme%2fgreeter",
		"/default/hello%2F..%2F..%2Facme%2Fgreeter",
		"/default%2fhello/..%2f..%2facme%2fgreeter",
		"/default/hello/x%2f..%2f..%2f..%2facme%2fgreeter",
		"/default/hello/%2e%2e%2f%2e%2e%2facme%2fgreeter",
	} {
		w := do(r, "127.0.0.1", p)
		assert.NotEqual(t, "greeter", w.Body.String(), p)
		// A byte the client should have escaped made URL.EscapedPath
		// ignore the path as sent and turn every %2F into a slash.
		for _, b := range []string{"{", "}", "|", "^", "`", `"`, "\\", "<", ">", "\xc3\xa9"} {
			w := do(r, "127.0.0.1", p+"/"+b)
			assert.NotEqual(t, "greeter", w.Body.String(), p+"/"+b)
		}
	}
	assert.Empty(t, ds["greeter"].seen, "no request reached acme/greeter")
	assert.Equal(t, 404, do(r, "127.0.0.1", "/default/hello%2f..%2f..%2facme%2fgreeter").Code)
	assert.Equal(t, "hello", do(r, "127.0.0.1", "/default/hello/x%2f..%2f..%2f..%2facme%2fgreeter").Body.String())
	assert.Equal(t, "greeter", do(r, "127.0.0.1", "/acme/greeter/a%2Fb").Body.String())
}

// A path with an encoded slash and a byte the client should have escaped
// is forwarded with that byte escaped and the %2F kept: the backend gets
// the path the router matched, not one whose %2F became separators.
func TestRouterEncodedSlashForwardedAsRouted(t *testing.T) {
	var got *http.Request
	rec := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r })
	r := newRouter(t, RouterConfig{}, FrontDoorMap{"api": rec},
		Route{Hosts: []string{"example.com"}, PathPrefix: "/api", Table: table(t, Target{RevisionName: "api", Percent: 100})})
	for _, tc := range []struct{ path, want string }{
		{"/api/a%2F..%2F..%2Fb/{x}", "/api/a%2F..%2F..%2Fb/%7Bx%7D"},
		{"/api/a%2fb/../c%2f|/\xc3\xa9/", "/api/c%2f%7C/%C3%A9/"},
		{"/api/a%2Fb", "/api/a%2Fb"},
	} {
		got = nil
		req := httptest.NewRequest(http.MethodGet, tc.path+"?q=1", nil)
		req.Host = "example.com"
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		require.NotNil(t, got, "%s: %d %s", tc.path, w.Code, w.Body.String())
		assert.Equal(t, tc.want, got.URL.EscapedPath(), tc.path)
		assert.Equal(t, tc.want+"?q=1", got.RequestURI, tc.path)
		assert.Equal(t, tc.path+"?q=1", req.RequestURI, "the caller's request is not modified")
	}
}

// Issue 11: an outside request with K-Network-Probe: queue was answered by
// the replica's queue, skipping the app and the stats. Every header the
// queue or the activator treats specially is stripped.
func TestRouterStripsProbeHeaders(t *testing.T) {
	doors, ds := doorsFor("a")
	r := newRouter(t, RouterConfig{}, doors, Route{Name: "hello", Namespace: "default", Table: table(t, Target{RevisionName: "a", Percent: 100})})
	special := []string{"K-Network-Probe", "K-Network-Hash", "K-Kubelet-Probe", "K-Proxy-Request", "Knative-Serving-Revision", "Knative-Serving-Namespace", "Knative-Serving-Tag"}
	for _, h := range special {
		assert.Equal(t, "a", do(r, "hello.default.svc.cluster.local", "/", h, "queue").Body.String())
	}
	require.Len(t, ds["a"].seen, len(special))
	for i, h := range special {
		assert.Empty(t, ds["a"].seen[i].Values(h), "%s reached the front door", h)
	}
}

// Whatever the path, a request reaches the /a/b route only if the path it
// is forwarded with starts with the real segments "a" and "b": no encoded
// slash or dot segment carries it there from elsewhere, or past the
// prefix.
func FuzzRouterPathPrefix(f *testing.F) {
	for _, p := range []string{"/a/b", "/a/b/c", "/a%2fb", "/x/..%2f..%2fa%2fb", "/a/b%2f..%2f..%2fz", "/x/../a/b", "/a/./b//c/", "/a/b/%2e%2e/%2e%2e/q", "/%61/b", "/x%2f..%2f..%2fa/b/{", "/a/b%2fc/{"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		req, err := http.NewRequest(http.MethodGet, "http://h.example.com", nil)
		if err != nil {
			return
		}
		u, err := url.ParseRequestURI(p)
		if err != nil || u.RawQuery != "" || !strings.HasPrefix(p, "/") {
			return
		}
		req.URL = u
		req.Host = "h.example.com"
		var got *http.Request
		ab := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r })
		r, err := NewRouter(RouterConfig{})
		require.NoError(t, err)
		require.NoError(t, r.Update([]Route{{Hosts: []string{"h.example.com"}, PathPrefix: "/a/b", Table: &Table{Default: []Share{{Revision: "ab", Percent: 100}}}}},
			FrontDoorMap{"ab": ab}))
		r.ServeHTTP(httptest.NewRecorder(), req)
		if got == nil {
			return
		}
		// Reaching /a/b is right only if the path as sent, split on its
		// real slashes, with dot segments resolved, starts with a and b.
		sent := u.RawPath
		if sent == "" {
			sent = u.EscapedPath()
		}
		var stack []string
		for _, sg := range strings.Split(sent, "/")[1:] {
			d, err := url.PathUnescape(sg)
			if err != nil {
				d = sg
			}
			switch d {
			case "", ".":
			case "..":
				if len(stack) > 0 {
					stack = stack[:len(stack)-1]
				}
			default:
				stack = append(stack, d)
			}
		}
		require.True(t, len(stack) >= 2 && stack[0] == "a" && stack[1] == "b", "%q reached /a/b (segments %q)", p, stack)
		if hasEncodedSlash(u.RawPath) && got.URL.RawPath != "" {
			// The path as routed is the path forwarded: URL.EscapedPath
			// does not fall back to escaping Path (where %2F is a slash).
			require.Equal(t, got.URL.RawPath, got.URL.EscapedPath(), "%q forwarded", p)
		}
		segs := strings.Split(got.URL.EscapedPath(), "/")
		require.GreaterOrEqual(t, len(segs), 3, "%q forwarded as %q", p, got.URL.EscapedPath())
		for i, want := range []string{"", "a", "b"} {
			d, err := url.PathUnescape(segs[i])
			require.NoError(t, err)
			require.Equal(t, want, d, "%q forwarded as %q", p, got.URL.EscapedPath())
		}
		for _, sg := range segs[3:] {
			d, _ := url.PathUnescape(sg)
			require.NotContains(t, []string{".", ".."}, d, "%q forwarded as %q: a dot segment", p, got.URL.EscapedPath())
		}
	})
}
