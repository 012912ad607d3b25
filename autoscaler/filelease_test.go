//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package autoscaler_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/autoscaler"
)

func TestFileLease(t *testing.T) {
	dir := t.TempDir()
	a, err := autoscaler.NewFileLease(dir)
	require.NoError(t, err)
	b, err := autoscaler.NewFileLease(dir) // another process, as far as flock goes
	require.NoError(t, err)
	ctx := context.Background()

	h, err := a.TryAcquire(ctx, "bucket-0", "a")
	require.NoError(t, err)
	assert.Equal(t, "a", h)
	h, err = a.TryAcquire(ctx, "bucket-0", "a")
	require.NoError(t, err)
	assert.Equal(t, "a", h, "renewed")
	h, err = b.TryAcquire(ctx, "bucket-0", "b")
	require.NoError(t, err)
	assert.Equal(t, "a", h, "held by a")
	h, err = b.TryAcquire(ctx, "bucket-1", "b")
	require.NoError(t, err)
	assert.Equal(t, "b", h, "another bucket is free")

	require.NoError(t, b.Release(ctx, "bucket-0", "b"), "releasing what one does not hold does nothing")
	require.NoError(t, a.Release(ctx, "bucket-0", "a"))
	h, err = b.TryAcquire(ctx, "bucket-0", "b")
	require.NoError(t, err)
	assert.Equal(t, "b", h, "taken after release")
	require.NoError(t, b.Close())
	h, err = a.TryAcquire(ctx, "bucket-1", "a")
	require.NoError(t, err)
	assert.Equal(t, "a", h, "taken after Close")

	_, err = a.TryAcquire(ctx, "../x", "a")
	assert.ErrorContains(t, err, `bucket "../x" is not a plain file name`)
	_, err = a.TryAcquire(ctx, "x", "")
	assert.ErrorContains(t, err, "must be a non-empty line")
	_, err = autoscaler.NewFileLease(dir + "/missing")
	assert.Error(t, err)
}

// A holder that dies without releasing loses the bucket at once: the
// kernel drops its lock.
func TestFileLeaseHolderDies(t *testing.T) {
	if dir := os.Getenv("SERVINGKIT_FILELEASE_HOLD"); dir != "" {
		l, err := autoscaler.NewFileLease(dir)
		if err != nil {
			os.Exit(2)
		}
		if h, err := l.TryAcquire(context.Background(), "bucket-0", "child"); err != nil || h != "child" {
			os.Exit(3)
		}
		os.Stdout.WriteString("held\n")
		select {} // until killed
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileLeaseHolderDies$")
	cmd.Env = append(os.Environ(), "SERVINGKIT_FILELEASE_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "held\n", line)

	l, err := autoscaler.NewFileLease(dir)
	require.NoError(t, err)
	h, err := l.TryAcquire(context.Background(), "bucket-0", "parent")
	require.NoError(t, err)
	assert.Equal(t, "child", h)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	h, err = l.TryAcquire(context.Background(), "bucket-0", "parent")
	require.NoError(t, err)
	assert.Equal(t, "parent", h, "taken at once after the holder died")
}
