package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 11: initial-scale "100000" and min-scale "100000" were accepted,
// and the pool would have started every replica at once. The platform has
// a max-scale-limit sized to the machine, and refuses annotations above it
// naming the limit.
func TestApplyRefusesScaleAboveTheMachineLimit(t *testing.T) {
	t.Parallel()
	p, err := NewPlatform(Options{Addr: "127.0.0.1:0", ControlAddr: "127.0.0.1:0", Autoscaler: fastConfig})
	require.NoError(t, err)
	limit := machineMaxScale()
	require.Positive(t, limit)
	assert.Equal(t, limit, p.ascfg.MaxScaleLimit, "max-scale-limit defaults to the machine's")
	assert.Equal(t, limit, p.ascfg.MaxScale, "max-scale defaults to the limit")

	withAnnotation := func(key, value string) *Service {
		svc, err := ParseService([]byte(strings.Replace(fmt.Sprintf(helloAtZero, "x"),
			`autoscaling.knative.dev/initial-scale: "0"`, key+`: "`+value+`"`, 1)))
		require.NoError(t, err)
		return svc
	}
	for _, key := range []string{"autoscaling.knative.dev/initial-scale", "autoscaling.knative.dev/initialScale", "autoscaling.knative.dev/min-scale", "autoscaling.knative.dev/max-scale", "autoscaling.knative.dev/activation-scale"} {
		_, err := p.Apply(withAnnotation(key, "100000"))
		require.Error(t, err, key)
		assert.Contains(t, err.Error(), key, "the error names the annotation")
		assert.Contains(t, err.Error(), fmt.Sprint(limit), "the error names the limit")
		assert.Contains(t, err.Error(), "max-scale-limit", "the error names the limit")
	}
	assert.Empty(t, p.Status().Revisions, "nothing was created")

	// -config max-scale-limit=N is honoured; at the limit is fine.
	p, err = NewPlatform(Options{Addr: "127.0.0.1:0", ControlAddr: "127.0.0.1:0",
		Autoscaler: map[string]string{"max-scale-limit": "5", "allow-zero-initial-scale": "true"}})
	require.NoError(t, err)
	_, err = p.Apply(withAnnotation("autoscaling.knative.dev/min-scale", "6"))
	assert.ErrorContains(t, err, `spec.template.metadata.annotations[autoscaling.knative.dev/min-scale] = "6": must be at most max-scale-limit (5)`)
	_, err = p.Apply(withAnnotation("autoscaling.knative.dev/initial-scale", "5"))
	assert.NoError(t, err)
	require.NoError(t, p.Stop(context.Background()))

	// A config whose own initial-scale exceeds the limit fails at Apply too.
	p, err = NewPlatform(Options{Addr: "127.0.0.1:0", ControlAddr: "127.0.0.1:0",
		Autoscaler: map[string]string{"max-scale-limit": "5", "initial-scale": "9"}})
	require.NoError(t, err)
	svc, err := ParseService([]byte(strings.Replace(fmt.Sprintf(helloAtZero, "x"), `autoscaling.knative.dev/initial-scale: "0"`, `autoscaling.knative.dev/target: "10"`, 1)))
	require.NoError(t, err)
	_, err = p.Apply(svc)
	assert.ErrorContains(t, err, "config-autoscaler initial-scale: must be at most max-scale-limit (5)")
}

// Replica processes start at most startParallelism at once, platform-wide:
// with every slot taken, a start waits (here until its context ends).
func TestReplicaStartsAreBounded(t *testing.T) {
	t.Parallel()
	p, err := NewPlatform(Options{Addr: "127.0.0.1:0", ControlAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.Equal(t, startParallelism(), cap(p.starts))
	for range cap(p.starts) {
		p.starts <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.startReplica(ctx, ReplicaSpec{Name: "r-1"}, func(string) {}, nil)
	assert.ErrorContains(t, err, "replica r-1: waiting to start: context canceled")
}

// The default max-scale-limit is the least of 32 per CPU, one per 32 MiB of
// memory and one per 32 file descriptors, as examples/README says.
func TestMachineMaxScale(t *testing.T) {
	limit := machineMaxScale()
	assert.GreaterOrEqual(t, limit, 1)
	assert.LessOrEqual(t, limit, replicasPerCPU*runtime.NumCPU())
	assert.LessOrEqual(t, uint64(limit), max(nofile()/fdsPerReplica, 1))
	var si syscall.Sysinfo_t
	require.NoError(t, syscall.Sysinfo(&si))
	assert.LessOrEqual(t, uint64(limit), max(uint64(si.Totalram)*uint64(si.Unit)/bytesPerReplica, 1))
	assert.Equal(t, 32, replicasPerCPU)
	assert.Equal(t, 32<<20, bytesPerReplica)
	assert.Equal(t, 32, fdsPerReplica)
}
