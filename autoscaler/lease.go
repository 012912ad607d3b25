package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
)

// Lease decides which of several autoscalers owns each bucket of
// revisions, so that exactly one decides and scales each revision (Knative
// shards its autoscaler the same way, with a coordination.k8s.io Lease per
// bucket). Shards calls it for every bucket every Config.RenewInterval.
//
// Implementations: MemoryLease (one process, for tests), FileLease (flock,
// processes on one machine), and the Kubernetes module's Lease objects. A
// Lease must be safe for simultaneous use.
type Lease interface {
	// TryAcquire takes bucket for holder if nobody holds it (or the
	// holder's claim expired), renews it if holder holds it, and returns
	// who holds it afterwards: holder itself when it got or kept it,
	// another holder's name, or "" when nobody does. An error means the
	// outcome is unknown; a caller that held the bucket must stop acting
	// as its owner. It must return once ctx is done.
	TryAcquire(ctx context.Context, bucket, holder string) (string, error)
	// Release gives bucket up if holder holds it, so another can take it
	// at once; it does nothing otherwise.
	Release(ctx context.Context, bucket, holder string) error
}

// ErrLeaseClosed is returned by a Lease that was closed.
var ErrLeaseClosed = errors.New("autoscaler: lease closed")

// MemoryLease is a Lease held in memory, shared by the Shards of one
// process: for tests, and for several runners in one process. A claim
// lasts TTL from its last TryAcquire, so a holder that stops renewing (a
// "dead" autoscaler) loses its buckets TTL later, as with a Kubernetes
// Lease. The zero value is not usable; use NewMemoryLease.
type MemoryLease struct {
	clock clock.Clock
	ttl   time.Duration

	mu     sync.Mutex // protects claims
	claims map[string]claim
}

type claim struct {
	holder string
	until  time.Time
}

// NewMemoryLease returns a MemoryLease whose claims last ttl (> 0), timed
// by clk (nil means the real clock).
func NewMemoryLease(clk clock.Clock, ttl time.Duration) (*MemoryLease, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("autoscaler: NewMemoryLease: ttl = %v, must be > 0", ttl)
	}
	if clk == nil {
		clk = clock.New()
	}
	return &MemoryLease{clock: clk, ttl: ttl, claims: map[string]claim{}}, nil
}

// TryAcquire implements Lease.
func (m *MemoryLease) TryAcquire(_ context.Context, bucket, holder string) (string, error) {
	if holder == "" {
		return "", errors.New("autoscaler: MemoryLease.TryAcquire: holder is empty")
	}
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.claims[bucket]
	if ok && c.holder != holder && now.Before(c.until) {
		return c.holder, nil
	}
	m.claims[bucket] = claim{holder: holder, until: now.Add(m.ttl)}
	return holder, nil
}

// Release implements Lease.
func (m *MemoryLease) Release(_ context.Context, bucket, holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.claims[bucket]; ok && c.holder == holder {
		delete(m.claims, bucket)
	}
	return nil
}

// Holder returns who holds bucket now, "" if nobody.
func (m *MemoryLease) Holder(bucket string) string {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.claims[bucket]; ok && now.Before(c.until) {
		return c.holder
	}
	return ""
}
