package traffic

import (
	"errors"
	"fmt"
	"time"
)

// RolloutConfig configures gradual rollout: when a configuration's latest
// ready revision changes, move its traffic to the new revision in steps
// over Duration instead of all at once (Knative's rollout-duration).
type RolloutConfig struct {
	// Duration over which traffic moves to a new latest revision. Zero
	// means no gradual rollout (Knative's default): a new revision gets
	// the whole share at once. Whole seconds, at least 0 (Knative's
	// serving.knative.dev/rollout-duration annotation or config-network's
	// rollout-duration; see ParseRolloutDuration).
	Duration time.Duration
	// Budget, if set, keeps a rollout within a fixed extra capacity (see
	// Budget). Nil means Knative's behaviour.
	Budget *Budget
}

// Validate reports every bad field, naming it, its value and the rule.
func (c RolloutConfig) Validate() error {
	var errs []error
	if c.Duration < 0 || c.Duration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("traffic: RolloutConfig.Duration = %v, must be whole seconds >= 0", c.Duration))
	}
	if c.Budget != nil {
		if c.Budget.MaxExtra < 0 {
			errs = append(errs, fmt.Errorf("traffic: RolloutConfig.Budget.MaxExtra = %d, must be >= 0", c.Budget.MaxExtra))
		}
		if c.Budget.Capacity == nil {
			errs = append(errs, errors.New("traffic: RolloutConfig.Budget.Capacity = nil, must be set"))
		}
	}
	return errors.Join(errs...)
}

// ParseRolloutDuration parses the value of Knative's
// serving.knative.dev/rollout-duration annotation ("120s", "2m"): a Go
// duration at second precision, at least 0.
func ParseRolloutDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("traffic: rollout-duration=%s: invalid value: %w", s, err)
	case d.Round(time.Second) != d:
		return 0, fmt.Errorf("traffic: rollout-duration=%s is not at second precision", s)
	case d < 0:
		return 0, fmt.Errorf("traffic: rollout-duration=%s must be positive", s)
	}
	return d, nil
}

// Plan is what RolloutConfig.Plan decided.
type Plan struct {
	// State is the new rollout state: store it and pass it as prev next
	// time.
	State *Rollout
	// Table is the traffic to route now: the wanted table with each
	// rollout under way split between its revisions. Give it to the
	// router; do not pass it back to Plan as want.
	Table *Table
	// NextStep is when the next step is due: plan again then. Zero when no
	// step is scheduled.
	NextStep time.Time
	// AwaitingReady is true when a rollout has started and its steps are
	// not yet timed: once Table is live, call State.ObserveReady and plan
	// again.
	AwaitingReady bool
	// Replicas is, with a Budget, how many replicas each revision of a
	// rollout under way should have (see Budget). Nil without a Budget.
	Replicas map[string]int
}

// Plan steps the rollout state prev towards want at time now, Knative's
// reconcileRollout. want is the table from Resolve; prev is the State of
// the previous Plan, nil the first time (or when a stored state failed
// ParseRollout; an invalid prev is treated as nil).
//
//   - The first plan of a route starts from want: no rollout.
//   - When a latest target's revision changes and its percent is above 1,
//     the new revision gets 1% from the newest previous revision that has
//     any, and the rollout waits for ObserveReady to time the steps.
//   - Each due step moves StepSize to the newest revision, taken from the
//     newest old revisions first.
//   - A target's percent changing during a rollout: an increase goes to the
//     newest revision, a decrease comes off the oldest first.
//
// With a zero Duration, State is want's steady state and Table is want.
// A nil want, or a Budget without Capacity, is a programming error and
// panics. Plan is pure: it does not keep prev or want, and reads the clock only
// through now.
func (c RolloutConfig) Plan(prev *Rollout, want *Table, now time.Time) Plan {
	if want == nil {
		panic("traffic: RolloutConfig.Plan called with a nil want table")
	}
	if c.Budget != nil && c.Budget.Capacity == nil {
		panic("traffic: RolloutConfig.Plan with a Budget but no Budget.Capacity (see RolloutConfig.Validate)")
	}
	cur := NewRollout(want)
	if c.Duration <= 0 {
		return Plan{State: cur, Table: want}
	}
	if prev != nil && prev.Validate() != nil {
		prev = nil
	}
	state, next := cur.step(prev, now, c.Budget)
	p := Plan{State: state, Table: applyRollout(want, state), NextStep: next}
	for _, cr := range state.Configurations {
		if len(cr.Revisions) > 1 && cr.StepParams.StepDuration == 0 && cr.StepParams.started() {
			p.AwaitingReady = true
		}
	}
	if c.Budget != nil {
		p.Replicas = c.Budget.replicas(state)
	}
	return p
}
