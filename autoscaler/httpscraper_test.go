package autoscaler

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/stats"
)

func TestSampleSize(t *testing.T) {
	for n, want := range map[int]int{-1: 0, 0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 4, 10: 7, 100: 14, 1000: 16} {
		assert.Equal(t, want, sampleSize(n), "N=%d", n)
	}
}

// fakeReplica serves a stats batch like a queue's admin handler and counts
// the scrapes.
type fakeReplica struct {
	srv    *httptest.Server
	hits   atomic.Int64
	status int
	msgs   []stats.Message
}

func newFakeReplica(t *testing.T, status int, msgs ...stats.Message) *fakeReplica {
	f := &fakeReplica{status: status, msgs: msgs}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		if f.status != http.StatusOK {
			http.Error(w, "not ready", f.status)
			return
		}
		stats.WriteBatch(w, r, f.msgs)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func load(rev string, conc, proxied, rps, proxiedRPS float64) stats.Message {
	return stats.Message{Revision: rev, Stat: stats.Stat{Source: "pod", Concurrency: conc, ProxiedConcurrency: proxied, RPS: rps, ProxiedRPS: proxiedRPS}}
}

type scrapeFixture struct {
	clk      *clock.Mock
	replicas []Replica
	scraper  *HTTPScraper
}

func newScrapeFixture() *scrapeFixture {
	f := &scrapeFixture{clk: clock.NewMock()}
	f.clk.Set(t0)
	f.scraper = &HTTPScraper{
		Lister: ReplicaListerFunc(func(rev string) ([]Replica, error) {
			if rev != "rev" {
				return nil, errors.New("no such revision")
			}
			return f.replicas, nil
		}),
		Clock: f.clk,
	}
	return f
}

func (f *scrapeFixture) add(r *fakeReplica, age time.Duration) {
	f.replicas = append(f.replicas, Replica{StatsURL: r.srv.URL + "/stats", Started: t0.Add(-age)})
}

const stableWindow = 60 * time.Second

func TestHTTPScraperExtrapolatesFromASample(t *testing.T) {
	f := newScrapeFixture()
	var reps []*fakeReplica
	for range 10 {
		r := newFakeReplica(t, http.StatusOK, load("rev", 2, 0.5, 3, 1))
		reps = append(reps, r)
		f.add(r, time.Hour)
	}
	s, err := f.scraper.Scrape(context.Background(), "rev", stableWindow)
	require.NoError(t, err)
	// 7 of 10 sampled: each field is sum / 7 × 10.
	assert.Equal(t, stats.Stat{Source: ScraperSource, Concurrency: 20, ProxiedConcurrency: 5, RPS: 30, ProxiedRPS: 10, Time: t0}, s)
	var scraped int64
	for _, r := range reps {
		scraped += r.hits.Load()
	}
	assert.Equal(t, int64(7), scraped)
}

func TestHTTPScraperPrefersOldReplicas(t *testing.T) {
	f := newScrapeFixture()
	for range 4 {
		f.add(newFakeReplica(t, http.StatusOK, load("rev", 1, 0, 1, 0)), 2*stableWindow)
	}
	young := newFakeReplica(t, http.StatusOK, load("rev", 100, 0, 100, 0))
	f.add(young, stableWindow-time.Second)
	s, err := f.scraper.Scrape(context.Background(), "rev", stableWindow)
	require.NoError(t, err)
	assert.Equal(t, 5.0, s.Concurrency, "4 old replicas sampled of 5: 4 / 4 × 5")
	assert.Zero(t, young.hits.Load())
}

func TestHTTPScraperMovesOnWhenAReplicaFails(t *testing.T) {
	f := newScrapeFixture()
	for range 3 {
		f.add(newFakeReplica(t, http.StatusOK, load("rev", 1, 0, 0, 0)), time.Hour)
	}
	f.add(newFakeReplica(t, http.StatusServiceUnavailable), time.Hour)
	young := newFakeReplica(t, http.StatusOK, load("rev", 3, 0, 0, 0))
	f.add(young, time.Second)
	s, err := f.scraper.Scrape(context.Background(), "rev", stableWindow)
	require.NoError(t, err)
	assert.Equal(t, 7.5, s.Concurrency, "(1+1+1+3) / 4 × 5")
	assert.Equal(t, int64(1), young.hits.Load())
}

func TestHTTPScraperFailsWhenReplicasRunOut(t *testing.T) {
	f := newScrapeFixture()
	f.add(newFakeReplica(t, http.StatusOK, load("rev", 1, 0, 0, 0)), time.Hour)
	f.add(newFakeReplica(t, http.StatusOK, load("rev", 1, 0, 0, 0)), time.Hour)
	f.add(newFakeReplica(t, http.StatusInternalServerError), time.Hour)
	_, err := f.scraper.Scrape(context.Background(), "rev", stableWindow)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `scraping "rev": 2 of 3 sampled replicas answered (of 3 ready)`)
	assert.Contains(t, err.Error(), "500")
}

func TestHTTPScraperReplicaBatches(t *testing.T) {
	f := newScrapeFixture()
	f.add(newFakeReplica(t, http.StatusOK), time.Hour) // no report yet: idle
	f.add(newFakeReplica(t, http.StatusOK, load("", 2, 0, 1, 0), load("rev", 1, 0, 1, 0)), time.Hour)
	s, err := f.scraper.Scrape(context.Background(), "rev", stableWindow)
	require.NoError(t, err)
	assert.Equal(t, 3.0, s.Concurrency)
	assert.Equal(t, 2.0, s.RPS)

	g := newScrapeFixture()
	g.add(newFakeReplica(t, http.StatusOK, load("other", 5, 0, 0, 0)), time.Hour)
	_, err = g.scraper.Scrape(context.Background(), "rev", stableWindow)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `reports revision "other", not "rev"`)
}

func TestHTTPScraperNoReplicasAndListerErrors(t *testing.T) {
	f := newScrapeFixture()
	_, err := f.scraper.Scrape(context.Background(), "rev", stableWindow)
	assert.ErrorIs(t, err, ErrNoReplicas)
	_, err = f.scraper.Scrape(context.Background(), "unknown", stableWindow)
	assert.ErrorContains(t, err, `listing replicas of "unknown": no such revision`)
	_, err = (&HTTPScraper{}).Scrape(context.Background(), "rev", stableWindow)
	assert.ErrorContains(t, err, "Lister is nil")
}

func TestHTTPScraperHonoursContext(t *testing.T) {
	f := newScrapeFixture()
	f.add(newFakeReplica(t, http.StatusOK, load("rev", 1, 0, 0, 0)), time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.scraper.Scrape(ctx, "rev", stableWindow)
	assert.ErrorIs(t, err, context.Canceled)
}
