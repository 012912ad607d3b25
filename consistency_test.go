package servingkit_test

import (
	"bufio"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
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

// TestImportGraphMatchesReadme: the README's package table says which of
// our packages each core package imports; the code does exactly that. So
// the layers hold (leaves import nothing of ours; only gateway imports
// several siblings and nothing in the core imports gateway), and a new
// package or import must be added to the table, with its layer.
func TestImportGraphMatchesReadme(t *testing.T) {
	const module = "github.com/servingkit/servingkit/"
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| \\[`([a-z]+)`\\]\\([a-z]+\\) \\|.*\\| ([^|]+) \\|$")
	table := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		if _, err := os.Stat(filepath.Join(m[1], "go.mod")); err == nil {
			continue // a nested module: its own go.mod, not the core
		}
		var deps []string
		if col := strings.TrimSpace(m[2]); col != "—" {
			deps = strings.Split(col, ", ")
		}
		slices.Sort(deps)
		table[m[1]] = deps
	}
	require.Contains(t, table, "gateway", "README: the package table was not found")
	require.Len(t, table, 9, "core packages in the README's table: %v", table)

	// Imports of every core package, tests left out: a package's tests
	// may use other packages as the host would.
	imports := map[string][]string{} // by directory
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil && path != "." {
				return filepath.SkipDir // nested modules: examples, prometheus, kubernetes, bench
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		for _, is := range f.Imports {
			p := strings.Trim(is.Path.Value, `"`)
			if rest, ok := strings.CutPrefix(p, module); ok && !slices.Contains(imports[dir], rest) {
				imports[dir] = append(imports[dir], rest)
			}
		}
		if _, ok := imports[dir]; !ok {
			imports[dir] = nil
		}
		return nil
	})
	require.NoError(t, err)

	for dir, deps := range imports {
		var ours []string
		for _, d := range deps {
			if !strings.HasPrefix(d, "internal/") {
				ours = append(ours, d)
			}
		}
		slices.Sort(ours)
		top, _, _ := strings.Cut(dir, "/")
		switch {
		case dir == ".":
		case top == "internal":
			assert.Empty(t, ours, "internal/ helper %s: helpers import only the standard library", dir)
		case dir == top:
			want, ok := table[dir]
			if assert.True(t, ok, "package %s is not in the README's package table: add it, with its layer", dir) {
				assert.Equal(t, want, ours, "README's imports for %s", dir)
			}
		default: // a sub-package such as autoscaler/autoscalertest
			assert.NotContains(t, ours, "gateway", "%s imports gateway: only programs may", dir)
		}
	}
	for name := range table {
		assert.Contains(t, imports, name, "README lists %s, which is not a core package directory", name)
	}
}
