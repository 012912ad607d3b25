//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package autoscaler

import (
	"context"
	"errors"
)

// FileLease is a Lease over flock(2) lock files; on this system it is not
// available, and NewFileLease returns an error.
type FileLease struct{}

// NewFileLease returns an error: flock is not available on this system.
func NewFileLease(string) (*FileLease, error) {
	return nil, errors.New("autoscaler: FileLease needs flock(2), not available on this system")
}

// TryAcquire implements Lease.
func (*FileLease) TryAcquire(context.Context, string, string) (string, error) {
	return "", errors.New("autoscaler: FileLease not available")
}

// Release implements Lease.
func (*FileLease) Release(context.Context, string, string) error { return nil }

// Close does nothing.
func (*FileLease) Close() error { return nil }
