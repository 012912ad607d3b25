package traffic

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResolve(t *testing.T) {
	latest := LatestReadyMap{"hello": "hello-00003", "other": "other-00001"}
	tests := []struct {
		name string
		spec Spec
		want string // Table.String()
	}{{
		name: "latest of a configuration",
		spec: Spec{Traffic: []Target{{ConfigurationName: "hello", Percent: 100}}},
		want: "default: hello-00003 100%",
	}, {
		name: "service route with empty traffic follows its configuration",
		spec: Spec{DefaultConfiguration: "hello"},
		want: "default: hello-00003 100%",
	}, {
		name: "split with tags: each tag gets its revision at 100%",
		spec: Spec{Traffic: []Target{
			{ConfigurationName: "hello", Percent: 90, Tag: "current"},
			{RevisionName: "hello-00002", Percent: 10, Tag: "previous"},
			{RevisionName: "hello-00001", Tag: "first"},
		}},
		want: "default: hello-00003 90%, hello-00002 10%, hello-00001 0%; tag current: hello-00003 100%; tag first: hello-00001 100%; tag previous: hello-00002 100%",
	}, {
		name: "percents of one revision are merged",
		spec: Spec{Traffic: []Target{
			{RevisionName: "a", Percent: 30},
			{RevisionName: "b", Percent: 40},
			{RevisionName: "a", Percent: 30},
		}},
		want: "default: a 60%, b 40%",
	}, {
		name: "a single revision gets 100% even when a target names it at 0%",
		spec: Spec{Traffic: []Target{
			{ConfigurationName: "hello", Percent: 100},
			{RevisionName: "hello-00003", Tag: "pinned"},
		}},
		want: "default: hello-00003 100%; tag pinned: hello-00003 100%",
	}, {
		name: "two configurations",
		spec: Spec{Traffic: []Target{{ConfigurationName: "hello", Percent: 50}, {ConfigurationName: "other", Percent: 50}}},
		want: "default: hello-00003 50%, other-00001 50%",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl, err := Resolve(tc.spec, latest)
			require.NoError(t, err)
			assert.Equal(t, tc.want, tbl.String())
			assert.NoError(t, tbl.Validate())
		})
	}
}

func TestResolveMarksLatestShares(t *testing.T) {
	tbl, err := Resolve(Spec{Traffic: []Target{
		{ConfigurationName: "hello", Percent: 60},
		{RevisionName: "hello-00003", Percent: 40}, // merges into the latest share, which came first
		{RevisionName: "hello-00001", Tag: "old"},
	}}, LatestReadyMap{"hello": "hello-00003"})
	require.NoError(t, err)
	assert.Equal(t, []Share{
		{Revision: "hello-00003", Percent: 100, Configuration: "hello", Latest: true},
		{Revision: "hello-00001"},
	}, tbl.Default)
	assert.Equal(t, []Share{{Revision: "hello-00001", Percent: 100}}, tbl.Group("old"))
	assert.Equal(t, tbl.Default, tbl.Group(""))
}

func TestResolveErrors(t *testing.T) {
	t.Run("configuration without a ready revision", func(t *testing.T) {
		_, err := Resolve(Spec{Traffic: []Target{
			{ConfigurationName: "a", Percent: 50},
			{ConfigurationName: "b", Percent: 50},
		}}, LatestReadyMap{"b": ""})
		require.ErrorIs(t, err, ErrNoReadyRevision)
		assert.Equal(t, "traffic: traffic[0]: configuration \"a\" has no ready revision\n"+
			"traffic: traffic[1]: configuration \"b\" has no ready revision", err.Error())
		var te *TargetError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, "a", te.Configuration)
	})
	t.Run("invalid spec", func(t *testing.T) {
		_, err := Resolve(Spec{Traffic: []Target{{RevisionName: "a", Percent: 50}}}, nil)
		require.ErrorIs(t, err, ErrInvalidSpec)
	})
	t.Run("nil lookup with a latest target", func(t *testing.T) {
		_, err := Resolve(Spec{DefaultConfiguration: "a"}, nil)
		require.ErrorIs(t, err, ErrNoReadyRevision)
	})
}

func TestResolveAgainWhenLatestChanges(t *testing.T) {
	spec := Spec{Traffic: []Target{{ConfigurationName: "hello", Percent: 100, Tag: "latest"}}}
	latest := LatestReadyMap{"hello": "hello-00001"}
	first, err := Resolve(spec, latest)
	require.NoError(t, err)
	assert.Equal(t, []string{"hello"}, spec.Configurations())

	latest["hello"] = "hello-00002"
	second, err := Resolve(spec, latest)
	require.NoError(t, err)
	assert.Equal(t, "default: hello-00001 100%; tag latest: hello-00001 100%", first.String())
	assert.Equal(t, "default: hello-00002 100%; tag latest: hello-00002 100%", second.String())
}

func TestTableValidate(t *testing.T) {
	tbl := &Table{
		Default: []Share{{Revision: "a", Percent: 90}, {Revision: "b b", Percent: 20}},
		Tags:    map[string][]Share{"X": {{Revision: "a", Percent: 100}}, "ok": {{Revision: "a", Percent: -1}}},
	}
	assert.Equal(t, []string{
		`traffic: default[1].revision = "b b": ` + keyRule,
		`traffic: default = 110: percents sum to 110, want 100`,
		`traffic: tags = "X": ` + dns1035Rule,
		`traffic: tags[ok][0].percent = -1: expected 0 <= -1 <= 100`,
		`traffic: tags[ok] = -1: percents sum to -1, want 100`,
	}, fieldErrors(t, tbl.Validate()))
}
