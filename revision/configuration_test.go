package revision

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newConfig(t *testing.T, opts ConfigurationOptions) *Configuration[Spec] {
	t.Helper()
	c, err := NewConfiguration[Spec]("hello", opts)
	require.NoError(t, err)
	return c
}

func TestApplyCreatesOnlyOnChange(t *testing.T) {
	c := newConfig(t, ConfigurationOptions{Namespace: "default"})
	assert.Equal(t, "hello", c.Name())
	_, ok := c.Latest()
	assert.False(t, ok)

	v1 := Spec{Image: "ex/hello:1", Env: map[string]string{"A": "1"}}
	rev, created, err := c.Apply(t0, v1)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, Revision[Spec]{Name: "hello-00001", Key: "default/hello-00001", Configuration: "hello", Generation: 1, Template: v1, Created: t0}, rev)

	// The same template again — even a fresh copy of its maps — creates nothing.
	same := Spec{Image: "ex/hello:1", Env: map[string]string{"A": "1"}}
	again, created, err := c.Apply(at(time.Minute), same)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, rev, again)
	assert.Len(t, c.History(), 1)

	v2 := Spec{Image: "ex/hello:1", Env: map[string]string{"A": "2"}}
	rev2, created, err := c.Apply(at(2*time.Minute), v2)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, "hello-00002", rev2.Name)
	assert.Equal(t, int64(2), rev2.Generation)

	// Going back to v1's template makes a new revision: rollback is a
	// routing decision, and v1 is still there to route to.
	rev3, created, err := c.Apply(at(3*time.Minute), v1)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, "hello-00003", rev3.Name)
	old, ok := c.Revision("hello-00001")
	require.True(t, ok)
	assert.Equal(t, rev, old)

	latest, ok := c.Latest()
	require.True(t, ok)
	assert.Equal(t, rev3, latest)
	var hist []string
	for _, r := range c.History() {
		hist = append(hist, r.Name)
	}
	assert.Equal(t, []string{"hello-00001", "hello-00002", "hello-00003"}, hist)
}

func TestApplyGivenNames(t *testing.T) {
	c := newConfig(t, ConfigurationOptions{})
	a := Spec{Name: "hello-blue", Image: "ex/a"}
	rev, created, err := c.Apply(t0, a)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, "hello-blue", rev.Name)
	assert.Equal(t, "hello-blue", rev.Key, "no namespace: the key is the name")
	assert.Equal(t, int64(1), rev.Generation)

	// A generated name never collides with a given one: skip to a free number.
	_, _, err = c.Apply(at(1), Spec{Name: "hello-00003", Image: "ex/b"})
	require.NoError(t, err)
	rev, _, err = c.Apply(at(2), Spec{Image: "ex/c"})
	require.NoError(t, err)
	assert.Equal(t, "hello-00004", rev.Name)
	assert.Equal(t, int64(4), rev.Generation)

	// The same name with a different template: conflict, nothing changes.
	_, _, err = c.Apply(at(3), Spec{Name: "hello-blue", Image: "ex/other"})
	assert.ErrorIs(t, err, ErrNameConflict)
	assert.ErrorContains(t, err, `revision "hello-blue" of configuration "hello" exists (generation 1) with another template`)
	latest, _ := c.Latest()
	assert.Equal(t, "hello-00004", latest.Name)

	// The same name with the same template: that revision is latest again.
	rev, created, err = c.Apply(at(4), a)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, "hello-blue", rev.Name)
	latest, _ = c.Latest()
	assert.Equal(t, "hello-blue", latest.Name)
	assert.Len(t, c.History(), 3)
}

func TestApplyRejectsBadTemplatesAndNames(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		is   error
		msgs []string
	}{
		{"no image nor handler", Spec{}, ErrInvalidTemplate, []string{
			`revision: invalid template for configuration "hello"`,
			"Spec.Image and Spec.Handler are both empty, exactly one must be set"}},
		{"both image and handler", Spec{Image: "a", Handler: "h"}, ErrInvalidTemplate, []string{`Spec.Image = "a" and Spec.Handler = "h" are both set`}},
		{"every field bad at once", Spec{Handler: "h", Env: map[string]string{"": "x", "A=B": "y", "PORT": "1"}, ContainerConcurrency: 1001,
			Timeout: -time.Second, ResponseStartTimeout: -1, IdleTimeout: -2, Annotations: map[string]string{"": "v"}}, ErrInvalidTemplate, []string{
			"Spec.Env has an empty name",
			`Spec.Env name "A=B" contains '=' or NUL`,
			`Spec.Env name "PORT" is reserved, must not be one of [K_CONFIGURATION K_REVISION K_SERVICE PORT]`,
			"Spec.ContainerConcurrency = 1001, must be in [0, 1000] (0 means unlimited)",
			"Spec.Timeout = -1s, must be >= 0",
			"Spec.ResponseStartTimeout = -1ns, must be >= 0 (0 means none)",
			"Spec.IdleTimeout = -2ns, must be >= 0 (0 means none)",
			"Spec.Annotations has an empty key",
		}},
		{"sub-timeouts above the timeout", Spec{Image: "a", Timeout: time.Minute, ResponseStartTimeout: 2 * time.Minute, IdleTimeout: 61 * time.Second}, ErrInvalidTemplate, []string{
			"Spec.ResponseStartTimeout = 2m0s, must be <= Spec.Timeout = 1m0s",
			"Spec.IdleTimeout = 1m1s, must be <= Spec.Timeout = 1m0s",
		}},
		{"name without the prefix", Spec{Name: "other-1", Image: "a"}, ErrInvalidName, []string{`revision name "other-1" must have the prefix "hello-"`}},
		{"name not a label", Spec{Name: "hello-Blue", Image: "a"}, ErrInvalidName, []string{`revision name "hello-Blue" has 'B' at index 6, must be a DNS-1035 label`}},
		{"name too long", Spec{Name: "hello-" + strings.Repeat("x", 58), Image: "a"}, ErrInvalidName, []string{"is 64 characters, must be a DNS-1035 label: 1-63 characters"}},
		{"bad name and bad template together", Spec{Name: "x", Image: "a", ContainerConcurrency: -1}, ErrInvalidName, []string{
			`must have the prefix "hello-"`, "Spec.ContainerConcurrency = -1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newConfig(t, ConfigurationOptions{})
			_, _, err := c.Apply(t0, tc.spec)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tc.is), "%v is not %v", err, tc.is)
			for _, m := range tc.msgs {
				assert.Contains(t, err.Error(), m)
			}
			assert.Empty(t, c.History(), "a rejected template creates nothing")
		})
	}
}

func TestNewConfigurationErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  string
		opts ConfigurationOptions
		msgs []string
	}{
		{"empty", "", ConfigurationOptions{}, []string{"configuration name is empty, must be a DNS-1035 label: 1-57 characters"}},
		{"digit first", "1hello", ConfigurationOptions{}, []string{`configuration name "1hello" has '1' at index 0`}},
		{"too long for -00001", strings.Repeat("a", 58), ConfigurationOptions{}, []string{"is 58 characters"}},
		{"bad namespace and retention", "hello", ConfigurationOptions{Namespace: "-ns", Retention: RetentionPolicy{MaxNonActive: -5}}, []string{
			`namespace "-ns" has '-' at index 0, must be a DNS-1123 label`,
			"RetentionPolicy.MaxNonActive = -5, must be >= 0 (0 means 1000) or Disabled (-1)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewConfiguration[Spec](tc.cfg, tc.opts)
			require.Error(t, err)
			for _, m := range tc.msgs {
				assert.Contains(t, err.Error(), m)
			}
		})
	}
	c, err := NewConfiguration[Spec](strings.Repeat("a", 57), ConfigurationOptions{Namespace: "0ns"})
	require.NoError(t, err, "57 characters and a digit-first namespace are fine")
	rev, _, err := c.Apply(t0, Spec{Image: "x"})
	require.NoError(t, err)
	assert.Len(t, rev.Name, 63)
	assert.Equal(t, "0ns/"+rev.Name, rev.Key)
}

func TestGeneratedNameOverflow(t *testing.T) {
	assert.Equal(t, "a-00042", GeneratedName("a", 42))
	assert.Equal(t, "a-123456", GeneratedName("a", 123456))
	c, err := NewConfiguration[Spec](strings.Repeat("a", 57), ConfigurationOptions{})
	require.NoError(t, err)
	c.generation = 99999
	_, _, err = c.Apply(t0, Spec{Image: "x"})
	assert.ErrorIs(t, err, ErrInvalidName)
	assert.ErrorContains(t, err, "is 64 characters, more than 63")
}

// plain is a host's own comparable template with no optional methods.
type plain struct {
	Cmd  string
	Port int
}

func (p plain) Equal(o plain) bool { return p == o }

func TestConfigurationWithHostTemplate(t *testing.T) {
	c, err := NewConfiguration[plain]("worker", ConfigurationOptions{})
	require.NoError(t, err)
	r1, created, err := c.Apply(t0, plain{Cmd: "./serve", Port: 8080})
	require.NoError(t, err)
	assert.True(t, created)
	_, created, err = c.Apply(t0, plain{Cmd: "./serve", Port: 8080})
	require.NoError(t, err)
	assert.False(t, created)
	r2, created, err := c.Apply(t0, plain{Cmd: "./serve", Port: 9090})
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, "worker-00001", r1.Name)
	assert.Equal(t, "worker-00002", r2.Name)
	assert.Equal(t, 9090, r2.Template.Port, "the host gets its own type back")
}

func TestConfigurationConcurrentApply(t *testing.T) {
	c := newConfig(t, ConfigurationOptions{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				_, _, err := c.Apply(t0, Spec{Image: fmt.Sprintf("ex/%d", i%5), ContainerConcurrency: g % 2})
				assert.NoError(t, err)
				c.Latest()
				c.History()
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, r := range c.History() {
		assert.Equal(t, int64(i+1), r.Generation, "generations are dense without given names")
		assert.False(t, seen[r.Name])
		seen[r.Name] = true
	}
}

// TestValidateName checks the rule on examples; FuzzValidateName checks it
// against a regular expression.
func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "a1", "a-b", "hello-00001", strings.Repeat("x", 63)} {
		assert.NoError(t, ValidateName(ok), ok)
	}
	for _, bad := range []string{"", "1a", "-a", "a-", "A", "a_b", "a.b", "héllo", strings.Repeat("x", 64)} {
		err := ValidateName(bad)
		assert.ErrorIs(t, err, ErrInvalidName, bad)
	}
}

var dns1035 = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"", "a", "a-", "hello-00001", "Z", "a\x00", "ab-c9", strings.Repeat("q", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName(s)
		want := len(s) <= 63 && dns1035.MatchString(s)
		if want != (err == nil) {
			t.Fatalf("ValidateName(%q) = %v, regexp says valid=%v", s, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Fatalf("error %v does not wrap ErrInvalidName", err)
		}
	})
}

// TestApplyKeepsItsOwnCopy: a caller that reuses and changes its maps after
// Apply neither changes the revision it made nor has its change taken for
// the same template.
func TestApplyKeepsItsOwnCopy(t *testing.T) {
	c := newConfig(t, ConfigurationOptions{})
	env := map[string]string{"A": "1"}
	ann := map[string]string{"autoscaling.knative.dev/target": "10"}
	rev1, created, err := c.Apply(t0, Spec{Image: "ex/hello", Env: env, Annotations: ann})
	require.NoError(t, err)
	require.True(t, created)

	env["A"] = "2"
	ann["autoscaling.knative.dev/target"] = "20"
	rev2, created, err := c.Apply(at(time.Minute), Spec{Image: "ex/hello", Env: env, Annotations: ann})
	require.NoError(t, err)
	assert.True(t, created, "a changed template makes a new revision")
	assert.Equal(t, "hello-00002", rev2.Name)

	old, ok := c.Revision(rev1.Name)
	require.True(t, ok)
	assert.Equal(t, map[string]string{"A": "1"}, old.Template.Env, "the first revision is unchanged")
	assert.Equal(t, "10", old.Template.Annotations["autoscaling.knative.dev/target"])
	assert.Equal(t, map[string]string{"A": "1"}, rev1.Template.Env)
}
