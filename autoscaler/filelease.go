//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// FileLease is a Lease for autoscalers on one machine: bucket b is held by
// whoever holds an exclusive flock(2) on the file Dir/b.lock, which also
// carries the holder's name. The kernel drops the lock when the holding
// process dies, however it dies, so a peer takes the bucket at its next
// renewal: no expiry to wait for. It does not work across machines, nor
// on network file systems whose flock is local only (NFS).
//
// One FileLease serves any number of holders in a process (each bucket
// opens its own file, and flock locks belong to the open file). Safe for
// simultaneous use.
type FileLease struct {
	dir string

	mu   sync.Mutex          // protects held
	held map[string]*os.File // by bucket: the locked file
}

// NewFileLease returns a FileLease over lock files in dir, which must be an
// existing directory.
func NewFileLease(dir string) (*FileLease, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("autoscaler: NewFileLease: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("autoscaler: NewFileLease: %s is not a directory", dir)
	}
	return &FileLease{dir: dir, held: map[string]*os.File{}}, nil
}

func (l *FileLease) path(bucket string) (string, error) {
	if bucket == "" || strings.ContainsAny(bucket, `/\`) || bucket == "." || bucket == ".." {
		return "", fmt.Errorf("autoscaler: FileLease: bucket %q is not a plain file name", bucket)
	}
	return filepath.Join(l.dir, bucket+".lock"), nil
}

// TryAcquire implements Lease.
func (l *FileLease) TryAcquire(_ context.Context, bucket, holder string) (string, error) {
	if holder == "" || strings.ContainsRune(holder, '\n') {
		return "", fmt.Errorf("autoscaler: FileLease.TryAcquire: holder %q must be a non-empty line", holder)
	}
	p, err := l.path(bucket)
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.held[bucket]; ok {
		// Held through this FileLease: by holder, or by another holder of
		// this process.
		name, err := readHolder(f)
		if err != nil {
			return "", err
		}
		return name, nil
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", fmt.Errorf("autoscaler: FileLease: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		name, rerr := readHolder(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return name, rerr
		}
		return "", fmt.Errorf("autoscaler: FileLease: flock %s: %w", p, err)
	}
	if err := writeHolder(f, holder); err != nil {
		f.Close() // drops the lock
		return "", fmt.Errorf("autoscaler: FileLease: %s: %w", p, err)
	}
	l.held[bucket] = f
	return holder, nil
}

// Release implements Lease: it clears the holder's name and unlocks.
func (l *FileLease) Release(_ context.Context, bucket, holder string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.held[bucket]
	if !ok {
		return nil
	}
	if name, err := readHolder(f); err != nil || name != holder {
		return err
	}
	delete(l.held, bucket)
	_ = f.Truncate(0)
	return f.Close() // closing the last descriptor drops the lock
}

// Close releases every bucket held through l.
func (l *FileLease) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for b, f := range l.held {
		_ = f.Truncate(0)
		errs = append(errs, f.Close())
		delete(l.held, b)
	}
	return errors.Join(errs...)
}

func readHolder(f *os.File) (string, error) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err != nil {
		return "", fmt.Errorf("autoscaler: FileLease: reading %s: %w", f.Name(), err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeHolder(f *os.File, holder string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(holder+"\n"), 0)
	return err
}
