package traffic_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/traffic"
)

// gateway is one router with front doors that answer their revision's key.
func newAgreementRouter(t *testing.T) *traffic.Router {
	r, err := traffic.NewRouter(traffic.RouterConfig{Domain: "example.com", StickyHeader: "X-User"})
	require.NoError(t, err)
	return r
}

func newStatelessRouter(t *testing.T) *traffic.Router {
	r, err := traffic.NewRouter(traffic.RouterConfig{Domain: "example.com", StickyHeader: "X-User", StatelessSplits: true})
	require.NoError(t, err)
	return r
}

func doors(revs []string) traffic.FrontDoorMap {
	m := traffic.FrontDoorMap{}
	for _, rev := range revs {
		m[rev] = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(rev)) })
	}
	return m
}

// randomShares splits 100 percent over a random subset of revs, in the
// order given.
func randomShares(rng *rand.Rand, revs []string) []traffic.Share {
	n := 1 + rng.IntN(len(revs))
	picked := rng.Perm(len(revs))[:n]
	left := 100
	var out []traffic.Share
	for i, j := range picked {
		p := left
		if i < n-1 {
			p = rng.IntN(left + 1)
		}
		left -= p
		out = append(out, traffic.Share{Revision: revs[j], Percent: p})
	}
	return out
}

func revisionFor(t *testing.T, r *traffic.Router, host, key string) string {
	req := httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
	req.Header.Set("X-User", key)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code, "%s key %s: %s", host, key, w.Body)
	return w.Body.String()
}

// Two gateways given the same specs, in the same order but each with its
// routes listed in its own order, send every sticky key to the same
// revision after every update: 60 random spec histories of up to 8 updates
// over 3 services, 60 keys per service after each update.
func TestRoutersAgreeOnStickyKeys(t *testing.T) {
	revs := []string{"ns/a-1", "ns/a-2", "ns/a-3", "ns/a-4", "ns/a-5"}
	services := []string{"s0", "s1", "s2"}
	compared := 0
	for seed := range uint64(60) {
		rng := rand.New(rand.NewPCG(seed, 12))
		a, b := newAgreementRouter(t), newAgreementRouter(t)
		steps := 1 + rng.IntN(8)
		for range steps {
			var routes []traffic.Route
			for _, s := range services {
				routes = append(routes, traffic.Route{Name: s, Namespace: "ns", Table: &traffic.Table{Default: randomShares(rng, revs)}})
			}
			shuffled := append([]traffic.Route(nil), routes...)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			require.NoError(t, a.Update(routes, doors(revs)))
			require.NoError(t, b.Update(shuffled, doors(revs)))
			for _, s := range services {
				host := a.Host(s, "ns", "")
				for k := range 60 {
					key := fmt.Sprintf("user-%d-%d", seed, k)
					require.Equal(t, revisionFor(t, a, host, key), revisionFor(t, b, host, key), "seed %d service %s key %s", seed, s, key)
					compared++
				}
			}
		}
	}
	require.GreaterOrEqual(t, compared, 60*3*60, "keys compared")
}

// A gateway that starts in the middle of a gradual rollout (each step
// moving percent from the older revision to the newer one) agrees with one
// that followed every step from the start.
func TestRestartedRouterAgreesDuringRollout(t *testing.T) {
	compared := 0
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 34))
		revs := []string{"ns/r-1", "ns/r-2"}
		veteran := newAgreementRouter(t)
		newPercent := 0
		for newPercent < 100 {
			newPercent = min(100, newPercent+1+rng.IntN(30))
			routes := []traffic.Route{{Name: "svc", Namespace: "ns", Table: &traffic.Table{Default: []traffic.Share{
				{Revision: revs[0], Percent: 100 - newPercent}, {Revision: revs[1], Percent: newPercent},
			}}}}
			require.NoError(t, veteran.Update(routes, doors(revs)))
			fresh := newAgreementRouter(t)
			require.NoError(t, fresh.Update(routes, doors(revs)))
			host := veteran.Host("svc", "ns", "")
			for k := range 50 {
				key := fmt.Sprintf("user-%d-%d", seed, k)
				require.Equal(t, revisionFor(t, veteran, host, key), revisionFor(t, fresh, host, key), "seed %d at %d%%: key %s", seed, newPercent, key)
				compared++
			}
		}
	}
	require.Greater(t, compared, 40*4*50, "keys compared")
}

// randomRoutes is one random update of the routes of services.
func randomRoutes(rng *rand.Rand, services, revs []string) []traffic.Route {
	var routes []traffic.Route
	for _, s := range services {
		routes = append(routes, traffic.Route{Name: s, Namespace: "ns", Table: &traffic.Table{Default: randomShares(rng, revs)}})
	}
	return routes
}

// With StatelessSplits, two gateways that saw different histories (one
// started late, or missed updates) agree on every sticky key once given
// the same routes: 100 pairs of random histories of up to 8 updates over 3
// services, 60 keys per service. Without it, the same histories disagree
// on some keys (a rebalanced layout remembers its history), which is why
// several gateways serving sticky splits set it.
func TestStatelessRoutersAgreeWhateverTheirHistory(t *testing.T) {
	revs := []string{"ns/a-1", "ns/a-2", "ns/a-3", "ns/a-4", "ns/a-5"}
	services := []string{"s0", "s1", "s2"}
	compared, disagreedWithout := 0, 0
	for seed := range uint64(100) {
		rng := rand.New(rand.NewPCG(seed, 56))
		a, b := newStatelessRouter(t), newStatelessRouter(t)
		da, db := newAgreementRouter(t), newAgreementRouter(t)
		for range rng.IntN(8) {
			routes := randomRoutes(rng, services, revs)
			require.NoError(t, a.Update(routes, doors(revs)))
			require.NoError(t, da.Update(routes, doors(revs)))
		}
		for range rng.IntN(3) { // b's own history, or none: a gateway started late
			routes := randomRoutes(rng, services, revs)
			require.NoError(t, b.Update(routes, doors(revs)))
			require.NoError(t, db.Update(routes, doors(revs)))
		}
		final := randomRoutes(rng, services, revs)
		for _, r := range []*traffic.Router{a, b, da, db} {
			require.NoError(t, r.Update(final, doors(revs)))
		}
		for _, s := range services {
			host := a.Host(s, "ns", "")
			for k := range 60 {
				key := fmt.Sprintf("user-%d-%d", seed, k)
				require.Equal(t, revisionFor(t, a, host, key), revisionFor(t, b, host, key), "seed %d service %s key %s", seed, s, key)
				compared++
				if revisionFor(t, da, host, key) != revisionFor(t, db, host, key) {
					disagreedWithout++
				}
			}
		}
	}
	require.GreaterOrEqual(t, compared, 100*3*60, "keys compared")
	require.Positive(t, disagreedWithout, "without StatelessSplits some keys differ between the histories")
	t.Logf("%d keys compared; without StatelessSplits %d of them went to different revisions", compared, disagreedWithout)
}
