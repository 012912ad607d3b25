package revision

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestModeEveryCombination enumerates desired ∈ {-1, 0, >0} × EBC ∈ {<0, 0,
// >0} × ready replicas ∈ {0, >0} × ready activators ∈ {0, >0}: 36 rows,
// each with the wanted and the effective mode written out.
func TestModeEveryCombination(t *testing.T) {
	const P, S = Proxy, Serve
	rows := []struct {
		desired, ebc      int32
		replicas, actives int
		want, mode        Mode
	}{
		{-1, -5, 0, 0, P, S}, {-1, -5, 0, 2, P, P}, {-1, -5, 3, 0, P, S}, {-1, -5, 3, 2, P, P},
		{-1, 0, 0, 0, P, S}, {-1, 0, 0, 2, P, P}, {-1, 0, 3, 0, P, S}, {-1, 0, 3, 2, P, P},
		{-1, 5, 0, 0, P, S}, {-1, 5, 0, 2, P, P}, {-1, 5, 3, 0, P, S}, {-1, 5, 3, 2, P, P},
		{0, -5, 0, 0, P, S}, {0, -5, 0, 2, P, P}, {0, -5, 3, 0, P, S}, {0, -5, 3, 2, P, P},
		{0, 0, 0, 0, P, S}, {0, 0, 0, 2, P, P}, {0, 0, 3, 0, P, S}, {0, 0, 3, 2, P, P},
		{0, 5, 0, 0, P, S}, {0, 5, 0, 2, P, P}, {0, 5, 3, 0, P, S}, {0, 5, 3, 2, P, P},
		{4, -5, 0, 0, P, S}, {4, -5, 0, 2, P, P}, {4, -5, 3, 0, P, S}, {4, -5, 3, 2, P, P},
		{4, 0, 0, 0, S, S}, {4, 0, 0, 2, S, P}, {4, 0, 3, 0, S, S}, {4, 0, 3, 2, S, S},
		{4, 5, 0, 0, S, S}, {4, 5, 0, 2, S, P}, {4, 5, 3, 0, S, S}, {4, 5, 3, 2, S, S},
	}
	require.Len(t, rows, 36)
	for _, r := range rows {
		name := fmt.Sprintf("desired=%d/ebc=%d/replicas=%d/activators=%d", r.desired, r.ebc, r.replicas, r.actives)
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, r.want, WantMode(r.desired, r.ebc))
			assert.Equal(t, r.mode, EffectiveMode(r.want, r.replicas, r.actives))

			sw, err := NewSwitch("default/hello-00001", t0, ActivatorSizing{})
			require.NoError(t, err)
			in := SwitchInput{Desired: r.desired, ExcessBurstCapacity: r.ebc,
				Replicas: names("pod", r.replicas), Activators: names("act", r.actives)}
			sw.Update(at(time.Second), in)
			assert.Equal(t, r.want, sw.Want())
			assert.Equal(t, r.mode, sw.Mode())
			eps := sw.Endpoints()
			assert.Equal(t, r.mode, eps.Mode)
			if r.mode == Serve {
				assert.Equal(t, in.Replicas, eps.Addresses, "Serve publishes the replicas")
				assert.Zero(t, sw.ProxyFor(at(time.Hour)))
			} else {
				assert.Equal(t, in.Activators, eps.Addresses, "Proxy publishes the activators (2 of 2)")
				assert.Equal(t, time.Hour, sw.ProxyFor(at(time.Hour)), "in Proxy since creation")
			}
		})
	}
}

func names(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%02d", prefix, i))
	}
	return out
}

func TestSwitchProxyFor(t *testing.T) {
	sw, err := NewSwitch("ns/rev", t0, ActivatorSizing{})
	require.NoError(t, err)
	acts := []string{"a1", "a2"}
	steps := []struct {
		at       time.Duration
		in       SwitchInput
		changed  bool
		mode     Mode
		proxyFor time.Duration // measured 10 s after the step
	}{
		{0, SwitchInput{Desired: -1, Activators: acts}, true, Proxy, 10 * time.Second},
		{5 * time.Second, SwitchInput{Desired: 1, Activators: acts}, false, Proxy, 15 * time.Second},
		{8 * time.Second, SwitchInput{Desired: 1, Replicas: []string{"p1"}, Activators: acts}, true, Serve, 0},
		{20 * time.Second, SwitchInput{Desired: 1, ExcessBurstCapacity: -3, Replicas: []string{"p1"}, Activators: acts}, true, Proxy, 10 * time.Second},
		{25 * time.Second, SwitchInput{Desired: 0, Replicas: []string{"p1"}, Activators: acts}, false, Proxy, 15 * time.Second},
		// Losing every activator forces Serve; Proxy time restarts after.
		{30 * time.Second, SwitchInput{Desired: 0, Replicas: []string{"p1"}}, true, Serve, 0},
		{40 * time.Second, SwitchInput{Desired: 0, Replicas: []string{"p1"}, Activators: acts}, true, Proxy, 10 * time.Second},
	}
	for i, s := range steps {
		changed := sw.Update(at(s.at), s.in)
		assert.Equal(t, s.changed, changed, "step %d changed", i)
		assert.Equal(t, s.mode, sw.Mode(), "step %d mode", i)
		assert.Equal(t, s.proxyFor, sw.ProxyFor(at(s.at+10*time.Second)), "step %d ProxyFor", i)
	}
}

func TestSwitchCreationState(t *testing.T) {
	sw, err := NewSwitch("ns/rev", t0, ActivatorSizing{TargetBurstCapacity: 211})
	require.NoError(t, err)
	assert.Equal(t, Proxy, sw.Mode())
	assert.Equal(t, Proxy, sw.Want())
	assert.Equal(t, MinActivators, sw.NumActivators())
	assert.Empty(t, sw.Endpoints().Addresses)
	assert.Equal(t, 3*time.Second, sw.ProxyFor(at(3*time.Second)))

	_, err = NewSwitch("", t0, ActivatorSizing{})
	assert.ErrorContains(t, err, "key is empty")
	_, err = NewSwitch("k", t0, ActivatorSizing{ActivatorCapacity: -1})
	assert.ErrorContains(t, err, "ActivatorSizing.ActivatorCapacity = -1")
}

func TestSwitchSubsetsActivators(t *testing.T) {
	// TBC 200, total 100, capacity 100: 15 ready replicas need 17 activators.
	sw, err := NewSwitch("default/big-00001", t0, ActivatorSizing{TargetBurstCapacity: 200})
	require.NoError(t, err)
	acts := names("10.0.0", 30)
	sw.Update(t0, SwitchInput{Desired: 15, ExcessBurstCapacity: -1, Replicas: names("pod", 15), Activators: acts})
	assert.Equal(t, 17, sw.NumActivators())
	eps := sw.Endpoints()
	assert.Equal(t, Proxy, eps.Mode)
	assert.Equal(t, ChooseSubset(acts, 17, "default/big-00001"), eps.Addresses)

	// The same inputs in another order give the same endpoints: no change.
	rev := append([]string(nil), acts...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	assert.False(t, sw.Update(at(time.Second), SwitchInput{Desired: 15, ExcessBurstCapacity: -1, Replicas: names("pod", 15), Activators: rev}))
}

func TestActivatorSizingKnativeRows(t *testing.T) {
	// Knative's computeNumActivators unit tests: total 100, activator
	// capacity 100 (reference §6.1).
	rows := []struct {
		tbc  float64
		pods int
		want int
	}{
		{200, 0, 2},
		{200, 1, 3},
		{0, 100, 2},
		{-1, 5, 5},
		{200, 15, 17},
	}
	for _, r := range rows {
		t.Run(fmt.Sprintf("tbc=%v/pods=%d", r.tbc, r.pods), func(t *testing.T) {
			s := ActivatorSizing{TotalValue: 100, TargetBurstCapacity: r.tbc, ActivatorCapacity: 100}
			assert.Equal(t, r.want, s.NumActivators(r.pods))
			// Zero total and capacity mean the same defaults.
			assert.Equal(t, r.want, ActivatorSizing{TargetBurstCapacity: r.tbc}.NumActivators(r.pods))
		})
	}
}

func TestActivatorSizingMore(t *testing.T) {
	tests := []struct {
		name string
		s    ActivatorSizing
		pods int
		want int
	}{
		{"fractions round up", ActivatorSizing{TotalValue: 10, TargetBurstCapacity: 1, ActivatorCapacity: 100}, 10, 2},
		{"just over a multiple", ActivatorSizing{TotalValue: 10, TargetBurstCapacity: 1, ActivatorCapacity: 50}, 30, 7},
		{"unlimited burst, no pods", ActivatorSizing{TargetBurstCapacity: -1}, 0, 2},
		{"huge counts saturate", ActivatorSizing{TotalValue: 1e12, TargetBurstCapacity: -1, ActivatorCapacity: 1}, 1 << 20, 1<<31 - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, tc.s.NumActivators(tc.pods)) })
	}
}

func TestActivatorSizingValidate(t *testing.T) {
	assert.NoError(t, ActivatorSizing{}.Validate())
	assert.NoError(t, ActivatorSizing{TotalValue: 1, TargetBurstCapacity: -1, ActivatorCapacity: 1}.Validate())
	err := ActivatorSizing{TotalValue: -1, TargetBurstCapacity: -0.5, ActivatorCapacity: -3}.Validate()
	require.Error(t, err)
	for _, m := range []string{
		"ActivatorSizing.TotalValue = -1, must be a finite number >= 0 (0 means 100)",
		"ActivatorSizing.TargetBurstCapacity = -0.5, must be -1 (unlimited) or a finite number >= 0",
		"ActivatorSizing.ActivatorCapacity = -3, must be a finite number >= 0 (0 means 100)",
	} {
		assert.Contains(t, err.Error(), m)
	}
}

func TestModeString(t *testing.T) {
	assert.Equal(t, "Proxy", Proxy.String())
	assert.Equal(t, "Serve", Serve.String())
	assert.Equal(t, "Mode(7)", Mode(7).String())
	assert.Equal(t, "ConditionStatus(9)", ConditionStatus(9).String())
}
