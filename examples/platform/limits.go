package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/servingkit/servingkit/autoscaler"
)

// The platform's replica limit: every replica is an OS process with a few
// file descriptors on the platform's side (pipes and connections) and tens
// of MiB of memory, so the machine, not an annotation, decides how many can
// run. Knative caps max-scale with max-scale-limit in config-autoscaler; the
// platform sets that key to machineMaxScale unless -config sets it.
const (
	replicasPerCPU   = 32       // more would mostly wait for CPU
	bytesPerReplica  = 32 << 20 // a replica process's memory, generously
	fdsPerReplica    = 32       // descriptors the platform holds per replica, generously
	maxScaleLimitKey = "max-scale-limit"
	maxScaleKey      = "max-scale"
)

// machineMaxScale is the default max-scale-limit: the fewest replicas that
// exhaust the CPUs, the memory or the platform's file descriptors.
func machineMaxScale() int {
	limit := replicasPerCPU * runtime.NumCPU()
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		if m := int(uint64(si.Totalram) * uint64(si.Unit) / bytesPerReplica); m < limit {
			limit = m
		}
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < 1<<30 {
		if f := int(rl.Cur / fdsPerReplica); f < limit {
			limit = f
		}
	}
	return max(limit, 1)
}

// startParallelism bounds how many replica processes start at once,
// platform-wide: starting one costs a fork, an exec and a Go runtime's
// start-up, so more at once than CPUs only slows each.
func startParallelism() int { return max(2, 2*runtime.NumCPU()) }

// withScaleLimit returns the config-autoscaler keys with max-scale-limit
// set to machineMaxScale() when absent, and max-scale set to the limit
// when absent (Knative requires max-scale in [1, limit] once a limit is
// set).
func withScaleLimit(cfg map[string]string) map[string]string {
	out := make(map[string]string, len(cfg)+2)
	for k, v := range cfg {
		out[k] = v
	}
	if _, ok := out[maxScaleLimitKey]; !ok {
		out[maxScaleLimitKey] = strconv.Itoa(machineMaxScale())
	}
	if _, ok := out[maxScaleKey]; !ok && out[maxScaleLimitKey] != "0" {
		out[maxScaleKey] = out[maxScaleLimitKey]
	}
	return out
}

// checkScaleLimit refuses a revision whose initial or least scale is above
// max-scale-limit, from an annotation or the config: the pool would start
// that many processes at once; and one whose activation-scale is. It runs before autoscaler.Config.RevisionSpec
// so that the error names the limit (RevisionSpec would name max-scale, and
// refuses max-scale above the limit itself); values that are not integers
// are left to RevisionSpec.
func checkScaleLimit(cfg autoscaler.Config, annotations map[string]string) error {
	limit := cfg.MaxScaleLimit
	if limit <= 0 {
		return nil
	}
	check := func(configured int, key string, names ...string) error {
		where, value := "config-autoscaler "+key, configured
		for _, n := range names {
			if v, ok := annotations[n]; ok {
				i, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil
				}
				where, value = fmt.Sprintf("spec.template.metadata.annotations[%s] = %q", n, v), int(min(i, math.MaxInt32+1))
			}
		}
		if value <= limit {
			return nil
		}
		return fmt.Errorf("%s: must be at most max-scale-limit (%d), the platform's replica limit for this machine (change it with -config max-scale-limit=N)", where, limit)
	}
	return errors.Join(
		check(cfg.InitialScale, "initial-scale", autoscaler.InitialScaleAnnotation, autoscaler.AnnotationPrefix+"initialScale"),
		check(cfg.MinScale, "min-scale", autoscaler.MinScaleAnnotation, autoscaler.AnnotationPrefix+"minScale"),
		// No config key; above the limit it would be cut to max-scale
		// without a word.
		check(0, "activation-scale", autoscaler.ActivationScaleAnnotation))
}

// startReplica starts one replica process, waiting its turn among the
// platform's starts (startParallelism at once). A turn lasts until the
// replica listens or exits, or startTurn at most, so that programs slow to
// become ready do not hold up the others.
func (p *Platform) startReplica(ctx context.Context, spec ReplicaSpec, logLine func(string), onChange func()) (*proc, error) {
	select {
	case p.starts <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("replica %s: waiting to start: %w", spec.Name, ctx.Err())
	}
	pr, err := p.spawner.start(spec, logLine, onChange)
	if err != nil {
		<-p.starts
		return nil, err
	}
	go func() {
		t := time.NewTimer(startTurn)
		defer t.Stop()
		select {
		case <-pr.listening:
		case <-pr.exited:
		case <-t.C:
		}
		<-p.starts
	}()
	return pr, nil
}

// startTurn bounds how long one start holds its turn.
const startTurn = 5 * time.Second
