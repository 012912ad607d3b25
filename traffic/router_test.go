package traffic

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// door is a front door that answers with its revision's name and records
// the headers it saw.
type door struct {
	name string
	mu   sync.Mutex
	seen []http.Header
}

func (d *door) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.seen = append(d.seen, r.Header.Clone())
	d.mu.Unlock()
	_, _ = io.WriteString(w, d.name)
}

func doorsFor(names ...string) (FrontDoorMap, map[string]*door) {
	m, ds := FrontDoorMap{}, map[string]*door{}
	for _, n := range names {
		ds[n] = &door{name: n}
		m[n] = ds[n]
	}
	return m, ds
}

func newRouter(t testing.TB, cfg RouterConfig, doors FrontDoors, routes ...Route) *Router {
	t.Helper()
	r, err := NewRouter(cfg)
	require.NoError(t, err)
	require.NoError(t, r.Update(routes, doors))
	return r
}

func table(t testing.TB, spec ...Target) *Table {
	t.Helper()
	tbl, err := Resolve(Spec{Traffic: spec}, nil)
	require.NoError(t, err)
	return tbl
}

func do(r http.Handler, host, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "http://"+host+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func TestRouterHosts(t *testing.T) {
	doors, _ := doorsFor("a", "b", "c")
	hello := Route{Name: "hello", Namespace: "default", Hosts: []string{"hello.example.com"}, Table: table(t,
		Target{RevisionName: "a", Percent: 100, Tag: "current"},
		Target{RevisionName: "b", Tag: "next"},
	)}
	r := newRouter(t, RouterConfig{}, doors, hello)
	tests := []struct {
		name, host, path string
		code             int
		body             string
	}{
		{"default host", "hello.default.svc.cluster.local", "/", 200, "a"},
		{"port ignored", "hello.default.svc.cluster.local:8080", "/x", 200, "a"},
		{"upper case and trailing dot", "Hello.Default.SVC.cluster.local.", "/", 200, "a"},
		{"tag host", "next-hello.default.svc.cluster.local", "/", 200, "b"},
		{"other tag host", "current-hello.default.svc.cluster.local", "/", 200, "a"},
		{"extra host", "hello.example.com:443", "/", 200, "a"},
		{"unknown host", "nope.default.svc.cluster.local", "/p", 404, "traffic: no route for host \"nope.default.svc.cluster.local\" and path \"/p\"\n"},
		{"unknown tag host", "old-hello.default.svc.cluster.local", "/", 404, "traffic: no route for host \"old-hello.default.svc.cluster.local\" and path \"/\"\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(r, tc.host, tc.path)
			assert.Equal(t, tc.code, w.Code)
			assert.Equal(t, tc.body, w.Body.String())
		})
	}
	assert.Equal(t, "next-hello.default.svc.cluster.local", r.Host("hello", "default", "next"))
}

func TestRouterTemplates(t *testing.T) {
	doors, _ := doorsFor("a", "b")
	r := newRouter(t, RouterConfig{Domain: "example.com", DomainTemplate: "{namespace}--{name}.{domain}", TagTemplate: "{name}-{tag}"}, doors,
		Route{Name: "hello", Namespace: "prod", Table: table(t, Target{RevisionName: "a", Percent: 100}, Target{RevisionName: "b", Tag: "beta"})})
	assert.Equal(t, "a", do(r, "prod--hello.example.com", "/").Body.String())
	assert.Equal(t, "b", do(r, "prod--hello-beta.example.com", "/").Body.String())
}

func TestRouterPathPrefix(t *testing.T) {
	doors, _ := doorsFor("site", "api", "apiv2")
	r := newRouter(t, RouterConfig{}, doors,
		Route{Hosts: []string{"example.com"}, Table: table(t, Target{RevisionName: "site", Percent: 100})},
		Route{Name: "api", Namespace: "default", Hosts: []string{"example.com"}, PathPrefix: "/api", Table: table(t, Target{RevisionName: "api", Percent: 100})},
		Route{Name: "apiv2", Namespace: "default", Hosts: []string{"example.com"}, PathPrefix: "/api/v2/", Table: table(t, Target{RevisionName: "apiv2", Percent: 100})},
	)
	for path, want := range map[string]string{
		"/": "site", "/apis": "site", "/api": "api", "/api/v1/x": "api", "/api/v2": "apiv2", "/api/v2/x": "apiv2", "/api/v20": "api",
	} {
		assert.Equal(t, want, do(r, "example.com", path).Body.String(), path)
	}
	r2 := newRouter(t, RouterConfig{}, doors,
		Route{Hosts: []string{"example.com"}, PathPrefix: "/api", Table: table(t, Target{RevisionName: "api", Percent: 100})})
	w := do(r2, "example.com", "/other")
	assert.Equal(t, 404, w.Code)
}

// A path is matched and forwarded cleaned, so that dot segments cannot
// carry a request past a route's path prefix to its backend, while normal
// paths pass through untouched, encoded form and request included.
func TestRouterCleansPath(t *testing.T) {
	type seen struct {
		rev string
		req *http.Request
	}
	var got seen
	recorder := func(rev string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = seen{rev, r} })
	}
	r := newRouter(t, RouterConfig{}, FrontDoorMap{"site": recorder("site"), "api": recorder("api")},
		Route{Hosts: []string{"example.com"}, Table: table(t, Target{RevisionName: "site", Percent: 100})},
		Route{Hosts: []string{"example.com"}, PathPrefix: "/api", Table: table(t, Target{RevisionName: "api", Percent: 100})},
	)
	for _, tc := range []struct {
		name, path string
		rev        string
		wantPath   string // the forwarded URL.EscapedPath and RequestURI
		same       bool   // the request itself is forwarded, not a copy
	}{
		{name: "traversal out of the prefix", path: "/api/../admin", rev: "site", wantPath: "/admin"},
		{name: "encoded traversal", path: "/api/%2e%2e/admin", rev: "site", wantPath: "/admin"},
		// Issue 11: an encoded slash is not a separator, so "a%2F..%2F..%2Fadmin" is one segment.
		{name: "encoded slashes and dots", path: "/api/a%2F..%2F..%2Fadmin", rev: "api", wantPath: "/api/a%2F..%2F..%2Fadmin", same: true},
		{name: "encoded slashes and real dots", path: "/api/a%2Fb/../c%2fd//e/", rev: "api", wantPath: "/api/c%2fd/e/"},
		{name: "encoded slash out of the prefix", path: "/api%2F..%2Fadmin", rev: "site", wantPath: "/api%2F..%2Fadmin", same: true},
		{name: "traversal above the root", path: "/../../api/x", rev: "api", wantPath: "/api/x"},
		{name: "traversal into the prefix", path: "/static/../api/users", rev: "api", wantPath: "/api/users"},
		{name: "prefix itself, dot last", path: "/api/x/..", rev: "api", wantPath: "/api"},
		{name: "doubled slashes", path: "/api//users", rev: "api", wantPath: "/api/users"},
		{name: "dot segment, trailing slash kept", path: "/api/./users/", rev: "api", wantPath: "/api/users/"},
		{name: "normal path", path: "/api/users/42", rev: "api", wantPath: "/api/users/42", same: true},
		{name: "normal path, encoded slash kept", path: "/api/files/a%2Fb", rev: "api", wantPath: "/api/files/a%2Fb", same: true},
		{name: "dot file, already clean", path: "/.well-known/acme", rev: "site", wantPath: "/.well-known/acme", same: true},
		{name: "root", path: "/", rev: "site", wantPath: "/", same: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = seen{}
			req := httptest.NewRequest(http.MethodGet, tc.path+"?q=1", nil)
			req.Host = "example.com"
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			assert.Equal(t, tc.rev, got.rev)
			require.NotNil(t, got.req)
			assert.Equal(t, tc.wantPath, got.req.URL.EscapedPath())
			assert.Equal(t, tc.wantPath+"?q=1", got.req.RequestURI)
			assert.Equal(t, "q=1", got.req.URL.RawQuery)
			assert.Equal(t, tc.same, got.req == req)
			assert.Equal(t, tc.path+"?q=1", req.URL.String(), "the caller's request is not modified")
			assert.Equal(t, tc.path+"?q=1", req.RequestURI)
		})
	}
}

func TestRouterTagHeader(t *testing.T) {
	doors, ds := doorsFor("a", "b")
	route := Route{Name: "hello", Namespace: "default", Table: table(t,
		Target{RevisionName: "a", Percent: 100}, Target{RevisionName: "b", Tag: "beta"})}
	host := "hello.default.svc.cluster.local"

	on := newRouter(t, RouterConfig{TagHeader: true}, doors, route)
	assert.Equal(t, "b", do(on, host, "/", TagHeader, "beta").Body.String())
	assert.Equal(t, "beta", ds["b"].seen[0].Get(TagHeader), "the tag header is passed on")
	assert.Equal(t, "a", do(on, host, "/", TagHeader, "nope").Body.String(), "unknown tag: default split")
	assert.Equal(t, "a", do(on, host, "/").Body.String())

	off := newRouter(t, RouterConfig{}, doors, route)
	assert.Equal(t, "a", do(off, host, "/", TagHeader, "beta").Body.String())
	assert.Empty(t, ds["a"].seen[len(ds["a"].seen)-1].Values(TagHeader), "stripped when tag routing is off")
}

func TestRouterStripsInternalHeaders(t *testing.T) {
	doors, ds := doorsFor("a", "b")
	route := Route{Name: "hello", Namespace: "default", Table: table(t,
		Target{RevisionName: "a", Percent: 100}, Target{RevisionName: "b", Tag: "beta"})}
	host := "hello.default.svc.cluster.local"
	internal := []string{RevisionHeader, "b", NamespaceHeader, "default", ProxyHeader, "activator", TagHeader, "beta", "X-Other", "kept"}

	t.Run("untrusted: stripped, split not bypassed, caller's request untouched", func(t *testing.T) {
		r := newRouter(t, RouterConfig{}, doors, route)
		req := httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
		for i := 0; i < len(internal); i += 2 {
			req.Header.Set(internal[i], internal[i+1])
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		assert.Equal(t, "a", w.Body.String())
		got := ds["a"].seen[len(ds["a"].seen)-1]
		for _, h := range []string{RevisionHeader, NamespaceHeader, ProxyHeader, TagHeader} {
			assert.Empty(t, got.Values(h), h)
		}
		assert.Equal(t, "kept", got.Get("X-Other"))
		assert.Equal(t, "b", req.Header.Get(RevisionHeader), "the caller's request is not modified")
	})
	t.Run("trusted: kept, and the revision header picks the revision", func(t *testing.T) {
		r := newRouter(t, RouterConfig{Trusted: func(r *http.Request) bool { return r.RemoteAddr == "10.0.0.1:1234" }}, doors, route)
		req := httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
		req.RemoteAddr = "10.0.0.1:1234"
		for i := 0; i < len(internal); i += 2 {
			req.Header.Set(internal[i], internal[i+1])
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		assert.Equal(t, "b", w.Body.String())
		assert.Equal(t, "activator", ds["b"].seen[len(ds["b"].seen)-1].Get(ProxyHeader))

		req.Header.Set(RevisionHeader, "not-in-route")
		w = httptest.NewRecorder()
		r.ServeHTTP(w, req)
		assert.Equal(t, "a", w.Body.String(), "a revision of another route does not bypass the split")

		req.RemoteAddr = "192.0.2.7:5555" // not trusted
		req.Header.Set(RevisionHeader, "b")
		w = httptest.NewRecorder()
		r.ServeHTTP(w, req)
		assert.Equal(t, "a", w.Body.String())
	})
}

func TestRouterNoFrontDoor(t *testing.T) {
	doors, _ := doorsFor("a")
	r := newRouter(t, RouterConfig{StickyHeader: "X-User"}, doors, Route{Name: "hello", Namespace: "default", Table: table(t,
		Target{RevisionName: "a", Percent: 50}, Target{RevisionName: "b", Percent: 50, Tag: "b"})})
	var got503 bool
	for i := range 200 {
		w := do(r, "hello.default.svc.cluster.local", "/", "X-User", fmt.Sprint(i))
		if w.Code == 503 {
			got503 = true
			assert.Equal(t, "traffic: revision \"b\" of route default/hello has no front door\n", w.Body.String())
			assert.Equal(t, "text/plain; charset=utf-8", w.Header().Get("Content-Type"))
		} else {
			assert.Equal(t, "a", w.Body.String())
		}
	}
	assert.True(t, got503)
	w := do(r, "b-hello.default.svc.cluster.local", "/")
	assert.Equal(t, 503, w.Code)
	assert.Equal(t, "traffic: revision \"b\" of route default/hello tag b has no front door\n", w.Body.String())
}

func TestRouterSticky(t *testing.T) {
	doors, _ := doorsFor("a", "b")
	host := "hello.default.svc.cluster.local"
	route := Route{Name: "hello", Namespace: "default", Table: table(t, Target{RevisionName: "a", Percent: 50}, Target{RevisionName: "b", Percent: 50})}

	t.Run("by header, then by cookie", func(t *testing.T) {
		r := newRouter(t, RouterConfig{StickyHeader: "x-user-id", StickyCookie: "session"}, doors, route)
		for i := range 50 {
			key := fmt.Sprintf("user-%d", i)
			first := do(r, host, "/", "X-User-Id", key).Body.String()
			for range 5 {
				assert.Equal(t, first, do(r, host, "/", "X-User-Id", key).Body.String())
				assert.Equal(t, first, do(r, host, "/", "Cookie", "a=1; session="+key+"; z=2").Body.String())
			}
		}
	})
	t.Run("set cookie for a new browser", func(t *testing.T) {
		r := newRouter(t, RouterConfig{StickyCookie: "session", SetStickyCookie: true, StickyCookieMaxAge: time.Hour}, doors, route)
		w := do(r, host, "/")
		resp := w.Result()
		require.Len(t, resp.Cookies(), 1)
		c := resp.Cookies()[0]
		assert.Equal(t, "session", c.Name)
		assert.Len(t, c.Value, 32)
		assert.Equal(t, 3600, c.MaxAge)
		assert.True(t, c.HttpOnly)
		for range 10 {
			w2 := do(r, host, "/", "Cookie", "session="+c.Value)
			assert.Equal(t, w.Body.String(), w2.Body.String())
			assert.Empty(t, w2.Result().Cookies(), "no new cookie when the browser has one")
		}
	})
	t.Run("a revision at zero replicas keeps its keys", func(t *testing.T) {
		// Picking knows nothing of replicas: when b's front door switches to
		// its activator path, the keys on b stay on b.
		r := newRouter(t, RouterConfig{StickyHeader: "X-User"}, doors, route)
		before := map[string]string{}
		for i := range 200 {
			k := fmt.Sprint(i)
			before[k] = do(r, host, "/", "X-User", k).Body.String()
		}
		cold := FrontDoorMap{"a": doors["a"], "b": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "b via activator") })}
		require.NoError(t, r.Update([]Route{route}, cold))
		for k, was := range before {
			want := was
			if was == "b" {
				want = "b via activator"
			}
			assert.Equal(t, want, do(r, host, "/", "X-User", k).Body.String())
		}
	})
}

// Through the router, a change of percents moves only the moved share of
// sticky keys, because Update rebalances from the previous layout.
func TestRouterUpdateMovesMinimalKeys(t *testing.T) {
	doors, _ := doorsFor("a", "b", "c")
	host := "hello.default.svc.cluster.local"
	route := func(pa, pb, pc int) Route {
		return Route{Name: "hello", Namespace: "default", Table: table(t,
			Target{RevisionName: "a", Percent: pa}, Target{RevisionName: "b", Percent: pb}, Target{RevisionName: "c", Percent: pc})}
	}
	r := newRouter(t, RouterConfig{StickyHeader: "X-User"}, doors, route(40, 30, 30))
	const n = 20_000
	pick := func() []string {
		out := make([]string, n)
		for i := range out {
			out[i] = do(r, host, "/", "X-User", fmt.Sprintf("user-%d", i)).Body.String()
		}
		return out
	}
	before := pick()
	require.NoError(t, r.Update([]Route{route(30, 30, 40)}, doors)) // 10% from a to c, past b
	after := pick()
	moved := 0
	for i := range before {
		if before[i] != after[i] {
			moved++
			assert.Equal(t, "a", before[i])
			assert.Equal(t, "c", after[i])
		}
	}
	frac := float64(moved) / n
	t.Logf("moved %.4f of keys; minimum 0.10, a contiguous relayout would move 0.20", frac)
	assert.InDelta(t, 0.10, frac, 5*sqrt(0.1*0.9/n))
}

func TestRouterUpdateErrors(t *testing.T) {
	doors, _ := doorsFor("a")
	ok := Route{Name: "hello", Namespace: "default", Table: table(t, Target{RevisionName: "a", Percent: 100})}
	r := newRouter(t, RouterConfig{}, doors, ok)
	err := r.Update([]Route{
		ok,
		{Name: "Hello", Namespace: "default", Table: ok.Table},
		{Name: "x", Namespace: "default"},
		{Name: "y", Namespace: "default", Table: &Table{Default: []Share{{Revision: "a", Percent: 90}}}},
		{Hosts: []string{"hello.default.svc.cluster.local"}, Table: ok.Table},
		{Hosts: []string{"Bad_Host"}, Table: ok.Table},
		{Name: "z", Namespace: "default", PathPrefix: "api", Table: ok.Table},
		{Table: ok.Table},
		// tag host of "world" collides with route "t-world"
		{Name: "world", Namespace: "default", Table: table(t, Target{RevisionName: "a", Percent: 100, Tag: "t"})},
		{Name: "t-world", Namespace: "default", Table: ok.Table},
	}, doors)
	require.Error(t, err)
	assert.Equal(t, strings.Join([]string{
		`traffic: routes[1] (default/Hello): Name "Hello" and Namespace "default" must be DNS-1123 labels`,
		`traffic: routes[2] (default/x): Table is nil`,
		`traffic: routes[3] (default/y): traffic: default = 90: percents sum to 90, want 100`,
		`traffic: routes[4] (hello.default.svc.cluster.local): host "hello.default.svc.cluster.local" with path prefix "" is also claimed by default/hello`,
		`traffic: routes[5] (Bad_Host): host "Bad_Host" is not lower-case DNS labels joined by dots`,
		`traffic: routes[6] (default/z): PathPrefix "api" must start with /`,
		`traffic: routes[7] (): no Name and no Hosts: the route has no host`,
		`traffic: routes[9] (default/t-world): host "t-world.default.svc.cluster.local" with path prefix "" is also claimed by default/world`,
	}, "\n"), err.Error())
	assert.Equal(t, "a", do(r, "hello.default.svc.cluster.local", "/").Body.String(), "the previous routes stay")
	assert.EqualError(t, r.Update(nil, nil), "traffic: Router.Update: doors is nil")
	require.NoError(t, r.Update(nil, doors))
	assert.Equal(t, 404, do(r, "hello.default.svc.cluster.local", "/").Code, "an empty update removes every route")
}

// Update asks for front doors outside its lock, once per revision, so a
// FrontDoors that calls back into the router cannot deadlock it.
func TestRouterUpdateCallsDoorsOutsideLock(t *testing.T) {
	r, err := NewRouter(RouterConfig{})
	require.NoError(t, err)
	calls := map[string]int{}
	doors := FrontDoorFunc(func(rev string) http.Handler {
		if assert.True(t, r.mu.TryLock(), "FrontDoor(%q) called under the router's lock", rev) {
			r.mu.Unlock()
		}
		calls[rev]++
		return http.NotFoundHandler()
	})
	require.NoError(t, r.Update([]Route{
		{Name: "hello", Namespace: "default", Table: table(t,
			Target{RevisionName: "a", Percent: 90}, Target{RevisionName: "b", Percent: 10, Tag: "beta"}, Target{RevisionName: "c", Tag: "gamma"})},
		{Name: "other", Namespace: "default", Table: table(t, Target{RevisionName: "a", Percent: 100})},
	}, doors))
	assert.Equal(t, map[string]int{"a": 1, "b": 1, "c": 1}, calls)
}

func TestRouterConfigValidate(t *testing.T) {
	assert.NoError(t, RouterConfig{}.Validate())
	err := RouterConfig{
		Domain: "Example.com", DomainTemplate: "{namespace}.{domain}", TagTemplate: "{tag}-{name}-{x}",
		StickyHeader: "X User", StickyCookie: "a;b", StickyCookieMaxAge: 1500 * time.Millisecond,
	}.Validate()
	assert.Equal(t, strings.Join([]string{
		`traffic: RouterConfig.Domain = "Example.com", must be lower-case DNS labels joined by dots`,
		`traffic: RouterConfig.DomainTemplate = "{namespace}.{domain}", must contain {name}`,
		`traffic: RouterConfig.TagTemplate = "{tag}-{name}-{x}", may only use the placeholders {tag}, {name}`,
		`traffic: RouterConfig.StickyHeader = "X User", must be an HTTP token`,
		`traffic: RouterConfig.StickyCookie = "a;b", must be an HTTP token`,
		`traffic: RouterConfig.StickyCookieMaxAge = "1.5s", must be whole seconds >= 0`,
	}, "\n"), err.Error())
	assert.EqualError(t, RouterConfig{SetStickyCookie: true}.Validate(), "traffic: RouterConfig.SetStickyCookie = true, requires StickyCookie")
	_, err = NewRouter(RouterConfig{SetStickyCookie: true})
	assert.Error(t, err)
}

// Requests flow while routes are swapped between two tables: none fails,
// and each lands on a revision of the old or the new table.
func TestRouterSwapRace(t *testing.T) {
	t.Parallel()
	doors, _ := doorsFor("old-1", "old-2", "new-1", "new-2")
	host := "hello.default.svc.cluster.local"
	oldRoute := Route{Name: "hello", Namespace: "default", Table: table(t, Target{RevisionName: "old-1", Percent: 70}, Target{RevisionName: "old-2", Percent: 30})}
	newRoute := Route{Name: "hello", Namespace: "default", Table: table(t, Target{RevisionName: "new-1", Percent: 50}, Target{RevisionName: "new-2", Percent: 50})}
	r := newRouter(t, RouterConfig{StickyHeader: "X-User"}, doors, oldRoute)

	stop := make(chan struct{})
	var swaps atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rt := oldRoute
			if i%2 == 0 {
				rt = newRoute
			}
			if err := r.Update([]Route{rt}, doors); err != nil {
				t.Error(err)
				return
			}
			swaps.Add(1)
		}
	}()
	var mu sync.Mutex
	seen := map[string]int{}
	var clients sync.WaitGroup
	for c := range 4 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			local := map[string]int{}
			for i := range 5000 {
				hdr := []string{}
				if i%2 == 0 {
					hdr = []string{"X-User", fmt.Sprintf("u%d-%d", c, i)}
				}
				w := do(r, host, "/", hdr...)
				if w.Code != http.StatusOK {
					t.Errorf("request failed: %d %s", w.Code, w.Body)
					return
				}
				local[w.Body.String()]++
			}
			mu.Lock()
			for k, v := range local {
				seen[k] += v
			}
			mu.Unlock()
		}()
	}
	clients.Wait()
	close(stop)
	wg.Wait()
	total := 0
	for rev, n := range seen {
		assert.Contains(t, []string{"old-1", "old-2", "new-1", "new-2"}, rev)
		total += n
	}
	assert.Equal(t, 20000, total)
	assert.Greater(t, swaps.Load(), int64(1))
	t.Logf("%d swaps, picks %v", swaps.Load(), seen)
}

func FuzzCookieValue(f *testing.F) {
	f.Add("session=abc", "session")
	f.Add(`a=1; session="q v"; session=x`, "session")
	f.Add("session=a\\b; session=ok", "session")
	f.Add(" session = v ;", "session")
	f.Fuzz(func(t *testing.T, line, name string) {
		if !isToken(name) {
			return
		}
		h := http.Header{"Cookie": {line}}
		got, ok := cookieValue(h, name)
		req := &http.Request{Header: h}
		c, err := req.Cookie(name)
		if strings.Count(line, ";") > 2000 {
			return // net/http gives up on very many cookies
		}
		if err != nil {
			if ok {
				t.Fatalf("%q: found %q, net/http found none", line, got)
			}
			return
		}
		if !ok || got != c.Value {
			t.Fatalf("%q: got %q %v, net/http %q", line, got, ok, c.Value)
		}
	})
}

// nopWriter is a ResponseWriter that keeps nothing, so benchmarks measure
// the router, not the recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

func BenchmarkRouter(b *testing.B) {
	nop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	doors := FrontDoorMap{"a": nop, "b": nop}
	route := Route{Name: "hello", Namespace: "default", Table: table(b, Target{RevisionName: "a", Percent: 90}, Target{RevisionName: "b", Percent: 10})}
	random := newRouter(b, RouterConfig{}, doors, route)
	sticky := newRouter(b, RouterConfig{StickyCookie: "session"}, doors, route)
	observed := newRouter(b, RouterConfig{Observer: func(Observation) {}}, doors, route)
	newReq := func(target string) *http.Request {
		req := httptest.NewRequest(http.MethodGet, "http://hello.default.svc.cluster.local"+target, nil)
		req.Header.Set("User-Agent", "bench")
		req.Header.Set("Accept", "*/*")
		req.Header.Set("Cookie", "theme=dark; session=4f1c2a9e8b7d6c5f4f1c2a9e8b7d6c5f")
		return req
	}
	for _, bc := range []struct {
		name, path string
		h          http.Handler
	}{
		{"direct", "/", nop},
		{"router-random", "/", random},
		{"router-sticky-cookie", "/", sticky},
		{"router-random-observer", "/", observed},
		// A long path is scanned for segments to clean; a dot file is
		// checked and found clean; a traversal is cleaned, copying the
		// request.
		{"router-random-long-path", "/api/v1/namespaces/default/users/42/orders?limit=10", random},
		{"router-random-dot-file", "/.well-known/openid-configuration", random},
		{"router-random-traversal", "/api/../admin", random},
	} {
		b.Run(bc.name+"/sequential", func(b *testing.B) {
			req, w := newReq(bc.path), &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(w, req)
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, w := newReq(bc.path), &nopWriter{h: http.Header{}}
				for pb.Next() {
					bc.h.ServeHTTP(w, req)
				}
			})
		})
	}
}

// FuzzCleanPath checks cleanPath against path.Clean: a rooted path comes
// out rooted, without dot segments or empty segments, with its trailing
// slash, and cleaning it again changes nothing; a path the fast check lets
// through is one path.Clean would leave alone.
func FuzzCleanPath(f *testing.F) {
	for _, p := range []string{"/", "/api/../admin", "//", "/a/./b/", "/.well-known/x", "/../", "/a//b", "*", "", "/a/b/..", "/."} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c := cleanPath(p)
		if !strings.HasPrefix(p, "/") {
			require.Equal(t, p, c, "only rooted paths are cleaned")
			return
		}
		require.True(t, strings.HasPrefix(c, "/"), "%q → %q", p, c)
		require.Equal(t, c, cleanPath(c), "%q → %q is not clean", p, c)
		trimmed := strings.TrimSuffix(c, "/")
		if trimmed == "" {
			trimmed = "/"
		}
		require.Equal(t, path.Clean(p), trimmed, "%q → %q", p, c)
		if c != "/" {
			require.Equal(t, strings.HasSuffix(p, "/"), strings.HasSuffix(c, "/"), "%q → %q: trailing slash", p, c)
		}
		if c != "/" {
			for _, seg := range strings.Split(strings.TrimSuffix(c[1:], "/"), "/") {
				require.NotContains(t, []string{"", ".", ".."}, seg, "%q → %q", p, c)
			}
		}
	})
}
