package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/servingkit/servingkit/stats"
)

// Defaults and limits for ShardsConfig.
const (
	// DefaultRenewInterval is ShardsConfig.RenewInterval's zero value.
	DefaultRenewInterval = time.Second
	// MaxBuckets is the largest ShardsConfig.Buckets (Knative's limit).
	MaxBuckets = 1000
)

// ErrNotOwner is returned, wrapped, by Shards.Deliver for stats of a
// revision this autoscaler does not own, and by Shards.Send for stats of a
// revision whose owner is not known yet.
var ErrNotOwner = errors.New("autoscaler: not the owner of the revision's bucket")

// ShardsConfig configures Shards. Runner, Lease and Holder are required;
// the zero value of every other field is a working default.
type ShardsConfig struct {
	// Runner decides and scales the revisions this autoscaler owns; Shards
	// adds and removes them as buckets come and go. Required, and the host
	// must not Add or Remove revisions on it directly.
	Runner *Runner
	// Lease decides who owns each bucket. Required.
	Lease Lease
	// Holder names this autoscaler to the Lease and to its peers, unique
	// among them. With the default Forward it is the URL where this
	// autoscaler serves Deliver (stats.Handler(shards.Deliver)), for
	// example "http://10.0.0.7:9090/stats/forwarded". Required.
	Holder string
	// Buckets is how many buckets the revisions are hashed into; every
	// autoscaler must use the same number. Zero means 1 (Knative's
	// default: one owner for all). Range [0, MaxBuckets].
	Buckets int
	// RenewInterval is how often each bucket is acquired or renewed, and
	// the deadline of each round of lease calls: a bucket not confirmed
	// within it is dropped. It must be well below a timed Lease's expiry
	// (a third of it, as client-go's leader election does). Zero means
	// DefaultRenewInterval; must not be negative.
	RenewInterval time.Duration
	// Forward returns where stats for revisions another autoscaler owns go,
	// given the owner's Holder. Nil means an HTTP POST to the holder as a
	// URL (stats.HTTPSink with a 5 s timeout). It is called with no lock
	// held; the sinks it returns are kept, one per holder.
	Forward func(holder string) stats.Sink
	// Clock drives the renewals. Nil means the real clock.
	Clock clock.Clock
	// Logger receives ownership changes at info level and lease errors at
	// warn level. Nil means silent.
	Logger *slog.Logger
}

// Validate reports every problem with c, naming the field, its value and
// the allowed range.
func (c ShardsConfig) Validate() error {
	var errs []error
	if c.Runner == nil {
		errs = append(errs, errors.New("autoscaler: ShardsConfig.Runner is nil, want the runner that scales the owned revisions"))
	}
	if c.Lease == nil {
		errs = append(errs, errors.New("autoscaler: ShardsConfig.Lease is nil, want a Lease (MemoryLease, FileLease, …)"))
	}
	if c.Holder == "" {
		errs = append(errs, errors.New("autoscaler: ShardsConfig.Holder is empty, want this autoscaler's unique name"))
	}
	if c.Buckets < 0 || c.Buckets > MaxBuckets {
		errs = append(errs, fmt.Errorf("autoscaler: ShardsConfig.Buckets = %d, must be in [0, %d] (0 means 1)", c.Buckets, MaxBuckets))
	}
	if c.RenewInterval < 0 {
		errs = append(errs, fmt.Errorf("autoscaler: ShardsConfig.RenewInterval = %v, must be >= 0 (0 means %v)", c.RenewInterval, DefaultRenewInterval))
	}
	return errors.Join(errs...)
}

// Shards lets several autoscaler processes share the revisions: each
// revision hashes into one of Buckets buckets, each bucket is owned by one
// autoscaler at a time through the Lease, and only the owner's Runner
// decides and scales the bucket's revisions. This is how Knative shards
// its autoscaler (one leader-election Lease per bucket).
//
// The host tells every autoscaler about every revision (Add, Update,
// Remove); Shards passes to the Runner those in the buckets it owns. Run
// acquires and renews the buckets every RenewInterval; when this
// autoscaler gains a bucket, its revisions are adopted (Runner.Adopt: no
// scale-down until a full stable window of load has been seen, floored at
// the ready count), and when it loses one they are removed from the
// Runner. When an owner dies, another takes its buckets once the Lease
// lets it: at the next renewal with FileLease, after the claim's expiry
// with a timed lease.
//
// Stats pushed to any autoscaler reach the owner: Send (a stats.Sink, the
// first hop) records the stats of owned revisions and forwards the others
// to their owner; the owner receives them with Deliver, which never
// forwards again, so a batch takes at most one hop even while two
// autoscalers disagree on an owner.
//
// Safe for simultaneous use. The Lease, the Runner and Forward are called
// with no lock of Shards held.
type Shards struct {
	cfg     ShardsConfig
	clock   clock.Clock
	log     *slog.Logger
	names   []string // bucket names
	ticker  *clock.Ticker
	running sync.Mutex // held by Run
	// ops serializes Add, Update, Remove and ownership changes, so that
	// the Runner's set of revisions always follows the last of them. It
	// is held while calling the Runner (whose Add and Adopt call the
	// ReadyCounter), never while calling the Lease or Forward.
	ops sync.Mutex

	mu      sync.Mutex      // protects the fields below
	specs   map[string]Spec // every revision the host added, by key
	holders []string        // per bucket, the holder as of the last renewal ("" unknown)
	sinks   map[string]stats.Sink
}

// NewShards returns Shards over cfg.Runner; call Run to take part in the
// ownership. Its ticker starts at once, so a test with a mock clock may
// advance the clock as soon as NewShards returns.
func NewShards(cfg ShardsConfig) (*Shards, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = 1
	}
	if cfg.RenewInterval == 0 {
		cfg.RenewInterval = DefaultRenewInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Forward == nil {
		client := &http.Client{Timeout: 5 * time.Second}
		cfg.Forward = func(holder string) stats.Sink { return &stats.HTTPSink{URL: holder, Client: client} }
	}
	s := &Shards{
		cfg:     cfg,
		clock:   cfg.Clock,
		log:     cfg.Logger,
		names:   make([]string, cfg.Buckets),
		specs:   map[string]Spec{},
		holders: make([]string, cfg.Buckets),
		sinks:   map[string]stats.Sink{},
	}
	for i := range s.names {
		s.names[i] = BucketName(i, cfg.Buckets)
	}
	s.ticker = s.clock.Ticker(cfg.RenewInterval)
	return s, nil
}

// BucketName returns the name of bucket i of n, as Knative names its
// autoscaler buckets ("autoscaler-bucket-00-of-03"): the Lease's key.
func BucketName(i, n int) string { return fmt.Sprintf("autoscaler-bucket-%02d-of-%02d", i, n) }

// Bucket returns the bucket of n (≥ 1) that revision hashes into (FNV-1a),
// the same in every process.
func Bucket(revision string, n int) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(revision))
	return int(h.Sum64() % uint64(max(n, 1)))
}

func (s *Shards) bucket(revision string) int { return Bucket(revision, s.cfg.Buckets) }

// Holder returns this autoscaler's name.
func (s *Shards) Holder() string { return s.cfg.Holder }

// Add starts tracking revision with spec. If this autoscaler owns its
// bucket the Runner starts scaling it (Runner.Add: a new revision, at its
// initial scale). It returns ErrRevisionExists for a revision already
// added and spec.Validate's errors.
func (s *Shards) Add(revision string, spec Spec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("autoscaler: Add(%q): %w", revision, err)
	}
	s.ops.Lock()
	defer s.ops.Unlock()
	s.mu.Lock()
	if _, ok := s.specs[revision]; ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrRevisionExists, revision)
	}
	s.specs[revision] = spec
	owned := s.holders[s.bucket(revision)] == s.cfg.Holder
	s.mu.Unlock()
	if owned {
		return s.cfg.Runner.Add(revision, spec)
	}
	return nil
}

// Update changes revision's spec, on the Runner too if this autoscaler
// owns it. It returns ErrUnknownRevision for a revision not added.
func (s *Shards) Update(revision string, spec Spec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("autoscaler: Update(%q): %w", revision, err)
	}
	s.ops.Lock()
	defer s.ops.Unlock()
	s.mu.Lock()
	if _, ok := s.specs[revision]; !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownRevision, revision)
	}
	s.specs[revision] = spec
	s.mu.Unlock()
	// The Runner has it only while this autoscaler owns it.
	if err := s.cfg.Runner.Update(revision, spec); err != nil && !errors.Is(err, ErrUnknownRevision) {
		return err
	}
	return nil
}

// Remove stops tracking revision (and scaling it, if owned). It reports
// whether the revision was there.
func (s *Shards) Remove(revision string) bool {
	s.ops.Lock()
	defer s.ops.Unlock()
	s.mu.Lock()
	_, ok := s.specs[revision]
	delete(s.specs, revision)
	s.mu.Unlock()
	s.cfg.Runner.Remove(revision)
	return ok
}

// Owner returns the holder that owns revision's bucket as of the last
// renewal, and false if that is not known (no renewal yet, a lease error,
// or nobody holds it).
func (s *Shards) Owner(revision string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.holders[s.bucket(revision)]
	return h, h != ""
}

// Owns reports whether this autoscaler owns revision's bucket.
func (s *Shards) Owns(revision string) bool {
	h, _ := s.Owner(revision)
	return h == s.cfg.Holder
}

// OwnedBuckets returns the indices of the buckets this autoscaler holds.
func (s *Shards) OwnedBuckets() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for i, h := range s.holders {
		if h == s.cfg.Holder {
			out = append(out, i)
		}
	}
	return out
}

// Run takes part in the ownership until ctx is done: it renews at once and
// then every RenewInterval, and at the end releases the buckets it holds
// (so a peer takes them at its next renewal) and removes their revisions
// from the Runner. It returns nil; it may not run twice at once.
func (s *Shards) Run(ctx context.Context) error {
	if !s.running.TryLock() {
		return errors.New("autoscaler: Shards.Run called twice")
	}
	defer s.running.Unlock()
	defer s.ticker.Stop()
	s.renew(ctx)
	for {
		select {
		case <-ctx.Done():
			s.releaseAll()
			return nil
		case <-s.ticker.C:
			s.renew(ctx)
		}
	}
}

// renewWorkers bounds the lease calls of one renewal round in flight.
const renewWorkers = 16

// renew tries every bucket and applies the changes of ownership. The whole
// round has one deadline, RenewInterval: a bucket whose lease call fails or
// does not answer in time is dropped, so that this autoscaler acts as an
// owner only on claims confirmed within the last RenewInterval or so, well
// inside a timed lease's expiry.
func (s *Shards) renew(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RenewInterval)
	defer cancel()
	now := make([]string, len(s.names))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(renewWorkers, len(s.names)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(s.names) {
					return
				}
				h, err := s.cfg.Lease.TryAcquire(rctx, s.names[i], s.cfg.Holder)
				if err == nil && rctx.Err() != nil {
					err = fmt.Errorf("answered after the round's deadline: %w", rctx.Err())
				}
				if err != nil {
					if ctx.Err() == nil {
						s.log.Warn("autoscaler: lease", "bucket", s.names[i], "error", err)
					}
					h = ""
				}
				now[i] = h
			}
		})
	}
	wg.Wait()
	s.apply(now)
}

// apply makes holders the current view and moves revisions in and out of
// the Runner. Adopted revisions get the newest spec.
func (s *Shards) apply(holders []string) {
	s.ops.Lock()
	defer s.ops.Unlock()
	s.mu.Lock()
	var gained, lost []int
	for i, h := range holders {
		was := s.holders[i] == s.cfg.Holder
		is := h == s.cfg.Holder
		switch {
		case is && !was:
			gained = append(gained, i)
		case was && !is:
			lost = append(lost, i)
		}
		s.holders[i] = h
	}
	type rs struct {
		key  string
		spec Spec
	}
	var adopt, drop []rs
	if len(gained)+len(lost) > 0 {
		for k, spec := range s.specs {
			b := s.bucket(k)
			if slices.Contains(gained, b) {
				adopt = append(adopt, rs{k, spec})
			} else if slices.Contains(lost, b) {
				drop = append(drop, rs{k, spec})
			}
		}
	}
	s.mu.Unlock()
	for _, i := range gained {
		s.log.Info("autoscaler: bucket acquired", "bucket", s.names[i], "holder", s.cfg.Holder)
	}
	for _, i := range lost {
		s.log.Info("autoscaler: bucket lost", "bucket", s.names[i], "holder", s.cfg.Holder, "now", holders[i])
	}
	for _, r := range drop {
		s.cfg.Runner.Remove(r.key)
	}
	for _, r := range adopt {
		if err := s.cfg.Runner.Adopt(r.key, r.spec); err != nil && !errors.Is(err, ErrRevisionExists) {
			s.log.Warn("autoscaler: adopting revision", "revision", r.key, "error", err)
		}
	}
}

func (s *Shards) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RenewInterval)
	defer cancel()
	for _, i := range s.OwnedBuckets() {
		if err := s.cfg.Lease.Release(ctx, s.names[i], s.cfg.Holder); err != nil {
			s.log.Warn("autoscaler: releasing lease", "bucket", s.names[i], "error", err)
		}
	}
	s.apply(make([]string, len(s.names)))
}

// Send routes a batch of pushed stats, the first hop, implementing
// stats.Sink: stats of revisions this autoscaler owns go to the Runner
// (Runner.Send: recorded and, for a revision at zero, poked), the others
// to their owner's Forward sink, one batch per owner. It returns an error
// naming what could not be delivered: stats of a revision whose owner is
// not known (wrapping ErrNotOwner), a failed forward, the Runner's errors.
func (s *Shards) Send(ctx context.Context, msgs []stats.Message) error {
	var local []stats.Message
	remote := map[string][]stats.Message{}
	var errs []error
	unknown := 0
	s.mu.Lock()
	for _, m := range msgs {
		switch h := s.holders[s.bucket(m.Revision)]; h {
		case s.cfg.Holder:
			local = append(local, m)
		case "":
			unknown++
		default:
			remote[h] = append(remote[h], m)
		}
	}
	s.mu.Unlock()
	if unknown > 0 {
		errs = append(errs, fmt.Errorf("%w: %d stats dropped, their bucket has no known owner yet", ErrNotOwner, unknown))
	}
	if len(local) > 0 {
		if err := s.cfg.Runner.Send(ctx, local); err != nil {
			errs = append(errs, err)
		}
	}
	for h, batch := range remote {
		if err := s.sink(h).Send(ctx, batch); err != nil {
			errs = append(errs, fmt.Errorf("autoscaler: forwarding %d stats to %s: %w", len(batch), h, err))
		}
	}
	return errors.Join(errs...)
}

// Deliver records stats forwarded by another autoscaler's Send: those of
// revisions this autoscaler owns go to the Runner; the others are not
// forwarded again but reported in the error, wrapping ErrNotOwner. Serve
// it at Holder with stats.Handler(shards.Deliver).
func (s *Shards) Deliver(ctx context.Context, msgs []stats.Message) error {
	var local []stats.Message
	other := 0
	s.mu.Lock()
	for _, m := range msgs {
		if s.holders[s.bucket(m.Revision)] == s.cfg.Holder {
			local = append(local, m)
		} else {
			other++
		}
	}
	s.mu.Unlock()
	var errs []error
	if other > 0 {
		errs = append(errs, fmt.Errorf("%w: %d forwarded stats for revisions %s does not own", ErrNotOwner, other, s.cfg.Holder))
	}
	if len(local) > 0 {
		if err := s.cfg.Runner.Send(ctx, local); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Poke passes an activator's immediate stat to the Runner if this
// autoscaler owns the revision, and otherwise forwards it to the owner as
// a one-stat batch (the owner's Runner pokes on it), waiting up to a
// second. It implements activator.Poker for an activator in the same
// process; stats of a revision with no known owner are dropped, as a
// Runner drops pokes for revisions it does not know.
func (s *Shards) Poke(revision string, st stats.Stat) {
	h, ok := s.Owner(revision)
	switch {
	case !ok:
		return
	case h == s.cfg.Holder:
		s.cfg.Runner.Poke(revision, st)
	default:
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.sink(h).Send(ctx, []stats.Message{{Revision: revision, Stat: st}}); err != nil {
			s.log.Warn("autoscaler: forwarding a poke", "revision", revision, "owner", h, "error", err)
		}
	}
}

func (s *Shards) sink(holder string) stats.Sink {
	s.mu.Lock()
	sk, ok := s.sinks[holder]
	s.mu.Unlock()
	if ok {
		return sk
	}
	sk = s.cfg.Forward(holder)
	s.mu.Lock()
	if old, ok := s.sinks[holder]; ok {
		sk = old
	} else {
		s.sinks[holder] = sk
	}
	s.mu.Unlock()
	return sk
}
