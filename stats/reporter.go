package stats

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
)

// DefaultReportingPeriod is how often a Reporter reports when its options
// leave Period zero: one second, as Knative's queue-proxy and activator do.
const DefaultReportingPeriod = time.Second

// ReporterOptions configure a Reporter. The zero value of each field is a
// working default.
type ReporterOptions struct {
	// Period between reports. Zero means DefaultReportingPeriod; it must not
	// be negative.
	Period time.Duration
	// Clock drives the reports. Nil means the real clock.
	Clock clock.Clock
	// Sink receives each non-empty batch. Nil means the batches are only
	// kept for Latest (for scraping).
	Sink Sink
	// Logger receives send failures at warn level. Nil means silent.
	Logger *slog.Logger
}

// Reporter calls a collect function every period and hands the batch to a
// sink; the latest batch is also kept for scrapers. It owns one goroutine,
// the one that calls Run.
type Reporter struct {
	collect func(now time.Time, period time.Duration) []Message
	opts    ReporterOptions
	ticker  *clock.Ticker

	// reporting holds a token while a report runs, so that the Sink sees
	// one Send at a time and Latest never goes back to an older batch,
	// whether reports come from Run or from ReportNow on another goroutine.
	// A channel rather than a mutex: a waiting ReportNow is then durably
	// blocked for testing/synctest.
	reporting chan struct{}

	latest     atomic.Pointer[[]Message]
	sendErrors atomic.Uint64
}

// NewReporter returns a Reporter that calls collect(now, period) every
// period once Run is called. The ticker starts at once (so a test with a
// mock clock may advance it as soon as NewReporter returns).
func NewReporter(collect func(now time.Time, period time.Duration) []Message, opts ReporterOptions) (*Reporter, error) {
	if collect == nil {
		return nil, fmt.Errorf("stats: NewReporter: collect function is nil")
	}
	if opts.Period < 0 {
		return nil, fmt.Errorf("stats: ReporterOptions.Period = %v, must be >= 0 (0 means %v)", opts.Period, DefaultReportingPeriod)
	}
	if opts.Period == 0 {
		opts.Period = DefaultReportingPeriod
	}
	if opts.Clock == nil {
		opts.Clock = clock.New()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reporter{collect: collect, opts: opts, ticker: opts.Clock.Ticker(opts.Period), reporting: make(chan struct{}, 1)}, nil
}

// Run reports every period until ctx is done. A failed send is logged and
// counted (SendErrors); the next period sends a fresh batch. A slow sink
// delays the next report rather than piling up sends.
func (r *Reporter) Run(ctx context.Context) {
	defer r.ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.ticker.C:
			r.ReportNow(ctx)
		}
	}
}

// ReportNow collects and sends one batch at once, outside the schedule. It
// may be called from any goroutine; it waits for a report in progress.
func (r *Reporter) ReportNow(ctx context.Context) {
	r.reporting <- struct{}{}
	defer func() { <-r.reporting }()
	batch := r.collect(r.opts.Clock.Now(), r.opts.Period)
	r.latest.Store(&batch)
	if r.opts.Sink == nil || len(batch) == 0 {
		return
	}
	if err := r.opts.Sink.Send(ctx, batch); err != nil {
		r.sendErrors.Add(1)
		r.opts.Logger.Warn("stats: send failed", "error", err, "messages", len(batch))
	}
}

// Latest returns the most recent batch, or nil before the first report.
// The caller must not modify it.
func (r *Reporter) Latest() []Message {
	if p := r.latest.Load(); p != nil {
		return *p
	}
	return nil
}

// SendErrors returns how many sends have failed.
func (r *Reporter) SendErrors() uint64 { return r.sendErrors.Load() }

// Period returns the reporting period in use.
func (r *Reporter) Period() time.Duration { return r.opts.Period }
