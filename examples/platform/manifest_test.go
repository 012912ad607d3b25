package main

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every shipped manifest parses without a warning and selects an app.
func TestShippedManifests(t *testing.T) {
	names, err := fs.Glob(builtin, "manifests/*.yaml")
	require.NoError(t, err)
	require.Len(t, names, 4)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data, err := builtin.ReadFile(name)
			require.NoError(t, err)
			svc, err := ParseService(data)
			require.NoError(t, err)
			assert.Empty(t, svc.Warnings())
			_, err = AppForImage(svc.Spec.Template.Spec.Containers[0].Image)
			assert.NoError(t, err)
		})
	}
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
