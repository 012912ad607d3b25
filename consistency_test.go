package servingkit_test

import (
	"bufio"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/activator"
	"github.com/servingkit/servingkit/autoscaler"
	"github.com/servingkit/servingkit/queue"
	"github.com/servingkit/servingkit/revision"
	"github.com/servingkit/servingkit/traffic"
)

// The import graph keeps revision and traffic free of our other packages,
// and the activator free of revision and traffic, so a few names are
// defined more than once. This test holds the copies together.
func TestSharedNamesAgree(t *testing.T) {
	assert.Equal(t, revision.RevisionHeader, activator.RevisionHeader, "revision and activator RevisionHeader")
	assert.Equal(t, revision.RevisionHeader, traffic.RevisionHeader, "revision and traffic RevisionHeader")
	assert.Equal(t, queue.ProxyHeader, traffic.ProxyHeader, "queue and traffic ProxyHeader")
	assert.Equal(t, queue.StatusClientClosedRequest, activator.StatusClientClosedRequest)
}

// TestDecisionTypesAgree: revision.Decision is the part of
// autoscaler.Decision a reconciler needs, as plain values. Every field it
// has, the autoscaler's has, with the same meaning; and the reconciler
// switches to Serve exactly when the autoscaler's decision says the
// activator may leave the path.
func TestDecisionTypesAgree(t *testing.T) {
	rt, at := reflect.TypeFor[revision.Decision](), reflect.TypeFor[autoscaler.Decision]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		g, ok := at.FieldByName(f.Name)
		require.True(t, ok, "autoscaler.Decision has no field %s", f.Name)
		assert.Equal(t, kindClass(f.Type.Kind()), kindClass(g.Type.Kind()), "field %s: %v and %v", f.Name, f.Type, g.Type)
	}
	t0 := time.Unix(0, 0)
	compared := 0
	for _, desired := range []int{-1, 0, 1, 5} {
		for _, ebc := range []int{-200, -1, 0, 1, 80} {
			d := autoscaler.Decision{Desired: desired, ExcessBurstCapacity: ebc, Ready: 2}
			rec, err := revision.NewReconciler("ns/rev", t0, revision.Config{}, revision.ReconcilerOptions{})
			require.NoError(t, err)
			rec.SetActivators(t0, []string{"a"})
			rec.SetReplicas(t0, []string{"p1", "p2"})
			st := rec.Decide(t0.Add(time.Second), revision.Decision{
				Desired: int32(d.Desired), ExcessBurstCapacity: int32(d.ExcessBurstCapacity), Panicking: d.Panicking,
			})
			want := revision.Serve
			if d.ActivatorInPath() {
				want = revision.Proxy
			}
			assert.Equal(t, want, st.Want, "desired %d, EBC %d", desired, ebc)
			compared++
		}
	}
	require.Equal(t, 20, compared)
}

func kindClass(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "int"
	}
	return k.String()
}

// TestReadmeDependenciesMatchGoMod: the README's sentence on the core
// module's dependencies names exactly go.mod's direct requirements.
func TestReadmeDependenciesMatchGoMod(t *testing.T) {
	mod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	var direct []string
	inRequire := false
	sc := bufio.NewScanner(strings.NewReader(string(mod)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "require (":
			inRequire = true
		case line == ")":
			inRequire = false
		case inRequire && line != "" && !strings.Contains(line, "// indirect"):
			direct = append(direct, strings.Fields(line)[0])
		case strings.HasPrefix(line, "require ") && !strings.Contains(line, "// indirect"):
			direct = append(direct, strings.Fields(line)[1])
		}
	}
	require.NotEmpty(t, direct)

	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	text := strings.Join(strings.Fields(string(readme)), " ")
	i := strings.Index(text, "The core module depends only on")
	require.GreaterOrEqual(t, i, 0, "README: the dependency sentence is missing")
	sentence := text[i:]
	end := strings.Index(sentence, ").")
	require.Greater(t, end, 0, "README: the dependency sentence ends with \"(… in tests).\"")
	sentence = sentence[:end+2]
	var named []string
	for _, m := range regexp.MustCompile("`([a-z0-9.-]+\\.[a-z]+/[^`]+)`").FindAllStringSubmatch(sentence, -1) {
		named = append(named, m[1])
	}
	slices.Sort(direct)
	slices.Sort(named)
	assert.Equal(t, direct, named, "README says %q", sentence)
}
