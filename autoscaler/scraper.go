package autoscaler

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/servingkit/servingkit/stats"
)

// ErrNoReplicas is returned by a Scraper when the revision has no replica
// to scrape. It is not a failure: the Runner records nothing, so a revision
// that requires data reports ErrNoData rather than zero load.
var ErrNoReplicas = errors.New("autoscaler: no replicas to scrape")

// Scraper reads the current load of one revision from its replicas and
// returns it as one revision-wide stat (Knative's StatsScraper). The Runner
// calls it about every second for each revision with Spec.ReplicaStats,
// from a pool of scrape goroutines, never two at a time for one revision.
// window is the revision's stable window: replicas younger than it may
// under-report and should only fill up a sample.
type Scraper interface {
	Scrape(ctx context.Context, revision string, window time.Duration) (stats.Stat, error)
}

// ScraperFunc adapts a function to a Scraper.
type ScraperFunc func(ctx context.Context, revision string, window time.Duration) (stats.Stat, error)

// Scrape calls f(ctx, revision, window).
func (f ScraperFunc) Scrape(ctx context.Context, revision string, window time.Duration) (stats.Stat, error) {
	return f(ctx, revision, window)
}

// sampleSize is how many of n replicas to scrape for a 95% confidence
// interval of ±5 around the mean, assuming a variance of 100 (Knative's
// populationMeanSampleSize): n itself up to 3, else
// ceil(n·X / (n + X − 1)) with X = 1.96²·100/5² = 15.3664. That gives
// 5→4, 10→7, 100→14, 1000→16.
func sampleSize(n int) int {
	const x = 1.96 * 1.96 * 100 / (5.0 * 5.0)
	if n <= 3 {
		return max(n, 0)
	}
	f := float64(n)
	return int(math.Ceil(f * x / (f + x - 1)))
}
