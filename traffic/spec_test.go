package traffic

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSpecValidate(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name   string
		spec   Spec
		errors []string // each FieldError's text, in order; none means valid
	}{{
		name: "one revision at 100%",
		spec: Spec{Traffic: []Target{{RevisionName: "default/hello-00001", Percent: 100}}},
	}, {
		name: "latest of a configuration plus a pinned canary",
		spec: Spec{Traffic: []Target{{ConfigurationName: "hello", Percent: 90}, {RevisionName: "r2", Percent: 10, Tag: "canary"}}},
	}, {
		name: "a tag at 0% alongside 100% is valid",
		spec: Spec{Traffic: []Target{{RevisionName: "a", Percent: 100}, {RevisionName: "b", Tag: "b"}}},
	}, {
		name:   "sum below 100",
		spec:   Spec{Traffic: []Target{{RevisionName: "a", Percent: 90}}},
		errors: []string{`traffic: traffic = 90: Traffic targets sum to 90, want 100`},
	}, {
		name:   "empty list sums to 0",
		spec:   Spec{},
		errors: []string{`traffic: traffic = 0: Traffic targets sum to 0, want 100`},
	}, {
		name: "101 and -1 sum to 100, only the bounds are reported",
		spec: Spec{Traffic: []Target{{RevisionName: "a", Percent: 101}, {RevisionName: "b", Percent: -1}}},
		errors: []string{
			`traffic: traffic[0].percent = 101: expected 0 <= 101 <= 100`,
			`traffic: traffic[1].percent = -1: expected 0 <= -1 <= 100`,
		},
	}, {
		name: "duplicate tag",
		spec: Spec{Traffic: []Target{{RevisionName: "a", Percent: 50, Tag: "x"}, {RevisionName: "b", Percent: 50, Tag: "x"}}},
		errors: []string{
			`traffic: traffic[1].tag = "x": must be unique, already used by traffic[0].tag`,
		},
	}, {
		name: "tag not a DNS-1035 label",
		spec: Spec{Traffic: []Target{{RevisionName: "a", Percent: 100, Tag: "1abc"}}},
		errors: []string{
			`traffic: traffic[0].tag = "1abc": ` + dns1035Rule,
		},
	}, {
		name: "both revision and configuration",
		spec: Spec{Traffic: []Target{{RevisionName: "a", ConfigurationName: "c", Percent: 100, LatestRevision: &no}}},
		errors: []string{
			`traffic: traffic[0].configurationName = "c": expected exactly one of revisionName and configurationName, got both (revisionName "a")`,
		},
	}, {
		name: "neither revision nor configuration",
		spec: Spec{Traffic: []Target{{Percent: 100}}},
		errors: []string{
			`traffic: traffic[0].revisionName: expected exactly one of revisionName and configurationName, got neither`,
		},
	}, {
		name: "neither, but the route has a default configuration",
		spec: Spec{Traffic: []Target{{Percent: 100}}, DefaultConfiguration: "hello"},
	}, {
		name: "configuration named although the route has a default one",
		spec: Spec{Traffic: []Target{{ConfigurationName: "other", Percent: 100}}, DefaultConfiguration: "hello"},
		errors: []string{
			`traffic: traffic[0].configurationName = "other": must not be set: the route follows its default configuration "hello"`,
		},
	}, {
		name: "latestRevision true with a revision",
		spec: Spec{Traffic: []Target{{RevisionName: "a", LatestRevision: &yes, Percent: 100}}},
		errors: []string{
			`traffic: traffic[0].latestRevision = true: may not set revisionName "a" when latestRevision is true`,
		},
	}, {
		name: "latestRevision false without a revision",
		spec: Spec{Traffic: []Target{{ConfigurationName: "c", LatestRevision: &no, Percent: 100}}},
		errors: []string{
			`traffic: traffic[0].latestRevision = false: may not set revisionName "" when latestRevision is false`,
		},
	}, {
		name: "url in a spec",
		spec: Spec{Traffic: []Target{{RevisionName: "a", Percent: 100, URL: "http://a"}}},
		errors: []string{
			`traffic: traffic[0].url = "http://a": must not be set in a spec`,
		},
	}, {
		name: "revision key with a space",
		spec: Spec{Traffic: []Target{{RevisionName: "a b", Percent: 100}}},
		errors: []string{
			`traffic: traffic[0].revisionName = "a b": ` + keyRule,
		},
	}, {
		name: "every problem at once",
		spec: Spec{Traffic: []Target{
			{RevisionName: "a", Percent: 120, Tag: "Bad"},
			{Percent: 5, Tag: "Bad"},
		}},
		errors: []string{
			`traffic: traffic[0].percent = 120: expected 0 <= 120 <= 100`,
			`traffic: traffic[0].tag = "Bad": ` + dns1035Rule,
			`traffic: traffic[1].revisionName: expected exactly one of revisionName and configurationName, got neither`,
			`traffic: traffic[1].tag = "Bad": ` + dns1035Rule,
			`traffic: traffic[1].tag = "Bad": must be unique, already used by traffic[0].tag`,
			`traffic: traffic = 125: Traffic targets sum to 125, want 100`,
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if len(tc.errors) == 0 {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidSpec)
			assert.Equal(t, tc.errors, fieldErrors(t, err))
		})
	}
}

// fieldErrors returns the text of each *FieldError joined in err.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		require.True(t, errors.As(e, &fe), "%T is not a *FieldError", e)
		out = append(out, fe.Error())
	}
	return out
}

func TestSpecSetDefaults(t *testing.T) {
	t.Run("empty traffic of a service's route becomes 100% latest", func(t *testing.T) {
		s := Spec{DefaultConfiguration: "hello"}
		s.SetDefaults()
		require.Len(t, s.Traffic, 1)
		assert.Equal(t, 100, s.Traffic[0].Percent)
		assert.True(t, *s.Traffic[0].LatestRevision)
		assert.NoError(t, s.Validate())
	})
	t.Run("latestRevision defaults to revisionName being empty", func(t *testing.T) {
		in := []Target{{RevisionName: "a", Percent: 50}, {ConfigurationName: "c", Percent: 50}}
		s := Spec{Traffic: in}
		s.SetDefaults()
		assert.False(t, *s.Traffic[0].LatestRevision)
		assert.True(t, *s.Traffic[1].LatestRevision)
		assert.Nil(t, in[0].LatestRevision, "the caller's slice is not modified")
	})
	t.Run("empty traffic without a default configuration stays empty", func(t *testing.T) {
		s := Spec{}
		s.SetDefaults()
		assert.Empty(t, s.Traffic)
	})
}

func TestParseSpec(t *testing.T) {
	s, err := ParseSpec([]byte(`{"traffic":[{"configurationName":"hello","percent":90},{"revisionName":"hello-00001","percent":10,"tag":"old"}]}`), "")
	require.NoError(t, err)
	assert.Equal(t, []string{"hello"}, s.Configurations())
	assert.True(t, *s.Traffic[0].LatestRevision)
	assert.False(t, *s.Traffic[1].LatestRevision)

	s, err = ParseSpec([]byte(`{}`), "hello")
	require.NoError(t, err)
	assert.Equal(t, []string{"hello"}, s.Configurations())

	for name, in := range map[string]string{
		"unknown field":    `{"traffic":[{"revision":"a","percent":100}]}`,
		"not JSON":         `{"traffic":`,
		"trailing data":    `{"traffic":[{"revisionName":"a","percent":100}]} {}`,
		"percent fraction": `{"traffic":[{"revisionName":"a","percent":99.5}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSpec([]byte(in), "")
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "traffic: decoding spec: "), err.Error())
		})
	}
	_, err = ParseSpec([]byte(`{"traffic":[{"revisionName":"a","percent":90}]}`), "")
	assert.ErrorIs(t, err, ErrInvalidSpec)
}

func TestDNSLabels(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "a-1": true, "abc-def0": true, strings.Repeat("a", 63): true,
		"": false, "1a": false, "-a": false, "a-": false, "A": false, "a_b": false, "a.b": false, strings.Repeat("a", 64): false,
	} {
		assert.Equal(t, want, isDNS1035Label(s), "DNS-1035 %q", s)
	}
	for s, want := range map[string]bool{
		"a": true, "1a": true, "a-1": true, "": false, "-a": false, "a-": false, "A": false, "a.b": false,
	} {
		assert.Equal(t, want, isDNS1123Label(s), "DNS-1123 %q", s)
	}
}

// FuzzParseSpec: no input panics, and whatever parses resolves to a table
// whose default split sums to 100 and builds a Split.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		`{"traffic":[{"configurationName":"hello","percent":90},{"revisionName":"r1","percent":10,"tag":"old"}]}`,
		`{"traffic":[{"revisionName":"a","percent":101},{"revisionName":"b","percent":-1}]}`,
		`{"traffic":[{"percent":100,"latestRevision":true}]}`,
		`{"traffic":[{"revisionName":"a","percent":100,"tag":"x"},{"revisionName":"a","tag":"y"}]}`,
		`{}`, `null`, `[]`, `{"traffic":null}`,
	} {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "svc")
	}
	f.Fuzz(func(t *testing.T, data []byte, defaultConfig string) {
		s, err := ParseSpec(data, defaultConfig)
		if err != nil {
			return
		}
		tbl, err := Resolve(s, LatestReadyFunc(func(c string) (string, bool) { return fmt.Sprintf("rev-%x", Hash(c)), true }))
		if err != nil {
			t.Fatalf("valid spec %s does not resolve: %v", data, err)
		}
		if err := tbl.Validate(); err != nil {
			t.Fatalf("table of %s invalid: %v", data, err)
		}
		if _, err := NewSplit(tbl.Default); err != nil {
			t.Fatalf("split of %s: %v", data, err)
		}
	})
}
