package traffic

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Headers the router reads or strips. They are Knative's.
const (
	// RevisionHeader names the revision a request is for. Knative's
	// ingress sets it for the activator, and servingkit's revision front
	// door sets it on requests it hands to the activator. From a trusted
	// request the router honours it (the request goes to that revision of
	// the route, bypassing the split); from any other it strips it.
	RevisionHeader = "Knative-Serving-Revision"
	// NamespaceHeader goes with RevisionHeader in Knative; stripped alike.
	NamespaceHeader = "Knative-Serving-Namespace"
	// ProxyHeader marks a request forwarded by an activator (the queue's
	// K-Proxy-Request); a client must not be able to claim it, so it is
	// stripped from untrusted requests.
	ProxyHeader = "K-Proxy-Request"
	// TagHeader selects a tag's split on the route's own host, when
	// RouterConfig.TagHeader is on (Knative's tag-header-based routing).
	// Otherwise it is stripped from untrusted requests.
	TagHeader = "Knative-Serving-Tag"
)

// Knative's defaults (config-domain, config-network).
const (
	DefaultDomain         = "svc.cluster.local"
	DefaultDomainTemplate = "{name}.{namespace}.{domain}"
	DefaultTagTemplate    = "{tag}-{name}"
)

// RouterConfig configures a Router. The zero value is Knative's behaviour
// with random picks.
type RouterConfig struct {
	// Domain is the {domain} of DomainTemplate. "" means DefaultDomain,
	// "svc.cluster.local". Lower-case DNS labels joined by dots.
	Domain string
	// DomainTemplate builds a route's host from {name}, {namespace} and
	// {domain}. "" means DefaultDomainTemplate,
	// "{name}.{namespace}.{domain}". Must contain {name}.
	DomainTemplate string
	// TagTemplate builds the {name} of a tag's host from {tag} and {name}.
	// "" means DefaultTagTemplate, "{tag}-{name}", which gives tag hosts
	// such as canary-hello.default.svc.cluster.local. Must contain both.
	TagTemplate string
	// TagHeader turns on routing by the Knative-Serving-Tag header: a
	// request to a route's own host with the header set to one of the
	// route's tags uses that tag's split; an unknown tag uses the default
	// split (as in Knative). False means the header is stripped from
	// untrusted requests.
	TagHeader bool
	// Trusted says whether a request comes from inside the platform, so
	// that its internal headers (RevisionHeader, NamespaceHeader,
	// ProxyHeader, TagHeader, and the probe headers K-Network-Probe,
	// K-Network-Hash and K-Kubelet-Probe) are kept and a RevisionHeader naming one of
	// the route's revisions picks it. It is called on the request's
	// goroutine for every request and must be fast. Nil means no request is
	// trusted: the headers are stripped, so a client cannot bypass a split.
	Trusted func(*http.Request) bool
	// StickyHeader names a request header whose value is the sticky key
	// (e.g. "X-User-Id"): requests with the same key go to the same
	// revision while the split is unchanged. "" means none. An HTTP token.
	StickyHeader string
	// StickyCookie names a cookie whose value is the sticky key, used when
	// the request has no StickyHeader value. "" means none. An HTTP token.
	StickyCookie string
	// SetStickyCookie gives a request without a sticky key a new random
	// key in a StickyCookie cookie (Path /, HttpOnly, SameSite Lax, Secure
	// over TLS), so a browser stays on its revision from then on. Requires
	// StickyCookie.
	SetStickyCookie bool
	// StickyCookieMaxAge is the cookie's Max-Age, in whole seconds. Zero
	// means a session cookie. At least 0.
	StickyCookieMaxAge time.Duration
	// StatelessSplits lays every split out from its shares alone at each
	// Update (NewSplit), instead of rebalancing it from the previous
	// Update's layout. Then any two routers given the same routes send
	// every sticky key to the same revision, whatever updates each saw
	// before: a gateway that starts or restarts later, or that missed an
	// intermediate update, agrees with its peers. The price: a change
	// between revisions that are not next to each other in the share list
	// can move more than the minimum share of keys (a rollout step from
	// the newest old revision to the newest moves the minimum either way).
	// False (the default) moves the minimum always, and routers agree when
	// they applied the same sequence of updates, or after a change between
	// neighbours. Set it when several gateways serve sticky splits.
	StatelessSplits bool
	// Observer, if not nil, is called for every request once the router
	// (and the front door it chose) has answered it, on the request's
	// goroutine, outside any lock. It must be safe for simultaneous use.
	// Nil costs nothing; set, a request costs a pooled status writer, two
	// reads of the clock and the call.
	Observer func(Observation)
}

func (c *RouterConfig) setDefaults() {
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if c.DomainTemplate == "" {
		c.DomainTemplate = DefaultDomainTemplate
	}
	if c.TagTemplate == "" {
		c.TagTemplate = DefaultTagTemplate
	}
}

// Validate reports every bad field (after defaults), naming it, its value
// and the rule.
func (c RouterConfig) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(field string, value any, rule string) {
		errs = append(errs, fmt.Errorf("traffic: RouterConfig.%s = %#v, %s", field, value, rule))
	}
	if !validHost(c.Domain) {
		bad("Domain", c.Domain, "must be lower-case DNS labels joined by dots")
	}
	if err := checkTemplate(c.DomainTemplate, []string{"{name}"}, []string{"{name}", "{namespace}", "{domain}"}); err != "" {
		bad("DomainTemplate", c.DomainTemplate, err)
	}
	if err := checkTemplate(c.TagTemplate, []string{"{tag}", "{name}"}, []string{"{tag}", "{name}"}); err != "" {
		bad("TagTemplate", c.TagTemplate, err)
	}
	if c.StickyHeader != "" && !isToken(c.StickyHeader) {
		bad("StickyHeader", c.StickyHeader, "must be an HTTP token")
	}
	if c.StickyCookie != "" && !isToken(c.StickyCookie) {
		bad("StickyCookie", c.StickyCookie, "must be an HTTP token")
	}
	if c.SetStickyCookie && c.StickyCookie == "" {
		bad("SetStickyCookie", true, "requires StickyCookie")
	}
	if c.StickyCookieMaxAge < 0 || c.StickyCookieMaxAge%time.Second != 0 {
		bad("StickyCookieMaxAge", c.StickyCookieMaxAge.String(), "must be whole seconds >= 0")
	}
	return errors.Join(errs...)
}

// checkTemplate returns what is wrong with a template: a required
// placeholder missing, or a brace that is not an allowed placeholder.
func checkTemplate(t string, required, allowed []string) string {
	for _, p := range required {
		if !strings.Contains(t, p) {
			return "must contain " + strings.Join(required, " and ")
		}
	}
	rest := t
	for _, p := range allowed {
		rest = strings.ReplaceAll(rest, p, "")
	}
	if strings.ContainsAny(rest, "{}") {
		return "may only use the placeholders " + strings.Join(allowed, ", ")
	}
	return ""
}

// FrontDoors gives the router each revision's front door: the handler that
// serves the revision's requests (servingkit's revision front door, which
// sends them to a replica or to the activator, or any http.Handler).
// Router.Update calls FrontDoor on its own goroutine, outside any lock,
// once per revision of the routes it is given.
type FrontDoors interface {
	// FrontDoor returns revision's handler, or nil if it has none (the
	// router then answers that revision's requests with 503).
	FrontDoor(revision string) http.Handler
}

// FrontDoorFunc adapts a function to FrontDoors.
type FrontDoorFunc func(revision string) http.Handler

// FrontDoor calls f(revision).
func (f FrontDoorFunc) FrontDoor(revision string) http.Handler { return f(revision) }

// FrontDoorMap is FrontDoors from revision to handler.
type FrontDoorMap map[string]http.Handler

// FrontDoor looks revision up in m.
func (m FrontDoorMap) FrontDoor(revision string) http.Handler { return m[revision] }

// Route is what the router serves for one route: where its requests come
// from and the traffic to split them by.
type Route struct {
	// Name and Namespace give the route's hosts through the domain
	// template, and its tags' hosts through the tag template. DNS-1123
	// labels. Name may be "" when Hosts lists every host.
	Name, Namespace string
	// Hosts are more hosts (lower-case, no port) that serve the default
	// split, e.g. a custom domain.
	Hosts []string
	// PathPrefix limits the route to paths under it ("/api" matches /api
	// and /api/…, not /apis). "" serves every path. Routes may share a
	// host with different prefixes; the longest matching prefix wins.
	PathPrefix string
	// Table is the traffic: a Plan's Table, or Resolve's when there is no
	// gradual rollout.
	Table *Table
}

func (r Route) id() string {
	if r.Name != "" {
		return r.Namespace + "/" + r.Name
	}
	return strings.Join(r.Hosts, ",")
}

// Router is an http.Handler that sends each request to a revision's front
// door: it finds the route by host and path prefix (and, opt-in, the tag
// header), picks one of the route's revisions at random or by sticky key,
// and calls that revision's handler.
//
//   - Unknown host or path: 404 with a body that names the host and path.
//   - A revision without a front door: 503 with a body that names it.
//   - Internal headers, including every header that makes a replica's
//     queue answer a request itself (K-Network-Probe), are stripped from
//     untrusted requests (see RouterConfig.Trusted); the request is copied
//     only when there is one to strip.
//   - A path with dot segments or repeated slashes is routed and forwarded
//     in its cleaned form (path.Clean, keeping a trailing slash), so that
//     "/api/../admin" is /admin, not a path under the prefix "/api"; the
//     request is copied only when cleaning changes its path. An encoded
//     slash (%2F) stays inside its segment: it never becomes a separator.
//
// Update replaces every route at once: the request path loads an immutable
// table through an atomic pointer and takes no lock, so a request is
// routed wholly by the old table or wholly by the new one. Picking is O(1)
// and does not allocate. Sticky picks know nothing of replicas: a key
// stays on its revision while the revision is at zero replicas (its front
// door holds the request in the activator). A Router is safe for
// simultaneous use.
type Router struct {
	cfg          RouterConfig
	stickyHeader string // canonical form of cfg.StickyHeader

	mu    sync.Mutex // serializes Update, so each builds on the last
	table atomic.Pointer[routerTable]
}

// NewRouter returns a Router with no routes: every request gets 404 until
// Update.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	r := &Router{cfg: cfg, stickyHeader: http.CanonicalHeaderKey(cfg.StickyHeader)}
	r.table.Store(&routerTable{hosts: map[string][]*entry{}, splits: map[string]*Split{}, installed: map[string]*installedRoute{}})
	return r, nil
}

// Host returns the host of a route (tag "") or of one of its tags, from the
// templates.
func (r *Router) Host(name, namespace, tag string) string {
	if tag != "" {
		name = strings.NewReplacer("{tag}", tag, "{name}", name).Replace(r.cfg.TagTemplate)
	}
	return strings.NewReplacer("{name}", name, "{namespace}", namespace, "{domain}", r.cfg.Domain).Replace(r.cfg.DomainTemplate)
}

// routerTable is immutable once stored.
type routerTable struct {
	hosts     map[string][]*entry        // by host; longest prefix first
	splits    map[string]*Split          // by route, prefix and tag: the layouts the next Update rebalances
	installed map[string]*installedRoute // by routeKey: what each route serves, for a later refusal to fall back to
}

// installedRoute is one route as a table serves it.
type installedRoute struct {
	id     string            // Route.id(), for messages
	claims []claim           // its hosts and prefix
	splits map[string]*Split // its entries in routerTable.splits
}

// claim is one host and path prefix a route serves, with its entry.
type claim struct {
	host, prefix string
	e            *entry
}

func (c claim) id() string { return c.host + " " + c.prefix }

// routeKey identifies a route from one Update to the next: its name (or
// hosts) and path prefix.
func routeKey(rt Route) string { return rt.id() + "\x00" + strings.TrimSuffix(rt.PathPrefix, "/") }

// entry is a route as seen from one host.
type entry struct {
	prefix     string
	group      *group            // the split this host serves
	tags       map[string]*group // the route's tag splits, for TagHeader; nil on tag hosts
	byRevision map[string]http.Handler
}

type group struct {
	split *Split
	doors []http.Handler // by split index
	route string         // for error messages
	tag   string
}

// Reasons a route is refused, for RouteError.Reason.
const (
	// ReasonDomainTaken: a host and path prefix of the route is served by
	// another route (Knative marks such a route not ready because its
	// domain is taken).
	ReasonDomainTaken = "DomainTaken"
	// ReasonInvalid: the route itself is invalid (a bad name, host, prefix
	// or table).
	ReasonInvalid = "Invalid"
)

// RouteError is one route that Router.Update refused; the other routes of
// the update were installed.
type RouteError struct {
	Index    int      // in the routes given to Update
	Route    string   // "namespace/name", or the hosts of a route without a name
	Reason   string   // ReasonDomainTaken or ReasonInvalid
	Problems []string // each problem, naming the field or host
}

func (e *RouteError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = fmt.Sprintf("traffic: routes[%d] (%s): %s", e.Index, e.Route, p)
	}
	return strings.Join(lines, "\n")
}

// UpdateError lists the routes Router.Update refused, in the order given.
type UpdateError struct {
	Routes []*RouteError
}

func (e *UpdateError) Error() string {
	lines := make([]string, len(e.Routes))
	for i, r := range e.Routes {
		lines[i] = r.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the RouteErrors, for errors.As.
func (e *UpdateError) Unwrap() []error {
	out := make([]error, len(e.Routes))
	for i, r := range e.Routes {
		out[i] = r
	}
	return out
}

// Update replaces all routes with routes, taking each revision's handler
// from doors at this moment (call Update again when a revision's handler
// changes). Each split is rebalanced from the previous Update's split of
// the same route, path prefix and tag, so sticky keys move only as much as
// the percents did (with RouterConfig.StatelessSplits, laid out afresh).
//
// Routes are installed one by one: a route that is invalid (a bad name,
// host, prefix or table) or that claims a host and prefix another route
// serves is refused, and every other route is installed. A host and prefix
// that a route served after the previous Update stays with that route while
// it is among routes; otherwise the first route to claim it, in the order
// given, gets it. A refused route that was installed before keeps serving
// as it was (with the front doors it had then); a new one is not served.
// Update returns an *UpdateError listing the refused routes, or nil.
func (r *Router) Update(routes []Route, doors FrontDoors) error {
	if doors == nil {
		return errors.New("traffic: Router.Update: doors is nil")
	}
	// Look every revision's front door up before taking the lock: doors is
	// the host's code, and may be slow or call back into the router.
	door := map[string]http.Handler{}
	lookup := func(shares []Share) {
		for _, sh := range shares {
			if _, done := door[sh.Revision]; !done && validKey(sh.Revision) {
				door[sh.Revision] = doors.FrontDoor(sh.Revision)
			}
		}
	}
	for _, rt := range routes {
		if rt.Table != nil {
			lookup(rt.Table.Default)
			for _, shares := range rt.Table.Tags {
				lookup(shares)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.table.Load()
	t := &routerTable{hosts: map[string][]*entry{}, splits: map[string]*Split{}, installed: map[string]*installedRoute{}}

	// Each route's entries, or why it is invalid.
	built := make([]*installedRoute, len(routes))
	problems := make([][]string, len(routes))
	for i, rt := range routes {
		built[i], problems[i] = r.build(rt, old, door)
	}
	// The hosts routes served before stay theirs: those the new version of
	// a route claims too, and all of them when the new version is invalid
	// (the old one keeps serving).
	owner := map[string]string{} // claim id → route key
	for i, rt := range routes {
		key := routeKey(rt)
		prev := old.installed[key]
		if prev == nil {
			continue
		}
		wanted := map[string]bool{}
		if built[i] != nil {
			for _, c := range built[i].claims {
				wanted[c.id()] = true
			}
		}
		for _, c := range prev.claims {
			if built[i] == nil || wanted[c.id()] {
				owner[c.id()] = key
			}
		}
	}
	install := func(key string, ir *installedRoute) {
		t.installed[key] = ir
		for _, c := range ir.claims {
			owner[c.id()] = key
			t.hosts[c.host] = append(t.hosts[c.host], c.e)
		}
		for k, s := range ir.splits {
			t.splits[k] = s
		}
	}
	var refused []*RouteError
	for i, rt := range routes {
		key := routeKey(rt)
		reason := ReasonInvalid
		if b := built[i]; b != nil {
			if _, done := t.installed[key]; done {
				problems[i] = append(problems[i], fmt.Sprintf("the route %s with path prefix %q is given twice", rt.id(), strings.TrimSuffix(rt.PathPrefix, "/")))
			}
			for _, c := range b.claims {
				if o, taken := owner[c.id()]; taken && o != key {
					by := o
					if ir := t.installed[o]; ir != nil {
						by = ir.id
					} else if ir := old.installed[o]; ir != nil {
						by = ir.id
					}
					problems[i] = append(problems[i], fmt.Sprintf("host %q with path prefix %q is also claimed by %s", c.host, c.prefix, by))
				}
			}
			if len(problems[i]) == 0 {
				install(key, b)
				continue
			}
			reason = ReasonDomainTaken
		}
		refused = append(refused, &RouteError{Index: i, Route: rt.id(), Reason: reason, Problems: problems[i]})
		if prev := old.installed[key]; prev != nil && t.installed[key] == nil {
			// Keep the previous version, without any host another route
			// has taken since (one its new version no longer claimed).
			keep := &installedRoute{id: prev.id, splits: prev.splits}
			for _, c := range prev.claims {
				if o, taken := owner[c.id()]; !taken || o == key {
					keep.claims = append(keep.claims, c)
				}
			}
			install(key, keep)
		}
	}
	for _, es := range t.hosts {
		// Longest prefix first; there are few per host.
		for i := 1; i < len(es); i++ {
			for j := i; j > 0 && len(es[j].prefix) > len(es[j-1].prefix); j-- {
				es[j], es[j-1] = es[j-1], es[j]
			}
		}
	}
	r.table.Store(t)
	if len(refused) > 0 {
		return &UpdateError{Routes: refused}
	}
	return nil
}

// build makes a route's entries, or says why the route is invalid. Hosts
// another route claims are not checked here.
func (r *Router) build(rt Route, old *routerTable, door map[string]http.Handler) (*installedRoute, []string) {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if rt.Name == "" && len(rt.Hosts) == 0 {
		fail("no Name and no Hosts: the route has no host")
		return nil, problems
	}
	if rt.Name != "" && (!isDNS1123Label(rt.Name) || !isDNS1123Label(rt.Namespace)) {
		fail("Name %q and Namespace %q must be DNS-1123 labels", rt.Name, rt.Namespace)
		return nil, problems
	}
	prefix := strings.TrimSuffix(rt.PathPrefix, "/")
	if rt.PathPrefix != "" && !strings.HasPrefix(rt.PathPrefix, "/") {
		fail("PathPrefix %q must start with /", rt.PathPrefix)
		return nil, problems
	}
	if rt.Table == nil {
		fail("Table is nil")
		return nil, problems
	}
	if err := rt.Table.Validate(); err != nil {
		fail("%v", err)
		return nil, problems
	}
	ir := &installedRoute{id: rt.id(), splits: map[string]*Split{}}
	key := func(tag string) string { return rt.id() + "\x00" + prefix + "\x00" + tag }
	newGroup := func(tag string, shares []Share) *group {
		prev := old.splits[key(tag)]
		if r.cfg.StatelessSplits {
			prev = nil // a fresh layout, the same in every router
		}
		s, err := prev.Rebalance(shares)
		if err != nil { // Table.Validate passed, so this cannot happen
			fail("tag %q: %v", tag, err)
			s = &Split{}
		}
		ir.splits[key(tag)] = s
		g := &group{split: s, doors: make([]http.Handler, s.Len()), route: rt.id(), tag: tag}
		for j := range g.doors {
			g.doors[j] = door[s.Revision(j)]
		}
		return g
	}
	def := newGroup("", rt.Table.Default)
	tags := map[string]*group{}
	byRevision := map[string]http.Handler{}
	for j, d := range def.doors {
		byRevision[def.split.Revision(j)] = d
	}
	for tag, shares := range rt.Table.Tags {
		g := newGroup(tag, shares)
		tags[tag] = g
		for j, d := range g.doors {
			byRevision[g.split.Revision(j)] = d
		}
	}
	// A 0% revision of the default split is still reachable by a trusted
	// revision header.
	for _, sh := range rt.Table.Default {
		if _, ok := byRevision[sh.Revision]; !ok {
			byRevision[sh.Revision] = door[sh.Revision]
		}
	}
	seen := map[string]bool{}
	add := func(host string, e *entry) {
		if !validHost(host) {
			fail("host %q is not lower-case DNS labels joined by dots", host)
			return
		}
		c := claim{host: host, prefix: prefix, e: e}
		if seen[c.id()] {
			fail("host %q with path prefix %q is claimed twice by the route", host, prefix)
			return
		}
		seen[c.id()] = true
		ir.claims = append(ir.claims, c)
	}
	own := &entry{prefix: prefix, group: def, byRevision: byRevision}
	if r.cfg.TagHeader {
		own.tags = tags
	}
	if rt.Name != "" {
		add(r.Host(rt.Name, rt.Namespace, ""), own)
		for _, tag := range sortedKeys(tags) {
			add(r.Host(rt.Name, rt.Namespace, tag), &entry{prefix: prefix, group: tags[tag], byRevision: byRevision})
		}
	}
	for _, h := range rt.Hosts {
		add(h, own)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return ir, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validHost accepts lower-case DNS-1123 labels joined by dots, at most 253
// characters.
func validHost(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !isDNS1123Label(l) {
			return false
		}
	}
	return true
}

// ServeHTTP routes the request; see Router.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.cfg.Observer != nil {
		r.serveObserved(w, req)
		return
	}
	r.serve(w, req, nil)
}

// serve routes the request; ob, if not nil, collects what the observer is
// told.
func (r *Router) serve(w http.ResponseWriter, req *http.Request, ob *observed) {
	t := r.table.Load()
	host := requestHost(req)
	req, routed := cleanRequestPath(req)
	e := t.match(host, routed)
	if e == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("traffic: no route for host %q and path %q", host, routed))
		return
	}
	if r.cfg.Trusted != nil && r.cfg.Trusted(req) {
		if v := req.Header[RevisionHeader]; len(v) > 0 {
			if h, ok := e.byRevision[v[0]]; ok {
				if ob != nil {
					ob.route, ob.rev = e.group.route, v[0]
				}
				if h == nil {
					writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("traffic: revision %q has no front door", v[0]))
					return
				}
				h.ServeHTTP(w, req)
				return
			}
		}
	} else {
		req = r.strip(req)
	}
	g := e.group
	if e.tags != nil {
		if v := req.Header[TagHeader]; len(v) > 0 {
			if tg := e.tags[v[0]]; tg != nil {
				g = tg
			}
		}
	}
	var i int
	if key, ok := r.stickyKey(req); ok {
		i = g.split.Index(Hash(key))
	} else if r.cfg.SetStickyCookie {
		key := newStickyKey()
		http.SetCookie(w, &http.Cookie{Name: r.cfg.StickyCookie, Value: key, Path: "/", MaxAge: int(r.cfg.StickyCookieMaxAge / time.Second),
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: req.TLS != nil})
		i = g.split.Index(Hash(key))
	} else {
		i = g.split.Index(rand.Uint64())
	}
	door := g.doors[i]
	if ob != nil {
		ob.route, ob.rev = g.route, g.split.Revision(i)
	}
	if door == nil {
		route := g.route
		if g.tag != "" {
			route += " tag " + g.tag
		}
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("traffic: revision %q of route %s has no front door", g.split.Revision(i), route))
		return
	}
	door.ServeHTTP(w, req)
}

// cleanRequestPath returns req with its path cleaned (dot segments
// resolved, repeated slashes merged, a trailing slash kept), copying req
// only if that changes the path, and the path to route it by.
//
// Matching the raw path would let "/api/../admin" pass the prefix "/api"
// and reach that route's backend, which resolves it to /admin: a path
// outside the prefix. The cleaned path is both matched and forwarded, so a
// backend sees exactly the path its prefix was checked against. It is
// forwarded rather than refused with 400 because a cleaned path is as
// safe as a refusal and clients that merely send "//" (joined URLs) keep
// working, as they do behind proxies that normalize paths (Envoy's
// normalize_path and merge_slashes) and Go's ServeMux, which cleans too.
// Percent-encoded dots are already decoded in URL.Path, so "%2e%2e" is
// caught; the encoded form is dropped from the forwarded request when the
// path changes, since it would no longer match.
//
// An encoded slash (%2F) is part of its segment, never a separator:
// URL.Path decodes it, so "/default/hello%2F..%2F..%2Facme" would clean to
// "/acme" and reach another route. A path with one is split on the real
// slashes of the path as sent (cleanEncodedPath), routed by a form that
// keeps %2F, and forwarded with its encoded form.
func cleanRequestPath(req *http.Request) (*http.Request, string) {
	if raw := req.URL.RawPath; raw != "" && hasEncodedSlash(raw) {
		return cleanEncodedPath(req)
	}
	p := req.URL.Path
	c := cleanPath(p)
	if c == p {
		return req, p
	}
	out := req.WithContext(req.Context())
	u := *req.URL
	u.Path, u.RawPath = c, ""
	out.URL = &u
	if out.RequestURI != "" {
		out.RequestURI = u.RequestURI()
	}
	return out, c
}

// hasEncodedSlash reports whether an escaped path holds %2F or %2f,
// without allocating.
func hasEncodedSlash(raw string) bool {
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] == '%' && raw[i+1] == '2' && (raw[i+2] == 'f' || raw[i+2] == 'F') {
			return true
		}
	}
	return false
}

// cleanEncodedPath cleans a path that has an encoded slash segment by
// segment of its escaped form as sent (URL.RawPath): a segment that
// decodes to "." or ".." is a dot segment, an empty one is dropped, any
// other is kept whole, slashes and all. It returns the request (copied if
// the path changed) and the path to route by, in which a slash inside a
// segment reads %2F.
//
// URL.EscapedPath is no substitute for RawPath here: when RawPath holds a
// byte that should have been escaped ("{", "|", a non-ASCII byte…), it
// ignores RawPath and escapes URL.Path, turning every %2F into a real
// slash. So the segments are taken from RawPath, and such bytes are
// escaped in the forwarded path (same meaning), whose EscapedPath is then
// exactly what was routed.
func cleanEncodedPath(req *http.Request) (*http.Request, string) {
	raw := req.URL.RawPath
	if p, err := url.PathUnescape(raw); err != nil || p != req.URL.Path {
		// Not the escaped form of Path (a request built in code): Path is
		// what is forwarded, and its slashes are real.
		raw = req.URL.EscapedPath()
	}
	if !strings.HasPrefix(raw, "/") {
		return req, raw
	}
	var rawSegs, decSegs []string
	segs := strings.Split(raw[1:], "/")
	for _, sg := range segs {
		d, err := url.PathUnescape(sg)
		if err != nil {
			d = sg
		}
		switch d {
		case "", ".":
		case "..":
			if n := len(rawSegs); n > 0 {
				rawSegs, decSegs = rawSegs[:n-1], decSegs[:n-1]
			}
		default:
			rawSegs, decSegs = append(rawSegs, escapeUnsafe(sg)), append(decSegs, d)
		}
	}
	trailing := ""
	if strings.HasSuffix(raw, "/") && len(rawSegs) > 0 {
		trailing = "/"
	}
	cleanRaw := "/" + strings.Join(rawSegs, "/") + trailing
	routed := make([]string, len(decSegs))
	for i, d := range decSegs {
		routed[i] = strings.ReplaceAll(d, "/", "%2F")
	}
	routedPath := "/" + strings.Join(routed, "/") + trailing
	if cleanRaw == raw {
		return req, routedPath
	}
	out := req.WithContext(req.Context())
	u := *req.URL
	u.Path, u.RawPath = "/"+strings.Join(decSegs, "/")+trailing, cleanRaw
	out.URL = &u
	if out.RequestURI != "" {
		out.RequestURI = u.RequestURI()
	}
	return out, routedPath
}

// escapeUnsafe percent-encodes the bytes of an escaped path segment that
// net/url does not accept unescaped in URL.RawPath (anything but letters,
// digits, "-._~!$&'()*+,;=:@[]" and "%"), so that a URL with the segment
// keeps its RawPath. It returns seg itself if there are none.
func escapeUnsafe(seg string) string {
	n := 0
	for i := 0; i < len(seg); i++ {
		if !pathByteOK(seg[i]) {
			n++
		}
	}
	if n == 0 {
		return seg
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(seg)+2*n)
	for i := 0; i < len(seg); i++ {
		if c := seg[i]; pathByteOK(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

// pathByteOK reports whether c may stand unescaped in URL.RawPath.
func pathByteOK(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@[]%", c) >= 0
}

// cleanPath is path.Clean keeping a trailing slash, for rooted paths that
// need it; any other path is returned as is, without allocating.
func cleanPath(p string) string {
	if !needsCleaning(p) {
		return p
	}
	c := path.Clean(p)
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c
}

// needsCleaning reports whether p is a rooted path with a segment that
// starts with a dot or is empty, the only paths path.Clean changes (besides
// a trailing slash, which is kept). It does not allocate.
func needsCleaning(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false // "*" or an authority: no prefix can match it anyway
	}
	for i := 0; i+1 < len(p); i++ {
		if p[i] == '/' && (p[i+1] == '.' || p[i+1] == '/') {
			return true
		}
	}
	return false
}

func (t *routerTable) match(host, path string) *entry {
	for _, e := range t.hosts[host] {
		if e.prefix == "" || strings.HasPrefix(path, e.prefix) && (len(path) == len(e.prefix) || path[len(e.prefix)] == '/') {
			return e
		}
	}
	return nil
}

// requestHost is the request's host without port or trailing dot, in lower
// case (allocating only if it had upper-case letters).
func requestHost(req *http.Request) string {
	h := req.Host
	if h == "" {
		h = req.URL.Host
	}
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[:i+1]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// probeHeaders are request headers that make a replica's queue answer the
// request itself instead of passing it to the application: with
// K-Network-Probe: queue, servingkit's queue (and Knative's queue-proxy)
// answers a readiness probe, skipping the app and its stats; Knative's
// queue-proxy treats K-Network-Hash and K-Kubelet-Probe as probes too, and
// a servingkit router may front Knative replicas. Nobody outside the
// platform sends them through the router, so they are stripped from every
// untrusted request.
var probeHeaders = [...]string{"K-Network-Probe", "K-Network-Hash", "K-Kubelet-Probe"}

// strip returns req without the internal headers, copying it only if it
// has any: a handler must not modify the request it was given. With none
// present it does not allocate.
func (r *Router) strip(req *http.Request) *http.Request {
	h := req.Header
	_, rev := h[RevisionHeader]
	_, ns := h[NamespaceHeader]
	_, proxy := h[ProxyHeader]
	_, tag := h[TagHeader]
	tag = tag && !r.cfg.TagHeader
	probe := false
	for _, k := range probeHeaders {
		if _, ok := h[k]; ok {
			probe = true
		}
	}
	if !rev && !ns && !proxy && !tag && !probe {
		return req
	}
	out := req.WithContext(req.Context())
	out.Header = h.Clone()
	delete(out.Header, RevisionHeader)
	delete(out.Header, NamespaceHeader)
	delete(out.Header, ProxyHeader)
	for _, k := range probeHeaders {
		delete(out.Header, k)
	}
	if tag {
		delete(out.Header, TagHeader)
	}
	return out
}

func (r *Router) stickyKey(req *http.Request) (string, bool) {
	if r.stickyHeader != "" {
		if v := req.Header[r.stickyHeader]; len(v) > 0 && v[0] != "" {
			return v[0], true
		}
	}
	if r.cfg.StickyCookie != "" {
		if v, ok := cookieValue(req.Header, r.cfg.StickyCookie); ok && v != "" {
			return v, true
		}
	}
	return "", false
}

// newStickyKey returns 128 random bits in hex. It only needs to be unique,
// not secret: it chooses a revision, which a client could choose anyway by
// trying keys.
func newStickyKey() string {
	var b [16]byte
	a, c := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i], b[8+i] = byte(a>>(8*i)), byte(c>>(8*i))
	}
	return hex.EncodeToString(b[:])
}

func writeError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}
