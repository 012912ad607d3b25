package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Defaults of LeaseConfig: client-go's usual leader-election timing.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// LeaseConfig configures a Lease. Namespace, Name and Identity are
// required; zero durations mean the defaults.
type LeaseConfig struct {
	// Namespace and Name of the coordination.k8s.io/v1 Lease.
	Namespace, Name string
	// Identity is this process's holder identity, unique among the
	// contenders. Server uses "<pod name>@<peer address>" so that the others
	// can reach the holder (see LeaseHolderAddr).
	Identity string
	// LeaseDuration is how long a holder that stopped renewing keeps the
	// lease before another may take it: the fail-over time after a crash.
	// Zero means DefaultLeaseDuration (15 s).
	LeaseDuration time.Duration
	// RenewDeadline is how long the holder keeps trying to renew before it
	// gives the lease up; less than LeaseDuration. Zero means
	// DefaultRenewDeadline (10 s).
	RenewDeadline time.Duration
	// RetryPeriod is how often contenders try, and the holder renews. Zero
	// means DefaultRetryPeriod (2 s).
	RetryPeriod time.Duration
	// OnStarted is called, on a goroutine of its own, when this process
	// takes the lease; ctx ends when it loses it. OnStopped is called when
	// it loses (or releases) the lease. OnNewLeader is called when the
	// observed holder changes. Any may be nil.
	OnStarted   func(ctx context.Context)
	OnStopped   func()
	OnNewLeader func(identity string)
}

func (c *LeaseConfig) setDefaults() {
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = DefaultRenewDeadline
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = DefaultRetryPeriod
	}
}

// Validate names every missing field. Timing is checked by client-go.
func (c LeaseConfig) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"Namespace", c.Namespace}, {"Name", c.Name}, {"Identity", c.Identity}} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("kubernetes: LeaseConfig.%s is empty, want a value", f.name))
		}
	}
	return errors.Join(errs...)
}

// Lease is the autoscaler's ownership through a coordination.k8s.io/v1
// Lease: exactly one of the processes sharing the Lease holds it and runs
// the autoscaler, the others forward their stats to it. It is client-go's
// leader election (resourcelock.LeaseLock) that keeps contending after a
// loss, and releases the lease when its context ends, so that a graceful
// shutdown hands over at once rather than after LeaseDuration.
type Lease struct {
	cfg LeaseConfig
	le  *leaderelection.LeaderElector
}

// NewLease checks cfg and builds a Lease; Run contends for it.
func NewLease(client kubernetes.Interface, cfg LeaseConfig) (*Lease, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, cfg.Namespace, cfg.Name,
		client.CoreV1(), client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: cfg.Identity})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: lease lock: %w", err)
	}
	l := &Lease{cfg: cfg}
	l.le, err = leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            cfg.Name,
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				if cfg.OnStarted != nil {
					cfg.OnStarted(ctx)
				}
			},
			OnStoppedLeading: func() {
				if cfg.OnStopped != nil {
					cfg.OnStopped()
				}
			},
			OnNewLeader: cfg.OnNewLeader,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: leader election: %w", err)
	}
	return l, nil
}

// Run contends for the lease until ctx ends, taking it again whenever it is
// free; on return the lease is released if it was held.
func (l *Lease) Run(ctx context.Context) {
	for ctx.Err() == nil {
		l.le.Run(ctx) // returns when the lease is lost or ctx ends
	}
}

// Held reports whether this process holds the lease now.
func (l *Lease) Held() bool { return l.le.IsLeader() }

// Holder returns the identity of the last observed holder, "" if none.
func (l *Lease) Holder() string { return l.le.GetLeader() }

// LeaseHolderAddr returns the peer address in a holder identity of the
// form "<name>@<host:port>", and false for another form.
func LeaseHolderAddr(identity string) (string, bool) {
	_, addr, ok := strings.Cut(identity, "@")
	return addr, ok && addr != ""
}
