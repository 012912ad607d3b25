package revision

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fill applies n distinct templates, one a minute from t0.
func fill(t *testing.T, c *Configuration[Spec], n int) {
	t.Helper()
	for i := range n {
		_, created, err := c.Apply(at(time.Duration(i)*time.Minute), Spec{Image: fmt.Sprintf("ex/app:%d", i)})
		require.NoError(t, err)
		require.True(t, created)
	}
}

func routes(names ...string) func(string) bool {
	return func(n string) bool { return slices.Contains(names, n) }
}

func retired(rs []Revision[Spec]) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func TestCollectKnativeDefaults(t *testing.T) {
	c := newConfig(t, ConfigurationOptions{})
	fill(t, c, 25) // hello-00001 … hello-00025, latest is 25

	// Younger than 48 h: nothing is stale.
	assert.Empty(t, c.Collect(at(47*time.Hour), routes()))

	// At 49 h the 23 non-active revisions (not the latest, not the routed
	// hello-00002) are stale; 20 must stay, so the 3 oldest go.
	got := c.Collect(at(49*time.Hour), routes("hello-00002"))
	assert.Equal(t, []string{"hello-00001", "hello-00003", "hello-00004"}, retired(got))
	assert.Len(t, c.History(), 22)
	_, ok := c.Revision("hello-00001")
	assert.False(t, ok, "a retired revision is gone")

	// Now exactly 20 non-active remain (hello-00002 still routed): nothing more.
	assert.Empty(t, c.Collect(at(50*time.Hour), routes("hello-00002")))
}

func TestCollectCountsFromLastRouted(t *testing.T) {
	c := newConfig(t, ConfigurationOptions{Retention: RetentionPolicy{MinNonActive: Disabled}})
	fill(t, c, 3)
	// hello-00001 is routed until 40 h, hello-00002 never.
	assert.Empty(t, c.Collect(at(10*time.Hour), routes("hello-00001")))
	assert.Empty(t, c.Collect(at(40*time.Hour), routes()), "both younger than 48 h")
	got := c.Collect(at(49*time.Hour), routes())
	assert.Equal(t, []string{"hello-00002"}, retired(got), "hello-00001 was routed 9 h ago (< 15 h)")
	got = c.Collect(at(55*time.Hour), routes())
	assert.Equal(t, []string{"hello-00001"}, retired(got), "15 h after it was last routed")
	assert.Empty(t, c.Collect(at(1000*time.Hour), routes()), "the latest is never retired")
	latest, _ := c.Latest()
	assert.Equal(t, []Revision[Spec]{latest}, c.History())
}

func TestCollectMaxNonActive(t *testing.T) {
	c := newConfig(t, ConfigurationOptions{Retention: RetentionPolicy{
		RetainSinceCreate: Disabled, RetainSinceLastActive: Disabled, MinNonActive: Disabled, MaxNonActive: 3,
	}})
	fill(t, c, 8)
	got := c.Collect(at(time.Hour), routes("hello-00001"))
	// 6 non-active (2…7), at most 3 kept: the 3 oldest go, routed 1 stays.
	assert.Equal(t, []string{"hello-00002", "hello-00003", "hello-00004"}, retired(got))
	assert.Empty(t, c.Collect(at(2*time.Hour), routes("hello-00001")))
}

func TestCollectStaleThenMax(t *testing.T) {
	// Stale ones go first (down to the minimum), then the maximum applies.
	p := RetentionPolicy{RetainSinceCreate: Disabled, RetainSinceLastActive: time.Hour, MinNonActive: 1, MaxNonActive: 2}
	require.NoError(t, p.Validate())
	c := newConfig(t, ConfigurationOptions{Retention: p})
	fill(t, c, 6)
	// Routed at 10 h: 2, 3, 4. Non-active 1 and 5 are stale, but 1 must stay:
	// the older goes.
	got := c.Collect(at(10*time.Hour), routes("hello-00002", "hello-00003", "hello-00004"))
	assert.Equal(t, []string{"hello-00001"}, retired(got))
	// At 10.5 h only 4 stays routed. Non-active by last activity: 5 (stale),
	// then 2 and 3 (unrouted just now, fresh). 5 goes; 2 and 3 remain,
	// within max 2.
	got = c.Collect(at(10*time.Hour+30*time.Minute), routes("hello-00004"))
	assert.Equal(t, []string{"hello-00005"}, retired(got))
	got = c.Collect(at(12*time.Hour), routes())
	// Now 2, 3 (stale) and 4 (fresh, last routed at 12 h) are non-active;
	// min 1 lets 2 stale ones go.
	assert.Equal(t, []string{"hello-00002", "hello-00003"}, retired(got))
}

func TestCollectAllDisabled(t *testing.T) {
	c := newConfig(t, ConfigurationOptions{Retention: RetentionPolicy{
		RetainSinceCreate: Disabled, RetainSinceLastActive: Disabled, MinNonActive: Disabled, MaxNonActive: Disabled,
	}})
	fill(t, c, 30)
	assert.Empty(t, c.Collect(at(10000*time.Hour), routes()))
}

func TestRetentionValidate(t *testing.T) {
	tests := []struct {
		name string
		p    RetentionPolicy
		msgs []string
	}{
		{"zero", RetentionPolicy{}, nil},
		{"all disabled", RetentionPolicy{RetainSinceCreate: Disabled, RetainSinceLastActive: Disabled, MinNonActive: Disabled, MaxNonActive: Disabled}, nil},
		{"negatives", RetentionPolicy{RetainSinceCreate: -time.Hour, RetainSinceLastActive: -2, MinNonActive: -3, MaxNonActive: -4}, []string{
			"RetentionPolicy.RetainSinceCreate = -1h0m0s, must be >= 0 (0 means 48h0m0s) or Disabled (-1)",
			"RetentionPolicy.RetainSinceLastActive = -2ns, must be >= 0 (0 means 15h0m0s) or Disabled (-1)",
			"RetentionPolicy.MinNonActive = -3, must be >= 0 (0 means 20) or Disabled (-1)",
			"RetentionPolicy.MaxNonActive = -4, must be >= 0 (0 means 1000) or Disabled (-1)",
		}},
		{"default min above max", RetentionPolicy{MaxNonActive: 5}, []string{
			"RetentionPolicy.MinNonActive = 20 must be <= RetentionPolicy.MaxNonActive = 5 (zero fields count as their defaults)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if tc.msgs == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, m := range tc.msgs {
				assert.Contains(t, err.Error(), m)
			}
		})
	}
}
