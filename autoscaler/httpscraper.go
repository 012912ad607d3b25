package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/stats"
)

// Replica is one running replica of a revision, as an HTTPScraper sees it.
type Replica struct {
	// StatsURL is the replica's stats endpoint: the queue's admin handler
	// at GET /stats, for example "http://10.0.0.7:9091/stats".
	StatsURL string
	// Started is when the replica started. Replicas younger than the
	// stable window are used only to fill up a sample.
	Started time.Time
}

// ReplicaLister lists the ready replicas of a revision. It is called once
// per scrape; serve it from a cache.
type ReplicaLister interface {
	Replicas(revision string) ([]Replica, error)
}

// ReplicaListerFunc adapts a function to a ReplicaLister.
type ReplicaListerFunc func(revision string) ([]Replica, error)

// Replicas calls f(revision).
func (f ReplicaListerFunc) Replicas(revision string) ([]Replica, error) { return f(revision) }

// ScraperSource is the Source of the stats an HTTPScraper returns.
const ScraperSource = "scraper"

// defaultScrapeClient is Knative's scrape client: a 3 s timeout, and
// keep-alive with many idle connections since the same replicas are
// scraped every second.
var defaultScrapeClient = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1000
	t.MaxIdleConnsPerHost = 2
	return &http.Client{Transport: t, Timeout: 3 * time.Second}
}()

// HTTPScraper scrapes a revision's replicas over HTTP with stats.Fetch and
// extrapolates, as Knative's pod scraper does: of N ready replicas it
// scrapes a sample of sampleSize(N) (N itself up to 3, then
// ceil(N·15.3664/(N+14.3664)): 5→4, 10→7, 100→14, 1000→16), preferring
// replicas older than the stable window, in parallel, moving on to the next
// replica when one fails; the revision-wide stat is the sample's sum / the
// sample size × N. If the replicas run out before the sample is complete
// the scrape fails and nothing is recorded.
//
// Each replica answers with a batch (stats.WriteBatch); the messages for
// the scraped revision (or with no revision) are summed. Knative's service
// scraping and mesh fallback are not implemented: replicas must be
// reachable directly.
type HTTPScraper struct {
	// Lister lists the replicas to scrape. Required.
	Lister ReplicaLister
	// Client makes the requests. Nil means a client with a 3 s timeout and
	// keep-alive, like Knative's.
	Client *http.Client
	// Clock tells replica ages. Nil means the real clock.
	Clock clock.Clock
}

var _ Scraper = (*HTTPScraper)(nil)

// Scrape implements Scraper.
func (s *HTTPScraper) Scrape(ctx context.Context, revision string, window time.Duration) (stats.Stat, error) {
	if s.Lister == nil {
		return stats.Stat{}, errors.New("autoscaler: HTTPScraper.Lister is nil")
	}
	replicas, err := s.Lister.Replicas(revision)
	if err != nil {
		return stats.Stat{}, fmt.Errorf("autoscaler: listing replicas of %q: %w", revision, err)
	}
	if len(replicas) == 0 {
		return stats.Stat{}, ErrNoReplicas
	}
	clk := s.Clock
	if clk == nil {
		clk = clock.New()
	}
	now := clk.Now()
	// Old replicas first; shuffle whichever group the sample is drawn from
	// (the other only backs up failures).
	urls := make([]string, 0, len(replicas))
	for _, r := range replicas {
		if now.Sub(r.Started) >= window {
			urls = append(urls, r.StatsURL)
		}
	}
	old := len(urls)
	for _, r := range replicas {
		if now.Sub(r.Started) < window {
			urls = append(urls, r.StatsURL)
		}
	}
	n := sampleSize(len(urls))
	if old < n {
		young := urls[old:]
		rand.Shuffle(len(young), func(i, j int) { young[i], young[j] = young[j], young[i] })
	} else {
		rand.Shuffle(old, func(i, j int) { urls[i], urls[j] = urls[j], urls[i] })
	}

	client := s.Client
	if client == nil {
		client = defaultScrapeClient
	}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex // protects sum, got, lastErr
		sum     stats.Stat
		got     int
		lastErr error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(urls) {
					return
				}
				st, err := fetchReplica(ctx, client, urls[i], revision)
				mu.Lock()
				if err != nil {
					lastErr = err
					mu.Unlock()
					continue
				}
				sum.Concurrency += st.Concurrency
				sum.ProxiedConcurrency += st.ProxiedConcurrency
				sum.RPS += st.RPS
				sum.ProxiedRPS += st.ProxiedRPS
				got++
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	if got < n {
		return stats.Stat{}, fmt.Errorf("autoscaler: scraping %q: %d of %d sampled replicas answered (of %d ready); last error: %w",
			revision, got, n, len(urls), lastErr)
	}
	sample, total := float64(n), float64(len(urls))
	return stats.Stat{
		Source:             ScraperSource,
		Concurrency:        sum.Concurrency / sample * total,
		ProxiedConcurrency: sum.ProxiedConcurrency / sample * total,
		RPS:                sum.RPS / sample * total,
		ProxiedRPS:         sum.ProxiedRPS / sample * total,
		Time:               now,
	}, nil
}

// fetchReplica scrapes one replica and sums its messages about revision.
func fetchReplica(ctx context.Context, c *http.Client, url, revision string) (stats.Stat, error) {
	msgs, err := stats.Fetch(ctx, c, url)
	if err != nil {
		return stats.Stat{}, err
	}
	var s stats.Stat
	for _, m := range msgs {
		if m.Revision != revision && m.Revision != "" {
			return stats.Stat{}, fmt.Errorf("autoscaler: replica %s reports revision %q, not %q", url, m.Revision, revision)
		}
		s.Concurrency += m.Stat.Concurrency
		s.ProxiedConcurrency += m.Stat.ProxiedConcurrency
		s.RPS += m.Stat.RPS
		s.ProxiedRPS += m.Stat.ProxiedRPS
	}
	return s, nil
}
