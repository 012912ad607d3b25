package traffic

// Capacity is what a budgeted rollout asks the host about replicas. It is
// called from RolloutConfig.Plan, on the caller's goroutine; it should
// answer from the host's current view without blocking.
type Capacity interface {
	// NeededReplicas is how many replicas configuration needs to serve all
	// of its traffic: for knative/serving#12971's case, its min-scale; or
	// the autoscaler's current desired scale. Zero or less turns the budget
	// off for the configuration.
	NeededReplicas(configuration string) int
	// ReadyReplicas is how many replicas of revision are ready now.
	ReadyReplicas(revision string) int
}

// Budget makes a gradual rollout fit in a fixed amount of extra capacity,
// instead of running old and new revisions side by side at full size
// (knative/serving#12971: a rollout of a min-scale N service otherwise
// needs 2N replicas, which a GPU quota may not have). It works like a
// Deployment's rolling update with maxSurge:
//
//   - A step never gives the newest revision more traffic than its ready
//     replicas can serve: with N = NeededReplicas and P the
//     configuration's percent, the newest revision may hold x% only while
//     ReadyReplicas ≥ ceil(N·x/P). A step is cut short to what fits; if
//     not even 1% more fits, it waits and is tried again a StepDuration
//     later (plan again sooner when replicas become ready).
//   - Plan.Replicas tells the host how many replicas each revision of a
//     rollout should have: ceil(N·p/P) for each old revision at p%, and for
//     the newest enough for its next step, capped so that the total stays
//     within N + MaxExtra. The host applies these as the revisions' scale
//     bounds (min-scale of old revisions down, of the newest up); as old
//     revisions lose traffic their replicas go, which frees room for the
//     newest revision's next step.
//
// The total is then at most N + MaxExtra replicas, plus at most one per old
// revision beyond the first for rounding up. With MaxExtra = 0 a rollout of
// N ≥ 1 replicas still needs one extra replica, since a revision cannot
// serve its share with less than one. The timing of the steps is
// Knative's; the budget can only slow them down. The first 1% is not
// gated: the new revision is ready, so it has a replica for it.
type Budget struct {
	// MaxExtra is how many replicas beyond NeededReplicas a rollout may
	// use. Range [0, ∞).
	MaxExtra int
	// Capacity answers how many replicas are needed and ready. Required.
	Capacity Capacity
}

// replicasFor is ceil(n·pct/total): replicas serving pct of a configuration
// that needs n for total.
func replicasFor(n, pct, total int) int {
	if total <= 0 || pct <= 0 {
		return 0
	}
	return (n*pct + total - 1) / total
}

// allowedStep cuts a step of size to what the newest revision's ready
// replicas can serve.
func (b *Budget) allowedStep(c *ConfigRollout, size int) int {
	n := b.Capacity.NeededReplicas(c.ConfigurationName)
	if n <= 0 {
		return size
	}
	newest := c.Revisions[len(c.Revisions)-1]
	ready := b.Capacity.ReadyReplicas(newest.RevisionName)
	for size > 0 && replicasFor(n, min(newest.Percent+size, c.Percent), c.Percent) > ready {
		size--
	}
	return size
}

// replicas returns the scale each revision of the rollouts under way should
// have (see Budget), merged by taking the larger need where a revision is in
// more than one rollout.
func (b *Budget) replicas(r *Rollout) map[string]int {
	out := map[string]int{}
	put := func(rev string, n int) { out[rev] = max(out[rev], n) }
	for _, c := range r.Configurations {
		if len(c.Revisions) < 2 {
			continue
		}
		n := b.Capacity.NeededReplicas(c.ConfigurationName)
		if n <= 0 {
			continue
		}
		old := 0
		for _, rv := range c.Revisions[:len(c.Revisions)-1] {
			k := replicasFor(n, rv.Percent, c.Percent)
			old += k
			put(rv.RevisionName, k)
		}
		newest := c.Revisions[len(c.Revisions)-1]
		now := replicasFor(n, newest.Percent, c.Percent)
		step := max(c.StepParams.StepSize, 1)
		next := replicasFor(n, min(newest.Percent+step, c.Percent), c.Percent)
		put(newest.RevisionName, max(now, min(next, n+b.MaxExtra-old)))
	}
	return out
}
