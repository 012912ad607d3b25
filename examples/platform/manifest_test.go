package main

import (
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every shipped manifest parses without a warning and selects an app or
// runs a program.
func TestShippedManifests(t *testing.T) {
	names, err := fs.Glob(builtin, "manifests/*.yaml")
	require.NoError(t, err)
	require.Len(t, names, 6)
	programs := 0
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data, err := builtin.ReadFile(name)
			require.NoError(t, err)
			svc, err := ParseService(data)
			require.NoError(t, err)
			assert.Empty(t, svc.Warnings())
			c := svc.Spec.Template.Spec.Containers[0]
			if len(c.Command) > 0 {
				programs++
				return
			}
			_, err = AppForImage(c.Image)
			assert.NoError(t, err)
		})
	}
	assert.Equal(t, 2, programs, "the Go and the Python program")
}

func TestParseServiceFields(t *testing.T) {
	svc, err := ParseService([]byte(`
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: shop
  annotations: {serving.knative.dev/rollout-duration: "30s"}
spec:
  template:
    metadata:
      name: shop-blue
      annotations: {autoscaling.knative.dev/target: "5"}
    spec:
      containerConcurrency: 4
      timeoutSeconds: 30
      containers:
        - image: example.com/autoscale-go:1
          env: [{name: SLEEP_MS, value: "10"}]
  traffic:
    - {revisionName: shop-green, percent: 40, tag: green}
    - {latestRevision: true, percent: 60}
`))
	require.NoError(t, err)
	assert.Equal(t, "default", svc.Metadata.Namespace, "namespace defaults to default")
	assert.Equal(t, "30s", svc.Metadata.Annotations["serving.knative.dev/rollout-duration"])
	assert.Equal(t, "shop-blue", svc.Spec.Template.Metadata.Name)
	assert.Equal(t, int64(4), *svc.Spec.Template.Spec.ContainerConcurrency)
	assert.Equal(t, int64(30), *svc.Spec.Template.Spec.TimeoutSeconds)
	assert.Equal(t, []EnvVar{{Name: "SLEEP_MS", Value: "10"}}, svc.Spec.Template.Spec.Containers[0].Env)
	require.Len(t, svc.Spec.Traffic, 2)
	assert.Equal(t, "green", svc.Spec.Traffic[0].Tag)
	assert.True(t, *svc.Spec.Traffic[1].LatestRevision)
}

func TestParseServiceWarnsAboutUnsupportedFields(t *testing.T) {
	svc, err := ParseService([]byte(`
kind: Service
metadata: {name: a, labels: {team: x}, uid: "123"}
spec:
  template:
    spec:
      serviceAccountName: robot
      containers:
        - image: helloworld-go
          ports: [{containerPort: 8080}]
          resources: {limits: {memory: 128Mi}}
          volumeMounts: [{name: data, mountPath: /data}]
          env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k}}}]
  traffic:
    - {latestRevision: true, percent: 100, url: "http://x"}
`))
	require.NoError(t, err)
	assert.Equal(t, []string{
		"metadata.labels.team is not supported by the platform and is ignored",
		"metadata.uid is not supported by the platform and is ignored",
		"spec.template.spec.containers[0].env[0].valueFrom is not supported by the platform and is ignored",
		"spec.template.spec.containers[0].resources is not supported by the platform and is ignored",
		"spec.template.spec.containers[0].volumeMounts is not supported by the platform and is ignored",
		"spec.template.spec.serviceAccountName is not supported by the platform and is ignored",
		"spec.traffic[0].url is not supported by the platform and is ignored",
	}, svc.Warnings())
}

func TestParseServiceErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"not yaml", "a: [", "not valid YAML"},
		{"a list", "- a\n- b", "want a YAML mapping"},
		{"kind", "kind: Route\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{image: hello}]}}}", `kind = "Route", want "Service"`},
		{"no name", "kind: Service\nspec: {template: {spec: {containers: [{image: hello}]}}}", "metadata.name is required"},
		{"no container", "kind: Service\nmetadata: {name: a}", "needs one container"},
		{"two containers", "kind: Service\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{image: a}, {image: b}]}}}", "has 2 containers"},
		{"cc range", "kind: Service\nmetadata: {name: a}\nspec: {template: {spec: {containerConcurrency: -1, containers: [{image: a}]}}}", "containerConcurrency = -1, must be in [0, 1000]"},
		{"timeout range", "kind: Service\nmetadata: {name: a}\nspec: {template: {spec: {timeoutSeconds: 0, containers: [{image: a}]}}}", "timeoutSeconds = 0, must be in [1, 3600]"},
		{"wrong type", "kind: Service\nmetadata: {name: a}\nspec: {template: {spec: {containerConcurrency: lots, containers: [{image: a}]}}}", "containerConcurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseService([]byte(tt.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// The attacks of issue 11 on the manifest parser, each refused with an
// error that says what and where.
func TestParseServiceRefusesWhatItCannotApplyWhole(t *testing.T) {
	const svc = "kind: Service\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{image: hello}]}}}\n"
	tests := []struct{ name, yaml, want string }{
		{"second document", svc + "---\n" + strings.Replace(svc, "name: a", "name: b", 1),
			"document 2 (line 5) is a second document"},
		{"duplicate key", "kind: Service\nmetadata:\n  name: a\n  name: b\nspec: {template: {spec: {containers: [{image: hello}]}}}\n",
			`line 4: duplicate key "name" under metadata (first at line 3)`},
		{"duplicate key in an ignored field", svc + "status: {url: a, url: b}\n",
			`line 4: duplicate key "url" under status (first at line 4)`},
		{"duplicate annotation", "kind: Service\nmetadata: {name: a}\nspec:\n  template:\n    metadata:\n      annotations:\n        autoscaling.knative.dev/max-scale: \"1\"\n        autoscaling.knative.dev/max-scale: \"900\"\n    spec: {containers: [{image: hello}]}\n",
			`line 8: duplicate key "autoscaling.knative.dev/max-scale" under spec.template.metadata.annotations (first at line 7)`},
		{"duplicate key in JSON", `{"kind": "Service", "kind": "Service", "metadata": {"name": "a"}}`,
			`line 1: duplicate key "kind" under the top level`},
		{"too deep", svc + "status: " + strings.Repeat("{a: ", 40) + "1" + strings.Repeat("}", 40) + "\n",
			"is nested deeper than 32 levels"},
		{"visibility", "kind: Service\nmetadata: {name: a, labels: {networking.knative.dev/visibility: public}}\nspec: {template: {spec: {containers: [{image: hello}]}}}\n",
			`metadata.labels[networking.knative.dev/visibility] = "public", want "cluster-local"`},
		{"only empty documents", "---\n---\n", "manifest: empty"},
		{"over 1 MiB", svc + "# " + strings.Repeat("x", MaxManifestBytes) + "\n", "more than the limit of 1048576 bytes (1 MiB)"},
		{"nested 500,000 deep", "a: " + strings.Repeat("[", 500_000), "exceeded max depth"},
		{"a billion laughs", laughs(svc), "excessive aliasing"},
		// Keys that differ as written but are one key once decoded.
		{"number keys", "kind: Service\nmetadata:\n  name: a\n  annotations: {16: x, 0x10: y}\nspec: {template: {spec: {containers: [{image: hello}]}}}\n",
			`line 4: key 16 under metadata.annotations is read by YAML as a number, not a string; quote it`},
		{"YAML 1.1 boolean keys", "kind: Service\nmetadata:\n  name: a\n  annotations: {yes: x, \"true\": y}\nspec: {template: {spec: {containers: [{image: hello}]}}}\n",
			`line 4: key yes under metadata.annotations is read by YAML as a boolean (YAML 1.1), not a string; quote it`},
		{"boolean key", "kind: Service\nmetadata: {name: a, annotations: {true: x}}\nspec: {template: {spec: {containers: [{image: hello}]}}}\n",
			`line 2: key true under metadata.annotations is read by YAML as a boolean`},
		{"null key", "kind: Service\nmetadata: {name: a, annotations: {~: x}}\nspec: {template: {spec: {containers: [{image: hello}]}}}\n",
			`line 2: key ~ under metadata.annotations is read by YAML as null`},
		{"field name in another case", svc[:len(svc)-2] + ", Traffic: [{latestRevision: true, percent: 100, tag: x}]}\n",
			`line 3: spec.Traffic: field names are case-sensitive; did you mean "traffic"?`},
		{"field name in another case, with the field", "Kind: Service\nkind: Service\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{image: hello}]}}}\n",
			`line 1: Kind: field names are case-sensitive; did you mean "kind"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseService([]byte(tt.yaml))
			require.Error(t, err, "accepted: %+v", s)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	// Quoted, such keys are strings, as are keys YAML reads as timestamps.
	s, err := ParseService([]byte("kind: Service\nmetadata: {name: a, annotations: {\"16\": x, '0x10': v, !!str yes: z, 2001-01-01: w}}\nspec: {template: {spec: {containers: [{image: hello}]}}}\n"))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"16": "x", "0x10": "v", "yes": "z", "2001-01-01": "w"}, s.Metadata.Annotations)

	// Empty documents around the one Service are not a second document.
	s, err = ParseService([]byte("---\n" + svc + "---\n"))
	require.NoError(t, err)
	assert.Equal(t, "a", s.Metadata.Name)
}

// Issue 11: 18 KB of labels nested 9,000 deep took 1.9 s and ~210 MB,
// because the walk rebuilt the path string at every level. It is refused
// at the depth limit now, and the walk over an accepted manifest costs
// memory in proportion to its size.
func TestParseServiceDeepNestingIsCheap(t *testing.T) {
	deep := "kind: Service\nmetadata:\n  name: a\n  labels: " + strings.Repeat("{a: ", 9000) + "1" + strings.Repeat("}", 9000) + "\n" +
		"spec: {template: {spec: {containers: [{image: hello}]}}}\n"
	require.Greater(t, len(deep), 18_000)
	var allocated uint64
	allocs := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	allocated = allocs(func() {
		_, err := ParseService([]byte(deep))
		require.ErrorContains(t, err, "metadata.labels.a.a")
		require.ErrorContains(t, err, "is nested deeper than 32 levels")
	})
	t.Logf("%d bytes of 9,000-deep labels: %d bytes allocated", len(deep), allocated)
	assert.Less(t, allocated, uint64(30<<20), "bytes allocated parsing an 18 KB manifest")

	// Linear: ignored fields 30 levels deep, many of them; doubling their
	// number at most about doubles the cost.
	wide := func(n int) string {
		var b strings.Builder
		b.WriteString("kind: Service\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{image: hello}]}}}\nstatus:\n")
		for i := range n {
			fmt.Fprintf(&b, "  k%d: %s1%s\n", i, strings.Repeat("{a: ", 28), strings.Repeat("}", 28))
		}
		return b.String()
	}
	one, two := wide(200), wide(400)
	a1 := allocs(func() { _, err := ParseService([]byte(one)); require.NoError(t, err) })
	a2 := allocs(func() { _, err := ParseService([]byte(two)); require.NoError(t, err) })
	assert.Less(t, float64(a2), 2.6*float64(a1), "allocations grew faster than the manifest: %d B for %d B, %d B for %d B", a1, len(one), a2, len(two))
}

// Labels other than the visibility label warn like unknown fields.
func TestParseServiceLabels(t *testing.T) {
	s, err := ParseService([]byte("kind: Service\nmetadata:\n  name: a\n  labels: {networking.knative.dev/visibility: cluster-local, app.kubernetes.io/name: x}\nspec: {template: {metadata: {labels: {v: \"1\"}}, spec: {containers: [{image: hello}]}}}\n"))
	require.NoError(t, err)
	assert.Equal(t, VisibilityClusterLocal, s.Metadata.Labels[VisibilityLabel])
	assert.Equal(t, []string{
		"metadata.labels[app.kubernetes.io/name] is not supported by the platform and is ignored",
		"spec.template.metadata.labels is not supported by the platform and is ignored",
	}, s.Warnings())
}

func TestAppForImage(t *testing.T) {
	for image, want := range map[string]App{
		"gcr.io/knative-samples/helloworld-go":     AppHello,
		"ghcr.io/knative/helloworld-go:latest":     AppHello,
		"hello":                                    AppHello,
		"ghcr.io/knative/autoscale-go@sha256:abcd": AppAutoscale,
	} {
		got, err := AppForImage(image)
		require.NoError(t, err, image)
		assert.Equal(t, want, got, image)
	}
	_, err := AppForImage("nginx:1.27")
	assert.ErrorContains(t, err, `image "nginx:1.27" selects no built-in app`)
}

func FuzzParseService(f *testing.F) {
	names, _ := fs.Glob(builtin, "manifests/*.yaml")
	for _, n := range names {
		data, _ := builtin.ReadFile(n)
		f.Add(data)
	}
	f.Add([]byte("kind: Service\nspec: {traffic: [{percent: 50}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		svc, err := ParseService(data)
		if err != nil {
			return
		}
		// What parses has a name, a namespace and exactly one container.
		if svc.Metadata.Name == "" || svc.Metadata.Namespace == "" || len(svc.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("accepted an incomplete service: %+v", svc)
		}
		for _, w := range svc.Warnings() {
			if !strings.Contains(w, "ignored") && !strings.Contains(w, "apiVersion") {
				t.Fatalf("odd warning %q", w)
			}
		}
	})
}

// laughs is a manifest whose aliases expand to 10^10 strings.
func laughs(svc string) string {
	var b strings.Builder
	b.WriteString(svc + "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	return b.String()
}
