package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// DefaultLeaseDuration is LeaseConfig.Duration's default: client-go's usual
// leader-election lease.
const DefaultLeaseDuration = 15 * time.Second

// LeaseConfig configures a Lease. Namespace is required.
type LeaseConfig struct {
	// Namespace of the coordination.k8s.io/v1 Lease objects.
	Namespace string
	// Prefix is put before each bucket's name ("<prefix>-<bucket>") so that
	// several servingkit installations can share a namespace. "" means none.
	Prefix string
	// Duration is how long a holder that stopped renewing keeps a bucket
	// before another may take it: the fail-over time after a crash. Renew
	// well within it (autoscaler.ShardsConfig.RenewInterval: a third).
	// Zero means DefaultLeaseDuration (15 s); at least 1 s.
	Duration time.Duration
	// Clock times the expiry. Nil means the real clock.
	Clock clock.Clock
}

// Validate names every problem.
func (c LeaseConfig) Validate() error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New("kubernetes: LeaseConfig.Namespace is empty, want the Leases' namespace"))
	}
	if c.Duration != 0 && c.Duration < time.Second {
		errs = append(errs, fmt.Errorf("kubernetes: LeaseConfig.Duration = %v, want ≥ 1s (0 means %v)", c.Duration, DefaultLeaseDuration))
	}
	if c.Prefix != "" && len(validation.IsDNS1123Subdomain(c.Prefix+"-autoscaler-bucket-00-of-01")) > 0 {
		errs = append(errs, fmt.Errorf("kubernetes: LeaseConfig.Prefix = %q, want a DNS-1123 name prefix", c.Prefix))
	}
	return errors.Join(errs...)
}

// Lease is the autoscaler's bucket ownership (autoscaler.Lease) through
// coordination.k8s.io/v1 Lease objects, one per bucket, as Knative shards
// its autoscaler. Reading and writing the objects is client-go's
// resourcelock.LeaseLock; the rules are client-go leader election's:
// another holder's claim expires Duration after this process last saw the
// Lease object change (its own clock, not the holder's, so clock skew does
// not matter), a renewal keeps the acquire time, a take-over counts a
// transition, and Release empties the holder so another may take the
// bucket at once. A write that loses a race (409 Conflict) is an error:
// the outcome is unknown, and autoscaler.Shards stops acting as the owner.
//
// Safe for simultaneous use.
type Lease struct {
	client coordinationv1.LeasesGetter
	cfg    LeaseConfig
	clk    clock.Clock

	mu       sync.Mutex // protects observed
	observed map[string]observation
}

// observation is the last Lease record seen for a bucket and when it was
// first seen.
type observation struct {
	rec resourcelock.LeaderElectionRecord
	at  time.Time
}

// NewLease checks cfg and returns a Lease.
func NewLease(client coordinationv1.LeasesGetter, cfg LeaseConfig) (*Lease, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Duration == 0 {
		cfg.Duration = DefaultLeaseDuration
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.New()
	}
	return &Lease{client: client, cfg: cfg, clk: clk, observed: map[string]observation{}}, nil
}

// Name returns the Lease object's name for bucket.
func (l *Lease) Name(bucket string) string {
	if l.cfg.Prefix == "" {
		return bucket
	}
	return l.cfg.Prefix + "-" + bucket
}

func (l *Lease) lock(bucket, holder string) *resourcelock.LeaseLock {
	return &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: l.cfg.Namespace, Name: l.Name(bucket)},
		Client:     l.client,
		LockConfig: resourcelock.ResourceLockConfig{Identity: holder},
	}
}

// TryAcquire implements autoscaler.Lease.
func (l *Lease) TryAcquire(ctx context.Context, bucket, holder string) (string, error) {
	lk := l.lock(bucket, holder)
	now := l.clk.Now()
	seconds := int(l.cfg.Duration / time.Second)
	rec, _, err := lk.Get(ctx)
	if apierrors.IsNotFound(err) {
		err = lk.Create(ctx, resourcelock.LeaderElectionRecord{
			HolderIdentity: holder, LeaseDurationSeconds: seconds,
			AcquireTime: metav1.NewTime(now), RenewTime: metav1.NewTime(now),
		})
		if err != nil {
			return "", fmt.Errorf("kubernetes: create lease %s: %w", l.Name(bucket), err)
		}
		return holder, nil
	}
	if err != nil {
		return "", fmt.Errorf("kubernetes: get lease %s: %w", l.Name(bucket), err)
	}
	seenAt := l.observe(bucket, *rec, now)
	if rec.HolderIdentity != "" && rec.HolderIdentity != holder {
		d := time.Duration(rec.LeaseDurationSeconds) * time.Second
		if now.Before(seenAt.Add(d)) {
			return rec.HolderIdentity, nil
		}
	}
	next := resourcelock.LeaderElectionRecord{
		HolderIdentity: holder, LeaseDurationSeconds: seconds,
		AcquireTime: rec.AcquireTime, RenewTime: metav1.NewTime(now),
		LeaderTransitions: rec.LeaderTransitions,
	}
	if rec.HolderIdentity != holder {
		next.AcquireTime = metav1.NewTime(now)
		next.LeaderTransitions++
	}
	if err := lk.Update(ctx, next); err != nil {
		return "", fmt.Errorf("kubernetes: update lease %s: %w", l.Name(bucket), err)
	}
	l.observe(bucket, next, now)
	return holder, nil
}

// Release implements autoscaler.Lease.
func (l *Lease) Release(ctx context.Context, bucket, holder string) error {
	lk := l.lock(bucket, holder)
	rec, _, err := lk.Get(ctx)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kubernetes: get lease %s: %w", l.Name(bucket), err)
	}
	if rec.HolderIdentity != holder {
		return nil
	}
	now := l.clk.Now()
	next := resourcelock.LeaderElectionRecord{
		LeaseDurationSeconds: 1, AcquireTime: metav1.NewTime(now), RenewTime: metav1.NewTime(now),
		LeaderTransitions: rec.LeaderTransitions,
	}
	if err := lk.Update(ctx, next); err != nil {
		return fmt.Errorf("kubernetes: release lease %s: %w", l.Name(bucket), err)
	}
	l.observe(bucket, next, now)
	return nil
}

// observe records rec for bucket and returns when it was first seen in this
// form.
func (l *Lease) observe(bucket string, rec resourcelock.LeaderElectionRecord, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, ok := l.observed[bucket]
	if !ok || !sameRecord(o.rec, rec) {
		o = observation{rec: rec, at: now}
		l.observed[bucket] = o
	}
	return o.at
}

func sameRecord(a, b resourcelock.LeaderElectionRecord) bool {
	return a.HolderIdentity == b.HolderIdentity && a.LeaseDurationSeconds == b.LeaseDurationSeconds &&
		a.AcquireTime.Equal(&b.AcquireTime) && a.RenewTime.Equal(&b.RenewTime) &&
		a.LeaderTransitions == b.LeaderTransitions
}
