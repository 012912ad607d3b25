package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/stats"
)

// ReporterConfig configures a Reporter.
type ReporterConfig struct {
	// Revision is the host's key for the replica's revision (for example
	// "default/hello-00001"). Required.
	Revision string
	// Replica names this replica; it is the Source of every Stat (Knative's
	// pod name), and must be unique among the replicas of the revision:
	// the autoscaler counts one stat per source and second. Required.
	Replica string
	// Period between reports. Zero means stats.DefaultReportingPeriod
	// (1 s). Must be >= 0.
	Period time.Duration
	// Clock drives the reports and measures uptime. Nil means the real
	// clock. Use the Handler's clock.
	Clock clock.Clock
	// Sink receives every report (pushing). Nil means reports are only kept
	// for scraping (Latest, the admin handler's /stats).
	Sink stats.Sink
	// Logger receives failed sends at warn level. Nil means silent.
	Logger *slog.Logger
}

// Validate reports every invalid field, naming the field, its value and the
// allowed range.
func (c ReporterConfig) Validate() error {
	var errs []error
	if c.Revision == "" {
		errs = append(errs, errors.New(`queue: ReporterConfig.Revision = "", must be the revision's key`))
	}
	if c.Replica == "" {
		errs = append(errs, errors.New(`queue: ReporterConfig.Replica = "", must name the replica`))
	}
	if c.Period < 0 {
		errs = append(errs, fmt.Errorf("queue: ReporterConfig.Period = %v, must be >= 0 (0 means %v)", c.Period, stats.DefaultReportingPeriod))
	}
	return errors.Join(errs...)
}

// Reporter turns a replica's recorded requests into one stats.Message per
// period, for the replica's revision with Source = the replica's name and
// Uptime = time since the Reporter was made (Knative's queue-proxy reports
// the same). It keeps the latest batch for scraping and pushes every batch
// to the Sink, if one is set. It owns one goroutine, the one that calls
// Run.
type Reporter struct {
	rec      *stats.Recorder
	revision string
	replica  string
	start    time.Time
	r        *stats.Reporter
}

// NewReporter returns a Reporter of rec (a Handler's Recorder), or an error
// naming each invalid field. Its ticker starts at once.
func NewReporter(rec *stats.Recorder, c ReporterConfig) (*Reporter, error) {
	if rec == nil {
		return nil, errors.New("queue: NewReporter: recorder is nil")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Clock == nil {
		c.Clock = clock.New()
	}
	rep := &Reporter{rec: rec, revision: c.Revision, replica: c.Replica, start: c.Clock.Now()}
	r, err := stats.NewReporter(rep.collect, stats.ReporterOptions{Period: c.Period, Clock: c.Clock, Sink: c.Sink, Logger: c.Logger})
	if err != nil {
		return nil, err
	}
	rep.r = r
	return rep, nil
}

func (rep *Reporter) collect(now time.Time, period time.Duration) []stats.Message {
	st := rep.rec.Report(now).Stat(period)
	st.Source = rep.replica
	st.Uptime = now.Sub(rep.start)
	st.Time = now
	return []stats.Message{{Revision: rep.revision, Stat: st}}
}

// Run reports every period until ctx is done.
func (rep *Reporter) Run(ctx context.Context) { rep.r.Run(ctx) }

// ReportNow reports once at once, outside the schedule.
func (rep *Reporter) ReportNow(ctx context.Context) { rep.r.ReportNow(ctx) }

// Latest returns the latest batch (one message), or nil before the first
// report. The caller must not modify it.
func (rep *Reporter) Latest() []stats.Message { return rep.r.Latest() }

// SendErrors returns how many pushes to the Sink have failed.
func (rep *Reporter) SendErrors() uint64 { return rep.r.SendErrors() }
